{#- Entries and exits, one row per change: an activation tool syncs the rows after its last
    sync instead of diffing whole lists. -#}
{{ config(materialized='view') }}

with history as (

    select * from {{ ref('segment_history') }}

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
