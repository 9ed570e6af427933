{#- One row per hour, `bucket_start`, from `first_hour` to `last_hour` (both whole hours,
    inclusive) of each row of `bounds` (a CTE or relation), with the bounds' other columns. -#}
{% macro hour_spine(bounds) -%}
    {{ return(adapter.dispatch('hour_spine', 'persona')(bounds)) }}
{%- endmacro %}

{% macro default__hour_spine(bounds) -%}
    select
        *,
        unnest(generate_series(first_hour, last_hour, interval '1 hour')) as bucket_start
    from {{ bounds }}
    where first_hour <= last_hour
{%- endmacro %}

{% macro snowflake__hour_spine(bounds) -%}
    select
        b.*,
        dateadd(hour, cast(hours.value as integer), b.first_hour) as bucket_start
    from {{ bounds }} as b,
        lateral flatten(
            input => array_generate_range(0, datediff(hour, b.first_hour, b.last_hour) + 1)
        ) as hours
    where b.first_hour <= b.last_hour
{%- endmacro %}
