{#- The default channel group, from the rules of the `channel_groups` seed (seeds/): the first
    rule, by rule_order, whose conditions all hold names the channel, else 'Unassigned'. A
    condition is a case-insensitive regular expression the whole field must match (a missing
    value is the empty string); an empty cell matches anything. Rules are matched once per
    distinct campaign (medium, source, referer medium, click id or not: a few hundred), not per
    row, then joined back by equality:

        campaigns as (select distinct {{ campaign_fields('pv') }} from page_view_events as pv),
        campaign_channels as ({{ first_matching_channel('campaigns', 'channel_groups') }}),
        ... left join campaign_channels on {{ same_campaign('pv', 'campaign_channels') }} -#}

{% macro campaign_fields(alias) -%}
    lower(coalesce({{ alias }}.mkt_medium, '')) as campaign_medium,
    lower(coalesce({{ alias }}.mkt_source, '')) as campaign_source,
    lower(coalesce({{ alias }}.refr_medium, '')) as campaign_referrer_medium,
    {{ alias }}.mkt_clickid is not null as has_clickid
{%- endmacro %}

{% macro same_campaign(alias, channels) -%}
    {{ channels }}.campaign_medium = lower(coalesce({{ alias }}.mkt_medium, ''))
    and {{ channels }}.campaign_source = lower(coalesce({{ alias }}.mkt_source, ''))
    and {{ channels }}.campaign_referrer_medium = lower(coalesce({{ alias }}.refr_medium, ''))
    and {{ channels }}.has_clickid = ({{ alias }}.mkt_clickid is not null)
{%- endmacro %}

{% macro first_matching_channel(campaigns, rules) -%}
    select
        campaigns.campaign_medium,
        campaigns.campaign_source,
        campaigns.campaign_referrer_medium,
        campaigns.has_clickid,
        rules.channel
    from {{ campaigns }} as campaigns
    inner join {{ rules }} as rules
        on
            {%- for field, rule in [
                ('campaign_medium', 'mkt_medium'),
                ('campaign_source', 'mkt_source'),
                ('campaign_referrer_medium', 'refr_medium'),
            ] %}
            (
                rules.{{ rule }} is null
                or {{ persona.regexp_full_match(
                    'campaigns.' ~ field, 'lower(rules.' ~ rule ~ ')'
                ) }}
            )
            and
            {%- endfor %}
            (rules.has_clickid is null or rules.has_clickid = campaigns.has_clickid)
    qualify row_number() over (
        partition by
            campaigns.campaign_medium,
            campaigns.campaign_source,
            campaigns.campaign_referrer_medium,
            campaigns.has_clickid
        order by rules.rule_order
    ) = 1
{%- endmacro %}
