{#- Sessions that never end (longer than max_session_days), kept out of sessions as Snowplow
    does: usually a bot or a tab left open, and they would distort every session metric. -#}

{{ config(
    unique_key='domain_sessionid',
    pre_hook=[
        "{{ persona.ensure_watermark_table() }}",
        "{{ persona.clear_touched('domain_sessionid', persona.touched_sessions()) }}",
    ],
    post_hook="{{ persona.record_watermark([ref('session_bounds')]) }}",
) }}

with page_views as (

    select * from {{ ref('page_views') }}
    {%- if persona.incremental_run() %}
    where domain_sessionid in (
        select domain_sessionid from ({{ persona.touched_sessions() }}) as touched
    )
    {%- endif %}

),

session_spans as (

    select
        domain_sessionid,
        min(start_tstamp) as start_tstamp,
        max(end_tstamp) as end_tstamp,
        max(max_load_tstamp) as max_load_tstamp,
        {{ persona.time_between('second', 'min(start_tstamp)', 'max(end_tstamp)') }}
            as absolute_time_in_s
    from page_views
    group by domain_sessionid

),

final as (

    select * from session_spans
    where absolute_time_in_s > {{ var('max_session_days') }} * 86400

)

select * from final
