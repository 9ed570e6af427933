"""Forget inside the live process (``persona serve``), which holds the DuckDB file: one writer
(ARCHITECTURE.md, decision 10). ``POST /v1/forget`` runs ``LiveForget.forget`` on the API's
thread pool:

1. it takes ``exclusive`` (the refresh loop holds it while dbt runs and the batch sync writes),
2. pauses the loader between two batches (``gate``: the loader holds it from the first item
   of a batch to its commit), so nothing validated before the request can be written after it,
3. runs ``privacy.forget.forget`` on the process's connection, and updates the loader's
   suppression step before the loader goes on (events of the ids still in the collector's
   spool are dropped when read),
4. drops the ids' stream attribute state and every online-store key about them,
5. republishes the read-only snapshot, if there is one, and lets the loader go.

A request waits at most ``timeout`` seconds for the loader and the refresh, then fails with
nothing changed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from loader.errors import ConfigError
from privacy import forget as fg
from privacy import ledger, salt
from privacy.suppression import Suppression
from serving.errors import ServingError

log = logging.getLogger("persona.privacy.live")


class Busy(ServingError):
    """The loader or the refresh did not pause in time: nothing was changed."""

    status = 503


class LoaderGate:
    """Held by the loader's thread while a batch is open; a forget waits for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held = False  # by the loader's thread (only it reads and writes this)

    def enter(self) -> None:
        if not self._held:
            self._lock.acquire()
            self._held = True

    def between(self) -> None:
        if self._held:
            self._held = False
            self._lock.release()

    @contextmanager
    def paused(self, timeout: float) -> Iterator[None]:
        if not self._lock.acquire(timeout=timeout):
            raise Busy(f"the loader did not reach the end of its batch in {timeout:.0f} s")
        try:
            yield
        finally:
            self._lock.release()


class LiveForget:
    def __init__(
        self, warehouse: str, con: Any, store: Any, engine: Any,
        after: Callable[[], object] | None = None, timeout: float = 120.0,
    ) -> None:  # fmt: skip
        self.warehouse, self.con, self.store, self.engine = warehouse, con, store, engine
        self.after, self.timeout = after, timeout
        self.gate = LoaderGate()
        self.exclusive = threading.Lock()
        self.suppression = Suppression.from_duckdb(warehouse, con)

    def step(self, item: Any) -> Any:
        """The loader's suppression step (``Validate.suppression``), which also opens the
        batch's hold on the gate."""
        self.gate.enter()
        return self.suppression(item)

    def between(self) -> None:
        """``pipeline.run(between=...)``: no batch open."""
        self.gate.between()

    def _on_suppress(self, changes: dict[str, Any]) -> None:
        if "lift" in changes:  # re-read: the lifted request's other hashes went too
            self.suppression.replace(ledger.suppressed(self.con.cursor()))
        else:
            self.suppression.update(changes)

    def run_alone(self, work: Callable[[Any], Any]) -> Any:
        """``work(connection)`` with the refresh and the loader paused, as a forget runs: the
        live mode's daily retention step is
        ``forgetter.run_alone(lambda con: retention.apply(con, rules))``, then a full refresh
        (``privacy.retention.refresh``) when anything was deleted."""
        if not self.exclusive.acquire(timeout=self.timeout):
            raise Busy(f"the refresh did not finish in {self.timeout:.0f} s")
        try:
            with self.gate.paused(self.timeout):
                return work(self.con)
        finally:
            self.exclusive.release()

    def forget(self, body: Any) -> dict[str, Any]:
        target, mode = parse(body)
        key = salt.load(self.warehouse, create=True)
        assert key is not None
        if self.suppression.key is None:
            self.suppression.key = key
        if not self.exclusive.acquire(timeout=self.timeout):
            raise Busy(f"the refresh did not finish in {self.timeout:.0f} s")
        try:
            with self.gate.paused(self.timeout):
                cur = self.con.cursor()
                ledger.ensure(cur)
                resolved = fg.resolve(cur, [target.value]).ids if mode != "unsuppress" else set()
                outcome = fg.forget(self.con, target, mode, key, on_suppress=self._on_suppress)
                online = 0
                if mode in fg.DELETES:
                    stream = self.engine.forget(resolved) if self.engine is not None else 0
                    online = self.store.forget(resolved)
                    log.info("forget: %d stream states, %d online keys dropped", stream, online)
                if self.after is not None and mode in fg.DELETES:
                    self.after()
        finally:
            self.exclusive.release()
        r = outcome.request
        return {"request_id": r.request_id, "status": r.status, "mode": r.mode,
                "id_hash": r.id_hash, "ids_resolved": r.ids_resolved,
                "rows_removed": r.rows_removed, "online_keys_removed": online,
                "summary": outcome.line()}  # fmt: skip

    def status(self) -> list[dict[str, Any]]:
        cur = self.con.cursor()
        ledger.ensure(cur)
        return [{"request_id": r.request_id, "id_hash": r.id_hash, "id_kind": r.id_kind,
                 "mode": r.mode, "requested_at": r.requested_at, "completed_at": r.completed_at,
                 "status": r.status, "rows_removed": r.rows_removed}
                for r in ledger.requests(cur)]  # fmt: skip


def parse(body: Any) -> tuple[fg.Ids, str]:
    """``{"kind": "user_id", "id": "...", "mode": "suppress_with_delete"}``."""
    if not isinstance(body, dict):
        raise ConfigError('a JSON object: {"kind": "user_id", "id": "..."}')
    kind = body.get("kind", "user_id")
    value = body.get("id")
    mode = body.get("mode", "suppress_with_delete")
    if kind not in fg.KINDS:
        raise ConfigError(f"kind: one of {', '.join(fg.KINDS)}")
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("id: a non-empty string")
    if mode not in fg.MODES:
        raise ConfigError(f"mode: one of {', '.join(fg.MODES)}")
    return fg.Ids(kind, value), mode
