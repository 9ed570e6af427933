{#- Daily activity per stitched user, the incremental layer under `profiles`: one row per user,
    device, day, channel, device type and hour of the session start (UTC), so the final layer
    can derive any window and the preferred channel, device and hour without reading sessions.
    Only sessions with a domain_userid (an app's: its install id) count; app sessions count
    in `mobile_sessions` and their screen views in `screen_views`. DuckDB rebuilds every row of a touched device
    (models/internal/devices_this_run.sql), so a login that moves a device to another user moves its rows. -#}
{{ config(
    incremental_strategy='key_scoped',
    unique_key='domain_userid',
    key_scope='devices_this_run',
    target_lag='downstream',
) }}

with sessions as (

    select * from {{ ref('sessions') }}
    where {{ persona.device_scope() }}

),

final as (

    select
        stitched_user_id as user_id,
        domain_userid,
        cast(start_tstamp as date) as activity_date,
        default_channel_group as channel,
        {#- dvce_type when the tracker set it, else a coarse class from the app's device model
            or the useragent -#}
        coalesce(
            dvce_type,
            case
                when platform_type = 'mobile'
                    then case
                        when {{ persona.regexp_contains('device_model', 'ipad|tablet') }}
                            then 'Tablet'
                        else 'Mobile'
                    end
                when {{ persona.regexp_contains('useragent', 'ipad|tablet') }} then 'Tablet'
                when {{ persona.regexp_contains('useragent', 'mobile|android|iphone') }}
                    then 'Mobile'
                when useragent is not null then 'Computer'
            end
        ) as dvce_type,
        extract(hour from start_tstamp) as start_hour,
        count(*) as sessions,
        sum(page_views) as page_views,
        sum(engaged_time_in_s) as engaged_time_in_s,
        sum(product_views) as product_views,
        sum(add_to_carts) as add_to_carts,
        sum(purchases) as purchases,
        sum(revenue) as revenue,
        min(start_tstamp) as first_start_tstamp,
        max(end_tstamp) as last_end_tstamp,
        max(case when purchases > 0 then end_tstamp end) as last_purchase_tstamp,
        max(max_load_tstamp) as max_load_tstamp,
        sum(screen_views) as screen_views,
        count(case when platform_type = 'mobile' then 1 end) as mobile_sessions
    from sessions
    group by 1, 2, 3, 4, 5, 6

)

select * from final
