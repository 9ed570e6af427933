"""The loader's suppression step: events of a suppressed id are dropped before a batch holds
them, counted (``persona_events_suppressed_total`` in ``/metrics``), never stored.

The list holds salted hashes only (``privacy.ledger.SUPPRESSED``); each id an event carries
(``user_id``, ``domain_userid``, ``network_userid``) is hashed once and its verdict cached, so
a stream of events from a few thousand visitors costs a dict lookup per id, and an empty list
costs nothing at all. A hash suppressed ``before`` a moment (a delete-only request) drops only
the events collected up to it: those the collector's spool still held when the data was
deleted. A failed event is matched by the tokens of its raw line.
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from loader.columnar import Chunk
from loader.failed import FailedEvent
from loader.metrics import METRICS
from privacy import ledger, salt
from privacy.salt import hash_id

ID_COLUMNS = ("user_id", "domain_userid", "network_userid")
_NOT = False  # a verdict: not suppressed (None: always suppressed; a datetime: up to then)
_CACHE_LIMIT = 200_000
_TOKEN_RE = re.compile(r"[^\s\"'&=?,;:{}\[\]\t<>]{4,}")

Verdict = datetime | bool | None


class Suppression:
    """Drops the events of suppressed ids; ``update`` changes the list while the loader runs
    (the live process's forget), safely from another thread."""

    def __init__(self, key: bytes | None, hashes: Mapping[str, datetime | None],
                 consent: Any = None) -> None:  # fmt: skip
        self.key = key
        self.consent = consent  # privacy.consent.Consent: after the list, when configured
        self._hashes: dict[str, datetime | None] = dict(hashes)
        self._verdicts: dict[str, Verdict] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_duckdb(cls, warehouse: str | Path, con: Any = None) -> Suppression:
        """The list kept in a DuckDB warehouse (empty if it has none). ``con``: a connection
        the caller has open on it (DuckDB allows one writing process)."""
        import duckdb

        own = con is None
        if own:
            con = duckdb.connect(str(warehouse))
        try:
            cur = con  # not a cursor: a sink's connection may have USEd its attached file
            cur.execute("select count(*) from information_schema.tables "
                        "where table_schema = ? and table_name = ?",
                        [ledger.SCHEMA, ledger.SUPPRESSED.split(".")[1]])  # fmt: skip
            # fetchall, not fetchone: a result not read to its end keeps its transaction open
            # on the live process's long-lived connection, and an open transaction stops
            # every checkpoint (the WAL and DuckDB's memory then grow for as long as it runs)
            hashes = ledger.suppressed(cur) if cur.fetchall()[0][0] else {}
        finally:
            if own:
                con.close()
        key = salt.load(warehouse)
        consent = None
        from privacy import consent as consenting

        if (mode := consenting.mode_from_env()) != "keep":
            key = key or salt.load(warehouse, create=True)
            assert key is not None
            own = con is None
            con = duckdb.connect(str(warehouse)) if own else con
            try:
                consent = consenting.Consent.from_duckdb(con, mode, key)
            finally:
                if own:
                    con.close()
        if hashes and key is None:
            from loader.errors import ConfigError

            raise ConfigError(
                f"{ledger.SUPPRESSED} lists ids but the salt is missing: set "
                f"{salt.ENV} or restore {salt.key_file(warehouse)}"
            )
        return cls(key, hashes, consent)

    def __len__(self) -> int:
        """How many hashes are listed (and 1 when a consent mode is on): 0, nothing to do."""
        return len(self._hashes) + (self.consent is not None)

    def update(self, changes: Mapping[str, Any]) -> None:
        """hash -> before (None: always); ``{"lift": hash}`` lifts a suppression (all hashes
        are re-read by the caller then, see ``replace``)."""
        with self._lock:
            hashes = dict(self._hashes)
            for h, before in changes.items():
                if h == "lift":
                    continue
                hashes[h] = before
            self._hashes, self._verdicts = hashes, {}

    def replace(self, hashes: Mapping[str, datetime | None], key: bytes | None = None) -> None:
        with self._lock:
            self._hashes, self._verdicts = dict(hashes), {}
            if key is not None:
                self.key = key

    def verdict(self, value: str) -> Verdict:
        verdicts = self._verdicts
        got = verdicts.get(value, _NOT)
        if got is not _NOT or value in verdicts:
            return got
        if len(verdicts) > _CACHE_LIMIT:
            verdicts.clear()
        assert self.key is not None
        h = hash_id(self.key, value)
        got = self._hashes.get(h, _NOT)
        verdicts[value] = got
        return got

    def _drops(self, verdict: Verdict, at: datetime | None) -> bool:
        if verdict is _NOT:
            return False
        if verdict is None or verdict is True:
            return True
        return at is None or not isinstance(verdict, datetime) or at <= verdict

    def __call__(self, item: Any) -> Any:
        if self.consent is not None:
            item = self.consent(self._suppress(item))
            return item
        return self._suppress(item)

    def _suppress(self, item: Any) -> Any:
        if not self._hashes or item is None:
            return item
        if isinstance(item, dict):
            at = item.get("collector_tstamp")
            for column in ID_COLUMNS:
                value = item.get(column)
                if value and self._drops(self.verdict(value), at):
                    METRICS.add(events_suppressed=1)
                    return None
            return item
        if isinstance(item, FailedEvent):
            return None if self._raw_suppressed(item) else item
        if isinstance(item, Chunk):
            return self._chunk(item)
        return item

    def _raw_suppressed(self, failed: FailedEvent) -> bool:
        for token in set(_TOKEN_RE.findall(failed.raw[:65536])):
            for value in {token, urllib.parse.unquote_plus(token)}:
                if self._drops(self.verdict(value), failed.failed_at):
                    METRICS.add(events_suppressed=1)
                    return True
        return False

    def _chunk(self, chunk: Chunk) -> Chunk:
        table = chunk.table
        drop: pa.ChunkedArray | pa.Array | None = None
        if table.num_rows:
            tstamps = table.column("collector_tstamp")
            for column in ID_COLUMNS:
                if column not in table.column_names:
                    continue
                values = table.column(column)
                always, timed = [], []
                for value in pc.unique(values).to_pylist():
                    if value:
                        v = self.verdict(value)
                        if v is None or v is True:
                            always.append(value)
                        elif isinstance(v, datetime):
                            timed.append((value, v))
                masks = []
                if always:
                    masks.append(pc.is_in(values, value_set=pa.array(always, pa.string())))
                for value, before in timed:
                    upto = pa.scalar(before, tstamps.type)
                    masks.append(pc.and_(pc.equal(values, value), pc.less_equal(tstamps, upto)))
                for mask in masks:
                    mask = pc.fill_null(mask, False)
                    drop = mask if drop is None else pc.or_(drop, mask)
        failed = [(i, f) for i, f in zip(chunk.failed_items, chunk.failed, strict=True)
                  if not self._raw_suppressed(f)]  # fmt: skip
        if drop is None and len(failed) == len(chunk.failed):
            return chunk
        keep = pc.invert(drop) if drop is not None else None
        dropped = 0 if drop is None else int(pc.sum(drop).as_py() or 0)
        if dropped:
            METRICS.add(events_suppressed=dropped)
        return Chunk(
            table.filter(keep) if keep is not None else table,
            [f for _, f in failed],
            chunk.good_items.filter(keep) if keep is not None else chunk.good_items,
            [i for i, _ in failed],
        )
