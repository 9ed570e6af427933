{#- The segment definitions as rows (name, description, compiled predicate), so activation
    tools and analysts can see what each segment means next to its members. -#}
{{ config(materialized='view') }}
{%- set segments = persona.segment_definitions() -%}

with definitions as (

    {%- for segment in segments %}
    select
        {{ persona.quote_literal(segment.name) }} as segment,
        {{ persona.quote_literal(segment.get('description') or '') }} as description,
        {{ persona.quote_literal(persona.segment_predicate(segment, [])) }} as definition
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- else %}
    select
        cast(null as {{ dbt.type_string() }}) as segment,
        cast(null as {{ dbt.type_string() }}) as description,
        cast(null as {{ dbt.type_string() }}) as definition
    where false
    {%- endfor %}

)

select * from definitions
