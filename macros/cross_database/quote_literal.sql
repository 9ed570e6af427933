{#- A value as a SQL string literal, escaped the way the target reads it. Every literal built
    from configuration (segment values, descriptions, names, regular expressions) goes through
    here, so a value stays data on both engines. dbt's own `escape_single_quotes` is not enough
    on Snowflake: it turns ' into \' but leaves \ alone, so the value x\' still ends the literal. -#}
{% macro quote_literal(value) -%}
    {{ return(adapter.dispatch('quote_literal', 'persona')(value | string)) }}
{%- endmacro %}

{#- Standard SQL: a backslash is an ordinary character, a quote is doubled. -#}
{% macro default__quote_literal(value) -%}
    {{ return("'" ~ dbt.escape_single_quotes(value) ~ "'") }}
{%- endmacro %}

{#- DuckDB's '...' strings take no backslash escapes: dbt-duckdb's own escaping doubles quotes. -#}
{% macro duckdb__quote_literal(value) -%}
    {{ return("'" ~ adapter.escape_sql_string(value) ~ "'") }}
{%- endmacro %}

{#- Snowflake reads backslash escapes in '...' strings (\\ \' \n \x27 ...): escape the
    backslash first, then the quote; line breaks as \n and \r keep the literal on one line. -#}
{% macro snowflake__quote_literal(value) -%}
    {%- set escaped = value | replace("\\", "\\\\") | replace("'", "\\'")
        | replace("\n", "\\n") | replace("\r", "\\r") -%}
    {{ return("'" ~ escaped ~ "'") }}
{%- endmacro %}
