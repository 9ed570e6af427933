{#- One row per segment × rank of a rule-set version: the most popular items of the training
    window by distinct users, overall (segment '*') and, reading the event models, within each
    segment of `segment_membership`. The fallback for users with too little history, and for
    users the rule set has never seen. At most (segments + 1) × recs_popular_items rows. -#}
{#- referenced whichever input is read; a plain log's users have no segments -#}
{%- set segment_membership_model = ref('segment_membership') -%}
{%- set from_log = var('recs_interactions_from') == 'interaction_log' -%}
{%- set segments = none if from_log else segment_membership_model -%}

with interactions as (

    select * from {{ ref('interactions') }}

),

{%- if segments is not none %}

segment_membership as (

    select * from {{ segments }}

),

{%- endif %}

global_counts as (

    select
        '*' as segment,
        product_id,
        count(*) as user_count,
        sum(affinity) as affinity
    from interactions
    group by product_id

),

{%- if segments is not none %}

segment_counts as (

    select
        segment_membership.segment,
        interactions.product_id,
        count(distinct interactions.user_id) as user_count,
        sum(interactions.affinity) as affinity
    from interactions
    inner join segment_membership on interactions.user_id = segment_membership.user_id
    group by segment_membership.segment, interactions.product_id

),

{%- endif %}

counts as (

    select * from global_counts
    {%- if segments is not none %}
    union all
    select * from segment_counts
    {%- endif %}

),

ranked as (

    select
        segment,
        product_id,
        user_count,
        row_number() over (
            partition by segment order by user_count desc, affinity desc, product_id asc
        ) as popularity_rank
    from counts

),

final as (

    select
        {{ persona.rule_set_version() }} as rule_set_version,
        segment,
        popularity_rank,
        product_id,
        user_count
    from ranked
    where popularity_rank <= {{ var('recs_popular_items') }}

)

select * from final
