{#- The part of a session page_views and sessions keep: its first max_session_days of events
    (event time); quarantined_sessions lists the sessions that have more. -#}
{% macro within_session_length() -%}
    coalesce(
        derived_tstamp <= {{ dbt.dateadd(
            'day', var('max_session_days'), 'min(derived_tstamp) over (partition by domain_sessionid)'
        ) }},
        true
    )
{%- endmacro %}
