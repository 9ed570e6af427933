{#- Robust z-score of a count against its baseline: (observed − expected) / scale, where
    expected is the baseline's median and scale = max(1.4826 × MAD, sqrt(dispersion ×
    max(expected, 1))). 1.4826 × MAD estimates the sd of normal data without letting one odd
    baseline bucket inflate it; the Poisson sd sqrt(expected) — times `dispersion` for counts
    that arrive in clusters, like a session's events — floors it, so a baseline that happens
    to be tiny or very regular cannot make an ordinary count look extreme. -#}
{% macro robust_z(observed, expected, mad, dispersion=1) -%}
    ({{ observed }} - {{ expected }}) / greatest(
        1.4826 * {{ mad }}, sqrt({{ dispersion }} * greatest({{ expected }}, 1))
    )
{%- endmacro %}
