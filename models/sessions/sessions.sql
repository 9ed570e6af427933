{#- One row per domain_sessionid with page activity (a page view or a page ping), and per app
    session (the client_session's sessionId, any event), built from its events: a session runs
    from its first event to its last, and a tab left open that pings into a new session after
    the old one expired makes that new session too, with the pinged page as its first page.
    Events more than max_session_days after the first event of their session are left out;
    those sessions are listed in quarantined_sessions. An app session's views are its screen
    views, its engaged time their screen_summary foreground seconds, and its first and last
    screen those of its first and last screen view. -#}

{{ config(
    incremental_strategy='key_scoped',
    unique_key='domain_sessionid',
    key_scope='sessions_this_run',
    post_hook="{{ persona.restitch_sessions() }}",
) }}
{%- set heartbeat = var('heartbeat') -%}
{%- set min_visit_length = var('min_visit_length') -%}

with session_events as (

    select * from {{ ref('events') }}
    where {{ persona.session_scope() }}

),

channel_groups as (

    select * from {{ ref('channel_groups') }}

),

events as (

    select * from session_events
    qualify {{ persona.within_session_length() }}

),

page_activity as (

    select * from events
    where
        event_name in ('page_view', 'page_ping')
        and page_view_id is not null

),

session_activity as (

    {#- what makes a session: page activity on the web; in an app, any event of its session -#}
    select * from page_activity
    union all
    select * from events
    where platform_type = 'mobile' and page_view_id is null

),

screen_engagement as (

    {{ persona.screen_engagement('events') }}

),

screen_view_events as (

    select
        domain_sessionid,
        screen_view_id,
        derived_tstamp,
        dvce_created_tstamp,
        event_id,
        {{ persona.mobile_field('screen_view', 'name') }} as screen_name
    from events
    where event_name = 'screen_view' and screen_view_id is not null

),

first_screen_view as (

    select * from screen_view_events
    qualify row_number() over (
        partition by domain_sessionid order by derived_tstamp, dvce_created_tstamp, event_id
    ) = 1

),

last_screen_view as (

    select * from screen_view_events
    qualify row_number() over (
        partition by domain_sessionid
        order by derived_tstamp desc, dvce_created_tstamp desc, event_id desc
    ) = 1

),

page_view_engagement as (

    {#- the same formula as page_views, per page view and session -#}
    select
        domain_sessionid,
        page_view_id,
        {{ heartbeat }} * (
            count(distinct floor(
                {{ persona.epoch_seconds('dvce_created_tstamp') }} / {{ heartbeat }}
            )) - 1
        ) + {{ min_visit_length }} as engaged_time_in_s
    from page_activity
    where event_name = 'page_ping'
    group by domain_sessionid, page_view_id

),

session_engagement as (

    select
        domain_sessionid,
        sum(engaged_time_in_s) as engaged_time_in_s
    from (
        select
            domain_sessionid,
            engaged_time_in_s
        from page_view_engagement
        union all
        select
            domain_sessionid,
            engaged_time_in_s
        from screen_engagement
    ) as views_engagement
    group by domain_sessionid

),

session_page_views as (

    select
        domain_sessionid,
        count(distinct page_view_id) as page_views,
        count(distinct case when event_name = 'screen_view' then screen_view_id end)
            as screen_views
    from session_activity
    group by domain_sessionid

),

session_events_agg as (

    select
        domain_sessionid,
        {#- a ping reports at least min_visit_length seconds of activity before it -#}
        min(
            case
                when event_name = 'page_ping'
                    then {{ dbt.dateadd('second', -min_visit_length, 'derived_tstamp') }}
                else derived_tstamp
            end
        ) as start_tstamp,
        max(derived_tstamp) as end_tstamp,
        max(load_tstamp) as max_load_tstamp,
        count(*) as total_events,
        count(case when event_name = 'page_ping' then 1 end) as page_pings,
        count(case when ecommerce_action = 'product_view' then 1 end) as product_views,
        count(case when ecommerce_action = 'add_to_cart' then 1 end) as add_to_carts,
        count(case when event_name = 'site_search' then 1 end) as searches,
        count(case when ecommerce_action = 'transaction' then 1 end) as purchases,
        count(case when {{ persona.is_conversion() }} then 1 end) as conversions,
        coalesce(sum(case when ecommerce_action = 'transaction' then transaction_revenue end), 0)
            as revenue
    from events
    group by domain_sessionid

),

first_page_activity as (

    select
        *,
        {{ persona.mobile_field('mobile_context', 'osType') }} as os_type,
        {{ persona.mobile_field('mobile_context', 'deviceModel') }} as device_model,
        {{ persona.mobile_field('application', 'version') }} as app_version
    from session_activity
    qualify row_number() over (
        partition by domain_sessionid order by derived_tstamp, dvce_created_tstamp, event_id
    ) = 1

),

campaigns as (

    {#- every campaign of the session activity (a superset of the first events'; app sessions'
        included): a hash aggregate, where reading first_page_activity again would redo its
        sort -#}
    select distinct {{ persona.campaign_fields('session_activity') }}
    from session_activity

),

campaign_channels as (

    {{ persona.first_matching_channel('campaigns', 'channel_groups') }}

),

last_page_activity as (

    select * from session_activity
    qualify row_number() over (
        partition by domain_sessionid
        order by derived_tstamp desc, dvce_created_tstamp desc, event_id desc
    ) = 1

),

joined as (

    select
        spv.domain_sessionid,
        f.app_id,
        f.platform,
        f.domain_sessionidx,
        f.user_id,
        f.domain_userid,
        f.network_userid,
        {{ persona.stitched_user_id('f') }} as stitched_user_id,
        se.start_tstamp,
        se.end_tstamp,
        spv.page_views,
        coalesce(eng.engaged_time_in_s, 0) as engaged_time_in_s,
        {{ persona.time_between('second', 'se.start_tstamp', 'se.end_tstamp') }}
            as absolute_time_in_s,
        se.total_events,
        se.page_pings,
        se.product_views,
        se.add_to_carts,
        se.searches,
        se.purchases,
        se.revenue,
        se.conversions,
        se.max_load_tstamp,
        {#- Snowplow's rule: a converted session is engaged too (var conversions) -#}
        spv.page_views + spv.screen_views >= 2
        or coalesce(eng.engaged_time_in_s, 0) >= 2 * {{ heartbeat }}
        or se.conversions > 0 as is_engaged,
        f.page_title as first_page_title,
        f.page_url as first_page_url,
        f.page_urlhost as first_page_urlhost,
        f.page_urlpath as first_page_urlpath,
        l.page_title as last_page_title,
        l.page_url as last_page_url,
        l.page_urlhost as last_page_urlhost,
        l.page_urlpath as last_page_urlpath,
        f.page_referrer as referrer,
        f.refr_urlhost,
        f.refr_medium,
        f.refr_source,
        f.refr_term,
        f.mkt_medium,
        f.mkt_source,
        f.mkt_term,
        f.mkt_content,
        f.mkt_campaign,
        f.mkt_clickid,
        f.mkt_network,
        coalesce(campaign_channels.channel, 'Unassigned') as default_channel_group,
        f.geo_country,
        f.geo_region_name,
        f.geo_city,
        f.geo_timezone,
        f.br_lang,
        f.useragent,
        f.dvce_type,
        f.dvce_ismobile,
        f.platform_type,
        spv.screen_views,
        fsv.screen_name as first_screen_name,
        lsv.screen_name as last_screen_name,
        f.os_type,
        f.device_model,
        f.app_version
    from session_page_views as spv
    inner join session_events_agg as se on spv.domain_sessionid = se.domain_sessionid
    inner join first_page_activity as f on spv.domain_sessionid = f.domain_sessionid
    inner join last_page_activity as l on spv.domain_sessionid = l.domain_sessionid
    left join session_engagement as eng on spv.domain_sessionid = eng.domain_sessionid
    left join first_screen_view as fsv on spv.domain_sessionid = fsv.domain_sessionid
    left join last_screen_view as lsv on spv.domain_sessionid = lsv.domain_sessionid
    left join campaign_channels on {{ persona.same_campaign('f', 'campaign_channels') }}
    {{ persona.join_identity_map('f') }}

),

final as (

    select * from joined

)

select * from final
