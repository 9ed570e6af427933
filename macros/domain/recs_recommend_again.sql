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
