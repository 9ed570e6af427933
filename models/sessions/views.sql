{#- One row per view: the page views of the web and the screen views of the apps, in the
    columns they share (view_id, view_type, the session, device and user, start and end,
    engaged time, and what was viewed: the page title or the screen name). A view over the two
    key-scoped models, on both engines, so it is always as fresh as they are and costs nothing
    to refresh. -#}
{{ config(materialized='view') }}

with page_views as (

    select * from {{ ref('page_views') }}

),

screen_views as (

    select * from {{ ref('screen_views') }}

),

unioned as (

    select
        page_view_id as view_id,
        'page_view' as view_type,
        'web' as platform_type,
        event_id,
        app_id,
        platform,
        user_id,
        domain_userid,
        network_userid,
        domain_sessionid,
        start_tstamp,
        end_tstamp,
        engaged_time_in_s,
        absolute_time_in_s,
        page_view_in_session_index as view_in_session_index,
        page_views_in_session as views_in_session,
        page_title as view_name,
        page_url,
        cast(null as {{ dbt.type_string() }}) as screen_type,
        geo_country,
        max_load_tstamp
    from page_views
    union all
    select
        screen_view_id as view_id,
        'screen_view' as view_type,
        'mobile' as platform_type,
        event_id,
        app_id,
        platform,
        user_id,
        domain_userid,
        network_userid,
        domain_sessionid,
        start_tstamp,
        end_tstamp,
        engaged_time_in_s,
        absolute_time_in_s,
        screen_view_in_session_index as view_in_session_index,
        screen_views_in_session as views_in_session,
        screen_name as view_name,
        cast(null as {{ dbt.type_string() }}) as page_url,
        screen_type,
        geo_country,
        max_load_tstamp
    from screen_views

),

final as (

    select * from unioned

)

select * from final
