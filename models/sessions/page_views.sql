{#- One row per page view (the id of the web_page context). Engaged time follows Snowplow's
    formula: one heartbeat per distinct ping interval after the first, plus the minimum visit
    length; a page view without pings was engaged for 0 s. Only pings sent in the page view's own
    session count: a tab left open pings into the next session after the first one expires, and
    that activity belongs to the next session. Events more than max_session_days after the first
    event of their session are left out (see quarantined_sessions). -#}
{{ config(
    incremental_strategy='key_scoped',
    unique_key='domain_sessionid',
    key_scope='sessions_this_run',
) }}
{%- set heartbeat = var('heartbeat') -%}

with session_events as (

    select * from {{ ref('events') }}
    where {{ persona.session_scope() }}

),

channel_groups as (

    select * from {{ ref('channel_groups') }}

),

within_session_length as (

    select * from session_events
    qualify {{ persona.within_session_length() }}

),

events as (

    select * from within_session_length
    where page_view_id is not null

),

loads as (

    select
        page_view_id,
        domain_sessionid,
        max(load_tstamp) as max_load_tstamp
    from events
    group by page_view_id, domain_sessionid

),

page_view_events as (

    select * from events
    where event_name = 'page_view'
    qualify row_number() over (
        partition by page_view_id order by derived_tstamp, dvce_created_tstamp, event_id
    ) = 1

),

campaigns as (

    {#- every campaign of the events (a superset of the page views'): a hash aggregate, where
        reading page_view_events again would redo its sort -#}
    select distinct {{ persona.campaign_fields('events') }}
    from events

),

campaign_channels as (

    {{ persona.first_matching_channel('campaigns', 'channel_groups') }}

),

pings as (

    select
        page_view_id,
        domain_sessionid,
        count(distinct floor({{ persona.epoch_seconds('dvce_created_tstamp') }} / {{ heartbeat }}))
            as ping_intervals,
        max(derived_tstamp) as last_ping_at,
        min(pp_xoffset_min) as hmin,
        max(pp_xoffset_max) as hmax,
        min(pp_yoffset_min) as vmin,
        max(pp_yoffset_max) as vmax,
        max(doc_width) as doc_width,
        max(doc_height) as doc_height,
        max(br_viewwidth) as br_viewwidth,
        max(br_viewheight) as br_viewheight
    from events
    where event_name = 'page_ping'
    group by page_view_id, domain_sessionid

),

joined as (

    select
        pv.page_view_id,
        pv.event_id,
        pv.app_id,
        pv.platform,
        pv.user_id,
        pv.domain_userid,
        pv.network_userid,
        pv.domain_sessionid,
        pv.domain_sessionidx,
        pv.dvce_created_tstamp,
        pv.collector_tstamp,
        pv.derived_tstamp,
        pv.derived_tstamp as start_tstamp,
        coalesce(pings.last_ping_at, pv.derived_tstamp) as end_tstamp,
        case
            when pings.ping_intervals is null then 0
            else {{ heartbeat }} * (pings.ping_intervals - 1) + {{ var('min_visit_length') }}
        end as engaged_time_in_s,
        greatest(coalesce(pings.hmax, 0), 0) as horizontal_pixels_scrolled,
        greatest(coalesce(pings.vmax, 0), 0) as vertical_pixels_scrolled,
        coalesce(pings.doc_width, pv.doc_width) as doc_width,
        coalesce(pings.doc_height, pv.doc_height) as doc_height,
        coalesce(pings.br_viewwidth, pv.br_viewwidth) as br_viewwidth,
        coalesce(pings.br_viewheight, pv.br_viewheight) as br_viewheight,
        pv.page_title,
        pv.page_url,
        pv.page_urlscheme,
        pv.page_urlhost,
        pv.page_urlpath,
        pv.page_urlquery,
        pv.page_urlfragment,
        pv.mkt_medium,
        pv.mkt_source,
        pv.mkt_term,
        pv.mkt_content,
        pv.mkt_campaign,
        pv.mkt_clickid,
        pv.mkt_network,
        coalesce(campaign_channels.channel, 'Unassigned') as default_channel_group,
        pv.page_referrer,
        pv.refr_urlscheme,
        pv.refr_urlhost,
        pv.refr_urlpath,
        pv.refr_urlquery,
        pv.refr_urlfragment,
        pv.refr_medium,
        pv.refr_source,
        pv.refr_term,
        pv.geo_country,
        pv.geo_region,
        pv.geo_region_name,
        pv.geo_city,
        pv.geo_zipcode,
        pv.geo_latitude,
        pv.geo_longitude,
        pv.geo_timezone,
        pv.user_ipaddress,
        pv.useragent,
        pv.br_lang,
        pv.os_timezone,
        pv.dvce_type,
        pv.dvce_ismobile,
        loads.max_load_tstamp
    from page_view_events as pv
    left join pings
        on
            pv.page_view_id = pings.page_view_id
            and pv.domain_sessionid = pings.domain_sessionid
    inner join loads
        on
            pv.page_view_id = loads.page_view_id
            and pv.domain_sessionid = loads.domain_sessionid
    left join campaign_channels on {{ persona.same_campaign('pv', 'campaign_channels') }}

),

final as (

    select
        *,
        {{ persona.time_between('second', 'start_tstamp', 'end_tstamp') }} as absolute_time_in_s,
        row_number() over (
            partition by domain_sessionid order by start_tstamp, dvce_created_tstamp, event_id
        ) as page_view_in_session_index,
        count(*) over (partition by domain_sessionid) as page_views_in_session,
        least(
            100,
            round(100.0 * (horizontal_pixels_scrolled + br_viewwidth) / nullif(doc_width, 0))
        ) as horizontal_percentage_scrolled,
        least(
            100,
            round(100.0 * (vertical_pixels_scrolled + br_viewheight) / nullif(doc_height, 0))
        ) as vertical_percentage_scrolled
    from joined

)

select * from final
