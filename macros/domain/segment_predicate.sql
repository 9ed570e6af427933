{#- Segment and audience definitions are data (vars `segments`, `audiences`), compiled here
    into SQL. A condition names a documented `profiles` column and compares it with literals
    only, never with pasted SQL: a definition cannot inject SQL, and a mistake fails the build
    with the segment's name.

    where: {column: value}          equals (a list means: one of)
           {column: {op: value}}    op: '=', '!=', '<', '<=', '>', '>=', 'in', 'not in',
                                    'between' ([low, high]), 'is null' (true/false)
    Every condition of `where` must hold; `any` (a list of `where` mappings) adds "one of". -#}

{% macro segment_predicate(segment, columns) -%}
    {%- set name = segment.get('name') -%}
    {%- if not name or not modules.re.fullmatch('[a-z][a-z0-9_]*', name | string) -%}
        {{ exceptions.raise_compiler_error(
            "segment " ~ (name or segment) ~ ": name must be lower_snake_case") }}
    {%- endif -%}
    {%- set unknown = segment.keys() | reject('in', ['name', 'description', 'where', 'any']) | list -%}
    {%- if unknown -%}
        {{ exceptions.raise_compiler_error(
            "segment '" ~ name ~ "': unknown key(s) " ~ unknown
            ~ "; a segment has name, description, where and any") }}
    {%- endif -%}
    {%- if not segment.get('where') and not segment.get('any') -%}
        {{ exceptions.raise_compiler_error(
            "segment '" ~ name ~ "': needs `where` or `any` (conditions on profiles columns)") }}
    {%- endif -%}
    {%- set parts = [] -%}
    {%- if segment.get('where') -%}
        {%- do parts.append(persona.segment_conditions(name, segment['where'], columns)) -%}
    {%- endif -%}
    {%- if segment.get('any') -%}
        {%- set alternatives = [] -%}
        {%- for where in segment['any'] -%}
            {%- do alternatives.append(persona.segment_conditions(name, where, columns)) -%}
        {%- endfor -%}
        {%- do parts.append('(' ~ alternatives | join(' or ') ~ ')') -%}
    {%- endif -%}
    {{ return(parts | join(' and ')) }}
{%- endmacro %}

{% macro segment_conditions(name, where, columns) -%}
    {%- if where is not mapping -%}
        {{ exceptions.raise_compiler_error(
            "segment '" ~ name ~ "': conditions must be a mapping {column: condition}, got "
            ~ where) }}
    {%- endif -%}
    {%- set conditions = [] -%}
    {%- for column, condition in where.items() -%}
        {%- if columns and column not in columns -%}
            {{ exceptions.raise_compiler_error(
                "segment '" ~ name ~ "': unknown profiles column '" ~ column
                ~ "'; columns are: " ~ columns | join(', ')) }}
        {%- endif -%}
        {%- if condition is mapping -%}
            {%- for op, value in condition.items() -%}
                {%- do conditions.append(persona.segment_condition(name, column, op, value)) -%}
            {%- endfor -%}
        {%- elif condition is iterable and condition is not string -%}
            {%- do conditions.append(persona.segment_condition(name, column, 'in', condition)) -%}
        {%- else -%}
            {%- do conditions.append(persona.segment_condition(name, column, '=', condition)) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return('(' ~ conditions | join(' and ') ~ ')') }}
{%- endmacro %}

{% macro segment_condition(name, column, op, value) -%}
    {%- set op = op | lower -%}
    {%- if op in ['=', '!=', '<', '<=', '>', '>='] -%}
        {{ return(column ~ ' ' ~ op ~ ' ' ~ persona.segment_literal(name, column, value)) }}
    {%- elif op in ['in', 'not in'] -%}
        {%- if value is string or value is not iterable or value | length == 0 -%}
            {{ exceptions.raise_compiler_error(
                "segment '" ~ name ~ "': '" ~ op ~ "' on " ~ column ~ " needs a non-empty list") }}
        {%- endif -%}
        {%- set literals = [] -%}
        {%- for item in value -%}
            {%- do literals.append(persona.segment_literal(name, column, item)) -%}
        {%- endfor -%}
        {{ return(column ~ ' ' ~ op ~ ' (' ~ literals | join(', ') ~ ')') }}
    {%- elif op == 'between' -%}
        {%- if value is string or value is not iterable or value | length != 2 -%}
            {{ exceptions.raise_compiler_error(
                "segment '" ~ name ~ "': 'between' on " ~ column ~ " needs [low, high]") }}
        {%- endif -%}
        {{ return(column ~ ' between ' ~ persona.segment_literal(name, column, value[0])
            ~ ' and ' ~ persona.segment_literal(name, column, value[1])) }}
    {%- elif op == 'is null' -%}
        {{ return(column ~ (' is null' if value else ' is not null')) }}
    {%- else -%}
        {{ exceptions.raise_compiler_error(
            "segment '" ~ name ~ "': unknown operator '" ~ op ~ "' on " ~ column
            ~ "; use =, !=, <, <=, >, >=, in, not in, between, is null") }}
    {%- endif -%}
{%- endmacro %}

{% macro segment_literal(name, column, value) -%}
    {%- if value is sameas true or value is sameas false -%}
        {{ return('true' if value else 'false') }}
    {%- elif value is number -%}
        {{ return(value | string) }}
    {%- elif value is string -%}
        {{ return(persona.quote_literal(value)) }}
    {%- else -%}
        {{ exceptions.raise_compiler_error(
            "segment '" ~ name ~ "': " ~ column ~ " compares with " ~ value
            ~ "; use a string, number or true/false") }}
    {%- endif -%}
{%- endmacro %}

{#- The columns a definition may use: those documented on `profiles` (every column is). -#}
{% macro profile_columns() -%}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {#- unit tests render without the graph: no column check there -#}
    {%- for node in (graph.get('nodes') or {}).values() -%}
        {%- if node.resource_type == 'model' and node.name == 'profiles' -%}
            {{ return(node.columns.keys() | list) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return([]) }}
{%- endmacro %}

{#- var `segments`, checked as a whole: a list of mappings with unique names. -#}
{% macro segment_definitions() -%}
    {%- set segments = var('segments', []) or [] -%}
    {%- if segments is mapping or segments is string or segments is not iterable -%}
        {{ exceptions.raise_compiler_error("var segments must be a list of segment definitions") }}
    {%- endif -%}
    {%- set seen = [] -%}
    {%- for segment in segments -%}
        {%- if segment is not mapping -%}
            {{ exceptions.raise_compiler_error(
                "var segments: each segment is a mapping with name, description, where; got "
                ~ segment) }}
        {%- endif -%}
        {%- if segment.get('name') in seen -%}
            {{ exceptions.raise_compiler_error(
                "segment '" ~ segment.get('name') ~ "' is defined twice") }}
        {%- endif -%}
        {%- do seen.append(segment.get('name')) -%}
    {%- endfor -%}
    {{ return(segments) }}
{%- endmacro %}
