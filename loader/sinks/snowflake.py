"""Snowflake sink: Snowpipe Streaming (the ``snowpipe-streaming`` SDK), one channel per loader
process and source.

Each batch is appended with an offset token, the source position after its last event, and
``write`` returns only once Snowflake reports that token committed; a restarted loader asks the
channel for its latest committed token and the source resumes right after it. An event with an
entity schema the table has not seen gets its column first (``ALTER TABLE ... ADD COLUMN ...
VARIANT``, through the connector), then the channel is reopened so the pipe sees it. Failed
events go to their own channel on ``FAILED_EVENTS``.

The SDK and the connector are imported only by ``connect()``, so the rest of the loader works
without the ``snowflake`` extra. Objects and grants the sink needs: docs/snowflake.md.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from loader import offsets
from loader.batch import Batch
from loader.contract import ENTITY_COLUMN_RE, LOAD_TSTAMP, utcnow
from loader.errors import ConfigError, TerminalSinkError, TransientSinkError

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


class Channel(Protocol):
    """The part of ``snowflake.ingest.streaming.StreamingIngestChannel`` the sink uses."""

    def append_rows(
        self, rows: list[dict[str, Any]], start_offset_token: str | None = None,
        end_offset_token: str | None = None,
    ) -> None: ...  # fmt: skip

    def get_latest_committed_offset_token(self) -> str | None: ...

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


def _translate(exc: Exception, what: str) -> Exception:
    code = getattr(getattr(exc, "error_code", None), "name", str(getattr(exc, "error_code", "")))
    if code in _TERMINAL:
        return TerminalSinkError(f"{what}: {_TERMINAL[code]} ({exc})")
    return TransientSinkError(f"{what}: {exc}")


class SnowflakeSink:
    """``events`` and ``failed`` are clients bound (table mode) to EVENTS and FAILED_EVENTS;
    ``add_column(name)`` runs the ALTER TABLE; ``columns`` are the table's current columns."""

    def __init__(
        self,
        events: Client,
        failed: Client,
        channel_name: str,
        columns: Iterable[str],
        add_column: Callable[[str], None],
        commit_timeout_seconds: int = 120,
    ) -> None:
        self._events, self._failed = events, failed
        self.channel_name = channel_name
        self.columns = {c.lower() for c in columns}
        self._add_column = add_column
        self.timeout = commit_timeout_seconds
        self._channel = self._open(events, channel_name)
        self._failed_channel = self._open(failed, channel_name)

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
        if batch.failed:  # first: resuming follows the events channel, which must not run ahead
            rows = [_row({"failed_at": f.failed_at, "source": f.source, "error_type": f.error_type,
                          "message": f.message, "raw": f.raw}) for f in batch.failed]  # fmt: skip
            self._append(self._failed_channel, rows, token, "FAILED_EVENTS")
        if batch.good:
            new = [c for c in batch.entity_columns() if c not in self.columns]
            for column in new:
                if not ENTITY_COLUMN_RE.fullmatch(column):
                    raise TerminalSinkError(f"refusing to create column {column!r}")
                self._add_column(column)
                self.columns.add(column)
            if new:  # the pipe reads the table's columns when a channel opens
                self._channel.close()
                self._channel = self._open(self._events, self.channel_name)
            loaded_at = utcnow()
            rows = [_row(e) | {LOAD_TSTAMP.upper(): loaded_at} for e in batch.event_dicts()]
            self._append(self._channel, rows, token, "EVENTS")

    def _append(self, channel: Channel, rows: list[dict[str, Any]], token: str, table: str) -> None:
        try:
            channel.append_rows(rows, end_offset_token=token)
            channel.wait_for_commit(lambda t: offsets.reached(t, token), self.timeout)
        except TimeoutError as exc:
            raise TransientSinkError(
                f"{table}: no commit of {token} within {self.timeout} s"
            ) from exc
        except Exception as exc:
            raise _translate(exc, f"appending {len(rows)} rows to {table}") from exc

    def close(self) -> None:
        for channel in (self._channel, self._failed_channel):
            channel.close()


def connect(
    uri_rest: str, channel_name: str
) -> SnowflakeSink:  # pragma: no cover - needs an account
    """``snowflake:DATABASE.SCHEMA``: credentials from SNOWFLAKE_* variables (key-pair auth)."""
    import os

    import snowflake.connector
    from snowflake.ingest.streaming import StreamingIngestClient

    database, _, schema = uri_rest.upper().partition(".")
    if not re.fullmatch(r"[A-Z_][A-Z0-9_$]*", database) or not re.fullmatch(
        r"[A-Z_][A-Z0-9_$]*", schema
    ):
        raise ConfigError(f"--sink snowflake:{uri_rest}: expected snowflake:DATABASE.SCHEMA")
    missing = [v for v in ("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_PRIVATE_KEY_PATH")
               if not os.environ.get(v)]  # fmt: skip
    if missing:
        raise ConfigError(f"--sink snowflake: set {', '.join(missing)} (key-pair auth)")
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
    props = {
        "account": os.environ["SNOWFLAKE_ACCOUNT"],
        "user": os.environ["SNOWFLAKE_USER"],
        "private_key": key,
        "role": os.environ.get("SNOWFLAKE_ROLE", "PERSONA_LOADER"),
    }
    con = snowflake.connector.connect(
        account=props["account"], user=props["user"], role=props["role"],
        private_key_file=os.environ["SNOWFLAKE_PRIVATE_KEY_PATH"],
        private_key_file_pwd=passphrase,
        database=database, schema=schema,
    )  # fmt: skip
    cur = con.cursor()
    described = cur.execute(f'describe table "{database}"."{schema}"."EVENTS"')
    columns = [r[0] for r in described or ()]

    def add_column(name: str) -> None:  # name is checked against ENTITY_COLUMN_RE by the sink
        cur.execute(
            f'alter table "{database}"."{schema}"."EVENTS" add column if not exists {name} variant'
        )

    def client(table: str) -> Any:
        return StreamingIngestClient.from_table(f"persona-{channel_name}-{table}", database, schema,
                                                table, properties=props)  # fmt: skip

    return SnowflakeSink(
        client("EVENTS"), client("FAILED_EVENTS"), channel_name, columns, add_column
    )
