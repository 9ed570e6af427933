"""Interventions through the official Signals SDK against ``python -m serving``: the SDK
publishes a rule, the real Snowplow tracker's events make it fire, and the SDK's subscription
receives it exactly once; ``push_intervention`` reaches the subscription too; an SSE client
resumes with ``Last-Event-ID`` without what it acknowledged; a bad rule is refused with the
reason and the running ones keep firing; the record is SQL in the warehouse."""

from __future__ import annotations

import queue
import time
import uuid
from typing import Any

import duckdb
import pytest
import requests
from snowplow_signals import (
    AttributeKeyIdentifiers,
    InterventionCriterion,
    InterventionInstance,
    RuleIntervention,
    SignalsAPIError,
    SignalsSandbox,
)
from snowplow_signals.models import InterventionCriteriaAllInput
from snowplow_signals.models.model import VersionedLinkAttributeGroup

from tests.serving.conftest import TOKEN, LiveServer
from tests.serving.test_signals_sdk import OWNER, groups, track, wait_for


def sse(server: LiveServer, query: str, last_id: int | None, want: int,
        timeout: float = 3.0) -> list[tuple[int, str]]:  # fmt: skip
    """(id, data) of the first ``want`` events of a raw SSE subscription (fewer at timeout)."""
    headers = {**server.headers(), "Accept": "text/event-stream"}
    if last_id is not None:
        headers["Last-Event-ID"] = str(last_id)
    got: list[tuple[int, str]] = []
    event_id = None
    with requests.get(f"{server.api}/api/v1/interventions?{query}", headers=headers,
                      stream=True, timeout=timeout) as response:  # fmt: skip
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/event-stream")
        try:
            for line in response.iter_lines(decode_unicode=True):
                if line.startswith("id: "):
                    event_id = int(line[4:])
                elif line.startswith("data: "):
                    got.append((event_id, line[6:]))  # type: ignore[arg-type]
                    if len(got) >= want:
                        break
        except requests.exceptions.ConnectionError:  # the read timed out: fewer than want
            pass
    return got


def rule(**changes: Any) -> RuleIntervention:
    spec: dict[str, Any] = dict(
        name="engaged_shopper", version=1, owner=OWNER,
        criteria=InterventionCriteriaAllInput(all=[
            InterventionCriterion(attribute="shopper:page_views", operator=">=", value=2),
            InterventionCriterion(attribute="shopper:cart_value", operator=">", value=50),
        ]),
        payload_attribute_groups=[VersionedLinkAttributeGroup(name="shopper", version=1)],
    )  # fmt: skip
    spec.update(changes)
    return RuleIntervention(**spec)


def test_the_sdk_publishes_a_rule_the_tracker_fires_it_once_the_subscription_gets_it(
    live, tmp_path
) -> None:
    server = live("--no-refresh")
    sdk = SignalsSandbox(api_url=server.api, sandbox_token=TOKEN)
    views, session, service = groups()
    sdk.publish([views, session, service, rule()])
    assert sdk.interventions.get("engaged_shopper").criteria is not None
    assert "engaged_shopper" in [r.name for r in sdk.interventions.list()]

    duid, sid = str(uuid.uuid4()), str(uuid.uuid4())
    subscription = sdk.pull_interventions(AttributeKeyIdentifiers({"domain_userid": [duid]}))
    other = sdk.pull_interventions(AttributeKeyIdentifiers({"domain_userid": ["someone"]}))
    with subscription, other:
        time.sleep(0.3)  # the subscription's request is under way
        track(server.collector_port, duid, sid)  # 2 page views, 2 product views, a cart add
        got = subscription.get(timeout=20)
        assert got.name == "engaged_shopper" and got.version == 1
        assert got.target_attribute_key is not None
        assert (got.target_attribute_key.name, got.target_attribute_key.id) == ("domain_userid",
                                                                                duid)  # fmt: skip
        assert got.attributes is not None
        assert float(got.attributes["cart_value"]) == 55.5
        assert int(got.attributes["page_views"]) == 2
        track(server.collector_port, duid, sid)  # the criteria still hold: no second fire
        with pytest.raises(queue.Empty):
            subscription.get(timeout=1.5)
        with pytest.raises(queue.Empty):
            other.get(timeout=0.1)

        # the SDK's push_intervention: to whoever subscribed to that device
        pushed = InterventionInstance(name="hello", version=1, attributes={"offer": "10%"})
        targets = AttributeKeyIdentifiers({"domain_userid": [duid]})
        assert sdk.push_intervention(targets, pushed) == "success"
        again = subscription.get(timeout=5)
        assert (again.name, again.attributes) == ("hello", {"offer": "10%"})
        nobody = AttributeKeyIdentifiers({"domain_userid": [str(uuid.uuid4())]})
        assert sdk.push_intervention(nobody, pushed) == "undelivered"

    # a raw SSE client: Last-Event-ID resumes within the window, nothing acknowledged again
    everything = sse(server, f"domain_userid={duid}", 0, want=2)
    assert len(everything) == 2
    (first, _), (second, pushed_data) = everything
    assert first < second and '"hello"' in pushed_data
    assert sse(server, f"domain_userid={duid}", first, want=1) == [everything[1]]
    assert sse(server, f"domain_userid={duid}", second, want=1, timeout=1) == []
    assert sse(server, f"domain_userid={duid}", None, want=1, timeout=1) == []

    # bad rules: refused at publish with the reason; the running rule keeps firing
    for bad, named in (
        (rule(name="bad1", criteria=InterventionCriterion(attribute="shopper:nope",
                                                          operator="=", value=1)), "nope"),
        (rule(name="bad2", criteria=InterventionCriterion(attribute="ghost:x", operator="=",
                                                          value=1)), "ghost"),
    ):  # fmt: skip
        with pytest.raises(SignalsAPIError) as refused:
            sdk.publish([bad])
        assert refused.value.status_code == 422 and named in str(refused.value)
    malformed = {"name": "bad3", "version": 1, "owner": OWNER, "is_published": True,
                 "criteria": {"all": [{"attribute": "shopper:page_views", "operator": "~~",
                                       "value": 1}]}}  # fmt: skip
    refused = requests.post(f"{server.api}/api/v1/registry/interventions/", json=malformed,
                            headers=server.headers(), timeout=5)  # fmt: skip
    assert refused.status_code == 422
    assert "criteria.all[0]" in refused.json()["detail"] and "~~" in refused.json()["detail"]
    assert [r.name for r in sdk.interventions.list()] == ["third_view_in_a_category",
                                                          "high_value_customer_returns",
                                                          "became_cart_abandoner",
                                                          "engaged_shopper"]  # fmt: skip
    later = str(uuid.uuid4())
    with sdk.pull_interventions(AttributeKeyIdentifiers({"domain_userid": [later]})) as sub:
        time.sleep(0.3)
        track(server.collector_port, later, str(uuid.uuid4()))
        assert sub.get(timeout=20).name == "engaged_shopper"
        # unpublished, it stops firing; deleted, it is gone
        sdk.unpublish([rule()])
        assert sdk.interventions.get("engaged_shopper").is_published is False
        gone = str(uuid.uuid4())
        track(server.collector_port, gone, str(uuid.uuid4()))
        wait_for(lambda: sdk.get_group_attributes(name="shopper", version=1,
                                                  attributes=["cart_value"],
                                                  attribute_key="domain_userid",
                                                  identifier=gone),
                 lambda g: g.get("cart_value") == 55.5)  # fmt: skip
        sdk.delete([rule()])
        assert "engaged_shopper" not in [r.name for r in sdk.interventions.list()]

    # every fire is a row in the warehouse (the snapshot while it runs)
    assert server.stop() == 0
    with duckdb.connect(str(server.warehouse), read_only=True) as con:
        rows = con.execute(
            "select name, source, target_key, target_id from interventions.fired "
            "where target_id in (?, ?) order by seq", [duid, later],
        ).fetchall()  # fmt: skip
    with duckdb.connect(str(server.warehouse), read_only=True) as con:
        assert con.execute("select count(*) from interventions.fired where target_id = ?",
                           [gone]).fetchone() == (0,)  # fmt: skip
    assert rows == [("engaged_shopper", "rule", "domain_userid", duid),
                    ("hello", "push", "domain_userid", duid),
                    ("engaged_shopper", "rule", "domain_userid", later)]  # fmt: skip
