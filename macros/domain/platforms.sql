{#- Where a user is active: 'web', 'mobile' (apps) or 'both', from their counts of web and app
    sessions (null with neither). -#}
{% macro platforms(web_sessions, mobile_sessions) -%}
    case
        when {{ web_sessions }} > 0 and {{ mobile_sessions }} > 0 then 'both'
        when {{ mobile_sessions }} > 0 then 'mobile'
        when {{ web_sessions }} > 0 then 'web'
    end
{%- endmacro %}
