{#- One row per item × neighbour of a rule-set version: SAR-style item-to-item similarity from
    co-occurrence (two items co-occur once per user who interacted with both). `recs_similarity`
    picks jaccard (default), lift or cosine; pairs seen by fewer than `recs_min_cooccurrence`
    users are dropped; each item keeps its top `recs_neighbours`.
    Cost: the self-join emits, per user, the pairs of their first `recs_max_items_per_user`
    items by affinity, so it is at most users × that² rows however heavy a user is, and a
    popular item costs one row per co-occurring user within that bound; the output is at most
    items × recs_neighbours. Each retrain appends a version (delete+insert by version). -#}
{%- set metric = var('recs_similarity') -%}
{%- if metric not in ('jaccard', 'lift', 'cosine', 'ease') -%}
    {{ exceptions.raise_compiler_error("recs_similarity must be jaccard, lift, cosine or ease, not " ~ metric) }}
{%- endif -%}
{#- on DuckDB the co-occurrence pairs are counted in a compiled loop (item_neighbours) -#}
{%- set neighbours_python = ref('item_neighbours') if target.type == 'duckdb' else none -%}
{%- if metric == 'ease' or (neighbours_python is not none and var('recs_compute') == 'python') %}
{#- computed in Python: EASE's weights learned in closed form (item_weights_ease), else the
    co-occurrence neighbours (item_neighbours), each item's top `recs_neighbours` ranked -#}
with weights as (

    select * from {{ ref('item_weights_ease') if metric == 'ease' else neighbours_python }}

),

final as (

    select
        {{ persona.rule_set_version() }} as rule_set_version,
        product_id,
        neighbour_rank,
        similar_product_id,
        similarity,
        cooccurrence_users
    from weights

)

select * from final
{%- else %}

with interactions as (

    select * from {{ ref('interactions') }}
    where affinity_rank <= {{ var('recs_max_items_per_user') }}

),

item_users as (

    select
        product_id,
        count(*) as user_count
    from interactions
    group by product_id

),

pairs as (

    select
        a.product_id,
        b.product_id as similar_product_id,
        count(*) as cooccurrence_users
    from interactions as a
    inner join interactions as b
        on
            a.user_id = b.user_id
            and a.product_id <> b.product_id
    group by a.product_id, b.product_id
    having count(*) >= {{ var('recs_min_cooccurrence') }}

),

scored as (

    select
        pairs.product_id,
        pairs.similar_product_id,
        pairs.cooccurrence_users,
        {%- if metric == 'jaccard' %}
        cast(pairs.cooccurrence_users as double)
        / (item_counts.user_count + neighbour.user_count - pairs.cooccurrence_users) as similarity
        {%- elif metric == 'lift' %}
        cast(pairs.cooccurrence_users as double)
        / (item_counts.user_count * neighbour.user_count) as similarity
        {%- else %}
        cast(pairs.cooccurrence_users as double)
        / sqrt(item_counts.user_count * neighbour.user_count) as similarity
        {%- endif %}
    from pairs
    inner join item_users as item_counts on pairs.product_id = item_counts.product_id
    inner join item_users as neighbour on pairs.similar_product_id = neighbour.product_id

),

ranked as (

    select
        *,
        row_number() over (
            partition by product_id
            order by similarity desc, cooccurrence_users desc, similar_product_id asc
        ) as neighbour_rank
    from scored

),

final as (

    select
        {{ persona.rule_set_version() }} as rule_set_version,
        product_id,
        neighbour_rank,
        similar_product_id,
        similarity,
        cooccurrence_users
    from ranked
    where neighbour_rank <= {{ var('recs_neighbours') }}

)

select * from final
{%- endif %}
