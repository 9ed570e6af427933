{#- One row per user × rank of a rule-set version: the top `recs_top_k` items for each user.
    Scores are SAR's: the user's time-decayed affinity for each item they interacted with (their
    first `recs_max_items_per_user` by affinity) times that item's similarity to a neighbour,
    summed per neighbour. Items the user has already interacted with are removed
    (`recs_remove_seen`). Users with fewer than `recs_min_history_items` items, and slots the
    neighbours cannot fill, fall back to popular items of the user's segment
    (`segment_membership`), then overall. Suppressions of `audiences` remove an item, a
    category, or (neither given) every recommendation of that user. With
    `recs_interactions_from: interaction_log` neither segments nor audiences are read.
    Cost: at most users × recs_max_items_per_user × recs_neighbours candidate rows, plus
    users × recs_popular_items per fallback list, before the top K is cut. -#}
{%- set from_log = var('recs_interactions_from') == 'interaction_log' -%}
{#- every input referenced whichever is read, so lineage and run order see them all; a plain
    log's users have no segments or audiences, so with it those are not read -#}
{%- set segment_membership_model = ref('segment_membership') -%}
{%- set audiences_model = ref('audiences') -%}
{%- set segments = none if from_log else segment_membership_model -%}
{%- set audiences = none if from_log else audiences_model -%}
{%- set users_model = ref('users') -%}
{%- set product_events_model = ref('product_events') -%}

with interactions as (

    select * from {{ ref('interactions') }}

),

item_similarity as (

    select * from {{ ref('item_similarity') }}
    where rule_set_version = {{ persona.rule_set_version() }}

),

popular_items as (

    select * from {{ ref('popular_items') }}
    where rule_set_version = {{ persona.rule_set_version() }}

),

{%- if not from_log %}

known_users as (

    select user_id from {{ users_model }}

),

{%- endif %}

{%- if audiences is not none and not from_log %}

product_events as (

    select * from {{ product_events_model }}

),

{%- endif %}

{%- if segments is not none %}

segment_membership as (

    select * from {{ segments }}

),

{%- endif %}

{%- if audiences is not none %}

audiences as (

    select * from {{ audiences }}

),

{%- endif %}

history as (

    select
        user_id,
        count(*) as items
    from interactions
    group by user_id

),

all_users as (

    select user_id from history
    {%- if not from_log %}
    union
    select user_id from known_users
    {%- endif %}

),

{%- if audiences is not none %}

product_categories as (

    {%- if from_log %}
    select
        product_id,
        cast(null as {{ dbt.type_string() }}) as category
    from popular_items
    where false
    {%- else %}
    select
        product_id,
        max(category) as category
    from product_events
    group by product_id
    {%- endif %}

),

{%- endif %}

similar_items as (

    select
        interactions.user_id,
        item_similarity.similar_product_id as product_id,
        sum(interactions.affinity * item_similarity.similarity) as score
    from interactions
    inner join item_similarity on interactions.product_id = item_similarity.product_id
    inner join history on interactions.user_id = history.user_id
    where
        interactions.affinity_rank <= {{ var('recs_max_items_per_user') }}
        and history.items >= {{ var('recs_min_history_items') }}
    group by interactions.user_id, item_similarity.similar_product_id

),

{%- if segments is not none %}

user_segment as (

    select
        user_id,
        segment
    from segment_membership
    qualify row_number() over (partition by user_id order by since desc, segment asc) = 1

),

segment_popular as (

    select
        user_segment.user_id,
        popular_items.product_id,
        cast(popular_items.user_count as double) as score,
        popular_items.popularity_rank
    from user_segment
    inner join popular_items on user_segment.segment = popular_items.segment

),

{%- endif %}

global_popular as (

    select
        all_users.user_id,
        popular_items.product_id,
        cast(popular_items.user_count as double) as score,
        popular_items.popularity_rank
    from all_users
    cross join popular_items
    where popular_items.segment = '*'

),

candidates as (

    select
        user_id,
        product_id,
        score,
        0 as tie_break,
        1 as source_priority,
        'similarity' as recommended_by
    from similar_items
    {%- if segments is not none %}
    union all
    select
        user_id,
        product_id,
        score,
        popularity_rank as tie_break,
        2 as source_priority,
        'popular_segment' as recommended_by
    from segment_popular
    {%- endif %}
    union all
    select
        user_id,
        product_id,
        score,
        popularity_rank as tie_break,
        3 as source_priority,
        'popular_global' as recommended_by
    from global_popular

),

{%- if var('recs_remove_seen') %}

unseen as (

    select candidates.* from candidates
    where not exists (
        select 1 from interactions
        where
            interactions.user_id = candidates.user_id
            and interactions.product_id = candidates.product_id
    )

),

{%- else %}

unseen as (

    select * from candidates

),

{%- endif %}

{%- if audiences is not none %}

allowed as (

    select unseen.*
    from unseen
    left join product_categories on unseen.product_id = product_categories.product_id
    where not exists (
        select 1 from audiences
        where
            audiences.list_type = 'suppress'
            and audiences.user_id = unseen.user_id
            and (
                audiences.product_id = unseen.product_id
                -- a product row names its category too, for reference: the product rules
                or (
                    audiences.product_id is null
                    and audiences.category = product_categories.category
                )
                or (audiences.product_id is null and audiences.category is null)
            )
    )

),

{%- else %}

allowed as (

    select * from unseen

),

{%- endif %}

shortlist as (

    {#- An item can come from up to three sources, so each user's first 3K candidates hold K
        distinct items: one window cuts the candidates (users x items x neighbours) to 3K rows
        per user before duplicates go and the exact ranking runs. Its order is one number
        (source first, then score), which DuckDB runs as a per-user top-N instead of a sort
        (about 2x faster for the whole model at 1M interactions). rank(), not row_number():
        candidates tied at the cut (popular items with equal user counts) are all kept, so
        which of them survive is not left to the engine (DuckDB and Snowflake picked
        different ones, tests/snowflake/test_differential.py); the exact ranking decides. -#}
    select * from allowed
    qualify rank() over (
        partition by user_id
        order by (4 - source_priority) * 1e12 + score desc
    ) <= 3 * {{ var('recs_top_k') }}

),

best_source as (

    select * from shortlist
    qualify row_number() over (
        partition by user_id, product_id order by source_priority asc, score desc, tie_break asc
    ) = 1

),

ranked as (

    select
        *,
        row_number() over (
            partition by user_id
            order by source_priority asc, score desc, tie_break asc, product_id asc
        ) as recommendation_rank
    from best_source

),

final as (

    select
        {{ persona.rule_set_version() }} as rule_set_version,
        user_id,
        recommendation_rank,
        product_id,
        score,
        recommended_by
    from ranked
    where recommendation_rank <= {{ var('recs_top_k') }}

)

select * from final
