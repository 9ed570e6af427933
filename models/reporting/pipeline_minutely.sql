{#- One row per minute of collector_tstamp with at least one event: the events that made it
    into `events` (valid, deduplicated), how many of them were bots, and how long they took from
    the collector to the warehouse (load_tstamp - collector_tstamp). The dashboard's pipeline
    page reads minutes and rolls them up to hours, instead of scanning events. Incremental runs
    recompute, whole, the minutes that events loaded since the last run fall in, as
    traffic_hourly does for hours. -#}
{{ config(unique_key='bucket_start') }}
{%- set minute = dbt.date_trunc('minute', 'collector_tstamp') -%}

with events as (

    select * from {{ ref('events') }}
    where
        collector_tstamp is not null  -- noqa: LT02
        {{- persona.in_touched_buckets(ref('events'), minute) }}

),

latencies as (

    select
        {{ minute }} as bucket_start,
        is_bot,
        {{ persona.seconds_between('collector_tstamp', 'load_tstamp') }} as load_latency_s,
        load_tstamp
    from events

),

minutely as (

    select
        bucket_start,
        count(*) as events,
        sum(case when is_bot then 1 else 0 end) as bot_events,
        sum(load_latency_s) as load_latency_s_sum,
        max(load_latency_s) as load_latency_s_max,
        max(load_tstamp) as max_load_tstamp
    from latencies
    group by bucket_start

),

final as (

    select * from minutely

)

select * from final
