{#- One row per hour of failed_at with at least one failed event (input the loader could not
    load): what the data-quality detector compares with the event volume of the same hour.
    failed_at is set by the loader's clock when an input fails, so it rises from load to load;
    incremental runs recompute the latest hour already kept and every later one. -#}
{{ config(unique_key='bucket_start', target_lag='downstream') }}
{%- set hour = dbt.date_trunc('hour', 'failed_at') -%}

with failed_events as (

    select * from {{ source('atomic', 'failed_events') }}
    where
        failed_at is not null  -- noqa: LT02
        {%- if persona.incremental_run() %}
        and failed_at >= (
            select coalesce(max(kept.bucket_start), cast('1970-01-01' as timestamp))
            from {{ this }} as kept
        )
        {%- endif %}

),

hourly as (

    select
        {{ hour }} as bucket_start,
        count(*) as failed_events,
        count(distinct error_type) as error_types,
        max(failed_at) as max_failed_at
    from failed_events
    group by {{ hour }}

),

final as (

    select * from hourly

)

select * from final
