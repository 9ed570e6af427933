{#- Incremental strategy `key_scoped` (DuckDB): rebuild whole keys, and only those touched since
    the model's last run.

    A model names its scope, a `*_this_run` model listing the keys touched since the last run
    (`sessions_this_run`, `devices_this_run`, computed once per run for every model that reads
    them, as in Snowplow's packages), and reads only those keys' inputs:

        config(incremental_strategy='key_scoped', unique_key='domain_sessionid',
               key_scope='sessions_this_run')

    The strategy then deletes every row of a key in scope (also rows the rebuild no longer
    produces, e.g. a session that grew into quarantine; a plain delete+insert would leave them
    behind) and inserts the rebuilt rows. After every build, full or incremental,
    record_watermark (a project-wide post-hook) writes what the model has consumed into the
    incremental manifest, from which the scope of its next run is computed. On Snowflake the
    models are dynamic tables, which refresh themselves, and none of this renders. -#}
{% macro get_incremental_key_scoped_sql(arg_dict) -%}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set key = arg_dict['unique_key'] -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    {%- if key is not string or not config.get('key_scope') -%}
        {{ exceptions.raise_compiler_error(
            model.name ~ ": incremental_strategy 'key_scoped' needs one unique_key column and a "
            ~ "key_scope (the *_this_run model that lists the keys touched)"
        ) }}
    {%- endif -%}
    delete from {{ target }}
    where {{ key }} in (select scope.{{ key }} from {{ ref(config.get('key_scope')) }} as scope);
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ arg_dict['temp_relation'] }}
{%- endmacro %}
