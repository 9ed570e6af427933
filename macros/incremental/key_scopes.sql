{#- Which rows the key-scoped models read. Each macro refs its scope unconditionally, so the
    DAG has the edge whatever the run; the filter itself renders only on an incremental DuckDB
    run (a dynamic table on Snowflake, and a full refresh, read everything). -#}

{#- The events the session models (page_views, sessions, quarantined_sessions) read: events of
    a session, bots left out unless include_bots, and on an incremental run only the sessions
    of sessions_this_run, read from the earliest arrival among them (DuckDB skips older row
    groups by their min/max). One place, so the three session models cannot disagree. -#}
{% macro session_scope() -%}
    {%- set scope = ref('sessions_this_run') -%}
    domain_sessionid is not null
    {%- if not var('include_bots') %}
        and not is_bot
    {%- endif %}
    {%- if persona.incremental_run() %}
        and collector_tstamp >= (select min(scope.first_collector_tstamp) from {{ scope }} as scope)
        and domain_sessionid in (select scope.domain_sessionid from {{ scope }} as scope)
    {%- endif -%}
{%- endmacro %}

{#- The sessions the per-device aggregates (user_daily, user_product_daily) read: those with a
    device, and on an incremental run all sessions of the devices in devices_this_run, so their
    rows are rebuilt whole. -#}
{% macro device_scope() -%}
    {%- set scope = ref('devices_this_run') -%}
    domain_userid is not null
    {%- if persona.incremental_run() %}
        and domain_userid in (select scope.domain_userid from {{ scope }} as scope)
    {%- endif -%}
{%- endmacro %}
