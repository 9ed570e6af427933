{#- Current members of each segment with when they entered: what activation syncs. Entry times
    come from the segment_history snapshot that `dbt build` takes; a plain `dbt run` on a
    warehouse that has no snapshot yet still lists the members, with `since` unknown. -#}
{{ config(materialized='view') }}
-- depends_on: {{ ref('segment_members') }}

{%- if persona.snapshot_exists(ref('segment_history')) %}

with history as (

    select * from {{ ref('segment_history') }}

),

final as (

    select
        user_id,
        segment,
        dbt_valid_from as since
    from history
    where dbt_valid_to is null

)

{%- else %}

with members as (

    select * from {{ ref('segment_members') }}

),

final as (

    select
        user_id,
        segment,
        cast(null as timestamp) as since
    from members

)

{%- endif %}

select * from final
