{#- One row per device id (domain_userid, and network_userid): the user it belongs to, which is
    the latest non-null user_id seen on it. Rebuilt from all events, so a device that logs in
    today re-labels its earlier anonymous sessions too. -#}

with events as (

    select * from {{ ref('events') }}
    where not is_bot

),

device_ids as (

    select
        'domain_userid' as device_id_type,
        domain_userid as device_id,
        user_id,
        collector_tstamp
    from events
    where domain_userid is not null
    union all
    select
        'network_userid' as device_id_type,
        network_userid as device_id,
        user_id,
        collector_tstamp
    from events
    where network_userid is not null

),

devices as (

    select
        device_id_type,
        device_id,
        min(collector_tstamp) as first_seen_at,
        max(collector_tstamp) as last_seen_at
    from device_ids
    group by device_id_type, device_id

),

latest_user as (

    select
        device_id_type,
        device_id,
        user_id,
        collector_tstamp as identified_at
    from device_ids
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
        devices.last_seen_at
    from devices
    left join latest_user
        on
            devices.device_id_type = latest_user.device_id_type
            and devices.device_id = latest_user.device_id

)

select * from final
