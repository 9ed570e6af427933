{#- Fails for every combination of the columns that occurs more than once (no dbt_utils here:
    the hub is out of reach, and this is the one macro we need from it). -#}
{% test unique_combination(model, columns) %}

select {{ columns | join(', ') }}, count(*) as occurrences
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1

{% endtest %}
