{#- One row per flagged hour of the window (anomalies_window_days before as_of) whose failed
    events (inputs the loader could not load) far exceed the usual failure rate: the median
    rate of the previous anomalies_failed_baseline_hours hours times this hour's volume, scored
    with a robust z (macros/domain/robust_baseline.sql). Spikes only: fewer failures is good
    news. Part of `anomalies`; reads the clock, so rebuilt whole every run. -#}
{{ config(
    materialized='dynamic_table' if target.type == 'snowflake' else 'table',
    refresh_mode='FULL',
    target_lag='downstream',
) }}
{%- set failed_hours = var('anomalies_failed_baseline_hours') -%}
{%- set failed_threshold = var('anomalies_failed_z_threshold') -%}

with traffic_hourly as (

    select * from {{ ref('traffic_hourly') }}

),

failed_events_hourly as (

    select * from {{ ref('failed_events_hourly') }}

),

window_bounds as (

    {{ persona.anomalies_window() }}

),

hourly_volume as (

    {#- the events of the hour, known bots left out as in the traffic detector -#}
    select
        bucket_start,
        sum(events - bot_events) as events
    from traffic_hourly
    group by bucket_start

),

bounds as (

    select
        greatest(
            min(volume_hours.bucket_start),
            {{ dbt.dateadd('hour', -failed_hours, 'window_bounds.window_start') }}
        ) as first_hour,
        window_bounds.last_hour
    from (
        select bucket_start from hourly_volume
        union all
        select bucket_start from failed_events_hourly
    ) as volume_hours
    cross join window_bounds
    group by window_bounds.window_start, window_bounds.last_hour

),

spine as (

    {{ persona.hour_spine('bounds') }}

),

dense as (

    select
        spine.bucket_start,
        coalesce(hourly_volume.events, 0) as events,
        coalesce(failed_events_hourly.failed_events, 0) as failed_events,
        cast(coalesce(failed_events_hourly.failed_events, 0) as double) / nullif(
            coalesce(hourly_volume.events, 0) + coalesce(failed_events_hourly.failed_events, 0),
            0
        ) as failure_rate
    from spine
    left join hourly_volume on spine.bucket_start = hourly_volume.bucket_start
    left join failed_events_hourly on spine.bucket_start = failed_events_hourly.bucket_start

),

scored as (

    select dense.* from dense
    cross join window_bounds
    where dense.bucket_start >= window_bounds.window_start

),

baselines as (

    {#- the previous `failed_hours` hours; hours without any input have no rate -#}
    {{ persona.robust_baseline(
        'scored', 'dense', [], 'failure_rate',
        "scored.bucket_start > baseline.bucket_start
                and " ~ dbt.dateadd('hour', -failed_hours, 'scored.bucket_start') ~ "
                <= baseline.bucket_start",
    ) }}

),

scores as (

    {#- the median rate and its MAD scaled to this hour's volume -#}
    select
        scored.bucket_start,
        scored.failed_events,
        scored.events,
        scored.failure_rate,
        baselines.expected as expected_rate,
        baselines.expected * (scored.events + scored.failed_events) as expected,
        {{ persona.robust_z(
            'scored.failed_events',
            'baselines.expected * (scored.events + scored.failed_events)',
            'baselines.mad * (scored.events + scored.failed_events)',
        ) }} as score
    from scored
    inner join baselines on scored.bucket_start = baselines.bucket_start
    where baselines.baseline_buckets = {{ failed_hours }}

),

final as (

    select
        'data_quality' as detector,
        'failed_events' as subject,
        bucket_start,
        cast(failed_events as double) as observed,
        cast(expected as double) as expected,
        cast(score as double) as score,
        cast({{ failed_threshold }} as double) as threshold,
        {{ persona.anomaly_severity('score', failed_threshold) }} as severity,
        'failed events spike: ' || cast(failed_events as {{ dbt.type_string() }})
        || ' failed of ' || cast(failed_events + events as {{ dbt.type_string() }})
        || ' inputs (' || cast(round(100 * failure_rate, 2) as {{ dbt.type_string() }})
        || '%), usual rate ' || cast(round(100 * expected_rate, 2) as {{ dbt.type_string() }})
        || '% (median of the previous {{ failed_hours }} hours)' as reason,
        cast(null as boolean) as is_known_bot
    from scores
    where
        score >= {{ failed_threshold }}
        and failed_events >= {{ var('anomalies_failed_min_events') }}

)

select * from final
