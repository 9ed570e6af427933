{#- A field of the first entity in an entity column, as text, or null when the column does not
    exist yet (the loader adds entity columns only once an event carries that schema).
    column: e.g. 'contexts_com_snowplowanalytics_snowplow_web_page_1'; path: e.g. 'id'. -#}
{% macro entity_field(relation, column, path) -%}
    {%- set names = adapter.get_columns_in_relation(relation) | map(attribute='name') | map('lower') | list -%}
    {%- if execute and column | lower not in names -%}
        cast(null as {{ dbt.type_string() }})
    {%- else -%}
        {{ return(adapter.dispatch('entity_field', 'persona')(column, path)) }}
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
