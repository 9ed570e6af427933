{#- The event types whose items may be recommended again ("buy again"): `recs_recommend_again`
    when set (a list such as [transaction]; a plain interaction log's rows are of type
    `interaction`), else what `recs_remove_seen` always meant: true, none (every seen item is
    removed); false, every type. Fails the build naming the key when it is not a list of names. -#}
{% macro recs_recommend_again() -%}
    {%- set chosen = var('recs_recommend_again', none) -%}
    {%- if chosen is none -%}
        {%- if var('recs_remove_seen') -%}
            {{ return([]) }}
        {%- elif var('recs_interactions_from') == 'interaction_log' -%}
            {{ return(['interaction']) }}
        {%- else -%}
            {{ return(var('recs_event_weights').keys() | list) }}
        {%- endif -%}
    {%- endif -%}
    {%- if chosen is string or chosen is mapping or chosen is not iterable
        or (chosen | reject('string') | list) -%}
        {{ exceptions.raise_compiler_error(
            "recs_recommend_again must be a list of event types (e.g. [transaction], or "
            ~ "[interaction] for a plain log) or null, not " ~ chosen) }}
    {%- endif -%}
    {{ return(chosen | list) }}
{%- endmacro %}

{#- The rule both the similar-item candidates and the final list apply: an item the user saw
    stays out unless they have an event of a recommend-again type on it. `candidate`: the
    relation with user_id and product_id; `interactions` must be in scope. -#}
{% macro recs_not_seen(candidate) -%}
    not exists (
        select 1 from interactions
        where
            interactions.user_id = {{ candidate }}.user_id
            and interactions.product_id = {{ candidate }}.product_id
            and coalesce(interactions.repeatable_events, 0) = 0
    )
{%- endmacro %}
