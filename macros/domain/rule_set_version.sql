{#- The rule-set version this invocation trains: the run's start time (UTC, sortable), or the
    `recs_rule_set_version` var (unit tests, backtests). Every retrain model of one
    `dbt build --selector retrain` writes its rows under this one version. -#}
{% macro rule_set_version() -%}
    {{ persona.quote_literal(var('recs_rule_set_version', run_started_at.strftime('%Y%m%dT%H%M%S%fZ'))) }}
{%- endmacro %}

{% macro rule_set_trained_at() -%}
    cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp)
{%- endmacro %}

{#- The version serving reads: the pinned `recs_serving_version` (rollback), else the newest
    published one (a row in rule_set_versions is written last, once every rule table has its
    rows: a retrain that fails half-way publishes nothing). -#}
{% macro serving_version(versions, rule_table=none) -%}
    {%- if var('recs_serving_version', none) -%}
        {%- do persona.check_serving_version(var('recs_serving_version'), rule_table) -%}
        {{ persona.quote_literal(var('recs_serving_version')) }}
    {%- else -%}
        (select max(rule_set_version) from {{ versions }})
    {%- endif -%}
{%- endmacro %}

{#- Retention (post-hook of rule_set_versions): rule rows of all but the newest
    `recs_versions_kept` published versions are deleted; unpublished leftovers of a failed
    retrain too. The versions table keeps its row for every retrain. -#}
{% macro prune_rule_sets(versions, tables) -%}
    {%- for table in tables %}
        delete from {{ table }} where rule_set_version not in (
            select rule_set_version from {{ versions }}
            order by trained_at desc, rule_set_version desc
            limit {{ var('recs_versions_kept') }}
        ){{ ';' if not loop.last }}
    {%- endfor %}
{%- endmacro %}

{#- The body of a current_* view: `rule_table`'s rows of the served version. -#}
{% macro current_rule_set(rule_table) -%}
with versions as (

    select * from {{ ref('rule_set_versions') }}

),

rules as (

    select * from {{ rule_table }}

),

final as (

    select * from rules
    where rule_set_version = {{ persona.serving_version('versions', rule_table) }}

)

select * from final
{%- endmacro %}

{#- A pinned version must be one whose rows `rule_table` still has (pruning keeps the newest
    `recs_versions_kept` published): else the serving views would be empty while the build
    stays green. Fails the build naming the kept versions. Asks the warehouse only when a
    version is pinned. -#}
{% macro check_serving_version(pinned, rule_table) -%}
    {%- if execute and rule_table is not none -%}
        {%- set kept = run_query(
            "select v.rule_set_version from " ~ ref('rule_set_versions') ~ " as v where exists ("
            ~ "select 1 from " ~ rule_table ~ " as r where r.rule_set_version = v.rule_set_version"
            ~ ") order by v.trained_at desc, v.rule_set_version desc"
        ).columns[0].values() | list -%}
        {%- if pinned | string not in kept -%}
            {{ exceptions.raise_compiler_error(
                "recs_serving_version '" ~ pinned ~ "' is not a kept rule-set version; kept "
                ~ "(newest first): " ~ (kept | join(', ') if kept else 'none yet: run a retrain')
            ) }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
