{#- Entity arrays as rows: `from t, {{ each_entity('t.col', 'p') }}` gives one row per entity of
    `col`; entity_value / entity_index read the entity joined as `alias`. -#}
{% macro each_entity(column, alias) -%}
    {{ return(adapter.dispatch('each_entity', 'persona')(column, alias)) }}
{%- endmacro %}

{% macro default__each_entity(column, alias) -%}
    json_each({{ column }}) as {{ alias }}
{%- endmacro %}

{% macro snowflake__each_entity(column, alias) -%}
    lateral flatten(input => {{ column }}) as {{ alias }}
{%- endmacro %}

{% macro entity_value(alias, path) -%}
    {{ return(adapter.dispatch('entity_value', 'persona')(alias, path)) }}
{%- endmacro %}

{% macro default__entity_value(alias, path) -%}
    json_extract_string({{ alias }}.value, '$.{{ path }}')
{%- endmacro %}

{% macro snowflake__entity_value(alias, path) -%}
    {{ alias }}.value:{{ path }}::varchar
{%- endmacro %}

{% macro entity_index(alias) -%}
    {{ return(adapter.dispatch('entity_index', 'persona')(alias)) }}
{%- endmacro %}

{% macro default__entity_index(alias) -%}
    cast({{ alias }}.key as integer)
{%- endmacro %}

{% macro snowflake__entity_index(alias) -%}
    {{ alias }}.index
{%- endmacro %}
