{#- One row per session start date × channel × device class × engaged-time band with at least
    one session: what the dashboard's traffic and funnel charts sum, so that none of them scans
    `sessions` (or events). Funnel steps are nested (a session reaches the cart step only if it
    also viewed a product), so each step is at most the one before and drop-off is read off
    directly. Incremental runs recompute, whole, the days that sessions rebuilt since the last
    run started on, and replace those days' rows. -#}
{{ config(unique_key='session_date') }}
{%- set session_date = 'cast(start_tstamp as date)' -%}

with sessions as (

    select * from {{ ref('sessions') }}
    {%- if persona.incremental_run() %}
    where {{ session_date }} in (
        select distinct {{ session_date }} from {{ ref('sessions') }}
        where max_load_tstamp > {{ persona.watermark() }}
    )
    {%- endif %}

),

classified as (

    select
        {{ session_date }} as session_date,
        coalesce(default_channel_group, 'Unassigned') as channel,
        {#- dvce_type when the tracker set it, else a coarse class from the useragent, as in
            user_daily -#}
        coalesce(
            dvce_type,
            case
                when {{ persona.regexp_contains('useragent', 'ipad|tablet') }} then 'Tablet'
                when {{ persona.regexp_contains('useragent', 'mobile|android|iphone') }}
                    then 'Mobile'
                when useragent is not null then 'Computer'
            end,
            'Unknown'
        ) as device_class,
        case
            when engaged_time_in_s < 10 then 0
            when engaged_time_in_s < 30 then 10
            when engaged_time_in_s < 60 then 30
            when engaged_time_in_s < 180 then 60
            when engaged_time_in_s < 600 then 180
            else 600
        end as engaged_time_band_s,
        page_views,
        engaged_time_in_s,
        is_engaged,
        conversions,
        product_views,
        add_to_carts,
        purchases,
        revenue,
        max_load_tstamp
    from sessions

),

daily as (

    select
        session_date,
        channel,
        device_class,
        engaged_time_band_s,
        count(*) as sessions,
        sum(case when is_engaged then 1 else 0 end) as engaged_sessions,
        sum(case when conversions > 0 then 1 else 0 end) as converted_sessions,
        sum(case when product_views > 0 then 1 else 0 end) as product_view_sessions,
        sum(
            case when product_views > 0 and add_to_carts > 0 then 1 else 0 end
        ) as add_to_cart_sessions,
        sum(
            case when product_views > 0 and add_to_carts > 0 and purchases > 0 then 1 else 0 end
        ) as purchase_sessions,
        sum(page_views) as page_views,
        sum(engaged_time_in_s) as engaged_time_in_s,
        sum(purchases) as purchases,
        sum(revenue) as revenue,
        max(max_load_tstamp) as max_load_tstamp
    from classified
    group by session_date, channel, device_class, engaged_time_band_s

),

final as (

    select * from daily

)

select * from final
