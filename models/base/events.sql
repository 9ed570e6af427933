{#- One row per event_id: the loader delivers at least once and trackers retry, so the same
    event can arrive twice; the earliest arrival wins. Events sent long after they were created
    are dropped, and bots are flagged, as Snowplow's web package does. -#}
{%- set atomic_events = source('atomic', 'events') -%}
{%- set web_page = 'contexts_com_snowplowanalytics_snowplow_web_page_1' -%}
{%- set robots = 'contexts_com_iab_snowplow_spiders_and_robots_1' -%}
{%- set action = 'unstruct_event_com_snowplowanalytics_snowplow_ecommerce_'
    ~ 'snowplow_ecommerce_action_1' -%}
{%- set transaction = 'contexts_com_snowplowanalytics_snowplow_ecommerce_transaction_1' -%}

with source_events as (

    select * from {{ atomic_events }}
    where collector_tstamp >= cast('{{ var("start_date") }}' as timestamp)

),

deduplicated as (

    select * from source_events
    qualify row_number() over (
        partition by event_id
        order by collector_tstamp, dvce_created_tstamp, load_tstamp
    ) = 1

),

on_time as (

    select * from deduplicated
    where
        dvce_sent_tstamp is null
        or {{ persona.time_between('day', 'dvce_created_tstamp', 'dvce_sent_tstamp') }}
        <= {{ var('days_late_allowed') }}

),

final as (

    select
        *,
        {{ persona.entity_field(atomic_events, web_page, 'id') }} as page_view_id,
        coalesce(
            lower({{ persona.entity_field(atomic_events, robots, 'spiderOrRobot') }}) = 'true',
            false
        )
        or coalesce(
            {{ persona.regexp_contains('useragent', var('bot_useragent_pattern')) }}, false
        ) as is_bot,
        {{ persona.entity_field(atomic_events, action, 'type') }} as ecommerce_action,
        cast(
            {{ persona.entity_field(atomic_events, transaction, 'revenue') }} as double
        ) as transaction_revenue
    from on_time

)

select * from final
