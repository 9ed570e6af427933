"""Pseudonymization and IP anonymization, applied before anything is stored.

One ``Privacy`` per loader. The collector applies it to each record before it reaches the spool
(its HTTP process, ``protect_record``); every other source is protected by the pipeline before a
batch is formed (``protect``). Either way the same rules hold for the events table, the failed
events' raw input, and the spool:

- ``user_ipaddress`` keeps its first octets (``anonymize_ip_octets`` blanked with ``x``, IPv6 by
  16-bit groups). An address in a loose form (spaces, a port, an IPv6 zone, zero-padded
  octets) is read as the address it names; a value that names no address is stored as ``x``.
- each field of ``pii_fields`` is replaced by ``sha256(PERSONA_PII_SALT + value)`` (after the
  IP is anonymized, for ``user_ipaddress``), and so is the tracker parameter that fills it.
- a failed event's raw input is protected field by field where its shape is known (an enriched
  TSV line, a tracker payload) and otherwise scrubbed: every IP address in it is anonymized and
  every value of a pseudonymized parameter (``uid=...``, ``"uid":"..."``) is hashed.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from loader.contract import FIELD_INDEX, FIELDS
from loader.errors import ConfigError
from loader.failed import FailedEvent

_INDEX = FIELD_INDEX
IP_FIELD = "user_ipaddress"
# The tracker parameters that fill each field verbatim (the collector's enrichment copies
# them); a field built by parsing (page_url's parts, the useragent's context) cannot be
# pseudonymized without breaking what is derived from it, and is refused.
PARAMS: dict[str, tuple[str, ...]] = {
    "user_id": ("uid",), "domain_userid": ("duid",), "domain_sessionid": ("sid",),
    "network_userid": ("nuid", "tnuid"), "user_ipaddress": ("ip",), "user_fingerprint": ("fp",),
    "refr_domain_userid": ("refr_duid",), "txn_id": ("tid",), "tr_orderid": ("tr_id",),
    "ti_orderid": ("ti_id",), "tr_city": ("tr_ci",), "tr_state": ("tr_st",),
    "tr_country": ("tr_co",), "os_timezone": ("tz",),
}  # fmt: skip
# the collector's own record fields (what the request carried besides its payload)
_CONTEXT = {"user_ipaddress": "ip", "network_userid": "nuid"}


@dataclass(frozen=True)
class Privacy:
    anonymize_ip_octets: int = 0  # 0 keeps the address
    pii_fields: tuple[str, ...] = ()
    salt: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, pii_fields: tuple[str, ...] = (), anonymize_ip_octets: int = 0) -> Privacy:
        salt = os.environ.get("PERSONA_PII_SALT", "")
        if pii_fields and not salt:
            raise ConfigError(
                "pii_fields are set but PERSONA_PII_SALT is empty: set it to a long random "
                "secret (the same for every loader, or pseudonyms will not match)"
            )
        unknown = [f for f in pii_fields if f not in PARAMS]
        if unknown:
            raise ConfigError(
                f"pii_fields: {unknown} cannot be pseudonymized (not an atomic field, or one "
                f"built by parsing another); choose from {sorted(PARAMS)}"
            )
        if not 0 <= anonymize_ip_octets <= 4:
            raise ConfigError(f"anonymize_ip_octets: 0 to 4, got {anonymize_ip_octets}")
        return cls(anonymize_ip_octets, tuple(pii_fields), salt)

    @property
    def active(self) -> bool:
        return bool(self.anonymize_ip_octets or self.pii_fields)

    # -- one value -------------------------------------------------------------------------

    def pseudonym(self, value: str) -> str:
        return _sha256(self.salt, value)

    def _pseudonymize_match(self, m: re.Match[str]) -> str:
        return m[1] + self.pseudonym(m[2]) if m[2] else m[0]

    def field_value(self, name: str, value: str) -> str:
        """A field's stored form (``value`` non-empty)."""
        if name == IP_FIELD and self.anonymize_ip_octets:
            value = anonymize_ip(value, self.anonymize_ip_octets)
        if name in self.pii_fields:
            value = self.pseudonym(value)
        return value

    @functools.cached_property
    def _fields(self) -> tuple[str, ...]:
        names = dict.fromkeys(self.pii_fields)
        if self.anonymize_ip_octets:
            names[IP_FIELD] = None
        return tuple(names)

    @functools.cached_property
    def _params(self) -> dict[str, str]:
        """Tracker parameter -> the field it fills, for the fields protected here."""
        return {param: name for name in self._fields for param in PARAMS[name]}

    # -- collector records, before the spool ------------------------------------------------

    def protect_record(self, record: dict[str, Any]) -> dict[str, Any]:
        """A collector spool record (``ip``, ``nuid``, payload ``p`` or unparsed ``bad``)."""
        if not self.active:
            return record
        record = dict(record)
        for name, key in _CONTEXT.items():
            if name in self._fields and record.get(key):
                record[key] = self.field_value(name, record[key])
        if "p" in record:
            record["p"] = self.protect_payload(record["p"])
        if "bad" in record:
            record["bad"] = self.scrub(record["bad"])
        return record

    def protect_payload(self, payload: dict[str, str]) -> dict[str, str]:
        out = dict(payload)
        for param, name in self._params.items():
            if out.get(param):
                out[param] = self.field_value(name, out[param])
        return out

    # -- rows of named cells (a warehouse export), before parsing ----------------------------

    def cells(self, header: list[str]) -> Callable[[list[str]], list[str]]:
        """A function protecting the cells of a row with this header (names in any case)."""
        at = [(i, name.lower()) for i, name in enumerate(header) if name.lower() in self._fields]

        def protect(row: list[str]) -> list[str]:
            if not at or not self.active:
                return row
            row = list(row)
            for i, name in at:
                if i < len(row) and row[i]:
                    row[i] = self.field_value(name, row[i])
            return row

        return protect

    # -- events, tables and failed events, before a batch ----------------------------------

    def protect(self, item: Any) -> Any:
        """An event (dict), a failed event, or a chunk (``columnar.Chunk``)."""
        if not self.active:
            return item
        if isinstance(item, FailedEvent):
            return replace(item, raw=self.protect_raw(item.raw))
        if isinstance(item, dict):
            for name in self._fields:
                if item.get(name):
                    item[name] = self.field_value(name, item[name])
            return item
        table = item.table
        for name in self._fields:
            at = table.schema.get_field_index(name)
            if at >= 0 and table.column(at).null_count < table.num_rows:
                table = table.set_column(at, name, self._column(name, table.column(at)))
        failed = [replace(f, raw=self.protect_raw(f.raw)) for f in item.failed]
        return replace(item, table=table, failed=failed)

    def _column(self, name: str, column: pa.ChunkedArray) -> pa.Array:
        """Each distinct value converted once (a client sends many events from one address)."""
        encoded = pc.dictionary_encode(column.combine_chunks())
        values = [None if v is None else self.field_value(name, v)
                  for v in encoded.dictionary.to_pylist()]  # fmt: skip
        return pa.array(values, pa.string()).take(encoded.indices)

    def protect_raw(self, raw: str) -> str:
        """A failed event's raw input: field by field where its shape is known, else scrubbed."""
        if not self.active:
            return raw
        values = raw.split("\t")
        if len(values) == len(FIELDS):  # an enriched TSV line
            for name in self._fields:
                at = _INDEX[name]
                if values[at]:
                    values[at] = self.field_value(name, values[at])
            return self.scrub("\t".join(values), skip=frozenset(_INDEX[n] for n in self._fields))
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self.scrub(raw)
        if isinstance(data, dict) and isinstance(data.get("payload"), dict):  # the collector's
            data["payload"] = self.protect_payload(data["payload"])
            return orjson.dumps(data).decode()
        return self.scrub(raw)

    def _address_in_text(self, m: re.Match[str]) -> str:
        """Only what names an address (a time like 17:13:39 has the shape of IPv6, too)."""
        found = m[0]
        if _address(found) is None and _blanked(found, 4) == "x":
            return found
        return self.field_value(IP_FIELD, found)

    def scrub(self, text: str, skip: frozenset[int] = frozenset()) -> str:
        """Text of unknown shape: IP addresses anonymized, pseudonymized parameters hashed.
        ``skip``: the tab-separated fields already protected (left as they are)."""
        if skip:
            parts = text.split("\t")
            return "\t".join(p if i in skip else self.scrub(p) for i, p in enumerate(parts))
        if self.anonymize_ip_octets or IP_FIELD in self.pii_fields:
            text = _IP_RE.sub(self._address_in_text, text)
        names = [n for n in self.pii_fields if n != IP_FIELD]
        for name in names:
            for param in PARAMS[name] + (name,):
                text = _param_re(param).sub(self._pseudonymize_match, text)
        return text


@functools.lru_cache(maxsize=65536)
def _sha256(salt: str, value: str) -> str:
    return hashlib.sha256((salt + value).encode("utf-8", "surrogatepass")).hexdigest()


@functools.lru_cache(maxsize=64)
def _param_re(param: str) -> re.Pattern[str]:
    """``param=value`` in a query string, ``"param": "value"`` in JSON text."""
    p = re.escape(param)
    return re.compile(rf'((?:^|[?&;\s]){p}=|"{p}"\s*:\s*")([^&;"\s]*)')


# IPv4 (octets of up to three digits, or already blanked with x) and IPv6 in text
_IP_RE = re.compile(
    r"(?<![\w.:])(?:(?:\d{1,3}|x)\.){3}(?:\d{1,3}|x)(?![\w.])"
    r"|(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?:%[\w.]+)?(?![\w:])"
)
_V4_PORT = re.compile(r"(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}")
_V6_PORT = re.compile(r"\[([^\]]+)\](?::\d{1,5})?")


@functools.lru_cache(maxsize=4096)  # a client sends many events from one address
def anonymize_ip(value: str, octets: int) -> str:
    """The address's first octets, the rest ``x``; ``x`` for a value that names no address.
    An address already blanked (``203.0.113.x``) is kept, blanked at least as far."""
    address = _address(value)
    if address is None:
        return _blanked(value.strip(), octets)
    if address.version == 4:
        kept = str(address).split(".")[: 4 - octets]
        return ".".join(kept + ["x"] * octets)
    groups = address.exploded.split(":")
    return ":".join(groups[: 8 - 2 * octets] + ["x"] * (2 * octets))


def _blanked(value: str, octets: int) -> str:
    """An address blanked already (by Snowplow's enrichment, or by an earlier load)."""
    for sep, n, per in ((".", 4, 1), (":", 8, 2)):
        parts = value.split(sep)
        if len(parts) != n or "x" not in parts:
            continue
        first = parts.index("x")
        if all(p == "x" for p in parts[first:]) and _address(
            sep.join(parts[:first] + ["0"] * (n - first))
        ):
            keep = min(first, n - per * octets)
            return sep.join(parts[:keep] + ["x"] * (n - keep))
    return "x"


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = value.strip()
    if (m := _V6_PORT.fullmatch(text)) or (m := _V4_PORT.fullmatch(text)):
        text = m[1]
    text = text.split("%", 1)[0]  # an IPv6 zone (fe80::1%eth0) names an interface, not a host
    parts = text.split(".")
    if len(parts) == 4 and all(p.isdigit() and len(p) <= 3 for p in parts):
        text = ".".join(str(int(p)) for p in parts)  # 203.000.113.077: zero-padded octets
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address
