{#- The newest load a model has processed, read off its own rows: right where every load leaves
    a row (events, session_bounds, identity_map). Key-scoped models, whose rows do not see every
    load (few sessions are ever quarantined), keep theirs in the incremental manifest. -#}
{% macro watermark(column='max_load_tstamp') -%}
    (select coalesce(max({{ column }}), cast('1970-01-01' as timestamp)) from {{ this }})
{%- endmacro %}
