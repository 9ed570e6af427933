"""Snowflake sink: Snowpipe Streaming (the ``snowpipe-streaming`` SDK), one channel per loader
process and source.

Each batch is appended with an offset token, the source position after its last event, and
``write`` returns only once Snowflake reports that token committed; a restarted loader asks the
channel for its latest committed token and the source resumes right after it. An event with an
entity schema the table has not seen gets its column first (``ALTER TABLE ... ADD COLUMN``,
through the connector), then the channel is reopened so the pipe sees it. Failed events go to
their own channel on ``FAILED_EVENTS``.

The SDK is fire-and-forget: ``append_rows`` returns before the server has looked at the rows,
and a row it cannot take (an unknown column, a value of the wrong type) is skipped while the
offset token still advances; the only trace is the channel status (``rows_error_count``,
``last_error_message``). So after each commit wait the sink reads the status: rows skipped by
the events table become failed events (``warehouse_rejected``, the row as JSON in ``raw``),
through a channel of their own on FAILED_EVENTS; rows the failed-events table skips stop the
loader with what to fix. A commit wait that times out leaves the append in flight: the retry
reopens the channel (which fences what the old instance left uncommitted) and appends again
only if the committed token has not reached the batch's, so a retry neither doubles nor skips.

The SDK and the connector are imported only by ``connect()``, so the rest of the loader works
without the ``snowflake`` extra. Objects and grants the sink needs: docs/snowflake.md.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from loader import offsets
from loader.batch import Batch
from loader.contract import ENTITY_COLUMN_RE, LOAD_TSTAMP, utcnow
from loader.errors import ConfigError, TerminalSinkError, TransientSinkError
from loader.failed import ErrorType, FailedEvent
from loader.sinks.snowflake_tables import add_entity_column

# SDK error codes that a person must fix; everything else is worth a retry.
_TERMINAL = {
    "SF_API_NOT_FOUND_ERROR": "the table or its pipe does not exist (docs/snowflake.md)",
    "SF_API_AUTH_ERROR": "authentication failed: check the user, key pair and role",
    "AUTH_TOKEN_ERROR": "authentication failed: check the user, key pair and role",
    "SF_API_USER_ERROR": "Snowflake refused the request: check the role's INSERT privilege "
    "on the table and OPERATE on its pipe",
    "CONFIG_ERROR": "the client configuration is incomplete (account, user, private key)",
    "INVALID_ARGUMENT": "a row or setting was rejected as invalid",
}


class Status(Protocol):
    """The part of ``snowflake.ingest.streaming.ChannelStatus`` the sink reads."""

    @property
    def rows_error_count(self) -> int: ...

    @property
    def last_error_message(self) -> str | None: ...


class Channel(Protocol):
    """The part of ``snowflake.ingest.streaming.StreamingIngestChannel`` the sink uses."""

    def append_rows(
        self, rows: list[dict[str, Any]], start_offset_token: str | None = None,
        end_offset_token: str | None = None,
    ) -> None: ...  # fmt: skip

    def get_latest_committed_offset_token(self) -> str | None: ...

    def get_channel_status(self) -> Status: ...

    def wait_for_commit(
        self, token_checker: Callable[[str | None], bool], timeout_seconds: int | None = None
    ) -> None: ...

    def close(self, drop: bool = False, wait_for_flush: bool = True) -> None: ...


class Client(Protocol):
    def open_channel(
        self, channel_name: str, offset_token: str | None = None
    ) -> tuple[Channel, Any]: ...


def _row(values: dict[str, Any]) -> dict[str, Any]:
    return {name.upper(): value for name, value in values.items() if value is not None}


def _failed_row(f: FailedEvent) -> dict[str, Any]:
    return _row({"failed_at": f.failed_at, "source": f.source, "error_type": f.error_type,
                 "message": f.message, "raw": f.raw})  # fmt: skip


def _translate(exc: Exception, what: str) -> Exception:
    code = getattr(getattr(exc, "error_code", None), "name", str(getattr(exc, "error_code", "")))
    if code in _TERMINAL:
        return TerminalSinkError(f"{what}: {_TERMINAL[code]} ({exc})")
    return TransientSinkError(f"{what}: {exc}")


@dataclass(frozen=True)
class Rejected:
    """Rows of one append that the server skipped, as the channel status reports them."""

    count: int
    message: str


class SnowflakeSink:
    """``events`` and ``failed`` are clients bound (table mode) to EVENTS and FAILED_EVENTS;
    ``add_column(name)`` runs the ALTER TABLE; ``columns`` are the table's current columns;
    ``present(event_ids)`` (optional) says which of these event ids the events table holds, so
    that only the rows the server skipped become failed events (without it, a batch with
    skipped rows is kept whole as failed events: replaying it is safe, events deduplicate)."""

    def __init__(
        self,
        events: Client,
        failed: Client,
        channel_name: str,
        columns: Iterable[str],
        add_column: Callable[[str], None],
        commit_timeout_seconds: int = 120,
        present: Callable[[list[str]], set[str]] | None = None,
    ) -> None:
        self.channel_name = channel_name
        self.columns = {c.lower() for c in columns}
        self._add_column = add_column
        self._present = present
        self.timeout = commit_timeout_seconds
        # rows the events table skips go to FAILED_EVENTS through a channel of their own, so
        # that its offset tokens say whether they were kept (retries stay idempotent)
        self._roles = {"EVENTS": (events, channel_name), "FAILED_EVENTS": (failed, channel_name),
                       "REJECTED": (failed, f"{channel_name}-rejected")}  # fmt: skip
        self._channels: dict[str, Channel] = {}
        self._channel = self._channel_for("EVENTS")
        self._channel_for("FAILED_EVENTS")
        self._suspect: set[str] = set()  # channels whose last append's fate is unknown
        self._rejected: list[FailedEvent] = []  # skipped rows not yet kept as failed events
        self.rejected_rows = 0

    @staticmethod
    def _open(client: Client, name: str) -> Channel:
        try:
            channel, _status = client.open_channel(name)
        except Exception as exc:
            raise _translate(exc, f"opening channel {name!r}") from exc
        return channel

    def committed_offset_token(self) -> str | None:
        """Where a restarted loader resumes: the token of the last batch committed whole (its
        failed events go first, so the events channel's token is the one to trust)."""
        token = self._channel.get_latest_committed_offset_token()
        return None if token is None or token.startswith("time:") else token

    def entity_columns(self) -> set[str]:
        return {c for c in self.columns if ENTITY_COLUMN_RE.fullmatch(c)}

    def write(self, batch: Batch) -> None:
        token = batch.offset_token or offsets.token("time", time.time_ns())  # rises across restarts
        if self._rejected:  # an earlier attempt's skipped rows come first
            self._keep_rejected(token)
        if batch.failed:  # first: resuming follows the events channel, which must not run ahead
            rejected = self._deliver("FAILED_EVENTS", [_failed_row(f) for f in batch.failed], token)
            if rejected:
                raise self._failed_table_rejects(rejected)
        if batch.good:
            new = [c for c in batch.entity_columns() if c not in self.columns]
            for column in new:
                if not ENTITY_COLUMN_RE.fullmatch(column):
                    raise TerminalSinkError(f"refusing to create column {column!r}")
                self._add_column(column)
                self.columns.add(column)
            if new:  # the pipe reads the table's columns when a channel opens
                self._channel.close()
                self._channel = self._channel_for("EVENTS", reopen=True)
            loaded_at = utcnow()
            rows = [_row(e) | {LOAD_TSTAMP.upper(): loaded_at} for e in batch.event_dicts()]
            rejected = self._deliver("EVENTS", rows, token)
            if rejected:
                self._rejected = self._rejected_rows(rows, rejected, token)
                self._keep_rejected(token)

    def _channel_for(self, role: str, reopen: bool = False) -> Channel:
        if reopen or role not in self._channels:
            client, name = self._roles[role]
            self._channels[role] = self._open(client, name)
        return self._channels[role]

    def _deliver(self, role: str, rows: list[dict[str, Any]], token: str) -> Rejected | None:
        """Append and wait for the commit, at most once per token; what the server skipped."""
        table = "EVENTS" if role == "EVENTS" else "FAILED_EVENTS"
        reopen = role in self._suspect  # reopening fences what the old instance left in flight
        channel = self._channel_for(role, reopen)
        self._suspect.discard(role)
        if role == "EVENTS":
            self._channel = channel
        try:
            if offsets.reached(channel.get_latest_committed_offset_token(), token):
                return None  # an earlier attempt committed it after its wait gave up
            errors_before = channel.get_channel_status().rows_error_count
            channel.append_rows(rows, end_offset_token=token)
            channel.wait_for_commit(lambda t: offsets.reached(t, token), self.timeout)
            status = channel.get_channel_status()
        except TimeoutError as exc:
            self._suspect.add(role)
            raise TransientSinkError(
                f"{table}: no commit of {token} within {self.timeout} s"
            ) from exc
        except Exception as exc:
            self._suspect.add(role)
            raise _translate(exc, f"appending {len(rows)} rows to {table}") from exc
        count = status.rows_error_count - errors_before
        return Rejected(count, status.last_error_message or "no message") if count else None

    def _rejected_rows(
        self, rows: list[dict[str, Any]], rejected: Rejected, token: str
    ) -> list[FailedEvent]:
        kept = self._present([r["EVENT_ID"] for r in rows]) if self._present else set()
        lost = [r for r in rows if r["EVENT_ID"] not in kept]
        message = (f"Snowflake skipped {rejected.count} of {len(rows)} rows of the batch up to "
                   f"{token}: {rejected.message}")  # fmt: skip
        if not self._present:
            message += " (the whole batch is kept here; replaying it is safe)"
        self.rejected_rows += rejected.count
        return [FailedEvent(json.dumps(r, default=str), ErrorType.WAREHOUSE_REJECTED, message,
                            "snowflake") for r in lost]  # fmt: skip

    def _keep_rejected(self, token: str) -> None:
        """The skipped rows as failed events, before anything else: the events channel's token
        has already moved past them, so a restart would not load them again."""
        rejected = self._deliver("REJECTED", [_failed_row(f) for f in self._rejected], token)
        self._rejected = []
        if rejected:
            raise self._failed_table_rejects(rejected)

    @staticmethod
    def _failed_table_rejects(rejected: Rejected) -> TerminalSinkError:
        return TerminalSinkError(
            f"FAILED_EVENTS rejected {rejected.count} rows ({rejected.message}): its columns "
            "must be failed_at timestamp_ntz, source, error_type, message, raw varchar "
            "(docs/snowflake.md, `persona snowflake setup`); stopping so nothing is lost"
        )

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()


def connect(uri_rest: str, channel_name: str) -> SnowflakeSink:
    """``snowflake:DATABASE.SCHEMA``: credentials from SNOWFLAKE_* variables (key-pair auth).
    Configuration is checked before anything is imported or connected."""
    import os

    database, _, schema = uri_rest.upper().partition(".")
    if not re.fullmatch(r"[A-Z_][A-Z0-9_$]*", database) or not re.fullmatch(
        r"[A-Z_][A-Z0-9_$]*", schema
    ):
        raise ConfigError(f"--sink snowflake:{uri_rest}: expected snowflake:DATABASE.SCHEMA")
    missing = [v for v in ("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_PRIVATE_KEY_PATH")
               if not os.environ.get(v)]  # fmt: skip
    if missing:
        raise ConfigError(f"--sink snowflake: set {', '.join(missing)} (key-pair auth)")
    try:
        import snowflake.connector
        from snowflake.ingest.streaming import StreamingIngestClient
    except ImportError as exc:
        raise ConfigError(
            f"--sink snowflake needs the snowflake extra (pip install -e '.[snowflake]'): {exc}"
        ) from exc
    return _connect(database, schema, channel_name, snowflake.connector, StreamingIngestClient)


def _connect(
    database: str, schema: str, channel_name: str, connector: Any, client_class: Any
) -> SnowflakeSink:  # pragma: no cover - needs an account
    import os

    from cryptography.hazmat.primitives import serialization

    passphrase = os.environ.get("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE") or None
    with open(os.environ["SNOWFLAKE_PRIVATE_KEY_PATH"], "rb") as fh:
        private = serialization.load_pem_private_key(
            fh.read(), password=passphrase.encode() if passphrase else None
        )
    # the SDK takes an unencrypted PEM; it stays in this process's memory only
    key = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    # the SDK builds no URL from the account: without `url` it stops with CONFIG_ERROR
    # "Missing host for account URL construction" (seen with the 1.9.1 wheel, offline)
    account = os.environ["SNOWFLAKE_ACCOUNT"]
    props = {
        "account": account,
        "url": os.environ.get("SNOWFLAKE_URL") or f"https://{account}.snowflakecomputing.com",
        "user": os.environ["SNOWFLAKE_USER"],
        "private_key": key,
        "role": os.environ.get("SNOWFLAKE_ROLE", "PERSONA_LOADER"),
    }
    con = connector.connect(
        account=props["account"], user=props["user"], role=props["role"],
        private_key_file=os.environ["SNOWFLAKE_PRIVATE_KEY_PATH"],
        private_key_file_pwd=passphrase,
        database=database, schema=schema,
    )  # fmt: skip
    cur = con.cursor()
    described = cur.execute(f'describe table "{database}"."{schema}"."EVENTS"')
    columns = [r[0] for r in described or ()]

    events = f'"{database}"."{schema}"."EVENTS"'

    def add_column(name: str) -> None:  # name is checked against ENTITY_COLUMN_RE by the sink
        cur.execute(add_entity_column(events, name))

    def present(event_ids: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(event_ids), 1000):
            chunk = event_ids[start : start + 1000]
            marks = ", ".join(["%s"] * len(chunk))
            cur.execute(f"select event_id from {events} where event_id in ({marks})", chunk)
            found.update(row[0] for row in cur.fetchall())
        return found

    def client(table: str) -> Any:
        return client_class.from_table(f"persona-{channel_name}-{table}", database, schema,
                                                table, properties=props)  # fmt: skip

    return SnowflakeSink(
        client("EVENTS"), client("FAILED_EVENTS"), channel_name, columns, add_column,
        present=present,
    )  # fmt: skip
