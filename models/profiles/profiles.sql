{#- One row per stitched user: what personalization reads. The thin final layer: it derives
    the windows, scores and stages from the daily aggregates at `as_of`
    (macros/domain/as_of.sql), so nothing incremental below depends on the clock. A table rebuilt on every DuckDB run; on
    Snowflake a dynamic table in FULL refresh mode, the only mode in which the clock may move
    every row. -#}
{{ config(
    materialized='dynamic_table' if target.type == 'snowflake' else 'table',
    refresh_mode='FULL',
) }}
{%- set windows = var('profile_windows') -%}
{%- set metrics = ['sessions', 'page_views', 'engaged_time_in_s', 'product_views',
    'add_to_carts', 'purchases', 'revenue'] -%}
{%- set platform_metrics = ['screen_views', 'web_sessions', 'mobile_sessions'] -%}
{%- set weights = var('interest_weights') -%}
{%- set lifecycle = var('lifecycle') -%}
{%- set tiers = var('engagement_tiers') -%}
{%- set consent_preferences = 'unstruct_event_com_snowplowanalytics_snowplow_'
    ~ 'consent_preferences_1' -%}

with users as (

    select * from {{ ref('users') }}

),

events as (

    select * from {{ ref('events') }}

),

identity_map as (

    select * from {{ ref('identity_map') }}

),

now_at as (

    select {{ persona.as_of() }} as as_of

),

clock as (

    select
        as_of,
        cast(as_of as date) as as_of_date
    from now_at

),

user_daily as (

    select * from {{ ref('user_daily') }}
    where activity_date <= (select clock.as_of_date from clock)

),

user_product_daily as (

    select * from {{ ref('user_product_daily') }}
    where activity_date <= (select clock.as_of_date from clock)

),

activity as (

    select
        user_daily.*,
        {{ dbt.datediff('user_daily.activity_date', 'clock.as_of_date', 'day') }} as age_days  -- noqa: LT05
    from user_daily
    cross join clock

),

totals as (

    select
        user_id,
        {%- for metric in metrics %}
        sum({{ metric }}) as {{ metric }},
        {%- for days in windows %}
        sum(case when age_days < {{ days }} then {{ metric }} else 0 end)
            as {{ metric }}_{{ days }}d,
        {%- endfor %}
        {%- endfor %}
        count(distinct case when age_days < 7 then activity_date end) as active_days_7d,
        count(distinct case when age_days < 28 then activity_date end) as active_days_28d,
        min(first_start_tstamp) as first_seen_at,
        max(last_end_tstamp) as last_seen_at,
        max(last_purchase_tstamp) as last_purchase_at
    from activity
    group by user_id

),

{# web and app: screen views and sessions per platform, lifetime and per window -#}
platform_activity as (

    select
        user_id,
        age_days,
        screen_views,
        sessions - mobile_sessions as web_sessions,
        mobile_sessions
    from activity

),

platform_totals as (

    select
        user_id,
        {%- for metric in platform_metrics %}
        sum({{ metric }}) as {{ metric }},
        {%- for days in windows %}
        sum(case when age_days < {{ days }} then {{ metric }} else 0 end)
            as {{ metric }}_{{ days }}d,
        {%- endfor %}
        {%- endfor %}
        {{ persona.platforms('sum(web_sessions)', 'sum(mobile_sessions)') }} as platforms
    from platform_activity
    group by user_id

),

{# lifecycle: each user's own rhythm, the median gap between active days before the latest -#}
active_days as (

    select distinct
        user_id,
        activity_date
    from user_daily

),

gaps as (

    select
        user_id,
        activity_date,
        {{ dbt.datediff(
            'lag(activity_date) over (partition by user_id order by activity_date)',
            'activity_date', 'day'
        ) }} as gap_days,
        row_number() over (partition by user_id order by activity_date desc) as recency_rank
    from active_days

),

rhythm as (

    select
        user_id,
        max(case when recency_rank = 1 then gap_days end) as last_gap_days,
        median(case when recency_rank > 1 then gap_days end) as usual_gap_days,
        count(case when recency_rank > 1 then gap_days end) as prior_gaps
    from gaps
    group by user_id

),

{# preferences: the value with the most sessions (ties: alphabetical) -#}
{%- for facet in ['channel', 'dvce_type', 'start_hour'] %}

preferred_{{ facet }} as (

    select
        user_id,
        {{ facet }} as preferred
    from activity
    where {{ facet }} is not null
    group by user_id, {{ facet }}
    qualify row_number() over (
        partition by user_id order by sum(sessions) desc, {{ facet }}
    ) = 1

),
{%- endfor %}

{# interests: views, carts and purchases weighted, halved every interest_half_life_days -#}
interest as (

    select
        user_product_daily.user_id,
        user_product_daily.product_id,
        user_product_daily.category,
        (
            user_product_daily.product_views * {{ weights['product_view'] }}
            + user_product_daily.add_to_carts * {{ weights['add_to_cart'] }}
            + user_product_daily.purchases * {{ weights['transaction'] }}
        ) * power(
            0.5,
            {{ dbt.datediff('user_product_daily.activity_date', 'clock.as_of_date', 'day') }}
            / {{ var('interest_half_life_days') }}
        ) as score
    from user_product_daily
    cross join clock

),

{%- for item in ['category', 'product_id'] %}

{{ item }}_interest as (

    select
        user_id,
        {{ item }} as item,
        sum(score) as score,
        row_number() over (partition by user_id order by sum(score) desc, {{ item }}) as item_rank
    from interest
    where {{ item }} is not null
    group by user_id, {{ item }}

),

top_{{ item }} as (

    select
        user_id,
        max(case when item_rank = 1 then item end) as top_item,
        {{ dbt.listagg('item', "','", 'order by item_rank') }} as top_items
    from {{ item }}_interest
    where item_rank <= {{ var('interest_top_n') }}
    group by user_id

),
{%- endfor %}

{# RFM among purchasers: quintiles by percent_rank, so tied customers share the lower score
    (most customers bought once: they are F=1, not spread over 1-5 by chance) -#}
purchasers as (

    select
        user_id,
        least(5, 1 + floor(5 * percent_rank() over (order by last_purchase_at))) as recency_score,
        least(5, 1 + floor(5 * percent_rank() over (order by purchases))) as frequency_score,
        least(5, 1 + floor(5 * percent_rank() over (order by revenue))) as monetary_score
    from totals
    where purchases > 0

),

rfm as (

    select
        user_id,
        cast(recency_score as integer) as recency_score,
        cast(frequency_score as integer) as frequency_score,
        cast(monetary_score as integer) as monetary_score,
        {#- the classic R × FM grid; FM is the rounded mean of F and M -#}
        case
            when recency_score >= 4 and round((frequency_score + monetary_score) / 2.0) >= 4
                then 'Champions'
            when recency_score >= 4 and round((frequency_score + monetary_score) / 2.0) = 1
                then 'New'
            when recency_score >= 4 then 'Potential Loyalist'
            when recency_score = 3 and round((frequency_score + monetary_score) / 2.0) >= 3
                then 'Loyal'
            when round((frequency_score + monetary_score) / 2.0) >= 3 then 'At Risk'
            when recency_score >= 2 then 'Hibernating'
            else 'Lost'
        end as rfm_segment
    from purchasers

),

consent_events as (

    {#- the latest consent_preferences event (the web tracker's consent plugin) of each
        user's devices: its eventType (allow_all, allow_selected, deny_all, withdrawn, ...) -#}

    select
        coalesce(identity_map.user_id, events.domain_userid) as user_id,
        events.collector_tstamp,
        events.event_id,
        {{ persona.entity_field(ref('events'), consent_preferences, 'eventType') }}
            as consent_event_type
    from events
    left join identity_map
        on
            identity_map.device_id_type = 'domain_userid'
            and events.domain_userid = identity_map.device_id
    where events.event_name = 'consent_preferences'

),

consent as (

    select
        user_id,
        consent_event_type as consent_state
    from consent_events
    qualify row_number() over (
        partition by user_id order by collector_tstamp desc, event_id desc
    ) = 1

),

joined as (

    select
        totals.*,
        users.is_identified,
        users.devices,
        users.acquisition_channel,
        clock.as_of,
        {{ dbt.datediff('cast(totals.last_seen_at as date)', 'clock.as_of_date', 'day') }}
            as days_since_last_visit,
        {{ dbt.datediff('cast(totals.last_purchase_at as date)', 'clock.as_of_date', 'day') }}
            as days_since_last_purchase,
        {{ dbt.datediff('cast(totals.first_seen_at as date)', 'clock.as_of_date', 'day') }}
            as days_since_first_visit,
        rhythm.last_gap_days,
        case
            when rhythm.prior_gaps >= {{ lifecycle['min_gaps'] }}
                then greatest(rhythm.usual_gap_days, 1)
            else {{ lifecycle['default_gap_days'] }}
        end as usual_visit_gap_days,
        rfm.recency_score,
        rfm.frequency_score,
        rfm.monetary_score,
        rfm.rfm_segment,
        top_category.top_item as top_category,
        top_category.top_items as top_categories,
        top_product_id.top_item as top_product,
        top_product_id.top_items as top_products,
        preferred_channel.preferred as preferred_channel,
        preferred_dvce_type.preferred as preferred_device_type,
        cast(preferred_start_hour.preferred as integer) as preferred_hour_utc
    from users
    inner join totals on users.user_id = totals.user_id
    cross join clock
    left join rhythm on users.user_id = rhythm.user_id
    left join rfm on users.user_id = rfm.user_id
    left join top_category on users.user_id = top_category.user_id
    left join top_product_id on users.user_id = top_product_id.user_id
    left join preferred_channel on users.user_id = preferred_channel.user_id
    left join preferred_dvce_type on users.user_id = preferred_dvce_type.user_id
    left join preferred_start_hour on users.user_id = preferred_start_hour.user_id

),

scored as (

    select
        *,
        cast(case when purchases > 0 then revenue / purchases end as {{ persona.type_money() }})
            as avg_order_value,
        {%- for days in windows %}
        cast(
            case when purchases_{{ days }}d > 0 then revenue_{{ days }}d / purchases_{{ days }}d end
            as {{ persona.type_money() }}
        ) as avg_order_value_{{ days }}d,
        {%- endfor %}
        case
            when days_since_first_visit < {{ lifecycle['new_days'] }} then 'new'
            when days_since_last_visit > usual_visit_gap_days * {{ lifecycle['lapsed_factor'] }}
                then 'lapsed'
            when days_since_last_visit > usual_visit_gap_days * {{ lifecycle['at_risk_factor'] }}
                then 'at risk'
            when last_gap_days > usual_visit_gap_days * {{ lifecycle['lapsed_factor'] }}
                then 'reactivated'
            else 'active'
        end as lifecycle_stage,
        case
            when
                active_days_7d >= {{ tiers['power_days_7d'] }}
                or active_days_28d >= {{ tiers['power_days_28d'] }}
                then 'power'
            when active_days_28d >= {{ tiers['regular_days_28d'] }} then 'regular'
            when active_days_28d >= 1 then 'casual'
            else 'dormant'
        end as engagement_tier
    from joined

),

final as (

    select
        scored.*,
        {%- for metric in platform_metrics %}
        platform_totals.{{ metric }},
        {%- for days in windows %}
        platform_totals.{{ metric }}_{{ days }}d,
        {%- endfor %}
        {%- endfor %}
        platform_totals.platforms,
        consent.consent_state
    from scored
    inner join platform_totals on scored.user_id = platform_totals.user_id
    left join consent on scored.user_id = consent.user_id

)

select * from final
