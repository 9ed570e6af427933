{#- The served rule set: the rows of `item_repurchase` of the newest published version, or of
    `recs_serving_version` when it is set (rollback). A view: switching versions is free. -#}
{{ config(materialized='view') }}

{{ persona.current_rule_set(ref('item_repurchase')) }}
