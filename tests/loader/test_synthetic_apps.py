"""The synthetic shop's apps: the mobile trackers' events and entities, app sessions that
survive short breaks in the background, customers signed in on the web and in an app, and a web
stream that is the same with or without the apps."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import timedelta
from typing import Any

import pytest

from loader.enriched import parse_line
from loader.sources.synthetic import SyntheticConfig, generate_lines

CFG = SyntheticConfig(users=300, days=5, seed=4)
CLIENT_SESSION = "contexts_com_snowplowanalytics_snowplow_client_session_1"
SCREEN = "contexts_com_snowplowanalytics_mobile_screen_1"
SUMMARY = "contexts_com_snowplowanalytics_mobile_screen_summary_1"
SCREEN_VIEW = "unstruct_event_com_snowplowanalytics_mobile_screen_view_1"
MOBILE = "contexts_com_snowplowanalytics_snowplow_mobile_context_1"
APPLICATION = "contexts_com_snowplowanalytics_mobile_application_1"
PRODUCT = "contexts_com_snowplowanalytics_snowplow_ecommerce_product_1"
TRANSACTION = "contexts_com_snowplowanalytics_snowplow_ecommerce_transaction_1"
TIMEOUT = timedelta(minutes=30)  # the trackers' default background timeout


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return list(generate_lines(CFG))


@pytest.fixture(scope="module")
def apps(lines: list[str]) -> list[dict[str, Any]]:
    """The apps' events, first delivery of each."""
    seen: dict[str, dict[str, Any]] = {}
    for line in lines:
        e = parse_line(line)
        assert isinstance(e, dict), e
        if e["platform"] == "mob":
            seen.setdefault(e["event_id"], e)
    return list(seen.values())


def test_the_web_stream_is_the_same_with_or_without_the_apps(lines: list[str]) -> None:
    web_only = list(generate_lines(SyntheticConfig(users=300, days=5, seed=4, apps=False)))
    assert [line for line in lines if line.split("\t", 2)[1] != "mob"] == web_only
    assert 0.05 < 1 - len(web_only) / len(lines) < 0.4  # the apps' share of events


def test_app_events_carry_the_mobile_trackers_entities(apps: list[dict[str, Any]]) -> None:
    kinds = {e["event_name"] for e in apps}
    assert {"screen_view", "screen_end", "application_foreground", "application_background",
            "application_install", "snowplow_ecommerce_action"} <= kinds  # fmt: skip
    for e in apps:
        assert e["domain_sessionid"] is None and e["domain_userid"] is None
        assert e["app_id"] in ("persona-shop-ios", "persona-shop-android")
        assert len(e[CLIENT_SESSION]) == len(e[MOBILE]) == len(e[APPLICATION]) == 1
        if e["event_name"] == "screen_view":
            assert e[SCREEN][0]["id"] == e[SCREEN_VIEW]["id"]  # the screen entity is the new one
        if e["event_name"] == "screen_end":
            assert e[SUMMARY][0]["foreground_sec"] > 0
    for e in (e for e in apps if e["event_name"] == "snowplow_ecommerce_action"):
        if e.get(TRANSACTION):
            items = e[PRODUCT]
            assert e[TRANSACTION][0]["revenue"] == pytest.approx(
                sum(i["price"] * i["quantity"] for i in items), abs=0.005
            )


def test_sessions_span_short_breaks_and_end_at_the_timeout(apps: list[dict[str, Any]]) -> None:
    """Within a client session no gap reaches the background timeout (one that spans a break
    in the background exists); sessions of an install are numbered and chained."""
    sessions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in apps:
        sessions[e[CLIENT_SESSION][0]["sessionId"]].append(e)
    by_install: dict[str, list[tuple[int, str, str | None]]] = defaultdict(list)
    spanned_break = False
    for events in sessions.values():
        events.sort(key=lambda e: e["dvce_created_tstamp"])
        stamps = [e["dvce_created_tstamp"] for e in events]
        assert all(b - a < TIMEOUT for a, b in itertools.pairwise(stamps))
        names = [e["event_name"] for e in events]
        spanned_break |= "application_background" in names[:-1]
        cs = events[0][CLIENT_SESSION][0]
        by_install[cs["userId"]].append((cs["sessionIndex"], cs["sessionId"],
                                         cs["previousSessionId"]))  # fmt: skip
    assert spanned_break
    for chain in by_install.values():
        chain.sort()
        assert [i for i, _, _ in chain] == list(range(1, len(chain) + 1))
        assert [p for _, _, p in chain] == [None] + [s for _, s, _ in chain[:-1]]


def test_screen_summaries_grow_through_a_screen_view(apps: list[dict[str, Any]]) -> None:
    by_screen: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in sorted(apps, key=lambda e: e["dvce_created_tstamp"]):
        if e.get(SUMMARY):
            by_screen[e[SCREEN][0]["id"]].append(e[SUMMARY][0])
    assert by_screen
    for summaries in by_screen.values():
        foreground = [s["foreground_sec"] for s in summaries]
        assert foreground == sorted(foreground)


def test_customers_sign_in_on_the_web_and_in_an_app(lines: list[str]) -> None:
    users: dict[str, set[str]] = defaultdict(set)
    for line in lines:
        fields = line.split("\t")
        if fields[12]:  # user_id
            users[fields[12]].add(fields[1])  # platform
    assert sum(platforms == {"web", "mob"} for platforms in users.values()) >= 3
    assert any(platforms == {"mob"} for platforms in users.values())  # app-only customers
