"""``persona mcp``: an MCP server (the ``mcp`` SDK) whose read-only tools let an assistant ask
what Persona knows of a user — context, recommendations, segments and why, anomalies.

    persona mcp                                        # stdio: an MCP host launches it
    persona mcp --transport http --listen 127.0.0.1:8765   # streamable HTTP at /mcp

**What it reads.** The warehouse, read-only: the live process's published snapshot
(``warehouse.snapshot.duckdb``, ``serving.snapshot``) when there is one, else the DuckDB file
itself (``PERSONA_DUCKDB``; ``--warehouse`` to name either). It never holds the file open
between calls (a reader would block ``persona serve`` from starting on it): each load or query
opens it read-only and closes it. On the first call, and whenever the file changes (a new
snapshot), the serving tables are synced into an in-memory online store with the live API's own
code (``serving.batch.BatchSync``), so ``recommend`` and the context are ``Api.decide``'s answer
— the served rule set, scored by the udfs core — and the narrative is ``serving.context``'s.

**Auth.** Over HTTP every request needs ``Authorization: Bearer $PERSONA_API_TOKEN`` (the API's
token, compared in constant time; the process refuses to start without it). Over stdio there
is no network peer: the MCP host that spawns the process is the client, with the OS user's
rights (who can read the warehouse file anyway), so no token is asked.

**Privacy.** Tools take a raw id (``user_id`` or ``domain_userid``) or a pseudonym they gave
out (``user-…``, ``device-…``), and answer with pseudonyms only (``serving.context``: the
same salt as the API's over the same ``--state-dir``); no IPs, e-mails or raw ids.
"""

from __future__ import annotations

import argparse
import functools
import hmac
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import orjson

from loader.errors import ConfigError, PersonaError
from serving.batch import ROOT, BatchSync, batch_key, builtin_groups
from serving.context import Pseudonyms, load_salt, narrative, scrub_text, session_facts
from serving.errors import NotFound, ServingError
from serving.event_logs import BUILTIN_LOG
from serving.snapshot import snapshot_path

# How many of a session's last events the context tells (the built-in log's bound).
CONTEXT_EVENTS = BUILTIN_LOG.max_events


def default_warehouse() -> Path:
    warehouse = Path(os.environ.get("PERSONA_DUCKDB", "warehouse.duckdb"))
    snapshot = snapshot_path(warehouse)
    return snapshot if snapshot.exists() else warehouse


class Replica:
    """The warehouse's serving tables in an in-memory ``Api``, reloaded when the file changes
    (checked at most every ``check_seconds``)."""

    def __init__(self, warehouse: Path, state_dir: Path | None, schema: str = "derived",
                 check_seconds: float = 2.0) -> None:  # fmt: skip
        self.warehouse = warehouse
        self.schema = schema
        self.check_seconds = check_seconds
        self.pseudonym = Pseudonyms(load_salt(state_dir))
        self._lock = threading.Lock()
        self._api: Any = None
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._names: dict[str, str] | None = None

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if not self.warehouse.exists():
            raise NotFound(f"the warehouse {self.warehouse} does not exist (PERSONA_DUCKDB)")
        con = duckdb.connect(str(self.warehouse), read_only=True)
        try:
            yield con
        finally:
            con.close()

    def api(self) -> Any:
        with self._lock:
            now = time.monotonic()
            if self._api is None or now - self._checked >= self.check_seconds:
                self._checked = now
                st = self.warehouse.stat()
                if (st.st_ino, st.st_mtime_ns) != self._stamp:
                    self._api, self._names = self._load(), None
                    self._stamp = (st.st_ino, st.st_mtime_ns)
            return self._api

    def _load(self) -> Any:
        from serving.service import Api, new_registry
        from serving.stores.memory import MemoryStore
        from serving.stream import StreamEngine

        store = MemoryStore()
        sync = BatchSync(store, self.schema)
        with self.connect() as con:
            sync.sync(con)
        registry = new_registry()
        if sync.profile_fields:
            registry.add_builtin(builtin_groups(sync.profile_fields)[:1])
        engine = StreamEngine(store)
        engine.set_groups(registry.stream_groups())
        api = Api(registry, store, engine)
        api.pseudonyms = self.pseudonym
        return api

    def resolve(self, who: str) -> tuple[str, str | None]:
        """(user_id, domain_userid or None) for a raw id or a pseudonym given out."""
        if who.startswith(("user-", "device-")):
            if self._names is None:
                self._names = self._pseudonyms()
            who = self._names.get(who, who)
        api = self.api()
        if api.store.get(batch_key("profiles", who)) is not None:
            return who, None
        user = api.user_of(who)
        if user != who or api.store.get(batch_key("profiles", user)) is not None:
            return user, who
        with self.connect() as con:
            seen = con.execute(
                "select 1 from atomic.events where domain_userid = ? or user_id = ? limit 1",
                [who, who],
            ).fetchall()
        if not seen:
            raise NotFound(f"no user or device {who!r} in the warehouse")
        return who, who

    def _pseudonyms(self) -> dict[str, str]:
        with self.connect() as con:
            users = con.execute(f"select user_id from {self.schema}.profiles").fetchall()
            devices = con.execute(
                f"select device_id from {self.schema}.identity_map "
                "where device_id_type = 'domain_userid'"
            ).fetchall()
        names = {self.pseudonym("user", u): u for (u,) in users}
        names.update((self.pseudonym("device", d), d) for (d,) in devices)
        return names

    def latest_session(self, user: str, device: str | None) -> tuple[str | None, list[Any]]:
        """The user's latest session and its last events (oldest first), as the built-in
        event log projects them."""
        cols = sorted(BUILTIN_LOG.columns)
        with self.connect() as con:
            existing = {r[0] for r in con.execute(
                "select column_name from information_schema.columns "
                "where table_schema = 'atomic' and table_name = 'events'").fetchall()}  # fmt: skip
            cols = [c for c in cols if c in existing]
            devices = [device] if device else [r[0] for r in con.execute(
                f"select device_id from {self.schema}.identity_map where user_id = ? "
                "and device_id_type = 'domain_userid'", [user]).fetchall()]  # fmt: skip
            got = con.execute(
                "select domain_sessionid from atomic.events where (user_id = ? or domain_userid "
                "in (select unnest(?::varchar[]))) and domain_sessionid is not null "
                "order by collector_tstamp desc limit 1",
                [user, devices or [user]],
            ).fetchall()
            if not got:
                return None, []
            session = got[0][0]
            quoted = ", ".join('"' + c.replace('"', '""') + '"' for c in cols)
            cur = con.execute(  # each event once: the loader is at-least-once
                f"select {quoted} from atomic.events where domain_sessionid = ? "
                f"qualify row_number() over (partition by event_id order by collector_tstamp) = 1 "
                f"order by collector_tstamp desc limit {CONTEXT_EVENTS}",
                [session],
            )
            names = [d[0] for d in cur.description]
            events = [dict(zip(names, row, strict=True)) for row in cur.fetchall()][::-1]
        return session, events


def user_context(replica: Replica, user: str, max_tokens: int | None = None) -> str:
    user_id, device = replica.resolve(user)
    session, events = replica.latest_session(user_id, device)
    api = replica.api()
    if events:  # the session's items so far, for decide's live scoring
        api.stream.observe(events, pending=False)
    entries = [e for e in (BUILTIN_LOG.entry(ev) for ev in events) if e is not None]
    facts = session_facts(api, session, entries, device=device, user=user_id)
    return narrative(facts, entries, replica.pseudonym, max_tokens=max_tokens)


def recommend(replica: Replica, user: str | None, items: list[str], k: int) -> dict[str, Any]:
    api = replica.api()
    request: dict[str, Any] = {"items": items, "k": k}
    if user:
        request["user_id"], device = replica.resolve(user)
        if device:
            request["domain_userid"] = device
    else:  # no visitor: the items alone, as for a brand-new one
        request["domain_sessionid"] = "persona-mcp-anonymous"
    recs = api.decide(request)["recommendations"]
    return {"items": recs["items"], "strategy": recs["strategy"],
            "rule_set_version": recs["rule_set_version"], "as_of": recs["as_of"]}  # fmt: skip


def segment_rules() -> dict[str, dict[str, Any]]:
    """The segments as data (dbt_project.yml's ``segments`` var, which the models compile)."""
    import yaml

    doc = yaml.safe_load((ROOT / "dbt_project.yml").read_text())
    return {s["name"]: s for s in (doc.get("vars") or {}).get("segments") or []}


_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    "in": lambda a, b: a in b, "not in": lambda a, b: a not in b,
    "between": lambda a, b: b[0] <= a <= b[1],
    "is null": lambda a, b: (a is None) == bool(b),
}  # fmt: skip


def _conditions(where: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    for column, condition in where.items():
        if isinstance(condition, dict):
            for op, value in condition.items():
                yield column, op.lower(), value
        elif isinstance(condition, list):
            yield column, "in", condition
        else:
            yield column, "=", condition


def _holds(op: str, have: Any, want: Any) -> bool:
    if have is None and op != "is null":
        return False
    try:
        if isinstance(have, int | float) and not isinstance(have, bool):
            want = [float(w) for w in want] if isinstance(want, list) else float(want)
            have = float(have)
        return bool(_OPS[op](have, want))
    except (TypeError, ValueError, KeyError):
        return False


def explain_segment(replica: Replica, user: str, segment: str) -> dict[str, Any]:
    rules = segment_rules()
    if segment not in rules:
        raise NotFound(f"segment {segment!r} is not defined (one of {', '.join(sorted(rules))})")
    user_id, _ = replica.resolve(user)
    api = replica.api()
    profile = api.store.get(batch_key("profiles", user_id))
    values = orjson.loads(profile) if profile else {}
    membership = api.store.get(batch_key("segments", user_id))
    member = segment in (orjson.loads(membership)["segments"] if membership else [])
    rule = rules[segment]
    checks = []
    for part, wheres in (("all of", [rule["where"]] if rule.get("where") else []),
                         ("any of", rule.get("any") or [])):  # fmt: skip
        for where in wheres:
            for column, op, want in _conditions(where):
                have = values.get(column)
                checks.append({"group": part, "condition": f"{column} {op} {want!r}",
                               "value": have, "holds": _holds(op, have, want)})  # fmt: skip
    return {
        "user": replica.pseudonym("user", user_id), "segment": segment,
        "description": rule.get("description"), "member": member,
        "profile_as_of": values.get("as_of"), "conditions": checks,
        "note": "membership is the warehouse's (derived.segment_membership, as of the last "
        "refresh); conditions are evaluated here on the same profile row",
    }  # fmt: skip


def list_segments(replica: Replica) -> list[dict[str, Any]]:
    with replica.connect() as con:
        rows = con.execute(
            f"select d.segment, d.description, d.definition, count(m.user_id) "
            f"from {replica.schema}.segment_definitions d left join "
            f"{replica.schema}.segment_membership m using (segment) group by all order by 1"
        ).fetchall()
    return [{"segment": s, "description": d, "definition": q, "members": n}
            for s, d, q, n in rows]  # fmt: skip


def recent_anomalies(replica: Replica, limit: int = 20,
                     detector: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    with replica.connect() as con:
        cur = con.execute(
            f"select detector, subject, bucket_start, observed, expected, score, severity, "
            f"reason from {replica.schema}.anomalies where ? is null or detector = ? "
            f"order by bucket_start desc, detector, subject limit ?",
            [detector, detector, max(1, min(limit, 200))],
        )
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    for row in rows:  # a behaviour anomaly's subject is a device
        if row["detector"] == "behaviour":
            row["subject"] = replica.pseudonym("device", row["subject"])
        row["bucket_start"] = str(row["bucket_start"])
        row["reason"] = scrub_text(str(row["reason"] or ""))
        for k in ("observed", "expected", "score"):
            row[k] = None if row[k] is None else float(row[k])
    return rows


def _told(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A tool whose ``ServingError`` (an unknown user or segment...) reaches the assistant as
    its message; any other failure stays in the server's log."""
    from mcp.server.mcpserver.exceptions import ToolError

    @functools.wraps(fn)
    def tool(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ServingError as exc:
            raise ToolError(str(exc)) from exc

    return tool


def build(replica: Replica, token: str | None = None) -> Any:
    """The MCP server; with ``token``, every HTTP request needs it as a bearer token."""
    from mcp.server import MCPServer
    from mcp.server.auth.provider import AccessToken
    from mcp.server.auth.settings import AuthSettings
    from pydantic import AnyHttpUrl

    class Bearer:
        async def verify_token(self, given: str) -> AccessToken | None:
            if token and hmac.compare_digest(given.encode(), token.encode()):
                return AccessToken(token=given, client_id="persona", scopes=[])
            return None

    server = MCPServer(
        "persona",
        instructions="Read-only answers from Persona's warehouse: a user's context, "
        "recommendations, segments and why, anomalies. Ids are pseudonyms (user-…, device-…); "
        "pass them back as they are.",
        token_verifier=Bearer() if token is not None else None,
        auth=None if token is None else AuthSettings(
            issuer_url=AnyHttpUrl("http://127.0.0.1"), resource_server_url=None),
    )  # fmt: skip

    @server.tool()
    @_told
    def get_user_context(user: str, max_tokens: int | None = None) -> str:
        """What Persona knows of a user, as short factual text for an LLM: their latest
        session's events, profile (lifecycle, RFM, interests), segments and recommendations.
        `user`: a user_id, domain_userid or pseudonym; `max_tokens`: a size budget."""
        return user_context(replica, user, max_tokens)

    @server.tool()
    @_told
    def recommend_items(user: str | None = None, items: list[str] | None = None,
                        k: int = 10) -> dict[str, Any]:  # fmt: skip
        """Recommendations from the served rule set, scored live: for a user (their affinities
        and latest session) and/or a set of items (e.g. a cart or the page's products)."""
        return recommend(replica, user, items or [], k)

    @server.tool()
    @_told
    def explain_segment_membership(user: str, segment: str) -> dict[str, Any]:
        """Why a user is (or is not) in a segment: its definition's conditions, each with the
        user's profile value and whether it holds."""
        return explain_segment(replica, user, segment)

    @server.tool()
    @_told
    def segments() -> list[dict[str, Any]]:
        """Every segment: description, definition and how many users are in it."""
        return list_segments(replica)

    @server.tool()
    @_told
    def anomalies(limit: int = 20, detector: str | None = None) -> list[dict[str, Any]]:
        """The latest flagged anomalies (traffic, behaviour, data_quality), newest first."""
        return recent_anomalies(replica, limit, detector)

    return server


def parser(prog: str = "persona mcp") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="An MCP server with read-only tools over the warehouse (the live "
        "process's snapshot if there is one). HTTP needs PERSONA_API_TOKEN as a bearer token.",
    )
    p.add_argument("--transport", choices=("stdio", "http"), default="stdio",
                   help="stdio (an MCP host launches this process; the default) or http "
                   "(streamable HTTP at /mcp)")  # fmt: skip
    p.add_argument("--listen", default="127.0.0.1:8765", help="HOST:PORT for http")
    p.add_argument("--warehouse", default=None,
                   help="a DuckDB file, opened read-only (default: PERSONA_DUCKDB's snapshot "
                   "if it exists, else PERSONA_DUCKDB)")  # fmt: skip
    p.add_argument(
        "--state-dir",
        default=".persona/serving",
        help="where the pseudonyms' salt is (the API's; .persona/serving)",
    )
    p.add_argument("--schema", default="derived", help="the models' schema (derived)")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "persona mcp") -> int:
    from serving.live import parse_listen

    args = parser(prog).parse_args(argv)
    try:
        warehouse = Path(args.warehouse) if args.warehouse else default_warehouse()
        replica = Replica(warehouse, Path(args.state_dir), args.schema)
        if args.transport == "stdio":
            build(replica).run("stdio")
            return 0
        host, port = parse_listen(args.listen)
        token = os.environ.get("PERSONA_API_TOKEN", "")
        if not token:
            raise ConfigError("persona mcp --transport http: set PERSONA_API_TOKEN (the API's "
                              "token; clients send it as a bearer token)")  # fmt: skip
        build(replica, token).run("streamable-http", host=host, port=port)
        return 0
    except PersonaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
