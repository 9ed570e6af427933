"""Loader settings from, in rising precedence: defaults, a YAML file (``--config``),
``PERSONA_<KEY>`` environment variables, and command-line flags. A bad value fails at start-up
with the key and where it came from."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loader.errors import ConfigError

# The collector's optional enrichment steps (the rest always run, as in Snowplow).
ENRICHMENTS = ("referrer", "campaign", "useragent", "bots")


@dataclass(frozen=True)
class Settings:
    source: str = ""
    sink: str = ""
    batch_rows: int = 10_000
    batch_seconds: float = 1.0
    batch_bytes: int = 64 * 1024 * 1024  # or once it weighs this much (Arrow bytes)
    quiet: bool = False
    spool: str = ".persona/spool"
    anonymize_ip_octets: int = 1
    pii_fields: tuple[str, ...] = ()
    enrichments: tuple[str, ...] = ENRICHMENTS  # the optional steps that run, any of ENRICHMENTS
    spool_max_bytes: int = 256 * 1024 * 1024  # spooled, not yet loaded: beyond it, HTTP 503
    max_request_bytes: int = 1_000_000  # a larger request body is refused (HTTP 413)
    # Collector connections: a request head or body not in within its timeout gets 408 and is
    # closed; a kept-alive connection idle this long is closed; beyond max_connections open
    # at once, a new one gets 503 (fewer if the open-file limit cannot hold that many).
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive_timeout: float = 5.0
    max_connections: int = 1000
    collector_restarts: int = 5  # a dead HTTP process is started again this many times in a row
    channel: str = ""  # Snowflake: this loader's channel (default persona-<host>-<source hash>)
    trust_forwarded_for: bool = False  # collector behind a proxy that sets X-Forwarded-For
    # the schema policy (loader/schema_policy.py): which entity schemas may become columns
    schemas_allowed: tuple[str, ...] = ("*",)  # vendor/name globs
    max_new_columns_per_hour: int = 50
    max_entity_columns: int = 300
    log_format: str = "text"  # or json: one object per line, for log shippers

    def __post_init__(self) -> None:
        if not self.source:
            raise ConfigError("source: required (--source, PERSONA_SOURCE or the config file)")
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
        for key in ("header_timeout", "body_timeout", "keep_alive_timeout"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key}: must be more than 0 seconds, got {getattr(self, key)}")
        if self.collector_restarts < 0:
            raise ConfigError(f"collector_restarts: 0 or more, got {self.collector_restarts}")


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
    values: dict[str, Any] = {"sink": f"duckdb:{environ.get('PERSONA_DUCKDB', 'warehouse.duckdb')}"}
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
    return Settings(**values)
