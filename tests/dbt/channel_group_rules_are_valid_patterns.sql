{#- Every condition of the channel_groups seed is a regular expression the engine accepts (an
    invalid one fails this test with the engine's error, naming the pattern, rather than the
    page_views build), and a rule has at least one condition unless it is the last. -#}
with rules as (

    select * from {{ ref('channel_groups') }}

),

checked as (

    select
        *,
        {{ persona.regexp_full_match("''", "coalesce(mkt_medium, '')") }} as medium_matches_empty,
        {{ persona.regexp_full_match("''", "coalesce(mkt_source, '')") }} as source_matches_empty,
        {{ persona.regexp_full_match("''", "coalesce(refr_medium, '')") }}
            as referrer_matches_empty,
        max(rule_order) over () as last_rule
    from rules

)

select * from checked
where
    medium_matches_empty is null
    or source_matches_empty is null
    or referrer_matches_empty is null
    or (
        rule_order < last_rule
        and coalesce(mkt_medium, mkt_source, refr_medium) is null
        and has_clickid is null
    )
