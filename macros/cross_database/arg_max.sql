{#- The `value` of the row with the largest `key` in a group (DuckDB arg_max, Snowflake max_by). -#}
{% macro arg_max(value, key) -%}
    {{ return(adapter.dispatch('arg_max', 'persona')(value, key)) }}
{%- endmacro %}

{% macro default__arg_max(value, key) -%}
    arg_max({{ value }}, {{ key }})
{%- endmacro %}

{% macro snowflake__arg_max(value, key) -%}
    max_by({{ value }}, {{ key }})
{%- endmacro %}
