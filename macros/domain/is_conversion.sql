{#- Whether an event of `events` is a conversion (var `conversions`): it matches when any
    listed column has one of the listed values, e.g. {ecommerce_action: [transaction]} or
    {event_name: [page_view, sign_up]}. A converted session is engaged, as in Snowplow. -#}
{% macro is_conversion() -%}
    {%- set allowed = ['event_name', 'ecommerce_action'] -%}
    {%- set conditions = [] -%}
    {%- for column, values in (var('conversions') or {}).items() -%}
        {%- if column not in allowed or values is string or not values -%}
            {{ exceptions.raise_compiler_error(
                "var conversions: expected a non-empty list of values for one of "
                ~ allowed | join(', ') ~ ", got " ~ column ~ ": " ~ values
            ) }}
        {%- endif -%}
        {%- set literals = [] -%}
        {%- for value in values -%}
            {%- do literals.append(persona.quote_literal(value)) -%}
        {%- endfor -%}
        {%- do conditions.append(column ~ ' in (' ~ literals | join(', ') ~ ')') -%}
    {%- endfor -%}
    ({{ conditions | join(' or ') if conditions else 'false' }})
{%- endmacro %}
