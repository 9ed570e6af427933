"""The privacy schema: the audit of forget requests and the suppression list.

Both hold salted hashes (``privacy.salt``), never an id. One row per request in
``privacy.forget_requests``; its ``status`` is ``running`` until the last step commits, and
``rows_removed`` (JSON, table -> rows) and ``stopped_at`` are written after each table, in the
same transaction as that table's delete: a request killed halfway says where it stopped, and
running it again resumes there. ``privacy.suppressed_ids`` lists the hashes whose events the
loader drops: all of them (``before`` null, the suppress modes) or only those collected before
the request (``before`` set: a delete-only request's events still in the collector's spool).

Statements use ``?`` parameters only (DuckDB, and Snowflake's connector with
``paramstyle='qmark'``): an id never becomes SQL.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SCHEMA = "privacy"
REQUESTS = f"{SCHEMA}.forget_requests"
SUPPRESSED = f"{SCHEMA}.suppressed_ids"

DDL = (
    f"create schema if not exists {SCHEMA}",
    f"""create table if not exists {REQUESTS} (
        request_id varchar,
        id_hash varchar,
        id_kind varchar,
        mode varchar,
        requested_at timestamp,
        completed_at timestamp,
        status varchar,
        stopped_at varchar,
        ids_resolved integer,
        rows_removed varchar
    )""",
    f"""create table if not exists {SUPPRESSED} (
        id_hash varchar,
        request_id varchar,
        suppressed_at timestamp,
        before timestamp
    )""",
)

RUNNING, DONE, NOTHING = "running", "done", "nothing found"


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class Request:
    id_hash: str
    id_kind: str
    mode: str
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    requested_at: datetime = field(default_factory=now)
    completed_at: datetime | None = None
    status: str = RUNNING
    stopped_at: str | None = None
    ids_resolved: int = 0
    rows_removed: dict[str, int] = field(default_factory=dict)

    def row(self) -> list[Any]:
        return [self.request_id, self.id_hash, self.id_kind, self.mode, self.requested_at,
                self.completed_at, self.status, self.stopped_at, self.ids_resolved,
                json.dumps(self.rows_removed)]  # fmt: skip


COLUMNS = ("request_id", "id_hash", "id_kind", "mode", "requested_at", "completed_at", "status",
           "stopped_at", "ids_resolved", "rows_removed")  # fmt: skip


def ensure(cur: Any) -> None:
    for statement in DDL:
        cur.execute(statement)


def insert(cur: Any, request: Request) -> None:
    marks = ", ".join("?" for _ in COLUMNS)
    cur.execute(f"insert into {REQUESTS} ({', '.join(COLUMNS)}) values ({marks})", request.row())


def update(cur: Any, request: Request) -> None:
    cur.execute(
        f"update {REQUESTS} set completed_at = ?, status = ?, stopped_at = ?, ids_resolved = ?, "
        "rows_removed = ? where request_id = ?",
        [request.completed_at, request.status, request.stopped_at, request.ids_resolved,
         json.dumps(request.rows_removed), request.request_id],
    )  # fmt: skip


def _request(row: Sequence[Any]) -> Request:
    values = dict(zip(COLUMNS, row, strict=True))
    values["rows_removed"] = json.loads(values["rows_removed"] or "{}")
    return Request(**values)


def unfinished(cur: Any, id_hash: str, mode: str) -> Request | None:
    """The request for this id and mode that a crash left running, if any: resume it."""
    cur.execute(
        f"select {', '.join(COLUMNS)} from {REQUESTS} "
        "where id_hash = ? and mode = ? and status = ? order by requested_at desc limit 1",
        [id_hash, mode, RUNNING],
    )
    rows = cur.fetchall()  # read to the end: a pending result holds its transaction open
    return _request(rows[0]) if rows else None


def requests(cur: Any) -> list[Request]:
    cur.execute(f"select {', '.join(COLUMNS)} from {REQUESTS} order by requested_at")
    return [_request(r) for r in cur.fetchall()]


def suppress(cur: Any, hashes: Sequence[str], request_id: str,
             before: datetime | None) -> None:  # fmt: skip
    if hashes:
        cur.executemany(
            f"insert into {SUPPRESSED} values (?, ?, ?, ?)",
            [[h, request_id, now(), before] for h in hashes],
        )


def unsuppress(cur: Any, id_hash: str) -> int:
    """Lift the suppression of an id and of the devices suppressed with it (same request)."""
    cur.execute(
        f"select count(*) from {SUPPRESSED} where request_id in "
        f"(select request_id from {SUPPRESSED} where id_hash = ?)",
        [id_hash],
    )
    count = int(cur.fetchall()[0][0])
    cur.execute(
        f"delete from {SUPPRESSED} where request_id in "
        f"(select request_id from {SUPPRESSED} where id_hash = ?)",
        [id_hash],
    )
    return count


def suppressed(cur: Any) -> dict[str, datetime | None]:
    """hash -> drop its events collected up to this moment (None: all of them)."""
    cur.execute(f"select id_hash, before from {SUPPRESSED}")
    out: dict[str, datetime | None] = {}
    for id_hash, before in cur.fetchall():
        if id_hash in out and (out[id_hash] is None or before is None):
            out[id_hash] = None
        else:
            out[id_hash] = before if id_hash not in out else max(out[id_hash], before)
    return out
