{#- One row per user × item of the training window: what the user did with the item, weighted
    by action (`recs_event_weights`) and decayed by age (`recs_half_life_days`, measured back
    from the end of the window, not from "now", so a retrain is reproducible). Rebuilt whole by
    each retrain. Reads `product_events` (the user is the session's `stitched_user_id`) or, with
    `recs_interactions_from: interaction_log`, a plain log (user_id, item_id, interacted_at,
    weight) such as `python -m udfs evaluate` loads. -#}
{{ config(materialized='table') }}
{%- set from_log = var('recs_interactions_from') == 'interaction_log' -%}
{%- set weights = var('recs_event_weights') -%}
{%- set half_life_s = var('recs_half_life_days') * 86400 -%}
{%- set again = persona.recs_recommend_again() -%}
{#- both inputs are referenced whichever is read, so dbt knows them at parse time -#}
{%- set product_events = ref('product_events') -%}
{%- set sessions = ref('sessions') -%}
{%- set interaction_log = source('recs', 'interaction_log') -%}
{#- a log loaded before event types existed has no event_type column: all `interaction` -#}
{%- set log_has_type = from_log and execute and (
    adapter.get_columns_in_relation(interaction_log) | map(attribute='name') | map('lower')
    | select('equalto', 'event_type') | list | length > 0
) -%}

with

{%- if from_log %}

interaction_log as (

    select * from {{ interaction_log }}

),

events as (

    select
        cast(user_id as {{ dbt.type_string() }}) as user_id,
        cast(item_id as {{ dbt.type_string() }}) as product_id,
        cast(interacted_at as timestamp) as interacted_at,
        cast(coalesce(weight, 1) as double) as weight,
        {%- if log_has_type %}
        coalesce(event_type, 'interaction') as event_type
        {%- else %}
        'interaction' as event_type
        {%- endif %}
    from interaction_log

),

{%- else %}

product_events as (

    select * from {{ product_events }}
    where not is_bot

),

sessions as (

    select * from {{ sessions }}

),

{# the user is the session's stitched user (sessions keeps it current as logins arrive),
    else the device #}
events as (

    select
        coalesce(sessions.stitched_user_id, product_events.domain_userid) as user_id,
        product_events.product_id,
        product_events.derived_tstamp as interacted_at,
        cast(case product_events.ecommerce_action
            {%- for action, weight in weights.items() %}
            when {{ persona.quote_literal(action) }} then {{ weight }}
            {%- endfor %}
            else 0
        end as double) as weight,
        product_events.ecommerce_action as event_type
    from product_events
    left join sessions
        on product_events.domain_sessionid = sessions.domain_sessionid

),

{%- endif %}

bounds as (

    {%- if var('recs_training_end', none) %}
    select cast({{ persona.quote_literal(var('recs_training_end')) }} as timestamp) as training_end
    {%- else %}
    select max(interacted_at) as training_end
    from events
    {%- endif %}

),

windowed as (

    select
        events.*,
        bounds.training_end,
        {%- if var('recs_training_days', none) %}
        {{ dbt.dateadd('day', -var('recs_training_days'), 'bounds.training_end') }}
        {%- else %}
        min(events.interacted_at) over ()
        {%- endif %} as training_start
    from events
    cross join bounds
    where
        events.user_id is not null
        and events.product_id is not null
        and events.weight > 0
        and events.interacted_at <= bounds.training_end

),

in_window as (

    select * from windowed
    where interacted_at >= training_start

),

per_user_item as (

    select
        user_id,
        product_id,
        count(*) as interactions,
        sum(weight) as weight,
        sum(
            weight
            {%- if half_life_s > 0 %}
            * power(
                2.0,
                -{{ persona.seconds_between('interacted_at', 'training_end') }} / {{ half_life_s }}
            )
            {%- endif %}
        ) as affinity,
        min(interacted_at) as first_interacted_at,
        max(interacted_at) as last_interacted_at,
        {#- the events themselves, as one number (a sum of hashes: any order): a retrain
            copies a user's list only if this is what it was (user_rule_inputs) -#}
        sum(hash(product_id, interacted_at, weight, event_type)) as events_hash,
        {%- if again %}
        {%- set quoted = [] -%}
        {%- for t in again %}{% do quoted.append(persona.quote_literal(t)) %}{% endfor -%}
        {%- set is_again = 'event_type in (' ~ quoted | join(', ') ~ ')' %}
        count(distinct case when {{ is_again }} then interacted_at end) as repeatable_events,
        min(case when {{ is_again }} then interacted_at end) as first_repeatable_at,
        max(case when {{ is_again }} then interacted_at end) as last_repeatable_at,
        {%- else %}
        0 as repeatable_events,
        cast(null as timestamp) as first_repeatable_at,
        cast(null as timestamp) as last_repeatable_at,
        {%- endif %}
        min(training_start) as training_start,
        min(training_end) as training_end
    from in_window
    group by user_id, product_id

),

final as (

    select
        user_id,
        product_id,
        interactions,
        weight,
        affinity,
        {#- a user's items by affinity: only the first recs_max_items_per_user enter
            co-occurrence and scoring (the cost bound for heavy users) -#}
        row_number() over (
            partition by user_id order by affinity desc, last_interacted_at desc, product_id asc
        ) as affinity_rank,
        first_interacted_at,
        last_interacted_at,
        events_hash,
        repeatable_events,
        first_repeatable_at,
        last_repeatable_at,
        training_start,
        training_end
    from per_user_item

)

select * from final
