{#- One row per app_id × event_name × hour of collector_tstamp with at least one event: the
    event volume the traffic detector compares with its seasonal baseline. Known bots are
    counted, and counted apart (bot_events), so a detector can leave them out. Incremental runs
    recompute, whole, the hours that events loaded since the last run fall in (late events
    reopen old hours) and replace those hours' rows.
    One case is left to a full refresh, as in identity_map: when an earlier copy of an event
    arrives after the later copy was kept, `events` swaps them, and the hour of the copy
    removed keeps counting it. -#}
{{ config(unique_key='bucket_start', target_lag='downstream') }}
{%- set hour = dbt.date_trunc('hour', 'collector_tstamp') -%}

with events as (

    select * from {{ ref('events') }}
    where
        collector_tstamp is not null  -- noqa: LT02
        {{- persona.in_touched_buckets(ref('events'), hour) }}

),

hourly as (

    select
        {{ hour }} as bucket_start,
        app_id,
        event_name,
        count(*) as events,
        sum(case when is_bot then 1 else 0 end) as bot_events,
        max(load_tstamp) as max_load_tstamp
    from events
    group by {{ hour }}, app_id, event_name

),

final as (

    select * from hourly

)

select * from final
