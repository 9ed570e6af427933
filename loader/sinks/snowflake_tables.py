"""The atomic tables on Snowflake as the Snowflake Streaming Loader lays them out: Snowplow's
atomic columns in Snowflake types, ``load_tstamp``, and one column per entity schema
(``contexts_*`` an ARRAY, ``unstruct_event_*`` an OBJECT). The sink, ``persona snowflake
setup`` and the fakesnow tests all build them from here, so the three cannot drift apart."""

from __future__ import annotations

from loader.contract import ATOMIC_FIELDS, LOAD_TSTAMP, Kind

SNOWFLAKE_TYPES: dict[Kind, str] = {
    Kind.STRING: "varchar",
    Kind.TSTAMP: "timestamp_ntz",
    Kind.INT: "number(38, 0)",
    Kind.DOUBLE: "float",
    Kind.BOOL: "boolean",
}

#: The entity columns the models read. A dynamic table's query is fixed when it is created, so
#: they must exist before `dbt build`, whether or not an event has carried them yet.
MODEL_ENTITY_COLUMNS: tuple[str, ...] = (
    "contexts_com_snowplowanalytics_snowplow_web_page_1",
    "contexts_com_iab_snowplow_spiders_and_robots_1",
    "unstruct_event_com_snowplowanalytics_snowplow_ecommerce_snowplow_ecommerce_action_1",
    "contexts_com_snowplowanalytics_snowplow_ecommerce_transaction_1",
    "contexts_com_snowplowanalytics_snowplow_ecommerce_product_1",
    # the mobile apps (models/base: screen views, client sessions, app and device)
    "unstruct_event_com_snowplowanalytics_mobile_screen_view_1",
    "contexts_com_snowplowanalytics_snowplow_client_session_1",
    "contexts_com_snowplowanalytics_mobile_screen_1",
    "contexts_com_snowplowanalytics_mobile_screen_summary_1",
    "contexts_com_snowplowanalytics_mobile_application_1",
    "contexts_com_snowplowanalytics_snowplow_mobile_context_1",
    "contexts_com_snowplowanalytics_snowplow_geolocation_context_1",
    # consent (models/profiles: consent_state)
    "unstruct_event_com_snowplowanalytics_snowplow_consent_preferences_1",
)

FAILED_EVENTS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("failed_at", "timestamp_ntz"),
    ("source", "varchar"),
    ("error_type", "varchar"),
    ("message", "varchar"),
    ("raw", "varchar"),
)


def entity_type(column: str) -> str:
    """ARRAY for a context (a list of entities), OBJECT for an unstructured event."""
    return "array" if column.startswith("contexts_") else "object"


def events_table(qualified: str) -> str:
    """``create table if not exists`` for the events table, change tracking on (dynamic tables
    refresh incrementally from its change stream)."""
    columns = [f"    {f.name} {SNOWFLAKE_TYPES[f.kind]}" for f in ATOMIC_FIELDS]
    columns.append(f"    {LOAD_TSTAMP} timestamp_ntz")
    columns += [f"    {c} {entity_type(c)}" for c in MODEL_ENTITY_COLUMNS]
    body = ",\n".join(columns)
    return f"create table if not exists {qualified} (\n{body}\n) change_tracking = true"


def failed_events_table(qualified: str) -> str:
    body = ",\n".join(f"    {name} {kind}" for name, kind in FAILED_EVENTS_COLUMNS)
    return f"create table if not exists {qualified} (\n{body}\n) change_tracking = true"


def add_entity_column(qualified: str, column: str) -> str:
    """The ALTER the sink runs for a new entity schema; ``column`` is checked by the caller
    against ``loader.contract.ENTITY_COLUMN_RE`` (an identifier, never pasted input)."""
    return f"alter table {qualified} add column if not exists {column} {entity_type(column)}"
