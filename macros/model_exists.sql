{#- Models another branch may not have yet (profiles, segment_membership, audiences): their
    joins render only when the model is in the graph. No ref() (a ref inside a condition that
    is false while dbt parses cannot be resolved later), so no edge in the DAG: the retrain
    selector runs after the realtime models that build them. Parse time sees no graph: false. -#}
{% macro model_relation(name) -%}
    {%- if execute -%}
        {#- a unit test's context has a graph without nodes -#}
        {%- for node in (graph.get('nodes') or {}).values() -%}
            {%- if node.resource_type == 'model' and node.name == name
                and node.config.enabled -%}
                {{ return(api.Relation.create(
                    database=node.database, schema=node.schema, identifier=node.alias
                )) }}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}

{% macro model_exists(name) -%}
    {{ return(persona.model_relation(name) is not none) }}
{%- endmacro %}
