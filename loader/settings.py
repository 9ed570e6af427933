"""Loader settings from, in rising precedence: defaults, a YAML file (``--config``),
``PERSONA_<KEY>`` environment variables, and command-line flags. A bad value fails at start-up
with the key and where it came from."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loader.errors import ConfigError

SOURCES_HELP = (
    "http://HOST:PORT (a Snowplow collector), "
    "file:PATH, file:- (stdin), tail:PATH (follow a growing file), "
    "csv:PATH (warehouse export with a header), "
    "kafka://BROKERS/TOPIC?group=NAME (enriched TSV messages; needs the kafka extra), "
    "synthetic:?users=N&days=D&seed=S&end=DATE (D days up to END, default now)"
)
SINKS_HELP = (
    "duckdb:PATH, snowflake:DATABASE.SCHEMA (Snowpipe Streaming; needs the snowflake extra)"
)

# The collector's optional enrichment steps (the rest always run, as in Snowplow).
ENRICHMENTS = ("referrer", "campaign", "useragent", "bots")


#: The DuckDB file of the default sink, unless PERSONA_DUCKDB names another.
DEFAULT_DUCKDB = "warehouse.duckdb"

GENERAL = ""
COLLECTOR = "collector (--source http://HOST:PORT)"
GUARD = "privacy and schema policy (every source; see docs/hardening.md)"
KAFKA = "kafka (--source kafka://BROKERS/TOPIC)"


def _setting(
    default: Any, help: str, group: str = GENERAL, shown: str = "", **argparse: Any
) -> Any:
    """A setting: its default, what it means (the ``--help`` text, without the default, which
    is added from ``default``, or ``shown`` where the default is computed), its group in
    ``--help``, and extra argparse options."""
    metadata = {"help": help, "group": group, "shown": shown, "argparse": argparse}
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Settings:
    """Every loader setting, its default and its meaning: the one place they are stated.
    ``python -m loader --help``, ``flags_table()`` and the functions' defaults (``DEFAULT``)
    are made from it."""

    source: str = _setting("", "where events come from: " + SOURCES_HELP, shown="required")
    sink: str = _setting(
        "",
        "where they go: " + SINKS_HELP,
        shown=f"duckdb:$PERSONA_DUCKDB, else duckdb:{DEFAULT_DUCKDB}",
    )
    batch_rows: int = _setting(10_000, "commit after this many events")
    batch_seconds: float = _setting(1.0, "or after this many seconds")
    batch_bytes: int = _setting(
        64 * 1024 * 1024, "or once the batch weighs this many bytes (Arrow size)"
    )
    quiet: bool = _setting(False, "no progress, only a summary")
    log_format: str = _setting(
        "text", "log lines on stderr as text or JSON (one object per line, for log shippers)",
        choices=["text", "json"],
    )  # fmt: skip
    channel: str = _setting(
        "",
        "Snowflake sink: this loader's Snowpipe Streaming channel, one per loader process",
        shown="persona-<hostname>-<hash of --source>",
    )
    spool: str = _setting(
        ".persona/spool", "directory of the durable spool and its checkpoint", COLLECTOR
    )
    trust_forwarded_for: bool = _setting(
        False,
        "take the client IP from X-Forwarded-For and the scheme from X-Forwarded-Proto "
        "(only behind a proxy that sets them; ignored otherwise)",
        COLLECTOR,
    )
    enrichments: tuple[str, ...] = _setting(
        ENRICHMENTS,
        "comma-separated optional steps to run, of referrer (refr_medium/source/term), "
        "campaign (mkt_* from utm_* and click ids), useragent (ua_parser_context), bots "
        "(spiders_and_robots); '' for none. Timestamps and URL fields always run",
        COLLECTOR,
    )
    spool_max_bytes: int = _setting(
        256 * 1024 * 1024,
        "spooled but not yet loaded beyond this many bytes, the collector answers 503",
        COLLECTOR,
    )
    max_request_bytes: int = _setting(
        1_000_000, "a larger request body is refused with 413", COLLECTOR
    )
    header_timeout: float = _setting(
        10.0, "seconds a request's head may take to arrive; then 408 and closed", COLLECTOR
    )
    body_timeout: float = _setting(
        30.0, "seconds a request's body may take to arrive; then 408 and closed", COLLECTOR
    )
    keep_alive_timeout: float = _setting(
        5.0, "seconds a kept-alive connection may stay idle before it is closed", COLLECTOR
    )
    max_connections: int = _setting(
        1000,
        "open connections at once; one more gets 503 and is closed (fewer if the open-file "
        "limit cannot hold that many)",
        COLLECTOR,
    )
    collector_restarts: int = _setting(
        5,
        "times a dead HTTP process is started again in a row (with backoff) before the "
        "loader loads what is spooled and exits with an error",
        COLLECTOR,
    )
    anonymize_ip_octets: int = _setting(
        1, "user_ipaddress octets to blank out with x, 0 to 4; IPv6 by 16-bit pairs", GUARD
    )
    pii_fields: tuple[str, ...] = _setting(
        (),
        "comma-separated atomic fields to pseudonymize with a salted SHA-256, e.g. "
        "user_id,domain_userid; the salt comes from PERSONA_PII_SALT. Applies to events, "
        "failed events' raw input and the collector's spool",
        GUARD,
    )
    schemas_allowed: tuple[str, ...] = _setting(
        ("*",),
        "comma-separated vendor/name globs of the entity schemas that may become columns "
        "(e.g. 'com.snowplowanalytics.*/*,com.acme/*'); other events become failed events "
        "(schema_not_allowed)",
        GUARD,
    )
    max_new_columns_per_hour: int = _setting(
        50, "new entity columns admitted per rolling hour", GUARD
    )
    max_entity_columns: int = _setting(
        300, "entity columns the events table may hold in all", GUARD
    )

    kafka_connect_timeout: float = _setting(
        60.0,
        "seconds to keep trying to reach the brokers at start (with backoff) before the loader "
        "exits with an error",
        KAFKA,
    )

    def __post_init__(self) -> None:
        if self.batch_rows < 1:
            raise ConfigError(f"batch_rows: must be at least 1, got {self.batch_rows}")
        if self.batch_seconds <= 0:
            raise ConfigError(f"batch_seconds: must be more than 0, got {self.batch_seconds}")
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"log_format: text or json, got {self.log_format!r}")
        if not 0 <= self.anonymize_ip_octets <= 4:
            raise ConfigError(f"anonymize_ip_octets: 0 to 4, got {self.anonymize_ip_octets}")
        if unknown := sorted(set(self.enrichments) - set(ENRICHMENTS)):
            raise ConfigError(
                f"enrichments: unknown {unknown}; choose from {list(ENRICHMENTS)} (or none: '')"
            )
        for key in ("max_new_columns_per_hour", "max_entity_columns"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key}: must be 0 or more, got {getattr(self, key)}")
        for key in ("batch_bytes", "spool_max_bytes", "max_request_bytes", "max_connections"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}: must be at least 1, got {getattr(self, key)}")
        for key in (
            "header_timeout",
            "body_timeout",
            "keep_alive_timeout",
            "kafka_connect_timeout",
        ):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key}: must be more than 0 seconds, got {getattr(self, key)}")
        if self.collector_restarts < 0:
            raise ConfigError(f"collector_restarts: 0 or more, got {self.collector_restarts}")


#: The defaults, for functions that take one setting (``batch_rows=DEFAULT.batch_rows``).
DEFAULT = Settings()
FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _coerce(key: str, value: Any, origin: str) -> Any:
    kind = FIELDS[key].type
    try:
        if kind == "bool":
            if isinstance(value, str):
                if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("1", "true", "yes")
            return bool(value)
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "tuple[str, ...]":
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(i).strip() for i in items if str(i).strip())
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{key} (from {origin}): {value!r} is not a valid {kind}") from exc


def load(
    flags: Mapping[str, Any], config: str | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {"sink": f"duckdb:{environ.get('PERSONA_DUCKDB', DEFAULT_DUCKDB)}"}
    if config:
        import yaml

        path = Path(config)
        if not path.is_file():
            raise ConfigError(f"--config {config}: no such file")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"--config {config}: not valid YAML ({exc})") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"--config {config}: expected a mapping of settings")
        unknown = sorted(set(data) - set(FIELDS))
        if unknown:
            raise ConfigError(f"--config {config}: unknown keys {unknown}; known: {sorted(FIELDS)}")
        values.update({k: _coerce(k, v, config) for k, v in data.items()})
    for key in FIELDS:
        name = f"PERSONA_{key.upper()}"
        # empty means unset, except for a list, where it is the empty list (no enrichments)
        if environ.get(name) or (name in environ and FIELDS[key].type == "tuple[str, ...]"):
            values[key] = _coerce(key, environ[name], name)
    for key, value in flags.items():
        if value is not None:
            values[key] = _coerce(key, value, "--" + key.replace("_", "-"))
    if not values.get("source"):
        raise ConfigError("source: required (--source, PERSONA_SOURCE or the config file)")
    return Settings(**values)


def shown(name: str) -> str:
    """A setting's default as ``--help`` and the flags table show it."""
    f = FIELDS[name]
    if f.metadata["shown"]:
        return str(f.metadata["shown"])
    value = f.default
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(value) if value else "''"
    return str(value) if value != "" else "''"


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting, in groups, each help text ending with its default. Flags default
    to None: a flag given wins over the environment and the config file (``load``)."""
    groups: dict[str, Any] = {GENERAL: parser}
    for f in dataclasses.fields(Settings):
        group = f.metadata["group"]
        if group not in groups:
            groups[group] = parser.add_argument_group(group)
        options = dict(f.metadata["argparse"])
        if f.type == "bool":
            options.update(action="store_true", default=None)
        elif f.type in ("int", "float"):
            options["type"] = int if f.type == "int" else float
        help_text = f.metadata["help"].replace("%", "%%")
        groups[group].add_argument(
            flag(f.name), help=f"{help_text} (default: {shown(f.name).replace('%', '%%')})",
            **options,
        )  # fmt: skip


def flags_table() -> str:
    """The settings as a Markdown table (flag, environment variable, default, meaning), for
    the README: a test holds the README's table to this."""
    rows = [
        "| flag | environment | default | meaning |",
        "|---|---|---|---|",
    ]
    for f in dataclasses.fields(Settings):
        meaning = f.metadata["help"].replace("|", "\\|")
        rows.append(
            f"| `{flag(f.name)}` | `PERSONA_{f.name.upper()}` | `{shown(f.name)}` | {meaning} |"
        )
    return "\n".join(rows) + "\n"
