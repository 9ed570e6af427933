{#- Sessions that never end (longer than max_session_days), kept out of sessions as Snowplow
    does: usually a bot or a tab left open, and they would distort every session metric. -#}

with page_views as (

    select * from {{ ref('page_views') }}
    where domain_sessionid is not null

),

session_spans as (

    select
        domain_sessionid,
        min(start_tstamp) as start_tstamp,
        max(end_tstamp) as end_tstamp,
        {{ persona.time_between('second', 'min(start_tstamp)', 'max(end_tstamp)') }}
            as absolute_time_in_s
    from page_views
    group by domain_sessionid

),

final as (

    select * from session_spans
    where absolute_time_in_s > {{ var('max_session_days') }} * 86400

)

select * from final
