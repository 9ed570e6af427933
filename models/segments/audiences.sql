{#- Ad audiences from var `audiences`: include lists (the members of a segment) and
    suppression lists (users who bought a product, or anything in a category, within the last
    N days should not see its ads), one row per user and list with the reason. Thin final
    layer: the suppression window moves with `as_of`. -#}
{{ config(
    materialized='dynamic_table' if target.type == 'snowflake' else 'table',
    refresh_mode='FULL',
) }}
{%- set audiences = var('audiences', []) or [] -%}
{%- set segment_names = persona.segment_definitions() | map(attribute='name') | list -%}

with segment_membership as (

    select * from {{ ref('segment_membership') }}

),

user_product_daily as (

    select * from {{ ref('user_product_daily') }}
    where purchases > 0

),

clock as (

    select cast({{ persona.as_of() }} as date) as as_of_date

),

lists as (

    {%- for audience in audiences %}
    {%- set name = audience.get('name') | string -%}
    {%- if not modules.re.fullmatch('[a-z][a-z0-9_]*', name) -%}
        {{ exceptions.raise_compiler_error("audience " ~ audience ~ ": name must be lower_snake_case") }}
    {%- endif %}
    {%- if audience.get('segment') %}
    {%- if audience['segment'] not in segment_names -%}
        {{ exceptions.raise_compiler_error(
            "audience '" ~ name ~ "': unknown segment '" ~ audience['segment']
            ~ "'; segments are: " ~ segment_names | join(', ')) }}
    {%- endif %}
    select
        {{ persona.quote_literal(name) }} as audience,
        'include' as list_type,
        user_id,
        cast(null as {{ dbt.type_string() }}) as product_id,
        cast(null as {{ dbt.type_string() }}) as category,
        {{ persona.quote_literal('in segment ' ~ audience['segment']) }} as reason,
        since
    from segment_membership
    where segment = {{ persona.quote_literal(audience['segment']) }}
    {%- elif audience.get('suppress') in ['product', 'category'] %}
    {%- set days = audience.get('purchased_within_days') -%}
    {%- if days is not number or days < 1 -%}
        {{ exceptions.raise_compiler_error(
            "audience '" ~ name ~ "': purchased_within_days must be a positive number of days") }}
    {%- endif %}
    {%- set level = audience['suppress'] %}
    select
        {{ persona.quote_literal(name) }} as audience,
        'suppress' as list_type,
        user_product_daily.user_id,
        {%- if level == 'product' %}
        user_product_daily.product_id,
        max(user_product_daily.category) as category,
        {%- else %}
        cast(null as {{ dbt.type_string() }}) as product_id,
        user_product_daily.category,
        {%- endif %}
        {{ persona.quote_literal('bought ' ~ level ~ ' within ' ~ days ~ ' days') }} as reason,
        max(user_product_daily.last_purchase_tstamp) as since
    from user_product_daily
    cross join clock
    where
        {{ dbt.datediff('user_product_daily.activity_date', 'clock.as_of_date', 'day') }}
        < {{ days }}
    group by
        user_product_daily.user_id,
        {{ 'user_product_daily.product_id' if level == 'product' else 'user_product_daily.category' }}
    {%- else %}
        {{ exceptions.raise_compiler_error(
            "audience '" ~ name ~ "': needs `segment` (an include list) or `suppress: product`"
            ~ " / `suppress: category` with purchased_within_days (a suppression list)") }}
    {%- endif %}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- else %}
    select
        cast(null as {{ dbt.type_string() }}) as audience,
        cast(null as {{ dbt.type_string() }}) as list_type,
        cast(null as {{ dbt.type_string() }}) as user_id,
        cast(null as {{ dbt.type_string() }}) as product_id,
        cast(null as {{ dbt.type_string() }}) as category,
        cast(null as {{ dbt.type_string() }}) as reason,
        cast(null as timestamp) as since
    where false
    {%- endfor %}

)

select * from lists
