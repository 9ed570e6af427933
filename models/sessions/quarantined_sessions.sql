{#- Sessions that never end: events more than max_session_days after the session's first event
    (usually a bot, or a tab left open for days). As in Snowplow, page_views and sessions keep such
    a session's first max_session_days and leave the rest out; this model lists the sessions
    that were cut, so they can be inspected. Lengths are in event time (derived_tstamp), so an
    event that merely arrived late does not make a session long. -#}

{{ config(
    incremental_strategy='key_scoped',
    unique_key='domain_sessionid',
    key_scope='sessions_this_run',
) }}

with events as (

    select * from {{ ref('events') }}
    where {{ persona.session_scope() }}

),

session_spans as (

    select
        domain_sessionid,
        min(derived_tstamp) as start_tstamp,
        max(derived_tstamp) as end_tstamp,
        {{ dbt.dateadd('day', var('max_session_days'), 'min(derived_tstamp)') }} as cut_off_at,
        max(load_tstamp) as max_load_tstamp
    from events
    group by domain_sessionid

),

left_out as (

    select
        events.domain_sessionid,
        count(*) as events_left_out
    from events
    inner join session_spans
        on
            events.domain_sessionid = session_spans.domain_sessionid
            and events.derived_tstamp > session_spans.cut_off_at
    group by events.domain_sessionid

),

final as (

    select
        session_spans.domain_sessionid,
        session_spans.start_tstamp,
        session_spans.end_tstamp,
        session_spans.cut_off_at,
        left_out.events_left_out,
        {{ persona.time_between(
            'second', 'session_spans.start_tstamp', 'session_spans.end_tstamp'
        ) }} as absolute_time_in_s,
        session_spans.max_load_tstamp
    from session_spans
    inner join left_out on session_spans.domain_sessionid = left_out.domain_sessionid

)

select * from final
