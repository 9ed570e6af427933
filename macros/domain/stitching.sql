{#- The stitching rule, in one place: a session belongs to the latest user_id seen on its
    domain_userid, else on its network_userid (identity_map), else its own user_id, else the
    device itself. `sessions` applies it as it builds a session; restitch_sessions applies it
    again to kept sessions whose device has logged in since. -#}

{#- The joins the rule reads: `from <sessions> as <alias> {{ join_identity_map(alias) }}` -#}
{% macro join_identity_map(alias) -%}
    left join {{ ref('identity_map') }} as by_domain
        on by_domain.device_id_type = 'domain_userid' and {{ alias }}.domain_userid = by_domain.device_id
    left join {{ ref('identity_map') }} as by_network
        on
            by_network.device_id_type = 'network_userid'
            and {{ alias }}.network_userid = by_network.device_id
{%- endmacro %}

{% macro stitched_user_id(alias) -%}
    coalesce(by_domain.user_id, by_network.user_id, {{ alias }}.user_id, {{ alias }}.domain_userid)
{%- endmacro %}

{#- Post-hook of `sessions` on DuckDB: a device that logs in today re-labels its past sessions,
    which this run did not otherwise touch. -#}
{% macro restitch_sessions() -%}
    {%- if persona.incremental_run() -%}
        update {{ this }} as kept
        set stitched_user_id = restitched.stitched_user_id
        from (
            select
                sessions.domain_sessionid,
                {{ persona.stitched_user_id('sessions') }} as stitched_user_id
            from {{ this }} as sessions
            {{ persona.join_identity_map('sessions') }}
        ) as restitched
        where
            kept.domain_sessionid = restitched.domain_sessionid
            and kept.stitched_user_id is distinct from restitched.stitched_user_id
    {%- endif -%}
{%- endmacro %}
