{#- The point in time a thin final layer measures windows from, as a SQL timestamp (UTC, no
    time zone) from var `as_of`:
      'now' (default)  the current time: fine in a table rebuilt each run, or a Snowflake
                       dynamic table with refresh_mode FULL; never in an incremental model
      'latest_event'   the latest collector_tstamp in `events`: replays and tests give the
                       same answer whenever they run
      a timestamp      e.g. '2026-02-05 00:00:00': a fixed point, for backfills
    Shared by every final layer (anomalies, profiles, ...) so they agree on "now". -#}
{% macro as_of() -%}
    {%- set value = var('as_of', 'now') | string -%}
    {%- if value == 'now' -%}
        {{ adapter.dispatch('as_of_now', 'persona')() }}
    {%- elif value == 'latest_event' -%}
        (select max(collector_tstamp) from {{ ref('events') }})
    {%- elif modules.re.match('^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$', value) -%}
        cast('{{ value }}' as timestamp)
    {%- else -%}
        {{ exceptions.raise_compiler_error(
            "var as_of must be 'now', 'latest_event' or a timestamp like '2026-02-05 00:00:00',"
            ~ " got '" ~ value ~ "'"
        ) }}
    {%- endif -%}
{%- endmacro %}

{% macro default__as_of_now() -%}
    cast(timezone('UTC', now()) as timestamp)
{%- endmacro %}

{% macro snowflake__as_of_now() -%}
    sysdate()
{%- endmacro %}
