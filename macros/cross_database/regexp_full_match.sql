{#- True when the whole text matches the regular expression `pattern`, an expression (e.g. a
    column of the channel_groups seed). -#}
{% macro regexp_full_match(text, pattern) -%}
    {{ return(adapter.dispatch('regexp_full_match', 'persona')(text, pattern)) }}
{%- endmacro %}

{% macro default__regexp_full_match(text, pattern) -%}
    regexp_full_match({{ text }}, {{ pattern }})
{%- endmacro %}

{% macro snowflake__regexp_full_match(text, pattern) -%}
    regexp_like({{ text }}, {{ pattern }})
{%- endmacro %}
