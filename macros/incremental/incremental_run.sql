{#- True on an incremental DuckDB run. On Snowflake models are dynamic tables, which refresh
    themselves: their SQL is always the declarative whole, and asking dbt's is_incremental()
    would query the warehouse (which compiling for Snowflake offline must not). -#}
{% macro incremental_run() -%}
    {{ return(target.type != 'snowflake' and is_incremental()) }}
{%- endmacro %}
