{#- Entries and exits, one row per change: an activation tool syncs the rows after its last
    sync instead of diffing whole lists. -#}
{{ config(materialized='view') }}
-- depends_on: {{ ref('segment_members') }}

with history as (

    {%- if persona.snapshot_exists(ref('segment_history')) %}
    select * from {{ ref('segment_history') }}
    {%- else %}
    {#- no snapshot yet (a plain `dbt run`): no changes recorded -#}
    select
        user_id,
        segment,
        cast(null as timestamp) as dbt_valid_from,
        cast(null as timestamp) as dbt_valid_to
    from {{ ref('segment_members') }}
    where false
    {%- endif %}

),

entries as (

    select
        user_id,
        segment,
        'enter' as change_type,
        dbt_valid_from as changed_at
    from history

),

exits as (

    select
        user_id,
        segment,
        'exit' as change_type,
        dbt_valid_to as changed_at
    from history
    where dbt_valid_to is not null

),

final as (

    select * from entries
    union all
    select * from exits

)

select * from final
