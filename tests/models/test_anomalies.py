"""The anomaly detectors on five weeks of a generated shop with anomalies injected into its last
week: a traffic spike, an outage hour, a bot-like device with an ordinary useragent and a burst
of failed events. Loaded with the real loader into a scratch DuckDB, built with the real dbt
project: each injected anomaly is found by its detector, and nothing else is flagged.

1,500 shoppers give busy hours of a few hundred events per event type: fewer, and an hour's
count depends on whether one heavy shopper happened to visit, which no detector should flag.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from loader.enriched import Event, parse_line
from loader.failed import FailedEvent
from loader.sources.synthetic import SyntheticConfig, generate_lines
from tests.models.conftest import Dbt

CFG = SyntheticConfig(users=1500, days=35, seed=1)  # 2026-01-01 to 2026-02-05
AS_OF = datetime(2026, 2, 5)
HOUR = timedelta(hours=1)
SPIKE = datetime(2026, 2, 3, 14)  # 600 extra page views from new visitors (Tuesday afternoon)
OUTAGE = datetime(2026, 2, 2, 19)  # nothing collected in the busiest hour of a Monday
FAILURES = datetime(2026, 2, 3, 3)  # 200 inputs fail in a quiet night hour
BOT_DAY = datetime(2026, 2, 4)  # a device viewing a page every 5 minutes, never pinging
WEB_PAGE = "contexts_com_snowplowanalytics_snowplow_web_page_1"
ROBOTS = "contexts_com_iab_snowplow_spiders_and_robots_1"


def fresh_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(122), version=4))


def moved(e: Event, to: datetime, rng: random.Random, device: str | None = None) -> Event:
    """A copy of a page view collected at `to`: every timestamp shifted alike, new ids."""
    shift = to - e["collector_tstamp"]
    copy = {k: v + shift if isinstance(v, datetime) else v for k, v in e.items()}
    device = device or fresh_id(rng)
    return copy | {
        "event_id": fresh_id(rng),
        "domain_userid": device,
        "network_userid": device,
        "domain_sessionid": f"session-{device}",
        WEB_PAGE: [{"_schema_version": "1-0-0", "id": fresh_id(rng)}],
    }


def is_person(e: Event) -> bool:
    robots = e.get(ROBOTS) or [{}]
    return e["event_name"] == "page_view" and robots[0].get("spiderOrRobot") is False


@pytest.fixture(scope="module")
def built(make_dbt: Callable[[str], Dbt]) -> Dbt:
    rng = random.Random(5)
    events = [parse_line(line) for line in generate_lines(CFG)]
    assert all(isinstance(e, dict) for e in events)
    events = [e for e in events if not OUTAGE <= e["collector_tstamp"] < OUTAGE + HOUR]
    page_views = [e for e in events if is_person(e)]
    spike = [
        moved(e, SPIKE + timedelta(seconds=rng.uniform(0, 3599)), rng)
        for e in rng.sample(page_views, 600)
    ]
    template = rng.choice(page_views)
    bot = [moved(template, BOT_DAY + timedelta(hours=8, minutes=5 * i), rng, "metronome")
           for i in range(40)]  # fmt: skip
    failed = [
        FailedEvent(f"not\tan\tevent {i}", "tsv_field_count", "expected 131 fields", "test",
                    FAILURES + timedelta(seconds=17 * i))
        for i in range(200)
    ]  # fmt: skip
    dbt = make_dbt("anomalies")
    dbt.load([*events, *spike, *bot, *failed])
    # only what anomalies reads (cautious: not the tests of models that also read events)
    dbt("build", "--select", "+anomalies", "--indirect-selection", "cautious",
        vars={"start_date": "2026-01-01", "as_of": AS_OF.isoformat(sep=" ")})  # fmt: skip
    return dbt


def flagged(dbt: Dbt) -> list[dict]:
    con = dbt.connect()
    cursor = con.execute("select * from derived.anomalies order by detector, bucket_start, subject")
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    con.close()
    return rows


@pytest.fixture(scope="module")
def anomalies(built: Dbt) -> list[dict]:
    return flagged(built)


def test_the_spike_and_the_outage_are_the_only_traffic_anomalies(anomalies: list[dict]) -> None:
    traffic = [a for a in anomalies if a["detector"] == "traffic"]
    spike = [a for a in traffic if a["bucket_start"] == SPIKE]
    assert [a["subject"] for a in spike] == ["persona-shop/page_view"], spike
    assert spike[0]["observed"] > spike[0]["expected"] + 500
    assert spike[0]["score"] >= spike[0]["threshold"]
    assert spike[0]["reason"].startswith("spike")
    outage = [a for a in traffic if a["bucket_start"] == OUTAGE]
    # the busy event types are flagged; a type too rare for an empty hour to mean much is not
    assert {"persona-shop/page_view", "persona-shop/page_ping"} <= {a["subject"] for a in outage}
    assert all(a["observed"] == 0 and a["severity"] == "high" for a in outage)
    assert all(a["reason"].startswith("dropped to zero") for a in outage)
    assert len(traffic) == len(spike) + len(outage), traffic


def test_the_bot_like_device_is_found_and_known_bots_are_marked(anomalies: list[dict]) -> None:
    behaviour = [a for a in anomalies if a["detector"] == "behaviour"]
    metronome = [a for a in behaviour if a["subject"] == "metronome"]
    assert len(metronome) == 1
    assert metronome[0]["bucket_start"] == BOT_DAY
    assert metronome[0]["is_known_bot"] is False
    assert metronome[0]["severity"] == "high"  # no pings and uniform gaps: two signals
    assert "without a page ping" in metronome[0]["reason"]
    assert "nearly uniform" in metronome[0]["reason"]
    others = [a for a in behaviour if a["subject"] != "metronome"]
    assert others, "the shop's crawlers behave like bots too"
    assert all(a["is_known_bot"] and a["severity"] == "info" for a in others), others


def test_the_failed_event_burst_is_the_only_data_quality_anomaly(anomalies: list[dict]) -> None:
    quality = [a for a in anomalies if a["detector"] == "data_quality"]
    assert [(a["bucket_start"], a["observed"]) for a in quality] == [(FAILURES, 200)]
    assert quality[0]["severity"] == "high"


def test_nothing_else_is_flagged(anomalies: list[dict]) -> None:
    assert {a["detector"] for a in anomalies} == {"traffic", "behaviour", "data_quality"}
    assert all(a["as_of"] == AS_OF for a in anomalies)


def test_as_of_latest_event_replays_the_same_findings(built: Dbt, anomalies: list[dict]) -> None:
    """Measured from the latest event (shortly before midnight on the last day) instead of a fixed
    time: the window ends at the last whole hour before it, and finds the same anomalies."""
    built("run", "--select", "anomalies",
          vars={"start_date": "2026-01-01", "as_of": "latest_event"})  # fmt: skip
    replay = flagged(built)
    latest = replay[0]["as_of"]
    assert AS_OF - HOUR < latest < AS_OF
    assert all(a["as_of"] == latest for a in replay)

    def found(rows: list[dict]) -> set[tuple]:
        return {
            (a["detector"], a["subject"], a["bucket_start"]) for a in rows if not a["is_known_bot"]
        }

    assert found(replay) == found(anomalies)
