{#- The moment "now" means for windowed features (last 7 days, days since last visit) and the
    other thin final-layer models. var as_of: 'now' (default: the refresh's clock),
    'latest_event' (the newest collector_tstamp loaded: replays and demos of past data), or a
    timestamp literal such as '2026-01-31 00:00:00' (backtests). Only final-layer models call
    this: incremental layers never depend on the clock (ARCHITECTURE.md, decision 4). -#}
{% macro as_of() -%}
    {%- set value = var('as_of', 'now') | string -%}
    {%- if value == 'now' -%}
        {{ persona.utc_now() }}
    {%- elif value == 'latest_event' -%}
        (select max(collector_tstamp) from {{ ref('events') }})
    {%- elif modules.re.fullmatch('\d{4}-\d{2}-\d{2}( \d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?', value) -%}
        cast('{{ value }}' as timestamp)
    {%- else -%}
        {{ exceptions.raise_compiler_error(
            "var as_of must be 'now', 'latest_event' or a timestamp like '2026-01-31 12:00:00', got '"
            ~ value ~ "'"
        ) }}
    {%- endif -%}
{%- endmacro %}

{#- The clock as a UTC timestamp without time zone, like the event timestamps. -#}
{% macro utc_now() -%}
    {{ return(adapter.dispatch('utc_now', 'persona')()) }}
{%- endmacro %}

{% macro default__utc_now() -%}
    cast(timezone('UTC', current_timestamp) as timestamp)
{%- endmacro %}

{% macro snowflake__utc_now() -%}
    cast(convert_timezone('UTC', current_timestamp()) as timestamp_ntz)
{%- endmacro %}
