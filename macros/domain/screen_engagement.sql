{#- Screen engagement, per screen view and session, from the screen_summary entity the mobile
    trackers (v6+) attach to screen_end (sent before the next screen view) and to the app's
    background and foreground events. Its counters grow through a screen view, so the largest
    report is the total: foreground seconds are the engaged time, background seconds the time
    the app spent in the background meanwhile. `events`: a relation or CTE with events'
    columns. A screen view without a summary was engaged for 0 s (trackers before v6). -#}
{% macro screen_engagement(events) -%}
    select
        domain_sessionid,
        screen_view_id,
        cast(round(coalesce(max(cast(
            {{ persona.mobile_field('screen_summary', 'foreground_sec') }} as double
        )), 0)) as integer) as engaged_time_in_s,
        cast(round(coalesce(max(cast(
            {{ persona.mobile_field('screen_summary', 'background_sec') }} as double
        )), 0)) as integer) as background_time_in_s,
        max(cast({{ persona.mobile_field('screen_summary', 'last_item_index') }} as integer))
            as last_item_index,
        max(cast({{ persona.mobile_field('screen_summary', 'items_count') }} as integer))
            as items_count,
        max(derived_tstamp) as last_event_tstamp,
        max(load_tstamp) as max_load_tstamp
    from {{ events }}
    where platform_type = 'mobile' and screen_view_id is not null
    group by domain_sessionid, screen_view_id
{%- endmacro %}
