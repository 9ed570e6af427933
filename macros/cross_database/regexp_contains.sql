{#- True when the text contains a match of a (case-insensitive) regular expression. -#}
{% macro regexp_contains(text, pattern) -%}
    {{ return(adapter.dispatch('regexp_contains', 'persona')(text, pattern)) }}
{%- endmacro %}

{% macro default__regexp_contains(text, pattern) -%}
    regexp_matches({{ text }}, {{ persona.quote_literal(pattern) }}, 'i')
{%- endmacro %}

{% macro snowflake__regexp_contains(text, pattern) -%}
    regexp_like({{ text }}, {{ persona.quote_literal('.*(' ~ pattern ~ ').*') }}, 'is')
{%- endmacro %}
