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


{#- Devices (domain_userid) whose per-user aggregates must be rebuilt: a session of theirs
    changed, or a login re-stitched them to another user (by cookie or by network_userid).
    Rebuilding every row of a touched device, whoever it was stitched to before, keeps the
    per-user aggregates exact when stitching moves a device between users. -#}
{% macro touched_devices() -%}
    select domain_userid from {{ ref('sessions') }}
    where max_load_tstamp > {{ persona.scope_watermark() }}
    union
    select device_id as domain_userid from {{ ref('identity_map') }}
    where device_id_type = 'domain_userid' and max_load_tstamp > {{ persona.scope_watermark() }}
    union
    select stitched.domain_userid from {{ ref('sessions') }} as stitched
    inner join {{ ref('identity_map') }} as by_network
        on by_network.device_id_type = 'network_userid'
        and stitched.network_userid = by_network.device_id
    where by_network.max_load_tstamp > {{ persona.scope_watermark() }}
{%- endmacro %}

{#- Which sessions the per-user aggregates read: those with a device, and on an incremental run
    only the touched devices' (all of their sessions, so their rows are rebuilt whole). -#}
{% macro device_scope() -%}
    domain_userid is not null
    {%- if persona.incremental_run() %}
        and domain_userid in (
            select touched.domain_userid from ({{ persona.touched_devices() }}) as touched
        )
    {%- endif -%}
{%- endmacro %}

{#- Whether a snapshot table exists yet (DuckDB asks; on Snowflake, where models are created
    by `dbt build` after their snapshots, it is assumed, so compiling needs no connection). -#}
{% macro snapshot_exists(relation) -%}
    {%- if target.type == 'snowflake' or not execute -%}
        {{ return(true) }}
    {%- endif -%}
    {{ return(load_relation(relation) is not none) }}
{%- endmacro %}
