{#- Optional inputs of the rule sets (segment_membership, audiences): their joins render only
    when the model is in the project and, on DuckDB, already built in this warehouse (a scratch
    warehouse of `python -m udfs evaluate` has neither). No ref() (a ref inside a condition
    that is false while dbt parses cannot be resolved later), so no edge in the DAG: run the
    retrain selector after the refresh that builds them. Parse time sees no graph: none. -#}
{% macro model_relation(name) -%}
    {%- if execute -%}
        {#- a unit test's context has a graph without nodes -#}
        {%- for node in (graph.get('nodes') or {}).values() -%}
            {%- if node.resource_type == 'model' and node.name == name
                and node.config.enabled -%}
                {%- set relation = api.Relation.create(
                    database=node.database, schema=node.schema, identifier=node.alias
                ) -%}
                {%- if target.type != 'snowflake' and load_relation(relation) is none -%}
                    {{ return(none) }}
                {%- endif -%}
                {{ return(relation) }}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}

{% macro model_exists(name) -%}
    {{ return(persona.model_relation(name) is not none) }}
{%- endmacro %}
