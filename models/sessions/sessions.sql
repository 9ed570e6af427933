{#- One row per domain_sessionid, from its page views plus the conversions among its events.
    Sessions longer than max_session_days are left out here and kept in quarantined_sessions. -#}

{{ config(
    unique_key='domain_sessionid',
    pre_hook=[
        "{{ persona.ensure_watermark_table() }}",
        "{{ persona.clear_touched('domain_sessionid', persona.touched_sessions()) }}",
    ],
    post_hook=[
        "{{ persona.restitch_sessions() }}",
        "{{ persona.record_watermark([ref('session_bounds')]) }}",
    ],
) }}

with page_views as (

    select * from {{ ref('page_views') }}
    {%- if persona.incremental_run() %}
    where domain_sessionid in (
        select domain_sessionid from ({{ persona.touched_sessions() }}) as touched
    )
    {%- endif %}

),

events as (

    select * from {{ ref('events') }}
    where
        domain_sessionid is not null
        {%- if not var('include_bots') %}
        and not is_bot
        {%- endif %}
        {{- persona.in_touched_sessions() }}

),

identity_map as (

    select * from {{ ref('identity_map') }}

),

session_page_views as (

    select
        domain_sessionid,
        min(start_tstamp) as start_tstamp,
        max(end_tstamp) as end_tstamp,
        count(*) as page_views,
        sum(engaged_time_in_s) as engaged_time_in_s,
        max(max_load_tstamp) as max_load_tstamp
    from page_views
    group by domain_sessionid

),

session_events as (

    select
        domain_sessionid,
        count(*) as total_events,
        count(case when event_name = 'page_ping' then 1 end) as page_pings,
        count(case when ecommerce_action = 'product_view' then 1 end) as product_views,
        count(case when ecommerce_action = 'add_to_cart' then 1 end) as add_to_carts,
        count(case when event_name = 'site_search' then 1 end) as searches,
        count(case when ecommerce_action = 'transaction' then 1 end) as purchases,
        coalesce(sum(case when ecommerce_action = 'transaction' then transaction_revenue end), 0)
            as revenue
    from events
    group by domain_sessionid

),

first_page_views as (

    select * from page_views
    where page_view_in_session_index = 1

),

last_page_views as (

    select * from page_views
    where page_view_in_session_index = page_views_in_session

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
        coalesce(by_domain.user_id, by_network.user_id, f.user_id, f.domain_userid)
            as stitched_user_id,
        spv.start_tstamp,
        spv.end_tstamp,
        spv.page_views,
        spv.engaged_time_in_s,
        {{ persona.time_between('second', 'spv.start_tstamp', 'spv.end_tstamp') }}
            as absolute_time_in_s,
        coalesce(se.total_events, 0) as total_events,
        coalesce(se.page_pings, 0) as page_pings,
        coalesce(se.product_views, 0) as product_views,
        coalesce(se.add_to_carts, 0) as add_to_carts,
        coalesce(se.searches, 0) as searches,
        coalesce(se.purchases, 0) as purchases,
        coalesce(se.revenue, 0) as revenue,
        spv.max_load_tstamp,
        spv.page_views >= 2 or spv.engaged_time_in_s >= 2 * {{ var('heartbeat') }} as is_engaged,
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
        f.geo_country,
        f.geo_region_name,
        f.geo_city,
        f.geo_timezone,
        f.br_lang,
        f.useragent,
        f.dvce_type,
        f.dvce_ismobile
    from session_page_views as spv
    inner join first_page_views as f on spv.domain_sessionid = f.domain_sessionid
    inner join last_page_views as l on spv.domain_sessionid = l.domain_sessionid
    left join session_events as se on spv.domain_sessionid = se.domain_sessionid
    left join identity_map as by_domain
        on by_domain.device_id_type = 'domain_userid' and f.domain_userid = by_domain.device_id
    left join identity_map as by_network
        on by_network.device_id_type = 'network_userid' and f.network_userid = by_network.device_id

),

final as (

    select * from joined
    where absolute_time_in_s <= {{ var('max_session_days') }} * 86400

)

select * from final
