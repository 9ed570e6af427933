"""The online store's interface: bytes under string keys, read many at once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol


class OnlineStore(Protocol):
    """A key-value store the API reads on each request and the live process writes.

    Values are opaque bytes (JSON written by ``serving``). ``put_many`` is atomic per key, not
    across keys: a reader may see some of a batch's keys new and others old, never a torn
    value. A store is shared by threads (the loader's, the refresh loop's, the API's)."""

    def get(self, key: str) -> bytes | None: ...

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """One value (or None) per key, in order: one round trip."""
        ...

    def put_many(self, items: Mapping[str, bytes]) -> None: ...

    def delete(self, keys: Iterable[str]) -> None: ...

    def push_lists(self, items: Mapping[str, Sequence[bytes]], max_len: int,
                   ttl_seconds: float) -> None:  # fmt: skip
        """Append ``items``' values to the list under each key, keep only its last ``max_len``
        values, and expire the key ``ttl_seconds`` after this write (a bounded ring per key
        that an idle key leaves by itself: the event logs' recent events)."""
        ...

    def get_list(self, key: str) -> list[bytes]:
        """A list's values, oldest first (empty when the key is absent or expired)."""

    def forget(self, identifiers: Iterable[str]) -> int:
        """Delete every key about one of ``identifiers`` (a user, device or session: the
        key's last part, ``b:profiles:<user>``, ``s:<group>:<device>``, ``i:<device>``), for
        ``persona forget``; returns how many went."""
        ...

    def close(self) -> None: ...
