{#- One row per session touched since the session models last ran: the scope of this run's
    key-scoped refresh of page_views, sessions and quarantined_sessions, computed once for all
    three (Snowplow's `*_this_run` pattern). On Snowflake the session models are dynamic tables
    that refresh themselves; this is then a view over every session, which nothing reads. -#}
{{ config(materialized='view' if target.type == 'snowflake' else 'table') }}

with session_bounds as (

    select * from {{ ref('session_bounds') }}

),

final as (

    select
        domain_sessionid,
        first_collector_tstamp,
        max_load_tstamp
    from session_bounds
    {%- if target.type != 'snowflake' %}
    where max_load_tstamp > {{ persona.scope_lower_limit() }}
    {%- endif %}

)

select * from final
