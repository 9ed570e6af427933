{#- Key-scoped refresh on DuckDB: an incremental run rebuilds every session changed since the
    model's watermark, whole, and replaces its old rows. The pre-hook clears those keys first,
    which also removes rows that no longer exist (a session that grew into quarantine); a plain
    delete+insert would leave them behind. On Snowflake, dynamic tables refresh themselves and
    none of this renders. -#}

{% macro touched_sessions() -%}
    select domain_sessionid, first_collector_tstamp from {{ ref('session_bounds') }}
    where max_load_tstamp > {{ persona.scope_watermark() }}
{%- endmacro %}

{#- Which `events` the session models read: events of a session, bots left out unless
    include_bots, and on an incremental run only the touched sessions, read from the earliest
    arrival among them. One place, so the three session models cannot disagree. -#}
{% macro session_scope() -%}
    domain_sessionid is not null
    {%- if not var('include_bots') %}
        and not is_bot
    {%- endif %}
    {{- persona.in_touched_sessions() }}
{%- endmacro %}

{#- The incremental part of session_scope (DuckDB skips older row groups by their min/max). -#}
{% macro in_touched_sessions() -%}
    {%- if persona.incremental_run() %}
        and collector_tstamp >= (
            select min(first_collector_tstamp) from ({{ persona.touched_sessions() }}) as touched
        )
        and domain_sessionid in (
            select domain_sessionid from ({{ persona.touched_sessions() }}) as touched
        )
    {%- endif -%}
{%- endmacro %}

{% macro clear_touched(key, touched) -%}
    {%- if persona.incremental_run() -%}
        delete from {{ this }} where {{ key }} in (select {{ key }} from ({{ touched }}) as touched)
    {%- endif -%}
{%- endmacro %}

