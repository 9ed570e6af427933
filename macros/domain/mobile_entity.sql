{#- The column of a mobile tracker entity or event in atomic.events, named as the loader names
    it (contexts_<vendor>_<name>_<major>, unstruct_event_...), by a short name. The schemas are
    the mobile trackers' own (iglu:com.snowplowanalytics.mobile/..., client_session and
    mobile_context of com.snowplowanalytics.snowplow). -#}
{% macro mobile_entity(name) -%}
    {%- set columns = {
        'client_session': 'contexts_com_snowplowanalytics_snowplow_client_session_1',
        'screen_view': 'unstruct_event_com_snowplowanalytics_mobile_screen_view_1',
        'screen': 'contexts_com_snowplowanalytics_mobile_screen_1',
        'screen_summary': 'contexts_com_snowplowanalytics_mobile_screen_summary_1',
        'mobile_context': 'contexts_com_snowplowanalytics_snowplow_mobile_context_1',
        'application': 'contexts_com_snowplowanalytics_mobile_application_1',
        'geolocation': 'contexts_com_snowplowanalytics_snowplow_geolocation_context_1',
    } -%}
    {%- if name not in columns -%}
        {{ exceptions.raise_compiler_error(
            "mobile_entity: unknown entity " ~ name ~ "; known: " ~ columns.keys() | join(', ')
        ) }}
    {%- endif -%}
    {{ return(columns[name]) }}
{%- endmacro %}

{#- A field of a mobile entity on `events` (null while no event has carried the entity). -#}
{% macro mobile_field(name, path) -%}
    {{ persona.entity_field(ref('events'), persona.mobile_entity(name), path) }}
{%- endmacro %}
