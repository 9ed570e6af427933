"""The refresh plan: the SQL one dbt run of the realtime models executed, replayed between dbt
runs.

A refresh of the realtime models on a small increment spends most of its time in dbt, not in
DuckDB: 2.1 s per cycle on the demo warehouse against 0.5 s for the same statements run
directly (measured: ``python -m bench serving``, BENCHMARKS.md). That overhead alone would
break the live API's freshness goal (an event reflected in profiles within 2 s). The SQL a run
executes does not depend on when it runs: every watermark, scope and clock is a subquery
evaluated by the warehouse (macros/incremental/, macros/domain/as_of.sql), not a literal dbt
rendered. So the live process lets dbt plan and run a refresh, records what it executed (dbt's
``SQLQuery`` events, through ``dbtRunner``'s callbacks), and replays those statements on the
next cycles, in the order dbt ran them, in one transaction.

dbt stays the only author of the SQL: a replay that fails (a table dropped, a column dbt
would have added) rolls its model back and the refresh falls back to dbt, which records a new
plan; so does a change of ``atomic.events``' columns (a new entity) and the periodic dbt run.
``tests/serving/test_plan.py`` holds replayed cycles equal to dbt cycles on the same events.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("persona.serving.plan")

# Nodes whose SQL is replayed: models, snapshots and the run's hooks. Tests are never in a
# refresh; seeds load rows with bound parameters the events do not carry.
_REPLAYED = ("model.", "snapshot.", "operation.")
_TRANSACTION = re.compile(r"^\s*(begin|commit|rollback)\s*;?\s*$", re.IGNORECASE)
# A run that changed a table's columns (on_schema_change) did it once: its SQL is no plan.
_SCHEMA_CHANGE = re.compile(r"\balter\s+table\s+\S+\s+(add|drop|alter)\s+column\b",
                            re.IGNORECASE)  # fmt: skip


@dataclass
class Step:
    """One dbt node: its statements, as dbt sent them, in order."""

    node: str
    statements: list[str] = field(default_factory=list)

    @property
    def script(self) -> str:
        """The statements as one script, run by one ``execute``: each call from Python gives
        up the GIL and waits to take it back (up to the 5 ms switch interval while the API's
        threads hold it); a served refresh is 84 statements of 13 models (one script each
        saved 10-15 % of the replay: ``python -m bench refresh``). A statement may end in a
        ``--`` comment: the separator starts a line."""
        return "\n;\n".join(self.statements)


class PlanRecorder:
    """A ``dbtRunner`` callback collecting the statements of each node of one invocation."""

    def __init__(self) -> None:
        self._steps: dict[str, Step] = {}
        self._lock = threading.Lock()  # dbt runs nodes on several threads

    def __call__(self, msg: Any) -> None:
        if msg.info.name != "SQLQuery":
            return
        node = msg.data.node_info.unique_id
        sql = msg.data.sql
        if not node.startswith(_REPLAYED) or _TRANSACTION.match(sql):
            return
        with self._lock:
            self._steps.setdefault(node, Step(node)).statements.append(sql)

    def take(self) -> list[Step]:
        """The steps recorded so far, in the order their first statement ran (a node starts
        only after the nodes it reads have finished, so this order respects the DAG), and a
        fresh start for the next invocation."""
        with self._lock:
            steps, self._steps = list(self._steps.values()), {}
        return steps


def changes_schema(steps: list[Step]) -> bool:
    return any(_SCHEMA_CHANGE.search(sql) for step in steps for sql in step.statements)


@dataclass
class Plan:
    steps: list[Step]
    fingerprint: tuple[Any, ...]  # what the SQL was planned against (atomic.events' columns)
    recorded_at: float = field(default_factory=time.time)

    def replay(self, cursor: Callable[[], Any], only: set[str] | None = None) -> float:
        """Runs every step (of the nodes in ``only``, when given) in order, all of them in one
        transaction on a fresh cursor (dbt's temporary tables live and die with it): what
        reads the warehouse meanwhile (the snapshot's copy, the batch sync, a user's SQL)
        sees the models before the refresh or after it, never half of it, and the refresh
        commits (and fsyncs) once. A failing step rolls the whole refresh back and is
        re-raised. Returns seconds."""
        started = time.perf_counter()
        cur = cursor()
        node = ""
        try:
            cur.execute("begin")
            for step in self.steps:
                if only is not None and step.node not in only:
                    continue
                node = step.node
                cur.execute(step.script)
            node = "commit"
            cur.execute("commit")
        except Exception as exc:
            # the failure may have ended the transaction already
            with contextlib.suppress(Exception):
                cur.execute("rollback")
            raise PlanFailed(f"{node}: {exc}") from exc
        finally:
            cur.close()
        return time.perf_counter() - started


def upstream(nodes: Mapping[str, Any], targets: set[str]) -> set[str]:
    """``targets`` and every node they read, through dbt's manifest (``depends_on``)."""
    seen: set[str] = set()
    todo = [t for t in targets if t in nodes]
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        todo.extend(n for n in getattr(nodes[node].depends_on, "nodes", ()) if n in nodes)
    return seen


class PlanFailed(RuntimeError):
    """A replayed step failed; the caller falls back to dbt."""


def fingerprint(con: Any, schema: str = "atomic", table: str = "events") -> tuple[Any, ...]:
    """The columns of the table the plan reads with ``select *``: a new one (an entity the
    loader just added) means dbt must plan again (an incremental model's ``on_schema_change``)."""
    rows = con.execute(
        "select column_name, data_type from information_schema.columns where table_schema = ? "
        "and table_name = ? and table_catalog = current_database() order by ordinal_position",
        [schema, table],
    ).fetchall()
    return tuple(rows)
