{#- The default channel group of a row with mkt_medium, mkt_source, refr_medium and mkt_clickid,
    from the `channel_groups` rules in dbt_project.yml (first match wins). Compiled into one
    CASE expression: no lookup join, so it works in a dynamic table and compiles offline. -#}
{% macro channel_group(prefix='') -%}
    {%- set fields = {
        'mkt_medium': prefix ~ 'mkt_medium',
        'mkt_source': prefix ~ 'mkt_source',
        'refr_medium': prefix ~ 'refr_medium',
    } -%}
    case
    {%- for rule in var('channel_groups') %}
        {%- set conditions = [] -%}
        {%- for field, column in fields.items() if field in rule -%}
            {%- do conditions.append(
                persona.regexp_full_match("lower(coalesce(" ~ column ~ ", ''))", rule[field] | lower)
            ) -%}
        {%- endfor -%}
        {%- if rule.get('has_clickid') is not none -%}
            {%- do conditions.append(
                prefix ~ 'mkt_clickid is ' ~ ('not ' if rule['has_clickid'] else '') ~ 'null'
            ) -%}
        {%- endif %}
        when {{ conditions | join(' and ') if conditions else 'true' }}
            then {{ persona.quote_literal(rule['channel']) }}
    {%- endfor %}
        else 'Unassigned'
    end
{%- endmacro %}

{#- True when the whole text matches the regular expression. -#}
{% macro regexp_full_match(text, pattern) -%}
    {{ return(adapter.dispatch('regexp_full_match', 'persona')(text, pattern)) }}
{%- endmacro %}

{% macro default__regexp_full_match(text, pattern) -%}
    regexp_full_match({{ text }}, {{ persona.quote_literal(pattern) }})
{%- endmacro %}

{#- quote_literal doubles the regex's backslashes for Snowflake, which reads them as escapes. -#}
{% macro snowflake__regexp_full_match(text, pattern) -%}
    regexp_like({{ text }}, {{ persona.quote_literal(pattern) }})
{%- endmacro %}
