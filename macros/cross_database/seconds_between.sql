{#- Seconds from `start` to `end` as a fractional number, on both engines. -#}
{% macro seconds_between(start, end) -%}
    ({{ persona.epoch_seconds(end) }} - {{ persona.epoch_seconds(start) }})
{%- endmacro %}
