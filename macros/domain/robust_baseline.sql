{#- The robust baseline of each scored bucket, one row per `keys` × bucket_start of `scored`:
    how many `history` buckets it has (baseline_buckets), their median `value` (expected) and
    the median absolute deviation from it (mad); robust_z turns them into a score. `window` is
    a condition over `scored` and `baseline` (the history row) choosing which history buckets
    form the baseline (e.g. the same hour of the week in the previous 4 weeks). Buckets whose
    value is null count in baseline_buckets but not in the medians; no value at all gives 0. -#}
{% macro robust_baseline(scored, history, keys, value, window) -%}
    {%- set baseline -%}
        select
            {%- for key in keys %}
            scored.{{ key }},
            {%- endfor %}
            scored.bucket_start,
            baseline.{{ value }} as baseline_value
        from {{ scored }} as scored
        inner join {{ history }} as baseline
            on
                {%- for key in keys %}
                scored.{{ key }} = baseline.{{ key }} and
                {%- endfor %}
                {{ window }}
    {%- endset -%}
    select
        {%- for key in keys %}
        medians.{{ key }},
        {%- endfor %}
        medians.bucket_start,
        medians.baseline_buckets,
        medians.expected,
        coalesce(median(abs(baseline.baseline_value - medians.expected)), 0) as mad
    from ({{ baseline }}) as baseline
    inner join (
        select
            {%- for key in keys %}
            {{ key }},
            {%- endfor %}
            bucket_start,
            count(*) as baseline_buckets,
            coalesce(median(baseline_value), 0) as expected
        from ({{ baseline }}) as baseline
        group by {% for key in keys %}{{ key }}, {% endfor %}bucket_start
    ) as medians
        on
            {%- for key in keys %}
            baseline.{{ key }} = medians.{{ key }} and
            {%- endfor %}
            baseline.bucket_start = medians.bucket_start
    group by
        {%- for key in keys %}
        medians.{{ key }},
        {%- endfor %}
        medians.bucket_start, medians.baseline_buckets, medians.expected
{%- endmacro %}
