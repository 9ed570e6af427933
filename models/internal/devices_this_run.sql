{#- One row per device (domain_userid) whose per-user aggregates must be rebuilt this run: a
    session of theirs changed, or a login re-stitched them to another user (by cookie or by
    network_userid), since user_daily and user_product_daily last ran. Rebuilding every row of
    a touched device, whoever it was stitched to before, keeps the per-user aggregates exact
    when stitching moves a device between users. On Snowflake: a view over every device,
    which nothing reads (dynamic tables refresh themselves). -#}
{{ config(materialized='view' if target.type == 'snowflake' else 'table') }}
{%- set since = persona.scope_lower_limit() if target.type != 'snowflake' else none -%}

with sessions as (

    select * from {{ ref('sessions') }}

),

identity_map as (

    select * from {{ ref('identity_map') }}

),

changed_sessions as (

    select
        domain_userid,
        max_load_tstamp
    from sessions
    where
        domain_userid is not null
        {%- if since %}
        and max_load_tstamp > {{ since }}
        {%- endif %}

),

changed_devices as (

    select
        device_id as domain_userid,
        max_load_tstamp
    from identity_map
    where
        device_id_type = 'domain_userid'
        {%- if since %}
        and max_load_tstamp > {{ since }}
        {%- endif %}

),

changed_networks as (

    select
        sessions.domain_userid,
        by_network.max_load_tstamp
    from sessions
    inner join identity_map as by_network
        on
            by_network.device_id_type = 'network_userid'
            and sessions.network_userid = by_network.device_id
    where
        sessions.domain_userid is not null
        {%- if since %}
        and by_network.max_load_tstamp > {{ since }}
        {%- endif %}

),

touched as (

    select * from changed_sessions
    union all
    select * from changed_devices
    union all
    select * from changed_networks

),

final as (

    select
        domain_userid,
        max(max_load_tstamp) as max_load_tstamp
    from touched
    group by domain_userid

)

select * from final
