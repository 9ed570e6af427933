{#- Use a model's schema name as written (`derived`), not prefixed with the target schema:
    users query `derived.sessions`, on DuckDB and Snowflake alike. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema | trim }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
