{#- One row per screen view of an app (the id of the mobile screen_view event), beside
    page_views: a screen has a name, a type and a transition where a page has a URL, a referrer
    and scroll depth, so each keeps its own columns (`views` unions what they share). Engaged
    time is the screen_summary's foreground seconds (macros/domain/screen_engagement.sql); the
    screen view ends at the last event of its screen in its session (usually its screen_end).
    As for page views, only its own session counts, and events more than max_session_days
    after the first event of their session are left out. -#}
{{ config(
    incremental_strategy='key_scoped',
    unique_key='domain_sessionid',
    key_scope='sessions_this_run',
) }}

with session_events as (

    select * from {{ ref('events') }}
    where {{ persona.session_scope() }}

),

within_session_length as (

    select * from session_events
    qualify {{ persona.within_session_length() }}

),

events as (

    select * from within_session_length
    where platform_type = 'mobile' and screen_view_id is not null

),

screen_view_events as (

    select * from events
    where event_name = 'screen_view'
    qualify row_number() over (
        partition by screen_view_id order by derived_tstamp, dvce_created_tstamp, event_id
    ) = 1

),

engagement as (

    {{ persona.screen_engagement('events') }}

),

joined as (

    select
        sv.screen_view_id,
        sv.event_id,
        sv.app_id,
        sv.platform,
        sv.platform_type,
        sv.user_id,
        sv.domain_userid,
        sv.network_userid,
        sv.domain_sessionid,
        sv.domain_sessionidx,
        sv.dvce_created_tstamp,
        sv.collector_tstamp,
        sv.derived_tstamp,
        sv.derived_tstamp as start_tstamp,
        greatest(engagement.last_event_tstamp, sv.derived_tstamp) as end_tstamp,
        engagement.engaged_time_in_s,
        engagement.background_time_in_s,
        {{ persona.mobile_field('screen_view', 'name') }} as screen_name,
        {{ persona.mobile_field('screen_view', 'type') }} as screen_type,
        {{ persona.mobile_field('screen_view', 'transitionType') }} as transition_type,
        {{ persona.mobile_field('screen_view', 'previousId') }} as previous_screen_view_id,
        {{ persona.mobile_field('screen_view', 'previousName') }} as previous_screen_name,
        {{ persona.mobile_field('screen_view', 'previousType') }} as previous_screen_type,
        engagement.last_item_index + 1 as list_items_seen,
        engagement.items_count as list_items_count,
        {{ persona.mobile_field('application', 'version') }} as app_version,
        {{ persona.mobile_field('application', 'build') }} as app_build,
        {{ persona.mobile_field('mobile_context', 'osType') }} as os_type,
        {{ persona.mobile_field('mobile_context', 'osVersion') }} as os_version,
        {{ persona.mobile_field('mobile_context', 'deviceManufacturer') }} as device_manufacturer,
        {{ persona.mobile_field('mobile_context', 'deviceModel') }} as device_model,
        {{ persona.mobile_field('mobile_context', 'carrier') }} as carrier,
        {{ persona.mobile_field('mobile_context', 'networkType') }} as network_type,
        cast({{ persona.mobile_field('geolocation', 'latitude') }} as double) as device_latitude,
        cast({{ persona.mobile_field('geolocation', 'longitude') }} as double) as device_longitude,
        sv.geo_country,
        sv.geo_region_name,
        sv.geo_city,
        sv.geo_timezone,
        sv.user_ipaddress,
        sv.useragent,
        engagement.max_load_tstamp
    from screen_view_events as sv
    inner join engagement
        on
            sv.screen_view_id = engagement.screen_view_id
            and sv.domain_sessionid = engagement.domain_sessionid

),

final as (

    select
        *,
        {{ persona.time_between('second', 'start_tstamp', 'end_tstamp') }} as absolute_time_in_s,
        row_number() over (
            partition by domain_sessionid order by start_tstamp, dvce_created_tstamp, event_id
        ) as screen_view_in_session_index,
        count(*) over (partition by domain_sessionid) as screen_views_in_session
    from joined

)

select * from final
