{#- Watermarks: the newest load a model has processed. Rows of its input loaded after it are
    new to it. Recomputation is idempotent, so a watermark that lags only costs work.

    `watermark()` reads it off the model's own rows (fine where every load leaves a row, as in
    `events`). Key-scoped models whose rows do not see every load (few sessions are ever
    quarantined) record it per model in `_persona_watermarks` instead: `scope_watermark()`
    reads it, `record_watermark()` (a post-hook) writes what the run just consumed. -#}

{% macro watermark(column='max_load_tstamp') -%}
    (select coalesce(max({{ column }}), cast('1970-01-01' as timestamp)) from {{ this }})
{%- endmacro %}

{% macro watermark_table() -%}
    {{ api.Relation.create(
        database=target.database,
        schema=env_var('PERSONA_SCHEMA', 'derived'),
        identifier='_persona_watermarks',
    ) }}
{%- endmacro %}

{% macro scope_watermark() -%}
    (
        select coalesce(max(watermark), cast('1970-01-01' as timestamp))
        from {{ persona.watermark_table() }}
        where model_name = '{{ this.identifier }}'
    )
{%- endmacro %}

{#- on-run-start: once per invocation, before any model runs in parallel. -#}
{% macro ensure_watermark_table() -%}
    {%- if target.type != 'snowflake' -%}
        create schema if not exists {{ api.Relation.create(
            database=target.database, schema=env_var('PERSONA_SCHEMA', 'derived')
        ) }};
        create table if not exists {{ persona.watermark_table() }} (
            model_name varchar, watermark timestamp
        )
    {%- endif -%}
{%- endmacro %}

{#- inputs: relations whose max(max_load_tstamp) this run has consumed entirely -#}
{% macro record_watermark(inputs) -%}
    {%- if target.type != 'snowflake' -%}
        delete from {{ persona.watermark_table() }} where model_name = '{{ this.identifier }}';
        insert into {{ persona.watermark_table() }}
        select '{{ this.identifier }}', greatest(
            {%- for input in inputs %}
            (select max(max_load_tstamp) from {{ input }}){{ ',' if not loop.last }}
            {%- endfor %}
        )
    {%- endif -%}
{%- endmacro %}
