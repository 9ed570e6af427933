{#- One row per flagged item, from three detectors, over the anomalies_window_days before
    as_of (macros/as_of.sql): `traffic` (an app × event type × hour far from the same hour of
    the week in the previous weeks, drops to zero included), `behaviour` (a device-day that
    looks like a bot) and `data_quality` (an hour whose failed events far exceed the usual
    failure rate). Only whole hours before as_of are scored. It may read the current time, so
    it is the thin final layer: a table rebuilt every run on DuckDB, a dynamic table with
    refresh_mode FULL on Snowflake. Thresholds: the anomalies vars in dbt_project.yml. -#}
{{ config(
    materialized='dynamic_table' if target.type == 'snowflake' else 'table',
    refresh_mode='FULL',
) }}
{%- set weeks = var('anomalies_traffic_baseline_weeks') -%}
{%- set traffic_threshold = var('anomalies_traffic_z_threshold') -%}
{%- set failed_hours = var('anomalies_failed_baseline_hours') -%}
{%- set failed_threshold = var('anomalies_failed_z_threshold') -%}
{%- set monday = "cast('1970-01-05' as timestamp)" -%}

with traffic_hourly as (

    select * from {{ ref('traffic_hourly') }}

),

failed_events_hourly as (

    select * from {{ ref('failed_events_hourly') }}

),

device_behaviour_daily as (

    select * from {{ ref('device_behaviour_daily') }}

),

reference_time as (

    select {{ persona.as_of() }} as as_of

),

window_bounds as (

    {#- the last whole hour before as_of, and the first hour scored -#}
    select
        as_of,
        {{ dbt.dateadd('hour', -1, dbt.date_trunc('hour', 'as_of')) }} as last_hour,
        {{ dbt.dateadd('day', -var('anomalies_window_days'), dbt.date_trunc('hour', 'as_of')) }}
            as window_start
    from reference_time

),

{# ---------------------------------------------------------------- traffic #}

traffic as (

    select
        bucket_start,
        coalesce(app_id, '(none)') as app_id,
        coalesce(event_name, '(none)') as event_name,
        sum(events - bot_events) as events
    from traffic_hourly
    group by bucket_start, coalesce(app_id, '(none)'), coalesce(event_name, '(none)')

),

traffic_subjects as (

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

traffic_spine as (

    {{ persona.hour_spine('traffic_subjects') }}

),

traffic_dense as (

    {#- every hour of every subject, 0 where nothing arrived: outages are drops to zero -#}
    select
        traffic_spine.app_id,
        traffic_spine.event_name,
        traffic_spine.bucket_start,
        {{ persona.time_between('hour', monday, 'traffic_spine.bucket_start') }} % 168
            as hour_of_week,
        coalesce(traffic.events, 0) as events
    from traffic_spine
    left join traffic
        on
            traffic_spine.app_id = traffic.app_id
            and traffic_spine.event_name = traffic.event_name
            and traffic_spine.bucket_start = traffic.bucket_start

),

traffic_scored as (

    select traffic_dense.* from traffic_dense
    cross join window_bounds
    where traffic_dense.bucket_start >= window_bounds.window_start

),

traffic_baseline as (

    {#- the same hour of the week in each of the previous `weeks` weeks -#}
    select
        scored.app_id,
        scored.event_name,
        scored.bucket_start,
        baseline.events as baseline_events
    from traffic_scored as scored
    inner join traffic_dense as baseline
        on
            scored.app_id = baseline.app_id
            and scored.event_name = baseline.event_name
            and scored.hour_of_week = baseline.hour_of_week
            and scored.bucket_start > baseline.bucket_start
            and {{ dbt.dateadd('week', -weeks, 'scored.bucket_start') }}
            <= baseline.bucket_start

),

traffic_medians as (

    select
        app_id,
        event_name,
        bucket_start,
        count(*) as baseline_weeks,
        median(baseline_events) as expected
    from traffic_baseline
    group by app_id, event_name, bucket_start

),

traffic_mads as (

    select
        traffic_baseline.app_id,
        traffic_baseline.event_name,
        traffic_baseline.bucket_start,
        median(abs(traffic_baseline.baseline_events - traffic_medians.expected)) as mad
    from traffic_baseline
    inner join traffic_medians
        on
            traffic_baseline.app_id = traffic_medians.app_id
            and traffic_baseline.event_name = traffic_medians.event_name
            and traffic_baseline.bucket_start = traffic_medians.bucket_start
    group by traffic_baseline.app_id, traffic_baseline.event_name, traffic_baseline.bucket_start

),

traffic_scores as (

    select
        traffic_scored.app_id,
        traffic_scored.event_name,
        traffic_scored.bucket_start,
        traffic_scored.events,
        traffic_medians.expected,
        {#- the Poisson floor widened: events come in sessions of many events #}
        {{ persona.robust_z(
            'traffic_scored.events', 'traffic_medians.expected', 'traffic_mads.mad',
            var('anomalies_traffic_dispersion'),
        ) }} as score
    from traffic_scored
    inner join traffic_medians
        on
            traffic_scored.app_id = traffic_medians.app_id
            and traffic_scored.event_name = traffic_medians.event_name
            and traffic_scored.bucket_start = traffic_medians.bucket_start
    inner join traffic_mads
        on
            traffic_scored.app_id = traffic_mads.app_id
            and traffic_scored.event_name = traffic_mads.event_name
            and traffic_scored.bucket_start = traffic_mads.bucket_start
    where traffic_medians.baseline_weeks = {{ weeks }}

),

traffic_anomalies as (

    select
        'traffic' as detector,
        app_id || '/' || event_name as subject,
        bucket_start,
        cast(events as double) as observed,
        cast(expected as double) as expected,
        cast(score as double) as score,
        cast({{ traffic_threshold }} as double) as threshold,
        case
            when events = 0 then 'high'
            else {{ persona.anomaly_severity('score', traffic_threshold) }}
        end as severity,
        case
            when events = 0 then 'dropped to zero'
            when score > 0 then 'spike'
            else 'drop'
        end
        || ': ' || cast(events as {{ dbt.type_string() }}) || ' events, '
        || cast(round(expected, 1) as {{ dbt.type_string() }})
        || ' expected (median of the same hour in the previous {{ weeks }} weeks)'
            as reason,
        cast(null as boolean) as is_known_bot
    from traffic_scores
    where
        (
            abs(score) >= {{ traffic_threshold }}
            and greatest(events, expected) >= {{ var('anomalies_traffic_min_events') }}
        )
        or (events = 0 and expected >= {{ var('anomalies_traffic_min_expected_for_zero') }})

),

{# ---------------------------------------------------------------- behaviour #}

behaviour_signals as (

    select
        device_behaviour_daily.*,
        case
            when
                device_behaviour_daily.max_events_per_minute
                >= {{ var('anomalies_bot_max_events_per_minute') }}
                then 1
            else 0
        end as is_fast,
        case
            when
                device_behaviour_daily.page_views
                >= {{ var('anomalies_bot_min_page_views_without_pings') }}
                and device_behaviour_daily.page_pings = 0
                then 1
            else 0
        end as is_pingless,
        case
            when
                device_behaviour_daily.page_views
                >= {{ var('anomalies_bot_min_page_views_for_gaps') }}
                and device_behaviour_daily.page_view_gap_cv
                <= {{ var('anomalies_bot_max_gap_cv') }}
                then 1
            else 0
        end as is_uniform
    from device_behaviour_daily
    cross join window_bounds
    where
        device_behaviour_daily.event_date >= cast(window_bounds.window_start as date)
        and device_behaviour_daily.event_date <= cast(window_bounds.last_hour as date)

),

behaviour_anomalies as (

    select
        'behaviour' as detector,
        domain_userid as subject,
        cast(event_date as timestamp) as bucket_start,
        cast(events as double) as observed,
        cast(null as double) as expected,
        cast(is_fast + is_pingless + is_uniform as double) as score,
        cast(1 as double) as threshold,
        case
            when is_bot then 'info'
            when is_fast + is_pingless + is_uniform >= 2 then 'high'
            else 'medium'
        end as severity,
        substr(
            case
                when is_fast = 1
                    then
                        '; ' || cast(max_events_per_minute as {{ dbt.type_string() }})
                        || ' events in one minute'
                else ''
            end
            || case
                when is_pingless = 1
                    then
                        '; ' || cast(page_views as {{ dbt.type_string() }})
                        || ' page views without a page ping'
                else ''
            end
            || case
                when is_uniform = 1
                    then
                        '; page view gaps nearly uniform (cv '
                        || cast(round(page_view_gap_cv, 3) as {{ dbt.type_string() }})
                        || ' over ' || cast(page_view_gaps as {{ dbt.type_string() }}) || ' gaps)'
                else ''
            end
            || case when is_bot then '; already flagged as a bot by events.is_bot' else '' end,
            3
        ) as reason,
        is_bot as is_known_bot
    from behaviour_signals
    where is_fast + is_pingless + is_uniform >= 1

),

{# ---------------------------------------------------------------- data quality #}

hourly_volume as (

    select
        bucket_start,
        sum(events) as events
    from traffic
    group by bucket_start

),

failed_bounds as (

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

failed_spine as (

    {{ persona.hour_spine('failed_bounds') }}

),

failed_dense as (

    select
        failed_spine.bucket_start,
        coalesce(hourly_volume.events, 0) as events,
        coalesce(failed_events_hourly.failed_events, 0) as failed_events,
        cast(coalesce(failed_events_hourly.failed_events, 0) as double) / nullif(
            coalesce(hourly_volume.events, 0) + coalesce(failed_events_hourly.failed_events, 0),
            0
        ) as failure_rate
    from failed_spine
    left join hourly_volume on failed_spine.bucket_start = hourly_volume.bucket_start
    left join failed_events_hourly
        on failed_spine.bucket_start = failed_events_hourly.bucket_start

),

failed_scored as (

    select failed_dense.* from failed_dense
    cross join window_bounds
    where failed_dense.bucket_start >= window_bounds.window_start

),

failed_baseline as (

    {#- the previous `failed_hours` hours; hours without any input have no rate -#}
    select
        scored.bucket_start,
        baseline.failure_rate as baseline_rate
    from failed_scored as scored
    inner join failed_dense as baseline
        on
            scored.bucket_start > baseline.bucket_start
            and {{ dbt.dateadd('hour', -failed_hours, 'scored.bucket_start') }}
            <= baseline.bucket_start

),

failed_medians as (

    select
        bucket_start,
        count(*) as baseline_hours,
        coalesce(median(baseline_rate), 0) as expected_rate
    from failed_baseline
    group by bucket_start

),

failed_mads as (

    select
        failed_baseline.bucket_start,
        coalesce(
            median(abs(failed_baseline.baseline_rate - failed_medians.expected_rate)), 0
        ) as mad_rate
    from failed_baseline
    inner join failed_medians on failed_baseline.bucket_start = failed_medians.bucket_start
    group by failed_baseline.bucket_start

),

failed_expected as (

    select
        failed_scored.bucket_start,
        failed_scored.failed_events,
        failed_scored.events,
        failed_scored.failure_rate,
        failed_medians.expected_rate,
        failed_medians.expected_rate * (failed_scored.events + failed_scored.failed_events)
            as expected,
        failed_mads.mad_rate * (failed_scored.events + failed_scored.failed_events)
            as mad
    from failed_scored
    inner join failed_medians on failed_scored.bucket_start = failed_medians.bucket_start
    inner join failed_mads on failed_scored.bucket_start = failed_mads.bucket_start
    where failed_medians.baseline_hours = {{ failed_hours }}

),

failed_scores as (

    select
        *,
        {{ persona.robust_z('failed_events', 'expected', 'mad') }} as score
    from failed_expected

),

data_quality_anomalies as (

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
    from failed_scores
    where
        score >= {{ failed_threshold }}
        and failed_events >= {{ var('anomalies_failed_min_events') }}

),

flagged as (

    select * from traffic_anomalies
    union all
    select * from behaviour_anomalies
    union all
    select * from data_quality_anomalies

),

final as (

    select
        flagged.detector,
        flagged.subject,
        flagged.bucket_start,
        flagged.observed,
        flagged.expected,
        flagged.score,
        flagged.threshold,
        flagged.severity,
        flagged.reason,
        flagged.is_known_bot,
        reference_time.as_of
    from flagged
    cross join reference_time

)

select * from final
