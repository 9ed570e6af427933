"""``OnlineStore.forget``: every key about an id goes, keys of other ids stay; an id is a value,
never a pattern (Redis' MATCH is a glob). The memory store, and Redis (a real redis-server)."""

from __future__ import annotations

import pytest

from serving.stores import open_store

KEYS = {
    "b:profiles:u1": b"1", "b:segments:u1": b"1", "s:shopper_v1:d1": b"1", "i:d1": b"1",
    "a:u1": b"1", "b:profiles:u10": b"2", "b:profiles:xu1": b"2", "b:profiles:a*b": b"2",
    "b:profiles:a?": b"2", "s:visit_v1:d1:x": b"2",
}  # fmt: skip


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_forget_deletes_exactly_the_ids_keys(kind: str, request: pytest.FixtureRequest) -> None:
    store = open_store("memory" if kind == "memory" else request.getfixturevalue("redis_url"))
    store.put_many(KEYS)
    assert store.forget(["u1", "d1", "a*", "a", ""]) == 5
    left = dict(zip(KEYS, store.get_many(list(KEYS)), strict=True))
    assert {k for k, v in left.items() if v is not None} == {k for k, v in KEYS.items()
                                                              if v == b"2"}  # fmt: skip
    store.close()
