{#- One row per device (domain_userid) per day of collector_tstamp: the behaviour the bot
    detector reads (volume, page views without page pings, the busiest minute, how regular the
    gaps between page views are) and whether `events` already flagged it as a bot. The gap
    statistics are kept as exact integer sums, so an incremental run and a full refresh agree
    to the last digit. Incremental runs recompute, whole, the device-days that events loaded
    since the last run fall in and replace their rows.
    One case is left to a full refresh, as in identity_map: when an earlier copy of an event
    arrives after the later copy was kept, `events` swaps them, and the device-day of the copy
    removed keeps counting it. -#}
{{ config(unique_key=['domain_userid', 'event_date'], target_lag='downstream') }}
{%- set day = dbt.date_trunc('day', 'collector_tstamp') -%}

with events as (

    select * from {{ ref('events') }}
    where
        domain_userid is not null  -- noqa: LT02
        {{- persona.in_touched_buckets(ref('events'), day, ['domain_userid']) }}

),

device_events as (

    select
        domain_userid,
        {{ day }} as day_start,
        {{ dbt.date_trunc('minute', 'collector_tstamp') }} as minute_start,
        event_name,
        collector_tstamp,
        load_tstamp,
        is_bot
    from events

),

minutes as (

    select
        domain_userid,
        day_start,
        minute_start,
        count(*) as events
    from device_events
    group by domain_userid, day_start, minute_start

),

busiest_minutes as (

    select
        domain_userid,
        day_start,
        max(events) as max_events_per_minute
    from minutes
    group by domain_userid, day_start

),

page_view_gaps as (

    select
        domain_userid,
        day_start,
        {{ persona.time_between(
            'millisecond',
            'lag(collector_tstamp) over (partition by domain_userid, day_start order by collector_tstamp)',
            'collector_tstamp',
        ) }} as gap_ms
    from device_events
    where event_name = 'page_view'

),

gap_sums as (

    select
        domain_userid,
        day_start,
        count(gap_ms) as page_view_gaps,
        sum(gap_ms) as gap_ms_sum,
        sum(gap_ms * gap_ms) as gap_ms_sum_of_squares
    from page_view_gaps
    group by domain_userid, day_start

),

daily as (

    select
        domain_userid,
        day_start,
        count(*) as events,
        sum(case when event_name = 'page_view' then 1 else 0 end) as page_views,
        sum(case when event_name = 'page_ping' then 1 else 0 end) as page_pings,
        max(case when is_bot then 1 else 0 end) = 1 as is_bot,
        min(collector_tstamp) as first_event_at,
        max(collector_tstamp) as last_event_at,
        max(load_tstamp) as max_load_tstamp
    from device_events
    group by domain_userid, day_start

),

final as (

    select
        daily.domain_userid,
        cast(daily.day_start as date) as event_date,
        daily.events,
        daily.page_views,
        daily.page_pings,
        busiest_minutes.max_events_per_minute,
        coalesce(gap_sums.page_view_gaps, 0) as page_view_gaps,
        gap_sums.gap_ms_sum,
        gap_sums.gap_ms_sum_of_squares,
        {#- sd / mean of the gaps = sqrt(n·Σg² − (Σg)²) / Σg, exact up to the square root -#}
        case
            when gap_sums.page_view_gaps >= 2 and gap_sums.gap_ms_sum > 0
                then sqrt(cast(
                    gap_sums.page_view_gaps * gap_sums.gap_ms_sum_of_squares
                    - gap_sums.gap_ms_sum * gap_sums.gap_ms_sum as double
                )) / gap_sums.gap_ms_sum
        end as page_view_gap_cv,
        daily.is_bot,
        daily.first_event_at,
        daily.last_event_at,
        daily.max_load_tstamp
    from daily
    inner join busiest_minutes
        on
            daily.domain_userid = busiest_minutes.domain_userid
            and daily.day_start = busiest_minutes.day_start
    left join gap_sums
        on
            daily.domain_userid = gap_sums.domain_userid
            and daily.day_start = gap_sums.day_start

)

select * from final
