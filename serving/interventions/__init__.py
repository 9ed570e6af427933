"""Interventions: an event as a trigger (Snowplow Signals' rule-based interventions).

Rules (``rules``: criteria over stream and batch attributes, as data) are evaluated when the
attributes they read change (``engine``: hooked to the stream engine's chunks and the batch
sync's changed users), fire once per target, and are recorded durably with their webhook
deliveries (``outbox``: tables in the warehouse) before being sent: to SSE subscribers
(``sse``: the SDK's ``pull_interventions``, with ``Last-Event-ID`` replay) and to webhook
endpoints (``webhooks``: signed, retried, at-least-once). ``routes`` is the HTTP surface:
the SDK's ``registry/interventions`` calls, ``push_intervention`` and the subscription.
docs/interventions.md is the user's guide.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from serving.interventions.engine import Interventions, RuleRegistry
from serving.interventions.outbox import Delivery, Outbox
from serving.interventions.sse import Hub
from serving.interventions.webhooks import Deliverer, Endpoint

log = logging.getLogger("persona.serving.interventions")

RULES = Path(__file__).resolve().parents[1] / "interventions.yml"


@dataclass
class InterventionSettings:
    rules: Path | None = RULES  # YAML of rules (and the attribute groups they need); None: none
    endpoints: tuple[Endpoint, ...] = ()  # webhooks.parse_endpoints checked them
    replay_seconds: float = 300.0
    replay_events: int = 10_000


def load_yaml(path: Path) -> tuple[list[Any], list[Any]]:
    """(attribute groups, interventions) of a rules file."""
    import yaml

    from serving.errors import DefinitionError

    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{path}: not YAML: {exc}") from exc
    if not isinstance(doc, dict) or set(doc) - {"attribute_groups", "interventions"}:
        raise DefinitionError(f"{path}: expected 'attribute_groups' and 'interventions' lists")
    groups, rules = doc.get("attribute_groups") or [], doc.get("interventions") or []
    if not isinstance(groups, list) or not isinstance(rules, list):
        raise DefinitionError(f"{path}: 'attribute_groups' and 'interventions' must be lists")
    return groups, rules


def attach(settings: InterventionSettings | None, state_dir: Path, registry: Any, engine: Any,
           store: Any, con: Any, sync: Any = None) -> Interventions:  # fmt: skip
    """Wire interventions into a live process: rules loaded (the YAML's attribute groups into
    ``registry`` first), the record opened, pending webhook deliveries queued again, and the
    hooks on ``engine`` (stream) and ``sync`` (batch) registered."""
    s = settings or InterventionSettings()
    rules = RuleRegistry(registry, state_dir / "interventions.json")
    if s.rules is not None:
        groups, specs = load_yaml(s.rules)
        if groups:
            registry.load(groups, [], source=str(s.rules))
        rules.load(specs, source=str(s.rules))
    rules.load_published()
    outbox = Outbox(con)
    hub = Hub(s.replay_seconds, s.replay_events)
    since = datetime.fromtimestamp(time.time() - s.replay_seconds, UTC)
    hub.preload(outbox.recent(since, s.replay_events))
    deliverer = Deliverer(s.endpoints, outbox)
    interventions = Interventions(rules, engine, store, outbox, hub, deliverer)
    again = 0
    for delivery_id, iid, seq, endpoint, url, attempts, due, fire in outbox.pending():
        if endpoint not in deliverer.endpoints:
            log.warning("delivery %s is for webhook %s, not configured now: left pending",
                        delivery_id, endpoint)  # fmt: skip
            continue
        url = deliverer.endpoints[endpoint].url
        deliverer.enqueue([Delivery(delivery_id, iid, seq, endpoint, url, fire.body(delivery_id),
                                    attempts, due)])  # fmt: skip
        again += 1
    deliverer.start()
    engine.listeners.append(interventions.on_stream)
    if sync is not None:
        interventions.start_watermark(con.cursor())
        sync.listeners.append(interventions.on_batch)
    log.info("interventions: %d rules, %d webhook endpoints, %d deliveries pending",
             len(rules.rules), len(deliverer.endpoints), again)  # fmt: skip
    return interventions


__all__ = ["InterventionSettings", "Interventions", "attach"]
