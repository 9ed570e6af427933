"""Consent: the consent plugin's events load like any event, profiles say each user's latest
choice, and PERSONA_CONSENT_WITHDRAWN=pseudonymize makes a withdrawn visitor's later events
unlinkable (real Python tracker → real collector process → DuckDB)."""

from __future__ import annotations

import uuid
from pathlib import Path

import duckdb
import pytest
from snowplow_tracker import Emitter, SelfDescribingJson, Subject, Tracker
from snowplow_tracker.events import PageView, SelfDescribing

from privacy.consent import COLUMN
from tests.loader.live_collector import Collector
from tests.privacy.conftest import SALT, Built

CONSENT = "iglu:com.snowplowanalytics.snowplow/consent_preferences/jsonschema/1-0-0"
CMP_VISIBLE = "iglu:com.snowplowanalytics.snowplow/cmp_visible/jsonschema/1-0-0"


def consent(event_type: str) -> SelfDescribing:
    return SelfDescribing(SelfDescribingJson(CONSENT, {
        "basisForProcessing": "consent", "consentUrl": "https://shop.example.com/privacy",
        "consentVersion": "1.0", "consentScopes": ["necessary", "analytics"],
        "domainsApplied": ["shop.example.com"], "eventType": event_type, "gdprApplies": True,
    }))  # fmt: skip


def test_profiles_expose_the_latest_consent(built: Built) -> None:
    with duckdb.connect(str(built.path)) as con:
        states = dict(con.execute("select user_id, consent_state from derived.profiles "
                                  "where consent_state is not null").fetchall())  # fmt: skip
    assert states == {built.user: "withdrawn", built.other: "allow_all"}


def test_withdrawn_visitors_are_pseudonymized(
    unstarted_collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERSONA_CONSENT_WITHDRAWN", "pseudonymize")
    monkeypatch.setenv("PERSONA_PRIVACY_SALT", SALT)
    collector = unstarted_collector
    collector.start()
    device, user = str(uuid.uuid4()), "consenting-user"
    emitter = Emitter("127.0.0.1", protocol="http", port=collector.port, method="post",
                      batch_size=1)  # fmt: skip
    subject = Subject().set_domain_user_id(device).set_user_id(user)
    tracker = Tracker("pytest", emitter, subject=subject, app_id="shop")
    tracker.track(SelfDescribing(SelfDescribingJson(CMP_VISIBLE, {"elapsedTime": 1.5})))
    tracker.track(consent("allow_all"))
    tracker.track(PageView(page_url="https://shop.example.com/1", page_title="before"))
    tracker.track(consent("withdrawn"))
    tracker.track(PageView(page_url="https://shop.example.com/2", page_title="after"))
    tracker.track(PageView(page_url="https://shop.example.com/3", page_title="after"))
    tracker.flush()
    collector.stop()
    rows = collector.query(
        f"select event_name, page_title, domain_userid, user_id, user_ipaddress, {COLUMN} "
        "from atomic.events order by dvce_created_tstamp, collector_tstamp"
    )
    names = [r[0] for r in rows]
    assert names == ["cmp_visible", "consent_preferences", "page_view", "consent_preferences",
                     "page_view", "page_view"]  # fmt: skip
    assert '"withdrawn"' in rows[3][5]  # the consent event, as sent: the record of the choice
    for _, title, duid, uid, ip, _ in rows:
        if title == "after":
            assert duid.startswith("anon-") and uid.startswith("anon-") and ip is None
            assert duid != device and uid != user
        else:
            assert (duid, uid) == (device, user) and ip
    assert rows[4][2] == rows[5][2]  # one pseudonym per device: behaviour still counts


def test_bad_mode_fails_naming_the_variable(tmp_path: Path, monkeypatch) -> None:
    from loader.errors import ConfigError
    from privacy.suppression import Suppression

    monkeypatch.setenv("PERSONA_CONSENT_WITHDRAWN", "forget-them")
    with pytest.raises(ConfigError, match="PERSONA_CONSENT_WITHDRAWN"):
        Suppression.from_duckdb(tmp_path / "w.duckdb")
