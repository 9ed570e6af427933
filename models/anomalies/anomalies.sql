{#- One row per flagged item, from three detectors, over the anomalies_window_days before
    as_of (macros/domain/as_of.sql): `traffic` (an app × event type × hour far from the same hour of
    the week in the previous weeks, drops to zero included), `behaviour` (a device-day that
    looks like a bot) and `data_quality` (an hour whose failed events far exceed the usual
    failure rate); each is its own model. Only whole hours before as_of are scored. It reads
    the current time, so it is the thin final layer: a table rebuilt every run on DuckDB, a
    dynamic table with refresh_mode FULL on Snowflake. Thresholds: the anomalies vars in
    dbt_project.yml. -#}
{{ config(
    materialized='dynamic_table' if target.type == 'snowflake' else 'table',
    refresh_mode='FULL',
) }}

with traffic_anomalies as (

    select * from {{ ref('traffic_anomalies') }}

),

behaviour_anomalies as (

    select * from {{ ref('behaviour_anomalies') }}

),

data_quality_anomalies as (

    select * from {{ ref('data_quality_anomalies') }}

),

window_bounds as (

    {{ persona.anomalies_window() }}

),

flagged as (

    select * from traffic_anomalies
    union all
    select * from behaviour_anomalies
    union all
    select * from data_quality_anomalies

),

final as (

    select
        flagged.detector,
        flagged.subject,
        flagged.bucket_start,
        flagged.observed,
        flagged.expected,
        flagged.score,
        flagged.threshold,
        flagged.severity,
        flagged.reason,
        flagged.is_known_bot,
        window_bounds.as_of
    from flagged
    cross join window_bounds

)

select * from final
