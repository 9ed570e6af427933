"""The online store's implementations hold to one contract."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from serving.stores import OnlineStore, open_store


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[OnlineStore]:
    uri = "memory" if request.param == "memory" else request.getfixturevalue("redis_url")
    s = open_store(uri)
    yield s
    s.close()


def test_put_get_delete(store: OnlineStore) -> None:
    assert store.get("k") is None and store.get_many([]) == []
    store.put_many({"k": b"1", "j": b"2"})
    assert store.get("k") == b"1"
    assert store.get_many(["j", "missing", "k"]) == [b"2", None, b"1"]
    store.put_many({"k": b"3"})
    store.delete(["j", "missing"])
    assert store.get_many(["k", "j"]) == [b"3", None]


def test_an_unknown_store_is_refused() -> None:
    from loader.errors import ConfigError

    with pytest.raises(ConfigError, match="memory or redis"):
        open_store("mongodb://x")
