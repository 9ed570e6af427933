{#- One row per retrain: the rule-set version, when it was trained, on which window, with
    which parameters and how many rows each rule table got. Built last in a retrain: a row here
    publishes the version (serving reads the newest row). Its post-hook deletes the rule rows
    of all but the newest `recs_versions_kept` versions (this table keeps every row). -#}
{{ config(post_hook="{{ persona.prune_rule_sets(this, [
    ref('item_similarity'), ref('popular_items'), ref('user_recommendations'),
    ref('item_repurchase'), ref('user_rule_inputs')
]) }}") }}
{%- set parameters = persona.recs_parameters() -%}

with interactions as (

    select * from {{ ref('interactions') }}

),

item_similarity as (

    select * from {{ ref('item_similarity') }}
    where rule_set_version = {{ persona.rule_set_version() }}

),

popular_items as (

    select * from {{ ref('popular_items') }}
    where rule_set_version = {{ persona.rule_set_version() }}

),

user_recommendations as (

    select * from {{ ref('user_recommendations') }}
    where rule_set_version = {{ persona.rule_set_version() }}

),

item_repurchase as (

    select * from {{ ref('item_repurchase') }}
    where rule_set_version = {{ persona.rule_set_version() }}

),

training as (

    select
        min(training_start) as training_start,
        max(training_end) as training_end,
        count(*) as interactions_rows,
        count(distinct user_id) as user_count,
        count(distinct product_id) as item_count
    from interactions

),

final as (

    select
        {{ persona.rule_set_version() }} as rule_set_version,
        {{ persona.rule_set_trained_at() }} as trained_at,
        training.training_start,
        training.training_end,
        {{ persona.quote_literal(var('recs_similarity')) }} as similarity,
        {{ persona.quote_literal(tojson(parameters)) }} as parameters_json,
        {%- if var('recs_tuning', none) is not none %}
        {{ persona.quote_literal(tojson(var('recs_tuning'))) }} as tuning_json,
        {%- else %}
        cast(null as {{ dbt.type_string() }}) as tuning_json,
        {%- endif %}
        training.interactions_rows,
        training.user_count,
        training.item_count,
        (select count(*) from item_similarity) as item_similarity_rows,
        (select count(*) from popular_items) as popular_items_rows,
        (select count(*) from user_recommendations) as user_recommendations_rows,
        (select count(*) from item_repurchase) as item_repurchase_rows,
        '{{ invocation_id }}' as invocation_id
    from training

)

select * from final
