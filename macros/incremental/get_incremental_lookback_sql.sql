{#- Incremental strategy `lookback` (used by `events`): delete+insert whose delete looks only as
    far back as the dedupe comparison does, dedupe_lookback_days before the earliest new event,
    so an incremental run never scans the whole history (DuckDB prunes row groups by
    collector_tstamp). -#}
{% macro get_incremental_lookback_sql(arg_dict) %}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set predicates = (arg_dict['incremental_predicates'] or []) + [
        "collector_tstamp >= (select min(collector_tstamp) from " ~ source ~ ") - interval '"
        ~ var('dedupe_lookback_days') ~ " days'"
    ] -%}
    {{ return(get_delete_insert_merge_sql(
        arg_dict['target_relation'], source, arg_dict['unique_key'], arg_dict['dest_columns'],
        predicates
    )) }}
{% endmacro %}
