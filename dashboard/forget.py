"""Customer 360's "forget this user": what a forget deletes, counted read-only; a
confirmation (the user id typed again); then the forget, by the one process that may write.

The dashboard itself never opens the warehouse for writing. Who forgets:

- the live process, when the dashboard knows it (``PERSONA_API_URL``, token from
  ``PERSONA_API_TOKEN``): ``POST /v1/forget`` (privacy/live.py), which pauses its loader and
  refresh, deletes, forgets its online store and republishes the snapshot;
- else, when the file is free (the dashboard reads it, not a snapshot): ``persona forget`` as a
  child process, exactly as in a terminal; it takes the file for the seconds the delete takes
  and, if another process holds it meanwhile, changes nothing and says so;
- else nobody: the file is held (``persona serve`` or ``persona load``) and no live process is
  configured, and the page says what to set. On Snowflake, the analyst role may not delete:
  the page gives the command.

Ids are bound parameters or argv items, never SQL or a shell line.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import live, ui
from dashboard.source import close_run, duckdb_cursor, run_query, snapshot_path, warehouse_path

MODES = {
    "suppress_with_delete": "Delete, and drop their future events at the loader",
    "delete_only": "Delete only (their future events load again)",
}
RESULT, RESET = "forget_result", "forget_reset"
WIDGETS = ("customer_search", "customer_top", "forget_open", "forget_confirm", "forget_mode")
BUSY = 3  # persona forget's exit status when another process holds the file
OFFLINE_TIMEOUT = 3600.0  # seconds: a forget reads every table; a big warehouse takes a while
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Route:
    via: str | None  # "live", "offline", or None: the dashboard cannot forget here
    note: str


def route(source: ui.Source, endpoints: live.Endpoints) -> Route:
    if source.kind == "snowflake":
        return Route(None, "On Snowflake the dashboard's analyst role may not delete: run "
                     "`persona forget --target snowflake --user-id ID` with dbt's credentials "
                     "(docs/privacy.md).")  # fmt: skip
    if endpoints.api is not None:
        if not endpoints.token:
            return Route(None, f"The live process is at {endpoints.api}, but "
                         f"{live.TOKEN_ENV} is not set where the dashboard runs: set it to the "
                         "live process's token to forget through it.")  # fmt: skip
        return Route("live", f"Sent to the live process at {endpoints.api} (POST /v1/forget), "
                     "which holds the warehouse: it pauses its loader and refresh, deletes, "
                     "drops its online keys and republishes the snapshot.")  # fmt: skip
    if source.kind == "duckdb":
        return Route("offline", f"Runs `persona forget` on {source.location} (the file is "
                     f"free; if `persona serve` runs, set {live.API_ENV} to forget through "
                     "it).")  # fmt: skip
    return Route(None, f"{warehouse_path()} is held by another process, so the dashboard may "
                 f"not change it. If it is `persona serve`, set {live.API_ENV} and "
                 f"{live.TOKEN_ENV} (or `persona dashboard --api URL`) to forget through it; "
                 "if it is `persona load`, stop it first.")  # fmt: skip


@st.cache_data(ttl=300, show_spinner=False, max_entries=64)
def _preview(version: tuple[Any, ...], value: str, _source: ui.Source) -> dict[str, Any]:
    from privacy.forget import preview

    with contextlib.closing(duckdb_cursor(_source)) as cur:
        return asdict(preview(cur, value))


def _flag(kind: str, value: str) -> str:
    return f"--{kind.replace('_', '-')}={value}"  # one argv item: an id starting "-" stays an id


def run_offline(warehouse: Path, kind: str, value: str, mode: str,
                attempts: int = 3) -> dict[str, Any]:  # fmt: skip
    """``persona forget`` in a child process, then its audit row (read-only). Retried briefly
    when the file is busy: another page's run may have it open read-only for a moment."""
    command = [sys.executable, "-m", "persona", "forget", _flag(kind, value), "--mode", mode,
               "--warehouse", str(warehouse.resolve())]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}  # fmt: skip
    started = time.monotonic()
    close_run()  # this run's own read-only connection would keep the writer out
    for attempt in range(attempts):
        try:
            done = subprocess.run(command, capture_output=True, text=True, env=env,
                                  timeout=OFFLINE_TIMEOUT)  # fmt: skip
        except subprocess.TimeoutExpired:
            raise live.LiveError(
                f"persona forget did not finish in {OFFLINE_TIMEOUT:.0f} s and was stopped; "
                "run it again (it resumes where it stopped: `persona forget --status`)"
            ) from None
        if done.returncode != BUSY or attempt == attempts - 1:
            break
        time.sleep(0.5)
    if done.returncode != 0:
        lines = [line.removeprefix("error: ") for line in done.stderr.strip().splitlines()]
        raise live.LiveError(" ".join(lines[:3]) or f"persona forget exited {done.returncode}")
    result = {**_audit(warehouse, value), "seconds": round(time.monotonic() - started, 2)}
    if snapshot_path(warehouse).exists():  # an earlier `persona serve`'s: it still holds them
        result["note"] = (f"{snapshot_path(warehouse)}, published by an earlier `persona "
                          "serve`, still holds them: delete it, or start `persona serve` "
                          "again to publish a new one.")  # fmt: skip
    return result


def _audit(warehouse: Path, value: str) -> dict[str, Any]:
    """The newest audit row of the id (by its salted hash: the audit never holds the id)."""
    from privacy import ledger, salt

    key = salt.load(warehouse)
    if key is None:
        return {}
    source = ui.Source("duckdb", str(warehouse), "")
    rows = run_query(
        source,
        f"select request_id, status, mode, ids_resolved, rows_removed from {ledger.REQUESTS} "
        "where id_hash = ? order by requested_at desc limit 1",
        [salt.hash_id(key, value)],
    )
    close_run()
    if rows.empty:
        return {}
    row: dict[str, Any] = rows.iloc[0].to_dict()
    row["rows_removed"] = json.loads(row["rows_removed"] or "{}")
    return row


def show_result() -> None:
    """The last forget's outcome, at the top of the page (the customer is gone below)."""
    if st.session_state.pop(RESET, False):
        for key in WIDGETS:
            st.session_state.pop(key, None)
    result = st.session_state.get(RESULT)
    if not result:
        return
    removed = {t: n for t, n in (result.get("rows_removed") or {}).items() if n}
    st.success(
        f"Forgot {result['user']} ({result.get('status', 'done')}): "
        f"{sum(removed.values()):,} rows deleted from {len(removed):,} tables, "
        f"{result.get('ids_resolved', 0):,} ids resolved, {result['via']}. "
        f"Request {result.get('request_id', '?')}, audited in privacy.forget_requests with a "
        "salted hash of the id (`persona forget --status`)."
    )
    if result.get("note"):
        st.warning(result["note"])
    if removed:
        frame = pd.DataFrame(sorted(removed.items()), columns=["table", "rows deleted"])
        st.dataframe(frame, hide_index=True, column_config={
            "rows deleted": ui.count_column("rows deleted")})  # fmt: skip
    if st.button("Dismiss", key="forget_dismiss"):
        st.session_state.pop(RESULT, None)
        st.rerun()


def panel(source: ui.Source, user: str, kind: str) -> None:
    """The action, at the end of the customer's page."""
    ui.heading(
        "Forget this user",
        "Delete every row about them and every device and session stitched to them, in every "
        "table (docs/privacy.md); counted first, done only once you type their id again.",
    )
    _action(source, user, kind)
    ui.show_source(
        "Counted by `privacy.forget.preview` on the dashboard's read-only connection: the ids "
        "are resolved as `persona forget` resolves them (every device, browser and session "
        "seen with any of them), then each table's rows holding one are counted with the "
        "delete's own conditions (bound values)."
    )


def _action(source: ui.Source, user: str, kind: str) -> None:
    try:
        how = route(source, live.Endpoints.from_env())
    except live.LiveError as exc:
        st.warning(str(exc))
        return
    st.caption(how.note)
    if source.kind == "snowflake":
        return
    if not st.toggle("Show what forgetting them deletes", key="forget_open"):
        return
    shown = _preview(source.version(), user, source)
    rows = shown["rows"]
    cols = st.columns(3)
    cols[0].metric("Ids stitched to them", f"{shown['ids_resolved']:,}",
                   help="user ids, devices, browsers and sessions")  # fmt: skip
    cols[1].metric("Rows to delete", f"{sum(rows.values()):,}")
    cols[2].metric("Tables", f"{len(rows):,}")
    frame = pd.DataFrame(sorted(rows.items()), columns=["table", "rows"])
    if shown["emptied"]:
        st.caption(
            "Also emptied, and rebuilt whole from the remaining events by the next refresh: "
            + ", ".join(f"{t} ({n:,} rows)" for t, n in sorted(shown["emptied"].items()))
        )
    if source.kind == "snapshot":
        st.caption("Counted on the live process's snapshot (it may lag the warehouse a little).")
    if frame.empty:
        st.info("Nothing in the warehouse holds them.")
        return
    st.dataframe(frame, hide_index=True, column_config={"rows": ui.count_column("rows")})
    if how.via is None:
        st.info(how.note)
        return
    mode = st.radio("What to do", list(MODES), format_func=MODES.__getitem__, key="forget_mode")
    typed = st.text_input(f"Type {user} to confirm", key="forget_confirm")
    confirmed = typed == user or typed.strip() == user
    if not st.button(f"Forget {user}", type="primary", disabled=not confirmed, key="forget_go"):
        return
    if not confirmed:  # the button is disabled, but a click may still arrive: check here too
        st.warning(f"Nothing was deleted: type {user} exactly to confirm.")
        return
    try:
        with st.spinner(f"Forgetting {user}…"):
            if how.via == "live":
                endpoints = live.Endpoints.from_env()
                result = live.forget(endpoints, kind, user, mode)
                where = f"through the live process at {endpoints.api}"
            else:
                result = run_offline(Path(source.location), kind, user, mode)
                where = f"by `persona forget` on {source.location}"
    except live.LiveError as exc:
        st.error(f"{user} was not forgotten: {exc}")
        return
    st.session_state[RESULT] = {**result, "user": user, "via": where}
    st.session_state[RESET] = True
    st.cache_data.clear()  # every page reads again: they are gone
    st.rerun()
