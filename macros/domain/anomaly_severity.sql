{#- Severity of a flagged score by how far past its threshold it is: 'high' from
    anomalies_severity_high × the threshold, 'medium' from anomalies_severity_medium ×, else
    'low'. -#}
{% macro anomaly_severity(score, threshold) -%}
    case
        when abs({{ score }}) >= {{ var('anomalies_severity_high') }} * {{ threshold }} then 'high'
        when abs({{ score }}) >= {{ var('anomalies_severity_medium') }} * {{ threshold }}
            then 'medium'
        else 'low'
    end
{%- endmacro %}
