"""The in-process online store: a dict. The default, for one API process."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence


class MemoryStore:
    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._lock = threading.Lock()  # a put_many's keys land together for readers

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
        return len(self._data)
