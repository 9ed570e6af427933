{#- The type of money amounts (revenue, prices): an exact decimal, so sums print as 503.95, not
    503.95000000000005. Two decimal places, the minor unit of most currencies. -#}
{% macro type_money() -%}
    decimal(18, 2)
{%- endmacro %}
