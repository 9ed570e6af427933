"""Tracker-protocol enrichment: known payloads give known fields; any payload gives an event or
a failed event, never an exception."""

from __future__ import annotations

import base64
import json
from datetime import datetime

from hypothesis import example, given, settings
from hypothesis import strategies as st

from loader.enrich import EnrichConfig, Received, enrich_or_fail
from loader.failed import FailedEvent

EID = "c6ef3124-b53a-4b13-a233-0088f79dcbcb"
AT = datetime(2026, 1, 1, 12, 0, 0)


def enriched(payload: dict[str, str], **cfg) -> dict:
    result = enrich_or_fail(
        Received(payload, AT, "203.0.113.7", "Mozilla/5.0"), EnrichConfig(**cfg)
    )
    assert not isinstance(result, FailedEvent), result
    return result


def test_derived_tstamp_corrects_for_the_device_clock() -> None:
    # created 10:00:00, sent 10:00:05 by a clock 2 h slow; the collector got it at 12:00:00
    created, sent = 1767261600000, 1767261605000
    e = enriched({"e": "pv", "eid": EID, "dtm": str(created), "stm": str(sent)})
    assert e["dvce_created_tstamp"] == datetime(2026, 1, 1, 10, 0, 0)
    assert e["derived_tstamp"] == datetime(2026, 1, 1, 11, 59, 55)


def test_referrer_campaign_and_click_id() -> None:
    e = enriched(
        {
            "e": "pv",
            "eid": EID,
            "url": "https://shop.example.com:8443/a?utm_medium=cpc&utm_source=google&gclid=xyz#top",
            "refr": "https://duckduckgo.com/?q=red+boots",
        }
    )
    assert (e["page_urlport"], e["page_urlpath"], e["page_urlfragment"]) == (8443, "/a", "top")
    assert (e["mkt_medium"], e["mkt_source"], e["mkt_clickid"], e["mkt_network"]) == (
        "cpc",
        "google",
        "xyz",
        "Google",
    )
    assert (e["refr_medium"], e["refr_source"], e["refr_term"]) == (
        "search",
        "DuckDuckGo",
        "red boots",
    )
    internal = enriched(
        {"e": "pv", "eid": EID, "url": "https://a.example/x", "refr": "https://a.example/"}
    )
    assert internal["refr_medium"] == "internal"


def test_each_optional_step_can_be_turned_off() -> None:
    payload = {"e": "pv", "eid": EID, "url": "https://a.example/?utm_source=news&gclid=1",
               "refr": "https://www.bing.com/search?q=boots"}  # fmt: skip
    on = enriched(payload)
    assert (on["refr_medium"], on["mkt_source"], on["mkt_network"]) == ("search", "news", "Google")
    off = enriched(payload, classify_referrer=False, campaign=False, parse_useragent=False,
                   detect_bots=False)  # fmt: skip
    # the URLs are still split: only the classification and the attribution are skipped
    assert off["refr_urlhost"] == "www.bing.com" and off["page_urlquery"] == on["page_urlquery"]
    assert [off[k] for k in ("refr_medium", "refr_source", "refr_term", "mkt_source",
                             "mkt_clickid", "mkt_network")] == [None] * 6  # fmt: skip
    assert not any(k.startswith("contexts_com_snowplowanalytics") for k in off)
    assert "contexts_com_snowplowanalytics_snowplow_ua_parser_context_1" in on


def test_unstructured_event_base64_and_contexts() -> None:
    ue = {
        "schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
        "data": {"schema": "iglu:com.acme/signup/jsonschema/2-0-0", "data": {"plan": "pro"}},
    }
    cx = {
        "schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0",
        "data": [{"schema": "iglu:com.acme/user/jsonschema/1-0-3", "data": {"tier": 2}}],
    }
    b64 = lambda o: base64.urlsafe_b64encode(json.dumps(o).encode()).decode().rstrip("=")  # noqa: E731
    e = enriched({"e": "ue", "eid": EID, "ue_px": b64(ue), "cx": b64(cx)})
    assert (e["event"], e["event_vendor"], e["event_name"], e["event_version"]) == (
        "unstruct",
        "com.acme",
        "signup",
        "2-0-0",
    )
    assert e["unstruct_event_com_acme_signup_2"] == {"plan": "pro"}
    assert e["contexts_com_acme_user_1"] == [{"_schema_version": "1-0-3", "tier": 2}]


def test_bots_and_useragents() -> None:
    bot = enrich_or_fail(
        Received(
            {"e": "pv", "eid": EID},
            AT,
            "66.249.66.1",
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        ),
        EnrichConfig(),
    )
    assert not isinstance(bot, FailedEvent)
    assert bot["contexts_com_iab_snowplow_spiders_and_robots_1"][0]["spiderOrRobot"] is True
    assert (
        bot["contexts_com_snowplowanalytics_snowplow_ua_parser_context_1"][0]["useragentFamily"]
        == "Googlebot"
    )


PARAMS = st.sampled_from(
    [
        "e",
        "eid",
        "dtm",
        "stm",
        "ttm",
        "url",
        "refr",
        "res",
        "vp",
        "ue_pr",
        "ue_px",
        "cx",
        "co",
        "vid",
        "tid",
        "se_va",
        "pp_mix",
        "cookie",
        "uid",
    ]
)
VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "pv",
            "ue",
            "pp",
            "se",
            EID,
            "1767261600000",
            "-1",
            "99999999999999999",
            "{",
            "{}",
            '{"data":{}}',
            "1x1",
            "x",
            "http://[::1",
            "%%",
            "1e999",
        ]
    ),
)


@settings(max_examples=400, deadline=None)
@given(payload=st.dictionaries(PARAMS, VALUES, max_size=8))
@example(payload={"e": "pv", "eid": EID, "url": "http://[::1"})
@example(payload={"e": "pv", "eid": EID, "refr": "http://a:99999/"})
@example(payload={"e": "ue", "eid": EID, "ue_pr": '{"data":{"schema":"iglu:a/b/c"}}'})
@example(payload={"e": "pv", "eid": EID, "dtm": "99999999999999999"})
@example(payload={"e": "pv", "eid": EID, "cx": "%%"})
@example(payload={"e": "ue", "eid": EID, "ue_pr": '{"data":{"schema":1}}'})
def test_any_payload_becomes_an_event_or_a_failed_event(payload: dict[str, str]) -> None:
    result = enrich_or_fail(Received(payload, AT), EnrichConfig())
    if isinstance(result, FailedEvent):
        assert result.error_type and result.message
        assert json.loads(result.raw)["payload"] == payload
    else:
        assert result["event_id"] == payload["eid"]
