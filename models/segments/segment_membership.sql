{#- Current members of each segment with when they entered: what activation syncs. -#}
{{ config(materialized='view') }}

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

select * from final
