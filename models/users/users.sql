{#- One row per stitched user: a logged-in user across all their devices, or an anonymous
    device (domain_userid) that has never logged in. Rebuilt from `sessions` (one row per
    session, a small fraction of the events) on every DuckDB run, because stitching moves old
    sessions between users: exact, and cheap next to the event models. A customer who logs in
    on the web and in an app is one user: an app install is one more device, as a second
    browser is. -#}
{{ config(materialized='dynamic_table' if target.type == 'snowflake' else 'table') }}

with sessions as (

    select * from {{ ref('sessions') }}
    where stitched_user_id is not null

),

ordered as (

    select
        *,
        row_number() over (
            partition by stitched_user_id order by start_tstamp, domain_sessionid
        ) as session_index,
        {#- the last session is the one that ended last: its last page is the user's last page -#}
        row_number() over (
            partition by stitched_user_id
            order by end_tstamp desc, start_tstamp desc, domain_sessionid desc
        ) as session_index_desc
    from sessions

),

totals as (

    select
        stitched_user_id as user_id,
        min(start_tstamp) as first_seen_at,
        max(end_tstamp) as last_seen_at,
        count(*) as sessions,
        count(distinct domain_userid) as devices,
        sum(page_views) as page_views,
        sum(engaged_time_in_s) as engaged_time_in_s,
        sum(purchases) as purchases,
        sum(revenue) as revenue,
        max(case when user_id is not null then 1 else 0 end) = 1 as is_identified,
        sum(screen_views) as screen_views,
        count(case when platform_type = 'web' then 1 end) as web_sessions,
        count(case when platform_type = 'mobile' then 1 end) as mobile_sessions
    from sessions
    group by stitched_user_id

),

firsts as (

    select * from ordered
    where session_index = 1

),

lasts as (

    select * from ordered
    where session_index_desc = 1

),

final as (

    select
        totals.user_id,
        totals.is_identified,
        totals.first_seen_at,
        totals.last_seen_at,
        totals.sessions,
        totals.devices,
        totals.page_views,
        totals.engaged_time_in_s,
        totals.purchases,
        totals.revenue,
        firsts.domain_userid as first_domain_userid,
        firsts.first_page_url,
        firsts.first_page_title,
        lasts.last_page_url,
        lasts.last_page_title,
        firsts.geo_country as first_geo_country,
        firsts.geo_city as first_geo_city,
        lasts.geo_country as last_geo_country,
        lasts.geo_city as last_geo_city,
        firsts.br_lang as first_br_lang,
        lasts.br_lang as last_br_lang,
        firsts.referrer,
        firsts.refr_medium,
        firsts.refr_source,
        firsts.mkt_medium,
        firsts.mkt_source,
        firsts.mkt_campaign,
        firsts.default_channel_group as acquisition_channel,
        totals.screen_views,
        totals.web_sessions,
        totals.mobile_sessions,
        {{ persona.platforms('totals.web_sessions', 'totals.mobile_sessions') }} as platforms,
        firsts.platform_type as first_platform_type
    from totals
    inner join firsts on totals.user_id = firsts.stitched_user_id
    inner join lasts on totals.user_id = lasts.stitched_user_id

)

select * from final
