{#- One row per user × rank of a rule-set version: the top `recs_top_k` items for each user,
    each with its reason. Personal candidates first, ranked by a blend:
    - `similar_to`: SAR's score, the user's time-decayed affinity for each item they interacted
      with (their first `recs_max_items_per_user` by affinity) times that item's similarity to
      a neighbour, summed per neighbour; `reason_detail` names the item that contributed most;
    - `buy_again`: items the user bought before (events of a `recs_recommend_again` type),
      scored item repurchase rate × the user's purchases of it × how due it is (days since
      their last purchase plus `recs_buy_again_horizon_days` against the repurchase interval:
      the item's median from `item_repurchase`, shrunk towards the user's own mean interval)
      × recency (half-life `recs_buy_again_half_life_days` since the last purchase), relative
      to the user's best buy-again item (1 for it).
    The blend: `recs_buy_again_weight` × buy-again + the rest × similarity / the user's best
    similarity. Items the user interacted with are removed unless they may come back (a
    `recs_recommend_again` event on them). Users with fewer than `recs_min_history_items`
    items get no similarity candidates; they and slots left empty fall back to popular items
    of the user's segment (`segment_membership`), then overall (`popular_in_segment`,
    `reason_detail` the segment, '*' for everyone). Suppressions of `audiences` remove an
    item, a category, or (neither given) every recommendation of that user. With
    `recs_interactions_from: interaction_log` neither segments nor audiences are read.
    Users whose inputs did not change since the previous version (user_rule_inputs) keep
    that version's personal items, in the same order, their similarity scores rescaled to the
    new window's end; only their popular items are chosen again (a list of K personal items
    has none: it is copied whole).
    Cost: similar items are scored by user_similar_items (compiled, on DuckDB; users ×
    recs_max_items_per_user × recs_neighbours multiply-adds, cut to 4K per user) or, on
    Snowflake and with `recs_compute: sql`, by the same rules in SQL (that many candidate rows
    aggregated); then at most 4K + buy-again + 2 × recs_popular_items rows per user. -#}
{%- set again = persona.recs_recommend_again() -%}
{%- set w = var('recs_buy_again_weight') -%}
{%- if w is not number or w < 0 or w > 1 -%}
    {{ exceptions.raise_compiler_error("recs_buy_again_weight must be a number from 0 to 1, not " ~ w) }}
{%- endif -%}
{%- if var('recs_compute') not in ('python', 'sql') -%}
    {{ exceptions.raise_compiler_error("recs_compute must be python or sql, not " ~ var('recs_compute')) }}
{%- endif -%}
{%- set from_log = var('recs_interactions_from') == 'interaction_log' -%}
{#- every input referenced whichever is read, so lineage and run order see them all; a plain
    log's users have no segments or audiences, so with it those are not read -#}
{%- set segment_membership_model = ref('segment_membership') -%}
{%- set audiences_model = ref('audiences') -%}
{%- set segments = none if from_log else segment_membership_model -%}
{%- set audiences = none if from_log else audiences_model -%}
{%- set users_model = ref('users') -%}
{%- set product_events_model = ref('product_events') -%}
{#- similar items scored in Python on DuckDB (recs_compute: python), else in SQL (Snowflake) -#}
{%- set item_similarity_model = ref('item_similarity') -%}
{%- set similar_python = ref('user_similar_items') if target.type == 'duckdb' else none -%}
{%- set similar_model = similar_python if var('recs_compute') == 'python' else none -%}
{%- set user_rule_inputs = ref('user_rule_inputs') -%}
{#- copying reads this table's earlier rows (the var first: an offline compile does not ask the
    warehouse whether the table exists) -#}
{%- set copying = var('recs_reuse_unchanged') and is_incremental() -%}

with interactions as (

    select * from {{ ref('interactions') }}

),

{# users whose personal items are copied from the version that scored them (or copied them) #}
reused as (

    select
        user_id,
        reused_from,
        score_scale
    from {{ user_rule_inputs }}
    where
        rule_set_version = {{ persona.rule_set_version() }}
        and reused_from is not null

),

{%- if copying %}

previous_personal as (

    select
        previous.user_id,
        previous.product_id,
        previous.recommendation_rank,
        previous.recommended_by,
        previous.reason,
        previous.reason_detail,
        case
            when previous.recommended_by = 'similarity' then previous.score * reused.score_scale
            else previous.score
        end as score
    from {{ this }} as previous
    inner join reused
        on
            previous.user_id = reused.user_id
            and previous.rule_set_version = reused.reused_from
    where previous.recommended_by in ('similarity', 'buy_again')

),

{# of those, the users whose previous list was personal items only: it is their list again #}
copied_whole as (

    select user_id
    from previous_personal
    group by user_id
    having count(*) >= {{ var('recs_top_k') }}

),

{%- endif %}

{%- if similar_model is none %}

item_similarity as (

    select * from {{ item_similarity_model }}
    where rule_set_version = {{ persona.rule_set_version() }}

),

{%- endif %}

popular_items as (

    select * from {{ ref('popular_items') }}
    where rule_set_version = {{ persona.rule_set_version() }}

),

item_repurchase as (

    select * from {{ ref('item_repurchase') }}
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

{%- if similar_model is not none %}

{# scored by the Python model (the same rules as the SQL below) #}
similar_items as (

    select
        user_id,
        product_id,
        score,
        reason_detail,
        max_score
    from {{ similar_model }}

),

{%- else %}

similar_all as (

    select
        interactions.user_id,
        item_similarity.similar_product_id as product_id,
        sum(interactions.affinity * item_similarity.similarity) as score,
        {{ persona.arg_max(
            'interactions.product_id', 'interactions.affinity * item_similarity.similarity'
        ) }} as reason_detail
    from interactions
    inner join item_similarity on interactions.product_id = item_similarity.product_id
    inner join history on interactions.user_id = history.user_id
    left join reused on interactions.user_id = reused.user_id
    where
        interactions.affinity_rank <= {{ var('recs_max_items_per_user') }}
        and history.items >= {{ var('recs_min_history_items') }}
        and reused.user_id is null
    group by interactions.user_id, item_similarity.similar_product_id

),

{# the user's best score is taken before seen items go: the blend divides by it #}
similar_scored as (

    select
        *,
        max(score) over (partition by user_id) as max_score
    from similar_all

),

{# a user's top 4K unseen similar items (all tied at the cut): all the blend can use #}
similar_items as (

    select * from similar_scored
    where {{ persona.recs_not_seen('similar_scored') }}
    qualify rank() over (
        partition by user_id order by score desc
    ) <= 4 * {{ var('recs_top_k') }}

),

{%- endif %}

{# an item is due when days since the last purchase + the horizon reach its interval: the
    item's median, shrunk towards the user's own mean interval (2 gaps' worth of prior) #}
bought as (

    select
        interactions.user_id,
        interactions.product_id,
        interactions.repeatable_events,
        item_repurchase.repurchase_rate,
        {{ persona.seconds_between(
            'interactions.last_repeatable_at', 'interactions.training_end'
        ) }} / 86400.0 as days_since,
        {{ persona.recs_buy_again_interval('interactions', 'item_repurchase') }} as interval_days
    from interactions
    inner join item_repurchase on interactions.product_id = item_repurchase.product_id
    left join reused on interactions.user_id = reused.user_id
    where interactions.repeatable_events > 0 and reused.user_id is null

),

bought_scored as (

    select
        user_id,
        product_id,
        repurchase_rate * repeatable_events
        * {{ persona.recs_buy_again_due('days_since', 'interval_days') }}
        {%- if var('recs_buy_again_half_life_days') > 0 %}
        * power(2.0, -days_since / {{ var('recs_buy_again_half_life_days') }})
        {%- endif %} as raw_score
    from bought

),

{# relative to the user's best buy-again item, as similarity is to their best similar item #}
buy_again as (

    select
        user_id,
        product_id,
        raw_score / max(raw_score) over (partition by user_id) as score
    from bought_scored
    where raw_score > 0

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
        user_segment.segment,
        popular_items.product_id,
        cast(popular_items.user_count as double) as score,
        popular_items.popularity_rank
    from user_segment
    inner join popular_items on user_segment.segment = popular_items.segment
    {%- if copying %}
    where not exists (
        select 1 from copied_whole where copied_whole.user_id = user_segment.user_id
    )
    {%- endif %}

),

{%- endif %}

{# who gets popular candidates: everyone but the users whose list is copied whole #}
popular_users as (

    select all_users.user_id from all_users
    {%- if copying %}
    where not exists (
        select 1 from copied_whole where copied_whole.user_id = all_users.user_id
    )
    {%- endif %}

),

global_popular as (

    select
        popular_users.user_id,
        popular_items.product_id,
        cast(popular_items.user_count as double) as score,
        popular_items.popularity_rank
    from popular_users
    cross join popular_items
    where popular_items.segment = '*'

),

{# rank_score orders a user's candidates within a source: the blend for personal ones
    (0..1), 1 / popularity rank for popular ones #}
candidates as (

    select
        user_id,
        product_id,
        score,
        {#- at weight 1 similar items still rank among themselves, after every purchase #}
        {{ [1 - w, 1e-6] | max }} * score / max_score as rank_score,
        1 as source_priority,
        'similarity' as recommended_by,
        'similar_to' as reason,
        reason_detail
    from similar_items
    union all
    select
        user_id,
        product_id,
        score,
        {{ w }} * score as rank_score,
        1 as source_priority,
        'buy_again' as recommended_by,
        'buy_again' as reason,
        cast(null as {{ dbt.type_string() }}) as reason_detail
    from buy_again
    where score > 0
    {%- if copying %}
    union all
    {#- copied: in their previous order (the rank is all the ranking below needs of them) #}
    select
        user_id,
        product_id,
        score,
        1 - recommendation_rank / ({{ var('recs_top_k') }} + 1.0) as rank_score,
        1 as source_priority,
        recommended_by,
        reason,
        reason_detail
    from previous_personal
    where not exists (
        select 1 from copied_whole where copied_whole.user_id = previous_personal.user_id
    )
    {%- endif %}
    {%- if segments is not none %}
    union all
    select
        user_id,
        product_id,
        score,
        1.0 / popularity_rank as rank_score,
        2 as source_priority,
        'popular_segment' as recommended_by,
        'popular_in_segment' as reason,
        segment as reason_detail
    from segment_popular
    {%- endif %}
    union all
    select
        user_id,
        product_id,
        score,
        1.0 / popularity_rank as rank_score,
        3 as source_priority,
        'popular_global' as recommended_by,
        'popular_in_segment' as reason,
        '*' as reason_detail
    from global_popular

),

{# a seen item stays out unless the user has an event of a recommend-again type on it #}
unseen as (

    select candidates.* from candidates
    where {{ persona.recs_not_seen('candidates') }}

),

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

    {#- An item can come from up to four sources, so each user's first 4K candidates hold K
        distinct items: one window cuts the candidates (users x items x neighbours) to 4K rows
        per user before duplicates go and the exact ranking runs. Its order is one number
        (source first, then rank_score, which is at most 1), which DuckDB runs as a per-user
        top-N instead of a sort (about 2x faster for the whole model at 1M interactions).
        rank(), not row_number(): candidates tied at the cut (popular items with equal user
        counts) are all kept, so which of them survive is not left to the engine (DuckDB and
        Snowflake picked different ones, tests/snowflake/test_differential.py); the exact
        ranking decides. -#}
    select * from allowed
    qualify rank() over (
        partition by user_id
        order by (4 - source_priority) * 1e3 + rank_score desc
    ) <= 4 * {{ var('recs_top_k') }}

),

best_source as (

    select * from shortlist
    qualify row_number() over (
        partition by user_id, product_id
        order by source_priority asc, rank_score desc, reason asc
    ) = 1

),

ranked as (

    select
        *,
        row_number() over (
            partition by user_id
            order by source_priority asc, rank_score desc, product_id asc
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
        recommended_by,
        reason,
        reason_detail
    from ranked
    where recommendation_rank <= {{ var('recs_top_k') }}
    {%- if copying %}
    union all
    select
        {{ persona.rule_set_version() }} as rule_set_version,
        previous_personal.user_id,
        previous_personal.recommendation_rank,
        previous_personal.product_id,
        previous_personal.score,
        previous_personal.recommended_by,
        previous_personal.reason,
        previous_personal.reason_detail
    from previous_personal
    inner join copied_whole on previous_personal.user_id = copied_whole.user_id
    {%- endif %}

)

select * from final
