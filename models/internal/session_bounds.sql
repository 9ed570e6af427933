{#- One row per session: when its events arrived and when it last changed. Incremental runs
    of the session models recompute only sessions changed since their own last run, reading
    events from the earliest arrival among them, so no run scans the whole history. -#}
{{ config(unique_key='domain_sessionid') }}

with events as (

    select * from {{ ref('events') }}
    where
        domain_sessionid is not null  -- noqa: LT02
        {%- if persona.incremental_run() %}
        and load_tstamp > {{ persona.watermark() }}
        {%- endif %}

),

new_bounds as (

    select
        domain_sessionid,
        min(collector_tstamp) as first_collector_tstamp,
        max(load_tstamp) as max_load_tstamp
    from events
    group by domain_sessionid

),

{%- if persona.incremental_run() %}

merged as (

    select
        new_bounds.domain_sessionid,
        least(
            new_bounds.first_collector_tstamp,
            coalesce(kept.first_collector_tstamp, new_bounds.first_collector_tstamp)
        ) as first_collector_tstamp,
        new_bounds.max_load_tstamp
    from new_bounds
    left join {{ this }} as kept on new_bounds.domain_sessionid = kept.domain_sessionid

),

{%- else %}

merged as (

    select * from new_bounds

),

{%- endif %}

final as (

    select * from merged

)

select * from final
