{#- Whole `part`s (second, day, ...) boundaries crossed from `start` to `end`, as Snowflake's
    datediff counts them; DuckDB's date_diff counts the same way. -#}
{% macro time_between(part, start, end) -%}
    {{ return(adapter.dispatch('time_between', 'persona')(part, start, end)) }}
{%- endmacro %}

{% macro default__time_between(part, start, end) -%}
    date_diff('{{ part }}', {{ start }}, {{ end }})
{%- endmacro %}

{% macro snowflake__time_between(part, start, end) -%}
    datediff({{ part }}, {{ start }}, {{ end }})
{%- endmacro %}
