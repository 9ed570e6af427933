{#- One row per product entity of an e-commerce action (a transaction carries one per line
    item): what interests, interactions and suppressions read. Incremental runs take the
    `events` rows loaded since the last run and replace those event_ids' rows (an earlier copy
    of an event that arrives late replaces the kept one in `events`, and here too). -#}
{{ config(unique_key='event_id', target_lag='downstream') }}
{%- set product = 'contexts_com_snowplowanalytics_snowplow_ecommerce_product_1' -%}
{%- set has_products = persona.has_column(ref('events'), product) -%}

with events as (

    select * from {{ ref('events') }}
    where
        ecommerce_action is not null  -- noqa: LT02
        {%- if persona.incremental_run() %}
        and load_tstamp > {{ persona.watermark('load_tstamp') }}
        {%- endif %}

),

{%- if has_products %}

products as (

    select
        events.event_id,
        {{ persona.entity_index('p') }} as product_index,
        events.ecommerce_action,
        events.app_id,
        events.domain_userid,
        events.user_id,
        events.domain_sessionid,
        events.derived_tstamp,
        events.collector_tstamp,
        events.load_tstamp,
        events.is_bot,
        {{ persona.entity_value('p', 'id') }} as product_id,
        {{ persona.entity_value('p', 'name') }} as product_name,
        {{ persona.entity_value('p', 'category') }} as category,
        cast({{ persona.entity_value('p', 'price') }} as {{ persona.type_money() }}) as price,
        coalesce(cast({{ persona.entity_value('p', 'quantity') }} as integer), 1) as quantity
    from events, {{ persona.each_entity('events.' ~ product, 'p') }}

),

{%- else %}

{# no product entity has been loaded yet: the same columns, no rows -#}
products as (

    select
        event_id,
        0 as product_index,
        ecommerce_action,
        app_id,
        domain_userid,
        user_id,
        domain_sessionid,
        derived_tstamp,
        collector_tstamp,
        load_tstamp,
        is_bot,
        cast(null as {{ dbt.type_string() }}) as product_id,
        cast(null as {{ dbt.type_string() }}) as product_name,
        cast(null as {{ dbt.type_string() }}) as category,
        cast(null as {{ persona.type_money() }}) as price,
        1 as quantity
    from events
    where false

),

{%- endif %}

final as (

    select * from products
    where product_id is not null

)

select * from final
