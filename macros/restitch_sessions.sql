{#- Post-hook of `sessions` on DuckDB: a device that logs in today re-labels its past sessions,
    which this run did not otherwise touch. Same rule as the model: the latest user_id seen on
    the session's domain_userid, else on its network_userid, else the device itself. -#}
{% macro restitch_sessions() -%}
    {%- if persona.incremental_run() -%}
        update {{ this }} as s
        set stitched_user_id = restitched.stitched_user_id
        from (
            select
                sessions.domain_sessionid,
                coalesce(
                    by_domain.user_id, by_network.user_id, sessions.user_id, sessions.domain_userid
                ) as stitched_user_id
            from {{ this }} as sessions
            left join {{ ref('identity_map') }} as by_domain
                on by_domain.device_id_type = 'domain_userid'
                and sessions.domain_userid = by_domain.device_id
            left join {{ ref('identity_map') }} as by_network
                on by_network.device_id_type = 'network_userid'
                and sessions.network_userid = by_network.device_id
        ) as restitched
        where s.domain_sessionid = restitched.domain_sessionid
            and s.stitched_user_id is distinct from restitched.stitched_user_id
    {%- endif -%}
{%- endmacro %}
