{#- Key-scoped refresh of an aggregate of `events` by time bucket (hours, device-days) on
    DuckDB: an incremental run finds the buckets that events loaded since the model's watermark
    fall in, and reads those buckets whole, so they are recomputed exactly as a full refresh
    would compute them (late events included). `bucket` is the bucket's start, an expression
    over events' columns; `keys` optionally narrows a bucket to some keys (e.g. domain_userid).
    The model's delete+insert unique_key then replaces the recomputed rows. Renders nothing on
    Snowflake (a dynamic table refreshes itself) or on a full refresh. -#}
{% macro in_touched_buckets(events, bucket, keys=[]) -%}
    {%- if persona.incremental_run() %}
        {%- set touched -%}
            select distinct {{ bucket }} as bucket_start
            {%- for key in keys %}, {{ key }}{% endfor %}
            from {{ events }}
            where load_tstamp > {{ persona.watermark() }}
        {%- endset %}
        and collector_tstamp >= (select min(bucket_start) from ({{ touched }}) as touched)
        and ({{ bucket }}{% for key in keys %}, {{ key }}{% endfor %}) in (
            select * from ({{ touched }}) as touched
        )
    {%- endif -%}
{%- endmacro %}
