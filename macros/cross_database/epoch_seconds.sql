{#- Seconds since 1970-01-01 of a timestamp, as a number. -#}
{% macro epoch_seconds(ts) -%}
    {{ return(adapter.dispatch('epoch_seconds', 'persona')(ts)) }}
{%- endmacro %}

{% macro default__epoch_seconds(ts) -%}
    epoch({{ ts }})
{%- endmacro %}

{% macro snowflake__epoch_seconds(ts) -%}
    date_part(epoch_millisecond, {{ ts }}) / 1000.0
{%- endmacro %}
