{#- A field of the first entity in an entity column, as text, or null when the column does not
    exist yet (the DuckDB loader adds entity columns only once an event carries that schema).
    column: e.g. 'contexts_com_snowplowanalytics_snowplow_web_page_1'; path: e.g. 'id'. -#}
{% macro entity_field(relation, column, path) -%}
    {%- if persona.has_column(relation, column) -%}
        {{ return(adapter.dispatch('entity_field', 'persona')(column, path)) }}
    {%- else -%}
        cast(null as {{ dbt.type_string() }})
    {%- endif -%}
{%- endmacro %}

{% macro default__entity_field(column, path) -%}
    {%- if column.startswith('contexts_') -%}
        json_extract_string({{ column }}, '$[0].{{ path }}')
    {%- else -%}
        json_extract_string({{ column }}, '$.{{ path }}')
    {%- endif -%}
{%- endmacro %}

{% macro snowflake__entity_field(column, path) -%}
    {%- if column.startswith('contexts_') -%}
        {{ column }}[0]:{{ path }}::varchar
    {%- else -%}
        {{ column }}:{{ path }}::varchar
    {%- endif -%}
{%- endmacro %}

{% macro has_column(relation, column) -%}
    {{ return(adapter.dispatch('has_column', 'persona')(relation, column)) }}
{%- endmacro %}

{% macro default__has_column(relation, column) -%}
    {%- if not execute -%}
        {{ return(true) }}
    {%- endif -%}
    {%- set names = adapter.get_columns_in_relation(relation) | map(attribute='name') | map('lower') | list -%}
    {{ return(column | lower in names) }}
{%- endmacro %}

{#- On Snowflake the events table is created up front with every entity column the models read
    (docs/snowflake.md), and a dynamic table's query is fixed at creation anyway. -#}
{% macro snowflake__has_column(relation, column) -%}
    {{ return(true) }}
{%- endmacro %}
