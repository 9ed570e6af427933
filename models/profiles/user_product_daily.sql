{#- Daily product activity per stitched user: views, carts and purchases of each product, the
    incremental layer under interests and purchase suppressions. Product events count when their
    session counts (bots and quarantined tails are left out there); the user is the session's
    stitched user. Incremental scope as in user_daily: every row of a touched device. -#}
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

product_events as (

    select * from {{ ref('product_events') }}

),

actions as (

    select
        sessions.stitched_user_id as user_id,
        sessions.domain_userid,
        product_events.product_id,
        product_events.category,
        product_events.ecommerce_action,
        product_events.derived_tstamp,
        product_events.price,
        product_events.quantity,
        sessions.max_load_tstamp
    from product_events
    inner join sessions on product_events.domain_sessionid = sessions.domain_sessionid
    where product_events.derived_tstamp <= sessions.end_tstamp

),

final as (

    select
        user_id,
        domain_userid,
        cast(derived_tstamp as date) as activity_date,
        product_id,
        max(category) as category,
        count(case when ecommerce_action = 'product_view' then 1 end) as product_views,
        count(case when ecommerce_action = 'add_to_cart' then 1 end) as add_to_carts,
        count(case when ecommerce_action = 'transaction' then 1 end) as purchases,
        coalesce(sum(case when ecommerce_action = 'transaction' then quantity end), 0) as units,
        coalesce(
            sum(case when ecommerce_action = 'transaction' then price * quantity end), 0
        ) as revenue,
        max(derived_tstamp) as last_action_tstamp,
        max(case when ecommerce_action = 'transaction' then derived_tstamp end)
            as last_purchase_tstamp,
        max(max_load_tstamp) as max_load_tstamp
    from actions
    group by 1, 2, 3, 4

)

select * from final
