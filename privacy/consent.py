"""Consent withdrawn: what the loader does with a visitor's identifiers after they withdraw
(``PERSONA_CONSENT_WITHDRAWN``, read by the loader and the live process at start):

- ``keep`` (the default): nothing; the consent events load like any event, and
  ``profiles.consent_state`` says what each user chose;
- ``pseudonymize``: every later event of the device carries salted hashes (the privacy salt)
  instead of its ``user_id``, ``domain_userid``, ``network_userid`` and ``user_fingerprint``,
  and no IP address: the behaviour still counts, no longer linked to the person;
- ``drop``: those identifiers are removed (null), as anonymous tracking would send them.

"Withdrawn" is a ``consent_preferences`` event (the web tracker's consent plugin,
``iglu:com.snowplowanalytics.snowplow/consent_preferences/jsonschema/1-0-0``) whose
``eventType`` is ``deny_all`` or ``withdrawn``; a later ``allow_*`` event lifts it. The consent
event itself is stored as sent: it is the record of the choice. After a restart the withdrawn
devices are read back from the warehouse's consent events.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from loader.columnar import Chunk
from loader.errors import ConfigError
from privacy.salt import hash_id

ENV = "PERSONA_CONSENT_WITHDRAWN"
MODES = ("keep", "pseudonymize", "drop")
COLUMN = "unstruct_event_com_snowplowanalytics_snowplow_consent_preferences_1"
EVENT = "consent_preferences"
WITHDRAWN = frozenset({"deny_all", "withdrawn"})
IDS = ("user_id", "domain_userid", "network_userid", "user_fingerprint")
IP = "user_ipaddress"


def mode_from_env() -> str:
    mode = os.environ.get(ENV, "keep") or "keep"
    if mode not in MODES:
        raise ConfigError(f"{ENV}: one of {', '.join(MODES)}, not {mode!r}")
    return mode


def _event_type(value: Any) -> str | None:
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    if isinstance(value, dict):
        got = value.get("eventType")
        return got if isinstance(got, str) else None
    return None


class Consent:
    """The loader step; ``withdrawn``: the devices (domain_userid) that withdrew."""

    def __init__(self, mode: str, key: bytes, withdrawn: Iterable[str] = ()) -> None:
        self.mode, self.key = mode, key
        self.withdrawn: set[str] = set(withdrawn)

    @classmethod
    def from_duckdb(cls, con: Any, mode: str, key: bytes) -> Consent:
        """Devices whose latest consent event withdrew, from the warehouse's raw events."""
        con.execute("select count(*) from information_schema.columns where table_schema = "
                    "'atomic' and table_name = 'events' and column_name = ?", [COLUMN])  # fmt: skip
        withdrawn: list[str] = []
        if con.fetchall()[0][0]:  # to the end: a pending result keeps a transaction open
            con.execute(
                f"select domain_userid, {COLUMN} from atomic.events where event_name = ? and "
                "domain_userid is not null qualify row_number() over (partition by "
                "domain_userid order by collector_tstamp desc) = 1", [EVENT],
            )  # fmt: skip
            withdrawn = [d for d, v in con.fetchall() if _event_type(v) in WITHDRAWN]
        return cls(mode, key, withdrawn)

    def _pseudonym(self, value: str) -> str:
        return "anon-" + hash_id(self.key, value)[:32]

    def _observe(self, device: Any, value: Any) -> None:
        kind = _event_type(value)
        if not device or kind is None:
            return
        if kind in WITHDRAWN:
            self.withdrawn.add(device)
        elif kind.startswith("allow") or kind == "implicit_consent":
            self.withdrawn.discard(device)

    def __call__(self, item: Any) -> Any:
        if item is None or self.mode == "keep":
            return item
        if isinstance(item, dict):
            device = item.get("domain_userid")
            if item.get("event_name") == EVENT:
                self._observe(device, item.get(COLUMN))
                return item
            if device in self.withdrawn:
                for name in IDS:
                    if item.get(name):
                        item[name] = None if self.mode == "drop" else self._pseudonym(item[name])
                item[IP] = None
            return item
        if isinstance(item, Chunk) and item.table.num_rows:
            return self._chunk(item)
        return item

    def _chunk(self, chunk: Chunk) -> Chunk:
        table = chunk.table
        names = table.column("event_name").to_pylist()
        devices = table.column("domain_userid").to_pylist()
        values = (table.column(COLUMN).to_pylist() if COLUMN in table.column_names
                  else [None] * table.num_rows)  # fmt: skip
        hit: list[bool] = []
        for name, device, value in zip(names, devices, values, strict=True):  # in order
            if name == EVENT:
                self._observe(device, value)
                hit.append(False)
            else:
                hit.append(device in self.withdrawn)
        if not any(hit):
            return chunk
        mask = pa.array(hit)
        for name in (*IDS, IP):
            at = table.schema.get_field_index(name)
            if at < 0:
                continue
            column = table.column(at).combine_chunks()
            if self.mode == "drop" or name == IP:
                new = pc.if_else(mask, pa.scalar(None, column.type), column)
            else:
                hashed = pa.array([None if v is None else self._pseudonym(v)
                                   for v in column.to_pylist()], column.type)  # fmt: skip
                new = pc.if_else(mask, hashed, column)
            table = table.set_column(at, name, new)
        return replace(chunk, table=table)
