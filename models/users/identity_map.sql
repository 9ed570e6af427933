{#- One row per device id (domain_userid, and network_userid): the user it belongs to, which is
    the latest non-null user_id seen on it. When a device logs in later, `sessions` re-labels
    its earlier anonymous sessions too. Incremental runs merge new events into the devices
    they touch: first/last seen and the latest user are all mergeable. -#}
{{ config(unique_key=['device_id_type', 'device_id']) }}

with events as (

    select * from {{ ref('events') }}
    where
        not is_bot  -- noqa: LT02
        {%- if persona.incremental_run() %}
        and load_tstamp > {{ persona.watermark() }}
        {%- endif %}

),

device_ids as (

    select
        'domain_userid' as device_id_type,
        domain_userid as device_id,
        user_id,
        collector_tstamp,
        load_tstamp
    from events
    where domain_userid is not null
    union all
    select
        'network_userid' as device_id_type,
        network_userid as device_id,
        user_id,
        collector_tstamp,
        load_tstamp
    from events
    where network_userid is not null

),

{%- if persona.incremental_run() %}

kept as (

    select
        device_id_type,
        device_id,
        user_id,
        identified_at as collector_tstamp,
        max_load_tstamp as load_tstamp,
        first_seen_at,
        last_seen_at
    from {{ this }} as known_devices
    where exists (
        select 1 from device_ids
        where
            device_ids.device_id_type = known_devices.device_id_type
            and device_ids.device_id = known_devices.device_id
    )

),

{%- endif %}

devices as (

    select
        device_id_type,
        device_id,
        min(collector_tstamp) as first_seen_at,
        max(collector_tstamp) as last_seen_at,
        max(load_tstamp) as max_load_tstamp
    from (
        select
            device_id_type,
            device_id,
            collector_tstamp,
            load_tstamp
        from device_ids
        {%- if persona.incremental_run() %}
        union all
        select
            device_id_type,
            device_id,
            first_seen_at,
            load_tstamp
        from kept
        union all
        select
            device_id_type,
            device_id,
            last_seen_at,
            load_tstamp
        from kept
        {%- endif %}
    ) as seen
    group by device_id_type, device_id

),

latest_user as (

    select
        device_id_type,
        device_id,
        user_id,
        collector_tstamp as identified_at
    from (
        select
            device_id_type,
            device_id,
            user_id,
            collector_tstamp
        from device_ids
        {%- if persona.incremental_run() %}
        union all
        select
            device_id_type,
            device_id,
            user_id,
            collector_tstamp
        from kept
        {%- endif %}
    ) as identities
    where user_id is not null
    qualify row_number() over (
        partition by device_id_type, device_id order by collector_tstamp desc, user_id asc
    ) = 1

),

final as (

    select
        devices.device_id_type,
        devices.device_id,
        latest_user.user_id,
        latest_user.user_id is not null as is_identified,
        latest_user.identified_at,
        devices.first_seen_at,
        devices.last_seen_at,
        devices.max_load_tstamp
    from devices
    left join latest_user
        on
            devices.device_id_type = latest_user.device_id_type
            and devices.device_id = latest_user.device_id

)

select * from final
