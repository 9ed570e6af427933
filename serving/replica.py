"""API replicas: ``persona serve --replica --online-store redis://…``, the API alone, over the
online store the live process fills.

One live process owns the warehouse (DuckDB has one writer), the loader, the refresh and the
stream attributes; it keeps every attribute value in Redis. A replica holds no state of its
own: it answers reads (``get-online-attributes``, ``/v1/decide``, the event logs' context) from
the same Redis, so as many replicas as the traffic needs run behind a load balancer, on other
machines too. The definitions (attribute groups, services, the profile's columns) are the live
process's: it writes them to the store at start and after each publish
(``share_definitions``), and each replica reloads them within a second (``Replica``).
Publishing goes through the live process; a replica refuses it, saying so.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import orjson

from serving.batch import builtin_groups
from serving.service import Api, Registry, new_registry
from serving.stores.base import OnlineStore

log = logging.getLogger("persona.serving.replica")

DEFINITIONS_KEY = "m:definitions"


def definitions_document(registry: Registry) -> dict[str, Any]:
    """What a replica needs to serve as the live process does."""
    groups = [g.raw for (name, _), g in sorted(registry.groups.items())
              if name not in registry.builtin]  # fmt: skip
    profiles = registry.groups.get(("profiles", 1))
    return {
        "attribute_groups": groups,
        "services": [s.raw for _, s in sorted(registry.services.items())],
        "profile_fields": [list(f) for f in profiles.fields] if profiles else None,
    }


def share_definitions(registry: Registry, store: OnlineStore) -> None:
    store.put_many({DEFINITIONS_KEY: orjson.dumps(definitions_document(registry))})


class Replica:
    """Keeps ``api.registry`` equal to the live process's definitions, polling the store."""

    def __init__(self, store: OnlineStore, poll_seconds: float = 1.0) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self.api = Api(self.registry_from(None), store)
        self._raw: bytes | None = None
        self.stopped = threading.Event()
        self.reloads = 0

    @staticmethod
    def registry_from(doc: dict[str, Any] | None) -> Registry:
        registry = new_registry(None)
        if doc and doc.get("profile_fields"):
            fields = [tuple(f) for f in doc["profile_fields"]]
            registry.add_builtin(builtin_groups(fields)[:1])
        if doc:
            registry.load(doc.get("attribute_groups", []), doc.get("services", []),
                          source="the live process's definitions")  # fmt: skip
        registry.read_only = True
        return registry

    def reload(self) -> bool:
        """True when the definitions changed (and were swapped in whole)."""
        raw = self.store.get(DEFINITIONS_KEY)
        if raw is None or raw == self._raw:
            return False
        self.api.registry = self.registry_from(orjson.loads(raw))
        self._raw = raw
        self.reloads += 1
        log.info("definitions loaded from the live process (%d groups, %d services)",
                 len(self.api.registry.groups), len(self.api.registry.services))  # fmt: skip
        return True

    def run(self) -> None:
        while not self.stopped.wait(self.poll_seconds):
            try:
                self.reload()
            except Exception:  # the store is away for a moment: keep serving what we have
                log.exception("reloading the definitions failed; serving the previous ones")

    def start(self) -> threading.Thread:
        self.reload()
        thread = threading.Thread(target=self.run, name="definitions", daemon=True)
        thread.start()
        return thread

    def status(self) -> dict[str, Any]:
        return {"replica": True, "definitions_loaded": self._raw is not None,
                "definition_reloads": self.reloads}  # fmt: skip
