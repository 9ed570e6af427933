{#- The incremental manifest: per key-scoped model, the newest load it has consumed (its
    watermark). Rows of its inputs loaded later are new to it. Recomputation is idempotent, so
    a watermark that lags only costs work. It lives in the internal schema, with the scopes,
    out of the schema users query. -#}

{% macro internal_schema() -%}
    {{- env_var('PERSONA_SCHEMA', 'derived') ~ '_internal' -}}
{%- endmacro %}

{% macro incremental_manifest() -%}
    {{ return(api.Relation.create(
        database=target.database,
        schema=persona.internal_schema(),
        identifier='incremental_manifest',
    )) }}
{%- endmacro %}

{#- on-run-start: once per invocation, before any model runs in parallel. -#}
{% macro ensure_incremental_manifest() -%}
    {%- if target.type != 'snowflake' -%}
        create schema if not exists {{ api.Relation.create(
            database=target.database, schema=persona.internal_schema()
        ) }};
        create table if not exists {{ persona.incremental_manifest() }} (
            model_name varchar, watermark timestamp
        )
    {%- endif -%}
{%- endmacro %}

{#- A project-wide post-hook: for a key-scoped model, record the newest load among the keys its
    scope listed this run (the whole input's newest when anything was touched). An empty scope
    leaves the watermark where it was. Renders nothing for other models and on Snowflake. -#}
{% macro record_watermark() -%}
    {%- if target.type != 'snowflake' and config.get('key_scope') -%}
        {%- set scope = ref(config.get('key_scope')) -%}
        delete from {{ persona.incremental_manifest() }}
        where model_name = '{{ this.identifier }}' and exists (select 1 from {{ scope }});
        insert into {{ persona.incremental_manifest() }}
        select '{{ this.identifier }}', max(max_load_tstamp) from {{ scope }}
        having count(*) > 0
    {%- endif -%}
{%- endmacro %}

{#- In a `*_this_run` model: the oldest watermark among the models that read this scope, so
    each of them sees at least every key touched since its own last run (a model with no
    watermark yet, new or never built, sees every key). -#}
{% macro scope_lower_limit() -%}
    {%- set readers = [] -%}
    {%- if execute -%}
        {%- for node in (graph.get('nodes') or {}).values() -%}
            {%- if node.resource_type == 'model' and node.config.get('key_scope') == model.name -%}
                {%- do readers.append(node.alias or node.name) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if readers -%}
    (
        select
            case
                when count(distinct model_name) < {{ readers | length }}
                    then cast('1970-01-01' as timestamp)
                else min(watermark)
            end
        from {{ persona.incremental_manifest() }}
        where model_name in ('{{ readers | join("', '") }}')
    )
    {%- else -%}
    cast('1970-01-01' as timestamp)
    {%- endif -%}
{%- endmacro %}
