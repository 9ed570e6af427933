{#- What a rule set is computed from, shared by the models that record it (rule_set_versions)
    and the ones that compare it between retrains (user_rule_inputs, user_recommendations). -#}

{#- The parameters of a retrain, as rule_set_versions records them. -#}
{% macro recs_parameters() -%}
    {{ return({
        'interactions_from': var('recs_interactions_from'),
        'event_weights': var('recs_event_weights'),
        'half_life_days': var('recs_half_life_days'),
        'training_days': var('recs_training_days', none),
        'training_end': var('recs_training_end', none),
        'similarity': var('recs_similarity'),
        'min_cooccurrence': var('recs_min_cooccurrence'),
        'neighbours': var('recs_neighbours'),
        'max_items_per_user': var('recs_max_items_per_user'),
        'top_k': var('recs_top_k'),
        'remove_seen': var('recs_remove_seen'),
        'recommend_again': persona.recs_recommend_again(),
        'buy_again_weight': var('recs_buy_again_weight'),
        'buy_again_horizon_days': var('recs_buy_again_horizon_days'),
        'buy_again_half_life_days': var('recs_buy_again_half_life_days'),
        'min_history_items': var('recs_min_history_items'),
        'popular_items': var('recs_popular_items'),
    }) }}
{%- endmacro %}

{#- One digest of every parameter a user's list depends on (EASE's too) but the window's end,
    whose move user_rule_inputs accounts for: two retrains with the same digest ran the same
    rules. -#}
{% macro recs_parameters_md5() -%}
    {%- set every = persona.recs_parameters() -%}
    {%- do every.pop('training_end') -%}
    {%- do every.update({
        'ease_lambda': var('recs_ease_lambda'), 'ease_max_items': var('recs_ease_max_items')
    }) -%}
    {{ return(local_md5(tojson(every, sort_keys=true))) }}
{%- endmacro %}

{#- A bought item's repurchase interval in days: the item's median (`repurchase`, an
    item_repurchase row) shrunk towards the user's own mean interval, two gaps' worth of prior
    (`bought`, an interactions row). -#}
{% macro recs_buy_again_interval(bought, repurchase) -%}
    (
        {{ persona.seconds_between(
            bought ~ '.first_repeatable_at', bought ~ '.last_repeatable_at'
        ) }} / 86400.0
        + 2 * coalesce({{ repurchase }}.repurchase_interval_days, 0)
    ) / ({{ bought }}.repeatable_events - 1 + 2)
{%- endmacro %}

{#- How due a bought item is, 0..1: days since the last purchase plus
    `recs_buy_again_horizon_days` against the interval (1 once they reach it). -#}
{% macro recs_buy_again_due(days_since, interval_days) -%}
    case
        when {{ interval_days }} <= 0 then 1.0
        else least(1.0, ({{ days_since }} + {{ var('recs_buy_again_horizon_days') }}) / {{ interval_days }})
    end
{%- endmacro %}

{#- The rule-set version whose lists a retrain may copy for users whose inputs did not change:
    the newest published one (a row in rule_set_versions: every rule table has its rows) that
    has `user_rule_inputs` rows of the same parameters; none on a first or full-refresh build,
    with `recs_reuse_unchanged: false`, or after a change of parameters. rule_set_versions is
    read by name, not ref(): it is built after the models that read this (a ref would be a
    cycle), and only its earlier rows are read. -#}
{% macro recs_previous_version(inputs) -%}
    {%- if not (execute and var('recs_reuse_unchanged') and is_incremental()) -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set versions = adapter.get_relation(
        database=inputs.database, schema=inputs.schema, identifier='rule_set_versions'
    ) -%}
    {%- if versions is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set found = run_query(
        "select v.rule_set_version from " ~ versions ~ " as v"
        ~ " where v.rule_set_version <> " ~ persona.rule_set_version()
        ~ " and exists (select 1 from " ~ inputs ~ " as i"
        ~ " where i.rule_set_version = v.rule_set_version"
        ~ " and i.parameters_md5 = " ~ persona.quote_literal(persona.recs_parameters_md5()) ~ ")"
        ~ " order by v.trained_at desc, v.rule_set_version desc limit 1"
    ).columns[0].values() | list -%}
    {{ return(found[0] if found else none) }}
{%- endmacro %}
