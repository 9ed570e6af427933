{#- A post-hook: on Snowflake, every column of the model marked `meta: {pii: true}` in its yml
    gets the tag GOVERNANCE.PII, which carries the masking policy (`persona snowflake setup`
    creates both). Renders nothing on other engines. -#}
{% macro pii_tags() -%}
    {{ return(adapter.dispatch('pii_tags', 'persona')()) }}
{%- endmacro %}

{% macro default__pii_tags() -%}
{%- endmacro %}

{% macro snowflake__pii_tags() -%}
    {%- set pii = persona.pii_columns(model) -%}
    {%- if pii -%}
        {%- set kind = {'dynamic_table': 'dynamic table', 'view': 'view'}.get(
            config.get('materialized'), 'table') -%}
        {%- set tag = target.database ~ '.GOVERNANCE.PII' -%}
        alter {{ kind }} {{ this }} modify
        {%- for name in pii %} column {{ name }} set tag {{ tag }} = 'true'{{ ',' if not loop.last }}
        {%- endfor %}
    {%- endif -%}
{%- endmacro %}

{#- The names of a node's columns marked pii (meta, or config.meta as dbt 1.10+ writes it). -#}
{% macro pii_columns(node) -%}
    {%- set names = [] -%}
    {%- for name, column in (node.columns or {}).items() -%}
        {%- set meta = column.get('meta') or (column.get('config') or {}).get('meta') or {} -%}
        {%- if meta.get('pii') -%}
            {%- do names.append(name) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(names) }}
{%- endmacro %}
