"""The event contract: Snowplow's enriched event, field by field.

Everything that reads or writes events (parser, sinks, dbt sources) derives its columns from
``FIELDS`` so that the order and types of the 131 enriched-TSV fields live in one place.
Self-describing JSON fields (contexts, unstruct_event, derived_contexts) are not stored as they
are: each entity schema becomes its own column, named as the Snowflake Streaming Loader names it
(``contexts_<vendor>_<name>_<major>``, ``unstruct_event_<vendor>_<name>_<major>``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

import pyarrow as pa


class Kind(Enum):
    STRING = "string"
    TSTAMP = "tstamp"
    INT = "int"
    DOUBLE = "double"
    BOOL = "bool"
    CONTEXTS = "contexts"
    UNSTRUCT = "unstruct"


STRING, TSTAMP, INT, DOUBLE, BOOL = Kind.STRING, Kind.TSTAMP, Kind.INT, Kind.DOUBLE, Kind.BOOL
CONTEXTS, UNSTRUCT = Kind.CONTEXTS, Kind.UNSTRUCT


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: Kind
    required: bool = False


FIELDS: tuple[Field, ...] = (
    Field("app_id", STRING),
    Field("platform", STRING),
    Field("etl_tstamp", TSTAMP),
    Field("collector_tstamp", TSTAMP, required=True),
    Field("dvce_created_tstamp", TSTAMP),
    Field("event", STRING),
    Field("event_id", STRING, required=True),
    Field("txn_id", INT),
    Field("name_tracker", STRING),
    Field("v_tracker", STRING),
    Field("v_collector", STRING),
    Field("v_etl", STRING),
    Field("user_id", STRING),
    Field("user_ipaddress", STRING),
    Field("user_fingerprint", STRING),
    Field("domain_userid", STRING),
    Field("domain_sessionidx", INT),
    Field("network_userid", STRING),
    Field("geo_country", STRING),
    Field("geo_region", STRING),
    Field("geo_city", STRING),
    Field("geo_zipcode", STRING),
    Field("geo_latitude", DOUBLE),
    Field("geo_longitude", DOUBLE),
    Field("geo_region_name", STRING),
    Field("ip_isp", STRING),
    Field("ip_organization", STRING),
    Field("ip_domain", STRING),
    Field("ip_netspeed", STRING),
    Field("page_url", STRING),
    Field("page_title", STRING),
    Field("page_referrer", STRING),
    Field("page_urlscheme", STRING),
    Field("page_urlhost", STRING),
    Field("page_urlport", INT),
    Field("page_urlpath", STRING),
    Field("page_urlquery", STRING),
    Field("page_urlfragment", STRING),
    Field("refr_urlscheme", STRING),
    Field("refr_urlhost", STRING),
    Field("refr_urlport", INT),
    Field("refr_urlpath", STRING),
    Field("refr_urlquery", STRING),
    Field("refr_urlfragment", STRING),
    Field("refr_medium", STRING),
    Field("refr_source", STRING),
    Field("refr_term", STRING),
    Field("mkt_medium", STRING),
    Field("mkt_source", STRING),
    Field("mkt_term", STRING),
    Field("mkt_content", STRING),
    Field("mkt_campaign", STRING),
    Field("contexts", CONTEXTS),
    Field("se_category", STRING),
    Field("se_action", STRING),
    Field("se_label", STRING),
    Field("se_property", STRING),
    Field("se_value", DOUBLE),
    Field("unstruct_event", UNSTRUCT),
    Field("tr_orderid", STRING),
    Field("tr_affiliation", STRING),
    Field("tr_total", DOUBLE),
    Field("tr_tax", DOUBLE),
    Field("tr_shipping", DOUBLE),
    Field("tr_city", STRING),
    Field("tr_state", STRING),
    Field("tr_country", STRING),
    Field("ti_orderid", STRING),
    Field("ti_sku", STRING),
    Field("ti_name", STRING),
    Field("ti_category", STRING),
    Field("ti_price", DOUBLE),
    Field("ti_quantity", INT),
    Field("pp_xoffset_min", INT),
    Field("pp_xoffset_max", INT),
    Field("pp_yoffset_min", INT),
    Field("pp_yoffset_max", INT),
    Field("useragent", STRING),
    Field("br_name", STRING),
    Field("br_family", STRING),
    Field("br_version", STRING),
    Field("br_type", STRING),
    Field("br_renderengine", STRING),
    Field("br_lang", STRING),
    Field("br_features_pdf", BOOL),
    Field("br_features_flash", BOOL),
    Field("br_features_java", BOOL),
    Field("br_features_director", BOOL),
    Field("br_features_quicktime", BOOL),
    Field("br_features_realplayer", BOOL),
    Field("br_features_windowsmedia", BOOL),
    Field("br_features_gears", BOOL),
    Field("br_features_silverlight", BOOL),
    Field("br_cookies", BOOL),
    Field("br_colordepth", STRING),
    Field("br_viewwidth", INT),
    Field("br_viewheight", INT),
    Field("os_name", STRING),
    Field("os_family", STRING),
    Field("os_manufacturer", STRING),
    Field("os_timezone", STRING),
    Field("dvce_type", STRING),
    Field("dvce_ismobile", BOOL),
    Field("dvce_screenwidth", INT),
    Field("dvce_screenheight", INT),
    Field("doc_charset", STRING),
    Field("doc_width", INT),
    Field("doc_height", INT),
    Field("tr_currency", STRING),
    Field("tr_total_base", DOUBLE),
    Field("tr_tax_base", DOUBLE),
    Field("tr_shipping_base", DOUBLE),
    Field("ti_currency", STRING),
    Field("ti_price_base", DOUBLE),
    Field("base_currency", STRING),
    Field("geo_timezone", STRING),
    Field("mkt_clickid", STRING),
    Field("mkt_network", STRING),
    Field("etl_tags", STRING),
    Field("dvce_sent_tstamp", TSTAMP),
    Field("refr_domain_userid", STRING),
    Field("refr_dvce_tstamp", TSTAMP),
    Field("derived_contexts", CONTEXTS),
    Field("domain_sessionid", STRING),
    Field("derived_tstamp", TSTAMP),
    Field("event_vendor", STRING),
    Field("event_name", STRING),
    Field("event_format", STRING),
    Field("event_version", STRING),
    Field("event_fingerprint", STRING),
    Field("true_tstamp", TSTAMP),
)
#: Each field's position in an enriched TSV line.
FIELD_INDEX: dict[str, int] = {f.name: i for i, f in enumerate(FIELDS)}

assert len(FIELDS) == 131

#: The scalar atomic columns of ``atomic.events``, in TSV order (the JSON fields excluded).
ATOMIC_FIELDS: tuple[Field, ...] = tuple(
    f for f in FIELDS if f.kind not in (Kind.CONTEXTS, Kind.UNSTRUCT)
)


#: Their names, in that order; ``ATOMIC_NAME_SET`` for membership tests.
ATOMIC_NAMES: tuple[str, ...] = tuple(f.name for f in ATOMIC_FIELDS)
ATOMIC_NAME_SET: frozenset[str] = frozenset(ATOMIC_NAMES)

#: How each kind of scalar field is held in Arrow (and so in every sink's table).
ARROW_TYPES: dict[Kind, pa.DataType] = {
    Kind.STRING: pa.string(),
    Kind.TSTAMP: pa.timestamp("us"),
    Kind.INT: pa.int64(),
    Kind.DOUBLE: pa.float64(),
    Kind.BOOL: pa.bool_(),
}


def utcnow() -> datetime:
    """Now, as every timestamp of the contract is kept: UTC, without tzinfo."""
    return datetime.now(UTC).replace(tzinfo=None)


#: Loader metadata appended after the atomic columns, as the Snowflake loader does.
LOAD_TSTAMP = "load_tstamp"

#: The atomic columns of ``atomic.events`` as Arrow holds them, ``load_tstamp`` last.
ATOMIC_SCHEMA = pa.schema(
    [pa.field(f.name, ARROW_TYPES[f.kind]) for f in ATOMIC_FIELDS]
    + [pa.field(LOAD_TSTAMP, pa.timestamp("us"))]
)

#: An Iglu schema URI; groups: vendor, name, format, version, major. Plain RE2-compatible
#: syntax (no named groups), so the same pattern works in DuckDB and Snowflake.
IGLU_RE = (
    r"iglu:([a-zA-Z0-9_.-]+)/([a-zA-Z0-9_-]+)/([a-zA-Z0-9_-]+)/(([0-9]{1,9})-[0-9]{1,9}-[0-9]{1,9})"
)
_IGLU = re.compile(IGLU_RE)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_WORD = re.compile(r"[^a-zA-Z0-9]+")


@dataclass(frozen=True, slots=True)
class SchemaKey:
    """A parsed Iglu URI such as ``iglu:org.schema/WebPage/jsonschema/1-0-0``."""

    vendor: str
    name: str
    version: str
    major: int

    @classmethod
    @functools.lru_cache(maxsize=4096)
    def parse(cls, uri: str) -> SchemaKey:
        m = _IGLU.fullmatch(uri) if isinstance(uri, str) else None
        if m is None:
            raise ValueError(f"not an Iglu schema URI: {uri!r}")
        return cls(m[1], m[2], m[4], int(m[5]))

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - keys are few and live for the process
    def column(self, prefix: str) -> str:
        """Column name for this schema, e.g. ``contexts_org_schema_web_page_1``."""
        column = f"{prefix}_{snake(self.vendor, False)}_{snake(self.name)}_{self.major}"
        # the schema policy judges a column by the schemas that made it (the name is lossy)
        if len(COLUMN_SCHEMAS) >= 50_000:  # bounded, whatever a client sends
            COLUMN_SCHEMAS.clear()
        COLUMN_SCHEMAS.setdefault(column, set()).add((self.vendor, self.name))
        return column


#: Entity column -> the (vendor, name) pairs seen to make it in this process.
COLUMN_SCHEMAS: dict[str, set[tuple[str, str]]] = {}


def snake(part: str, camel: bool = True) -> str:
    """A schema name (``camel``) or a vendor as it appears in a column name."""
    return _NON_WORD.sub("_", _CAMEL.sub("_", part) if camel else part).lower()


#: A column the loader may create for an entity schema: checked before any DDL uses the name.
ENTITY_COLUMN_RE = re.compile(r"(contexts|unstruct_event)_[a-z0-9_]+_[0-9]+")
