"""The online store: what a request reads, one key per user, session or device.

``base.OnlineStore`` is the interface; ``memory`` (in-process, the default) and ``redis``
(several API replicas share one) implement it with the same few methods."""

from __future__ import annotations

from serving.stores.base import OnlineStore


def open_store(uri: str) -> OnlineStore:
    """``memory`` or ``redis://HOST:PORT[/DB]``."""
    from loader.errors import ConfigError

    if uri in ("", "memory", "memory:"):
        from serving.stores.memory import MemoryStore

        return MemoryStore()
    if uri.startswith(("redis://", "rediss://", "unix://")):
        from serving.stores.redis import RedisStore

        return RedisStore.from_url(uri)
    raise ConfigError(f"--online-store {uri!r}: use memory or redis://HOST:PORT[/DB]")


__all__ = ["OnlineStore", "open_store"]
