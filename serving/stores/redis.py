"""The online store in Redis, so that several API replicas share one. Needs the ``serving``
extra (``redis``); imported only when ``--online-store redis://`` asks for it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from loader.errors import ConfigError

# Keys are namespaced so that one Redis can hold other things too.
PREFIX = "persona:"


class RedisStore:
    def __init__(self, client: Any, prefix: str = PREFIX) -> None:
        self.client = client
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        try:
            import redis
        except ImportError as exc:
            raise ConfigError(
                "--online-store redis://: the redis client is not installed; "
                "pip install 'persona[serving]'"
            ) from exc
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        try:
            client.ping()
        except redis.RedisError as exc:
            raise ConfigError(f"--online-store {url}: cannot reach Redis: {exc}") from exc
        return cls(client)

    def get(self, key: str) -> bytes | None:
        got: bytes | None = self.client.get(self.prefix + key)
        return got

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        got: list[bytes | None] = self.client.mget([self.prefix + k for k in keys])
        return got

    def put_many(self, items: Mapping[str, bytes]) -> None:
        if items:
            # MSET is atomic in Redis: readers see all of these keys new, or none
            self.client.mset({self.prefix + k: v for k, v in items.items()})

    def delete(self, keys: Iterable[str]) -> None:
        names = [self.prefix + k for k in keys]
        if names:
            self.client.delete(*names)

    def push_lists(self, items: Mapping[str, Sequence[bytes]], max_len: int,
                   ttl_seconds: float) -> None:  # fmt: skip
        if not items:
            return
        ttl_ms = max(1, int(ttl_seconds * 1000))
        with self.client.pipeline(transaction=True) as pipe:  # MULTI: each ring changes whole
            for key, values in items.items():
                if not values:
                    continue
                name = self.prefix + key
                pipe.rpush(name, *values)
                pipe.ltrim(name, -max_len, -1)
                pipe.pexpire(name, ttl_ms)
            pipe.execute()

    def get_list(self, key: str) -> list[bytes]:
        got: list[bytes] = self.client.lrange(self.prefix + key, 0, -1)
        return got

    def forget(self, identifiers: Iterable[str]) -> int:
        """SCAN for ``<prefix>*:<id>`` per id (the id glob-escaped: a value, not a pattern)."""
        gone = 0
        for identifier in set(identifiers):
            if not identifier:
                continue
            pattern = self.prefix + "*:" + _glob_escape(identifier)
            names = [k for k in self.client.scan_iter(match=pattern, count=1000)
                     if k.endswith(b":" + identifier.encode())]  # fmt: skip
            for start in range(0, len(names), 500):
                gone += int(self.client.delete(*names[start : start + 500]))
        return gone

    def close(self) -> None:
        self.client.close()


def _glob_escape(value: str) -> str:
    """Redis' MATCH is a glob: escape its special characters so an id matches only itself."""
    return "".join("\\" + c if c in "*?[]\\^-" else c for c in value)
