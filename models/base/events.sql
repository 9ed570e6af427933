{#- One row per event_id: the loader delivers at least once and trackers retry, so the same
    event can arrive twice; the earliest arrival wins. Events sent more than days_late_allowed
    days after they were created are dropped first, as Snowplow's web package does, and bots
    are flagged. App events (the mobile trackers set no domain_sessionid) take their session
    and device from the client_session entity, so every model downstream keys web and app
    sessions alike (docs/models.md, "Mobile apps"). Incremental runs read only rows loaded since the last run and compare them
    with copies already kept from the last dedupe_lookback_days. -#}
{{ config(unique_key='event_id', target_lag='downstream', incremental_strategy='lookback') }}
{%- set atomic_events = source('atomic', 'events') -%}
{%- set start_date = persona.quote_literal(var('start_date')) -%}
{%- set web_page = 'contexts_com_snowplowanalytics_snowplow_web_page_1' -%}
{%- set robots = 'contexts_com_iab_snowplow_spiders_and_robots_1' -%}
{%- set action = 'unstruct_event_com_snowplowanalytics_snowplow_ecommerce_'
    ~ 'snowplow_ecommerce_action_1' -%}
{%- set transaction = 'contexts_com_snowplowanalytics_snowplow_ecommerce_transaction_1' -%}
{%- set client_session = persona.mobile_entity('client_session') -%}
{%- set app_session_id = persona.entity_field(atomic_events, client_session, 'sessionId') -%}

with source_events as (

    select * from {{ atomic_events }}
    where
        collector_tstamp >= cast({{ start_date }} as timestamp)  -- noqa: LT02
        {%- if persona.incremental_run() %}
        and load_tstamp > {{ persona.watermark('load_tstamp') }}
        {%- endif %}

),

on_time as (

    select * from source_events
    where
        dvce_sent_tstamp is null
        or {{ persona.time_between('day', 'dvce_created_tstamp', 'dvce_sent_tstamp') }}
        <= {{ var('days_late_allowed') }}

),

deduplicated as (

    select * from on_time
    qualify row_number() over (
        partition by event_id
        order by collector_tstamp, dvce_created_tstamp, load_tstamp, etl_tstamp, event_fingerprint
    ) = 1

),

{%- if persona.incremental_run() %}

kept as (

    select
        kept_events.event_id,
        kept_events.collector_tstamp,
        coalesce(
            kept_events.dvce_created_tstamp, cast('9999-12-31' as timestamp)
        ) as dvce_created_tstamp
    from {{ this }} as kept_events
    where
        kept_events.collector_tstamp
        >= (select min(deduplicated.collector_tstamp) from deduplicated)
        - interval '{{ var("dedupe_lookback_days") }} days'

),

arrived_first as (

    {#- a copy already kept wins ties: it was loaded earlier -#}
    select deduplicated.* from deduplicated
    left join kept on deduplicated.event_id = kept.event_id
    where
        kept.event_id is null
        or deduplicated.collector_tstamp < kept.collector_tstamp
        or (
            deduplicated.collector_tstamp = kept.collector_tstamp
            and coalesce(deduplicated.dvce_created_tstamp, cast('9999-12-31' as timestamp))
            < kept.dvce_created_tstamp
        )

),

{%- else %}

arrived_first as (

    select * from deduplicated

),

{%- endif %}

final as (

    {#- the client_session entity keys a session and its device when there is one (the browser
        tracker's session context carries the same ids as the cookies; the mobile trackers set
        no domain_sessionid); a web event without it keeps its own ids -#}
    select
        * replace (
            coalesce({{ app_session_id }}, domain_sessionid) as domain_sessionid,
            coalesce(
                {{ persona.entity_field(atomic_events, client_session, 'userId') }}, domain_userid
            ) as domain_userid,
            coalesce(
                cast(
                    {{ persona.entity_field(atomic_events, client_session, 'sessionIndex') }}
                    as integer
                ),
                domain_sessionidx
            ) as domain_sessionidx
        ),
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
            {{ persona.entity_field(atomic_events, transaction, 'revenue') }}
            as {{ persona.type_money() }}
        ) as transaction_revenue,
        {#- an app's events: platform mob, or a client session without a cookie session -#}
        case
            when platform = 'mob' or (domain_sessionid is null and {{ app_session_id }} is not null)
                then 'mobile'
            when domain_sessionid is not null or platform = 'web' then 'web'
        end as platform_type,
        {#- the screen view an app event belongs to: a screen_view's own id, else the screen
            entity the trackers attach to every event -#}
        coalesce(
            {{ persona.entity_field(atomic_events, persona.mobile_entity('screen_view'), 'id') }},
            {{ persona.entity_field(atomic_events, persona.mobile_entity('screen'), 'id') }}
        ) as screen_view_id
    from arrived_first

)

select * from final
