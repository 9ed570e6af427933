{#- Whether a snapshot table exists yet (DuckDB asks; on Snowflake, where models are created
    by `dbt build` after their snapshots, it is assumed, so compiling needs no connection). -#}
{% macro snapshot_exists(relation) -%}
    {%- if target.type == 'snowflake' or not execute -%}
        {{ return(true) }}
    {%- endif -%}
    {{ return(load_relation(relation) is not none) }}
{%- endmacro %}
