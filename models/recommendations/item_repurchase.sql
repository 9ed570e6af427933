{#- One row per item bought, per rule-set version: how many users bought it (an event of a
    `recs_recommend_again` type), how many of them more than once, the repurchase rate (smoothed:
    (repeat buyers + 1) / (buyers + 2), so one buyer is not a certainty) and its typical
    repurchase interval (the median over repeat buyers of their mean days between purchases).
    The buy-again component of `user_recommendations` and of live scoring reads it. At most
    one row per item. Each retrain appends a version (delete+insert by version). -#}

with interactions as (

    select * from {{ ref('interactions') }}
    where repeatable_events > 0

),

buyers as (

    select
        product_id,
        repeatable_events,
        case
            when repeatable_events > 1
                then
                    {{ persona.seconds_between('first_repeatable_at', 'last_repeatable_at') }}
                    / 86400.0 / (repeatable_events - 1)
        end as interval_days
    from interactions

),

per_item as (

    select
        product_id,
        count(*) as buyers,
        sum(case when repeatable_events > 1 then 1 else 0 end) as repeat_buyers,
        median(interval_days) as repurchase_interval_days
    from buyers
    group by product_id

),

final as (

    select
        {{ persona.rule_set_version() }} as rule_set_version,
        product_id,
        buyers,
        repeat_buyers,
        (repeat_buyers + 1.0) / (buyers + 2.0) as repurchase_rate,
        repurchase_interval_days
    from per_item

)

select * from final
