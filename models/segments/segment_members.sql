{#- Who is in each segment now: the definitions in var `segments`, compiled to predicates over
    `profiles` (macros/domain/segment_predicate.sql). `segment_history` snapshots this view. -#}
{{ config(materialized='view') }}
{%- set columns = persona.profile_columns() -%}
{%- set segments = persona.segment_definitions() -%}

with profiles as (

    select * from {{ ref('profiles') }}

),

members as (

    {%- for segment in segments %}
    select
        user_id,
        {{ persona.quote_literal(segment.name) }} as segment
    from profiles
    where {{ persona.segment_predicate(segment, columns) }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- else %}
    select
        user_id,
        cast(null as {{ dbt.type_string() }}) as segment
    from profiles
    where false
    {%- endfor %}

)

select * from members
