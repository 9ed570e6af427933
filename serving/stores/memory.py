"""The in-process online store: a dict. The default, for one API process."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence

# How often (seconds) push_lists sweeps expired lists out of memory.
_SWEEP_SECONDS = 60.0


class MemoryStore:
    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._lists: dict[str, tuple[deque[bytes], float]] = {}  # key: (values, expires at)
        self._lock = threading.Lock()  # a put_many's keys land together for readers
        self._swept = time.monotonic()

    def get(self, key: str) -> bytes | None:
        return self._data.get(key)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        data = self._data
        return [data.get(k) for k in keys]

    def put_many(self, items: Mapping[str, bytes]) -> None:
        with self._lock:
            self._data.update(items)

    def delete(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                self._data.pop(key, None)
                self._lists.pop(key, None)

    def push_lists(self, items: Mapping[str, Sequence[bytes]], max_len: int,
                   ttl_seconds: float) -> None:  # fmt: skip
        now = time.monotonic()
        with self._lock:
            for key, values in items.items():
                got = self._lists.get(key)
                ring = got[0] if got is not None and got[1] > now else deque(maxlen=max_len)
                if ring.maxlen != max_len:
                    ring = deque(ring, maxlen=max_len)
                ring.extend(values)
                self._lists[key] = (ring, now + ttl_seconds)
            if now - self._swept > _SWEEP_SECONDS:  # idle sessions leave memory by themselves
                self._swept = now
                for key in [k for k, (_, at) in self._lists.items() if at <= now]:
                    del self._lists[key]

    def get_list(self, key: str) -> list[bytes]:
        got = self._lists.get(key)
        if got is None or got[1] <= time.monotonic():
            return []
        return list(got[0])

    def forget(self, identifiers: Iterable[str]) -> int:
        suffixes = tuple(":" + i for i in set(identifiers) if i)
        if not suffixes:
            return 0
        with self._lock:
            gone = [k for k in self._data if k.endswith(suffixes)]
            for key in gone:
                del self._data[key]
        return len(gone)

    def close(self) -> None:
        pass

    def __len__(self) -> int:
        return len(self._data) + len(self._lists)
