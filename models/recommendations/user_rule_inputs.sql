{#- One row per user × rule-set version: what the user's list is computed from (their events,
    whether audiences suppress anything for them, the window's end, the parameters), and whether
    this retrain copies their personal recommendations from the previous version instead of
    scoring them again (`reused_from`). It may when, since that version (recs_previous_version):
    - the parameters are the same, and the user's events in the window are (events_hash);
    - no neighbour list of an item they are scored on changed (item_similarity of both
      versions), nor the repurchase row of an item they bought (item_repurchase);
    - every item they bought was fully due at both window ends (due stays 1 as time passes;
      below 1 it moves with the clock), or they bought one item only (their best: 1);
    - audiences suppress nothing for them, then or now.
    Their personal items are then those of the previous version: the decay multiplies all of a
    user's affinities by one factor when only the window's end moved, which the blend divides
    out (similar items are ranked relative to the user's best, buy-again items relative to
    their best); the stored similarity scores are multiplied by it (`score_scale`). Popular
    items are always chosen again (user_recommendations). Cost: one pass over `interactions`
    and over the two versions' neighbour and repurchase rows. -#}
{%- set from_log = var('recs_interactions_from') == 'interaction_log' -%}
{%- set audiences_model = ref('audiences') -%}
{%- set audiences = none if from_log else audiences_model -%}
{#- read only when there is a previous version, referenced always (dbt's lineage) -#}
{%- set item_similarity_model = ref('item_similarity') -%}
{%- set item_repurchase_model = ref('item_repurchase') -%}
{%- set half_life_s = var('recs_half_life_days') * 86400 -%}
{%- set previous = persona.recs_previous_version(this) -%}
{%- set version = persona.rule_set_version() -%}

with interactions as (

    select * from {{ ref('interactions') }}

),

{%- if audiences is not none %}

audiences as (

    select * from {{ audiences }}

),

{%- endif %}

{%- if previous is not none %}

previous_inputs as (

    select * from {{ this }}
    where rule_set_version = {{ persona.quote_literal(previous) }}

),

item_similarity as (

    select * from {{ item_similarity_model }}
    where rule_set_version in ({{ version }}, {{ persona.quote_literal(previous) }})

),

item_repurchase as (

    select * from {{ item_repurchase_model }}
    where rule_set_version in ({{ version }}, {{ persona.quote_literal(previous) }})

),

{%- endif %}

user_events as (

    select
        user_id,
        sum(events_hash) as events_hash,
        min(training_end) as training_end
    from interactions
    group by user_id

),

{# users audiences suppress anything for (a plain log has no audiences) #}
suppressed_users as (

    {%- if audiences is not none %}
    select distinct user_id
    from audiences
    where list_type = 'suppress'
    {%- else %}
    select cast(null as {{ dbt.type_string() }}) as user_id
    where false
    {%- endif %}

),

fingerprints as (

    select
        user_events.user_id,
        user_events.events_hash,
        suppressed_users.user_id is not null as suppressed,
        user_events.training_end
    from user_events
    left join suppressed_users on user_events.user_id = suppressed_users.user_id

),

{%- if previous is not none %}

{# an item whose neighbours (or their similarities) differ between the two versions #}
neighbours_changed as (

    select coalesce(now_.product_id, before.product_id) as product_id
    from (
        select * from item_similarity where rule_set_version = {{ version }}
    ) as now_
    full outer join (
        select * from item_similarity
        where rule_set_version = {{ persona.quote_literal(previous) }}
    ) as before
        on
            now_.product_id = before.product_id
            and now_.similar_product_id = before.similar_product_id
    where
        now_.product_id is null
        or before.product_id is null
        or now_.similarity <> before.similarity
    group by coalesce(now_.product_id, before.product_id)

),

repurchase_now as (

    select * from item_repurchase
    where rule_set_version = {{ version }}

),

repurchase_changed as (

    select coalesce(repurchase_now.product_id, before.product_id) as product_id
    from repurchase_now
    full outer join (
        select * from item_repurchase
        where rule_set_version = {{ persona.quote_literal(previous) }}
    ) as before
        on repurchase_now.product_id = before.product_id
    where
        repurchase_now.product_id is null
        or before.product_id is null
        or repurchase_now.repurchase_rate <> before.repurchase_rate
        or coalesce(repurchase_now.repurchase_interval_days, -1)
        <> coalesce(before.repurchase_interval_days, -1)

),

{# how due each bought item is at this window's end and at the previous one #}
bought as (

    select
        interactions.user_id,
        interactions.product_id,
        {{ persona.seconds_between(
            'interactions.last_repeatable_at', 'interactions.training_end'
        ) }} / 86400.0 as days_since,
        {{ persona.seconds_between(
            'interactions.last_repeatable_at', 'previous_inputs.training_end'
        ) }} / 86400.0 as days_since_before,
        {{ persona.recs_buy_again_interval('interactions', 'repurchase_now') }} as interval_days
    from interactions
    inner join previous_inputs on interactions.user_id = previous_inputs.user_id
    left join repurchase_now on interactions.product_id = repurchase_now.product_id
    where interactions.repeatable_events > 0

),

bought_due as (

    select
        user_id,
        count(*) as items,
        min({{ persona.recs_buy_again_due('days_since', 'interval_days') }}) as least_due,
        min({{ persona.recs_buy_again_due('days_since_before', 'interval_days') }})
            as least_due_before
    from bought
    group by user_id

),

changed_users as (

    -- scored on an item whose neighbours changed
    select interactions.user_id
    from interactions
    inner join neighbours_changed on interactions.product_id = neighbours_changed.product_id
    where interactions.affinity_rank <= {{ var('recs_max_items_per_user') }}
    union
    -- bought an item whose repurchase row changed
    select interactions.user_id
    from interactions
    inner join repurchase_changed on interactions.product_id = repurchase_changed.product_id
    where interactions.repeatable_events > 0
    union
    -- bought an item not fully due at one of the two ends: the clock moves its score against
    -- the user's other purchases (one purchase alone is their best, 1, unless not due at all)
    select user_id
    from bought_due
    where
        (items > 1 and least(least_due, least_due_before) < 1)
        or least(least_due, least_due_before) <= 0

),

reuse as (

    select
        fingerprints.user_id,
        {{ persona.quote_literal(previous) }} as reused_from,
        {%- if half_life_s > 0 %}
        power(
            2.0,
            -{{ persona.seconds_between(
                'previous_inputs.training_end', 'fingerprints.training_end'
            ) }} / {{ half_life_s }}
        ) as score_scale
        {%- else %}
        1.0 as score_scale
        {%- endif %}
    from fingerprints
    inner join previous_inputs on fingerprints.user_id = previous_inputs.user_id
    where
        fingerprints.events_hash = previous_inputs.events_hash
        and not fingerprints.suppressed
        and not previous_inputs.suppressed
        and not exists (
            select 1 from changed_users where changed_users.user_id = fingerprints.user_id
        )

),

{%- endif %}

final as (

    select
        {{ version }} as rule_set_version,
        fingerprints.user_id,
        fingerprints.events_hash,
        fingerprints.suppressed,
        fingerprints.training_end,
        {{ persona.quote_literal(persona.recs_parameters_md5()) }} as parameters_md5,
        {%- if previous is not none %}
        reuse.reused_from,
        reuse.score_scale
        {%- else %}
        cast(null as {{ dbt.type_string() }}) as reused_from,
        cast(null as double) as score_scale
        {%- endif %}
    from fingerprints
    {%- if previous is not none %}
    left join reuse on fingerprints.user_id = reuse.user_id
    {%- endif %}

)

select * from final
