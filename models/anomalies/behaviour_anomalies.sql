{#- One row per flagged device-day of the window (anomalies_window_days before as_of) that
    looks like a bot: at least one of too many events in a minute, many page views and not one
    page ping, page views at nearly uniform gaps (thresholds: the anomalies_bot_* vars). The
    score is how many of the three signals hold (threshold 1): 'high' from two, else 'medium';
    devices `events` already flags as bots are reported with severity 'info'. Part of
    `anomalies`; reads the clock, so rebuilt whole every run. -#}
{{ config(
    materialized='dynamic_table' if target.type == 'snowflake' else 'table',
    refresh_mode='FULL',
    target_lag='downstream',
) }}

with device_behaviour_daily as (

    select * from {{ ref('device_behaviour_daily') }}

),

window_bounds as (

    {{ persona.anomalies_window() }}

),

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

final as (

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

)

select * from final
