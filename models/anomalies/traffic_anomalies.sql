{#- One row per flagged app × event type × hour of the window (anomalies_window_days before
    as_of): events far from the same hour of the week in the previous
    anomalies_traffic_baseline_weeks weeks (robust z, macros/domain/robust_baseline.sql), and
    hours that dropped to zero where many were expected (an outage: flagged 'high' whatever
    the score, and the reason says so). Known bots are left out (their own detector reports
    them). Part of `anomalies`; reads the clock, so rebuilt whole every run. -#}
{{ config(
    materialized='dynamic_table' if target.type == 'snowflake' else 'table',
    refresh_mode='FULL',
    target_lag='downstream',
) }}
{%- set weeks = var('anomalies_traffic_baseline_weeks') -%}
{%- set threshold = var('anomalies_traffic_z_threshold') -%}
{%- set monday = "cast('1970-01-05' as timestamp)" -%}

with traffic_hourly as (

    select * from {{ ref('traffic_hourly') }}

),

window_bounds as (

    {{ persona.anomalies_window() }}

),

traffic as (

    select
        bucket_start,
        coalesce(app_id, '(none)') as app_id,
        coalesce(event_name, '(none)') as event_name,
        sum(events - bot_events) as events
    from traffic_hourly
    group by bucket_start, coalesce(app_id, '(none)'), coalesce(event_name, '(none)')

),

subjects as (

    {#- each app × event type from its first hour (or the first baseline hour needed) on -#}
    select
        traffic.app_id,
        traffic.event_name,
        greatest(
            min(traffic.bucket_start),
            {{ dbt.dateadd('week', -weeks, 'window_bounds.window_start') }}
        ) as first_hour,
        window_bounds.last_hour
    from traffic
    cross join window_bounds
    group by traffic.app_id, traffic.event_name, window_bounds.window_start, window_bounds.last_hour

),

spine as (

    {{ persona.hour_spine('subjects') }}

),

dense as (

    {#- every hour of every subject, 0 where nothing arrived: outages are drops to zero -#}
    select
        spine.app_id,
        spine.event_name,
        spine.bucket_start,
        {{ persona.time_between('hour', monday, 'spine.bucket_start') }} % 168 as hour_of_week,
        coalesce(traffic.events, 0) as events
    from spine
    left join traffic
        on
            spine.app_id = traffic.app_id
            and spine.event_name = traffic.event_name
            and spine.bucket_start = traffic.bucket_start

),

scored as (

    select dense.* from dense
    cross join window_bounds
    where dense.bucket_start >= window_bounds.window_start

),

baselines as (

    {#- the same hour of the week in each of the previous `weeks` weeks -#}
    {{ persona.robust_baseline(
        'scored', 'dense', ['app_id', 'event_name'], 'events',
        "scored.hour_of_week = baseline.hour_of_week
                and scored.bucket_start > baseline.bucket_start
                and " ~ dbt.dateadd('week', -weeks, 'scored.bucket_start') ~ "
                <= baseline.bucket_start",
    ) }}

),

scores as (

    select
        scored.app_id,
        scored.event_name,
        scored.bucket_start,
        scored.events,
        baselines.expected,
        {#- the Poisson floor widened: events come in sessions of many events #}
        {{ persona.robust_z(
            'scored.events', 'baselines.expected', 'baselines.mad',
            var('anomalies_traffic_dispersion'),
        ) }} as score
    from scored
    inner join baselines
        on
            scored.app_id = baselines.app_id
            and scored.event_name = baselines.event_name
            and scored.bucket_start = baselines.bucket_start
    where baselines.baseline_buckets = {{ weeks }}

),

final as (

    select
        'traffic' as detector,
        app_id || '/' || event_name as subject,
        bucket_start,
        cast(events as double) as observed,
        cast(expected as double) as expected,
        cast(score as double) as score,
        cast({{ threshold }} as double) as threshold,
        case
            when events = 0 then 'high'
            else {{ persona.anomaly_severity('score', threshold) }}
        end as severity,
        case
            when events = 0 then 'dropped to zero: '
            when score > 0 then 'spike: '
            else 'drop: '
        end
        || cast(events as {{ dbt.type_string() }}) || ' events, '
        || cast(cast(round(expected, 1) as decimal(18, 1)) as {{ dbt.type_string() }})
        || ' expected (median of the same hour in the previous {{ weeks }} weeks)'
        || case
            when events = 0
                then
                    '; an hour this busy is never empty by chance: '
                    || 'an outage, high whatever its score'
            else ''
        end as reason,
        cast(null as boolean) as is_known_bot
    from scores
    where
        (
            abs(score) >= {{ threshold }}
            and greatest(events, expected) >= {{ var('anomalies_traffic_min_events') }}
        )
        or (events = 0 and expected >= {{ var('anomalies_traffic_min_expected_for_zero') }})

)

select * from final
