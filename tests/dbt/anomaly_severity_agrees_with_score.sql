{#- A flagged anomaly's severity follows its score (|score| in multiples of its threshold, as
    macros/domain/anomaly_severity.sql grades them; behaviour: the number of signals), unless
    its reason says why not: a known bot is 'info', an hour that dropped to zero is an outage.
    Fails with the rows whose severity a reader could not explain from the score. -#}
with anomalies as (

    select * from {{ ref('anomalies') }}

),

graded as (

    select
        *,
        case
            when detector = 'behaviour' and is_known_bot then 'info'
            when detector = 'behaviour' and score >= 2 then 'high'
            when detector = 'behaviour' then 'medium'
            else {{ persona.anomaly_severity('score', 'threshold') }}
        end as severity_from_score
    from anomalies

)

select * from graded
where
    severity != severity_from_score
    and not (severity = 'high' and reason like 'dropped to zero:%an outage, high whatever%')
