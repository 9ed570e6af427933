{#- The window the anomaly detectors score, one row: as_of (var as_of, macros/as_of.sql), the
    last whole hour before it, and the first hour scored (anomalies_window_days before). -#}
{% macro anomalies_window() -%}
    select
        as_of,
        {{ dbt.dateadd('hour', -1, dbt.date_trunc('hour', 'as_of')) }} as last_hour,
        {{ dbt.dateadd('day', -var('anomalies_window_days'), dbt.date_trunc('hour', 'as_of')) }}
            as window_start
    from (select {{ persona.as_of() }} as as_of) as reference_time
{%- endmacro %}
