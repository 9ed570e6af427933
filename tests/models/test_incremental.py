"""Invariant: loading a stream in chunks, with `dbt run` after each, gives exactly the tables a
full refresh builds from the same events, row for row.

Hypothesis draws the stream (a synthetic shop), where it is cut, and what goes wrong across
the cuts: duplicates re-sent in a later chunk, events that arrive days late, devices that log
in later (their past sessions must be re-stitched), sessions that outgrow max_session_days,
and inputs that fail (the loader's clock stamps them, so failed_at rises from chunk to chunk),
and forget requests between chunks (`persona forget`, delete only: a user or a device, with
everything stitched to it, is deleted from every table; later chunks may bring them back).

The synthetic shop gives each device its own network_userid and rarely a second session in a
few days, so re-stitching would go untested by the stream alone: every example also has each
of these, in the last chunk, for a device of its own that visited once in the first chunk
(anonymous, or logged in as someone else):
- shared_device: a new session on a device, logged in as another (or a new) user;
- silent_login: the same from a server (no page activity, no network_userid): only the
  device's row in identity_map changes;
- network_login: a new browser behind the same network_userid logs in (stitching by network);
- new_device: a user seen on a new device (users and per-user aggregates span devices).
Every example also has a customer who switches from the web to an app: a visit in the first
chunk, then an app session (client_session ids) whose first screen and a break in the background
arrive in the first chunk and whose return to the foreground, sign-in and second screen arrive
in the last: the session spans the background period and the chunks, and the sign-in re-stitches
its first half. The synthetic shop's own app users mix app sessions into every stream.
Bugs planted to check this, each failing within the default examples: restitch_sessions
disabled; restitch_sessions stitching by cookie only; devices_this_run without the devices a
login by cookie or by network_userid re-stitches; the key_scoped strategy not clearing its keys.

PERSONA_INVARIANT_EXAMPLES sets the number of examples: 6 by default, as `make test` and CI run
them (90-270 s here on 2 cores shared with other builds); more for a longer search.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from loader.enriched import Event, parse_line
from loader.failed import FailedEvent
from loader.sources.synthetic import SyntheticConfig, generate_lines
from privacy.forget import Ids, forget
from tests.models.conftest import Dbt

MODELS = (
    "events",
    "session_bounds",
    "page_views",
    "screen_views",
    "views",
    "sessions",
    "quarantined_sessions",
    "identity_map",
    "users",
    "product_events",
    "user_daily",
    "user_product_daily",
    "profiles",
    "segment_members",
    "audiences",
    "traffic_hourly",
    "failed_events_hourly",
    "device_behaviour_daily",
)
# Bookkeeping, in the internal schema (`<schema>_internal`); the scopes (`*_this_run`) differ
# by design: a full refresh's scope is everything.
INTERNAL = {"session_bounds"}
# Columns that record when a refresh happened, not what the data says.
REFRESH_TIME = {"audiences": {"since"}}
# The clock-dependent final layer is compared at the same moment: the newest event.
AS_OF = {"as_of": "latest_event"}
# the continuous refresh (the rule sets are retrained on their own cadence)
REFRESH = ("build", "--selector", "realtime", "--exclude-resource-type", "test", "unit_test")
EXAMPLES = int(os.environ.get("PERSONA_INVARIANT_EXAMPLES", "6"))
STITCHING = ("network_login", "shared_device", "silent_login", "new_device")
WEB_PAGE = "contexts_com_snowplowanalytics_snowplow_web_page_1"
CLIENT_SESSION = "contexts_com_snowplowanalytics_snowplow_client_session_1"
SCREEN = "contexts_com_snowplowanalytics_mobile_screen_1"
SCREEN_SUMMARY = "contexts_com_snowplowanalytics_mobile_screen_summary_1"
SCREEN_VIEW = "unstruct_event_com_snowplowanalytics_mobile_screen_view_1"
ROBOTS = "contexts_com_iab_snowplow_spiders_and_robots_1"  # the base may be a bot's page view
MOVED = ("collector_tstamp", "dvce_created_tstamp", "dvce_sent_tstamp", "derived_tstamp")


def app_event(base: Event, name: str, seconds: int, ids: dict[str, str], screen: str,
              summary: tuple[int, int] | None = None) -> Event:  # fmt: skip
    """An app's event ``seconds`` after ``base`` (a web event whose clock and geo it keeps),
    with the mobile trackers' entities; ``ids``: event_id, install, session, user_id."""
    session = {"_schema_version": "1-0-2", "userId": ids["install"], "sessionId": ids["session"],
               "sessionIndex": 1, "storageMechanism": "SQLITE"}  # fmt: skip
    event = base | {k: base[k] + timedelta(seconds=seconds) for k in MOVED} | {
        "event_id": ids["event_id"], "platform": "mob", "event": "unstruct", "event_name": name,
        "domain_userid": None, "domain_sessionid": None, "network_userid": None,
        "user_id": ids.get("user_id"), WEB_PAGE: None, CLIENT_SESSION: [session],
        "useragent": "PersonaShop/4.2.0 CFNetwork/1568.200.51 Darwin/24.1.0", ROBOTS: None,
        SCREEN: [{"_schema_version": "1-0-0", "id": screen, "name": name}],
        SCREEN_VIEW: {"id": screen, "name": "Home"} if name == "screen_view" else None,
        SCREEN_SUMMARY: None if summary is None else [
            {"_schema_version": "1-0-0", "foreground_sec": summary[0], "background_sec": summary[1]}
        ],
    }  # fmt: skip
    # no page, referrer or campaign: an app has none
    return event | {k: None for k in event if k.startswith(("page_", "refr_", "mkt_"))}


@dataclass
class Stream:
    """Chunks of events, shown by what was drawn (the events themselves are too many to print)."""

    cfg: SyntheticConfig
    chunks: list[list[Event | FailedEvent]]
    changes: list[str] = field(default_factory=list)
    # after chunk i: forget (kind, id)
    forgets: dict[int, list[tuple[str, str]]] = field(default_factory=dict)

    def __repr__(self) -> str:
        sizes = [len(c) for c in self.chunks]
        return (f"Stream({self.cfg}, chunk sizes {sizes}, changes {self.changes}, "
                f"forgets {self.forgets})")  # fmt: skip

    def _repr_pretty_(self, printer: object, cycle: bool) -> None:
        # Hypothesis prints a failing dataclass field by field (541 kB of events), which its own
        # warning, an error here, then hides the failure behind: print the short form.
        printer.text(repr(self))  # type: ignore[attr-defined]


@st.composite
def chunked_streams(draw: st.DrawFn) -> Stream:
    cfg = SyntheticConfig(
        users=draw(st.integers(15, 40)),
        days=draw(st.integers(2, 4)),
        seed=draw(st.integers(0, 9999)),
    )
    events = [parse_line(line) for line in generate_lines(cfg)]
    assume(len(events) >= 10)  # a quiet shop on a quiet day: nothing to cut
    n_chunks = draw(st.integers(2, 4))
    cuts = sorted(draw(st.lists(st.integers(1, len(events) - 1), min_size=n_chunks - 1,
                                max_size=n_chunks - 1, unique=True)))  # fmt: skip
    bounds = zip([0, *cuts], [*cuts, len(events)], strict=True)
    chunks: list[list[Event | FailedEvent]] = [list(events[a:b]) for a, b in bounds]

    def fresh_id() -> str:
        return str(uuid.UUID(int=draw(st.integers(1, 2**122)), version=4))

    def later_chunk(i: int) -> list[Event | FailedEvent]:
        return chunks[draw(st.integers(i + 1, n_chunks - 1))]

    changes = []
    user_ids = sorted({e["user_id"] for e in events if e.get("user_id")}) or ["nobody"]
    page_views = [e for e in chunks[0] if e["event_name"] == "page_view"]
    assume(page_views)
    moved = ("collector_tstamp", "dvce_created_tstamp", "dvce_sent_tstamp", "derived_tstamp")
    extra = draw(st.lists(st.sampled_from(STITCHING), max_size=3))
    for kind in [*STITCHING, *extra]:  # each kind in every example
        # A visit in the first chunk by a device of its own (quiet afterwards, so only a
        # re-stitch can put it in a later run's scope), anonymous or logged in as someone; by
        # network_userid stitching decides only for a device that never logs in itself.
        e = page_views[draw(st.integers(0, len(page_views) - 1))]  # an index: short reprs
        before = None if kind == "network_login" else draw(st.sampled_from([None, *user_ids]))
        visit = e | {
            "event_id": fresh_id(),
            "domain_userid": fresh_id(),
            "network_userid": fresh_id(),
            "domain_sessionid": fresh_id(),
            "domain_sessionidx": 1,
            "user_id": before,
            WEB_PAGE: [{"_schema_version": "1-0-0", "id": fresh_id()}],
        }
        chunks[0].append(visit)
        # ... then, in the last chunk, a login that re-stitches it
        user = draw(st.sampled_from([*user_ids, "late-login-0", "late-login-1"]))
        shift = timedelta(minutes=draw(st.integers(31, 60 * 48)))
        login = visit | {k: visit[k] + shift for k in moved} | {
            "event_id": fresh_id(),
            "domain_sessionid": fresh_id(),
            "domain_sessionidx": 2,
            "user_id": user,
            WEB_PAGE: [{"_schema_version": "1-0-0", "id": fresh_id()}],
        }  # fmt: skip
        if kind == "silent_login":  # server-side: no page activity, no network_userid
            login |= {"event": "unstruct", "event_name": "sign_in", WEB_PAGE: None,
                      "network_userid": None}  # fmt: skip
        if kind in ("network_login", "new_device"):
            login |= {"domain_userid": fresh_id(), "domain_sessionidx": 1}
        if kind == "new_device":
            login |= {"network_userid": fresh_id(), "user_id": before or user}
        changes.append(f"{kind}: {before} then {login['user_id']}")
        chunks[-1].append(login)
    # web, then app: an app session across a break in the background and across the chunks
    # (ids of their own: a minimal example draws the same fresh_id every time)
    seed = fresh_id()

    def app_id(n: int) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{seed}/{n}"))

    e = page_views[draw(st.integers(0, len(page_views) - 1))]
    user = draw(st.sampled_from(user_ids))
    chunks[0].append(e | {"event_id": app_id(1), "domain_userid": app_id(2), "user_id": user,
                          "domain_sessionid": app_id(3), "network_userid": app_id(4),
                          WEB_PAGE: [{"_schema_version": "1-0-0", "id": app_id(5)}]})  # fmt: skip
    ids = {"install": app_id(6), "session": app_id(7)}
    first, second = app_id(8), app_id(9)
    start = 60 * draw(st.integers(31, 60 * 24))
    away = 60 * draw(st.integers(1, 29))  # shorter than the 30-minute background timeout
    chunks[0] += [
        app_event(e, "screen_view", start, ids | {"event_id": app_id(10)}, first),
        app_event(e, "application_background", start + 12, ids | {"event_id": app_id(11)},
                  first, (12, 0)),
    ]  # fmt: skip
    signed_in = ids | {"user_id": user}
    chunks[-1] += [
        app_event(e, "application_foreground", start + 12 + away,
                  signed_in | {"event_id": app_id(12)}, first, (12, away)),
        app_event(e, "screen_end", start + 30 + away, signed_in | {"event_id": app_id(13)},
                  first, (30, away)),
        app_event(e, "screen_view", start + 31 + away, signed_in | {"event_id": app_id(14)},
                  second),
        app_event(e, "application_background", start + 50 + away,
                  signed_in | {"event_id": app_id(15)}, second, (19, 0)),
    ]  # fmt: skip
    changes.append(f"web then app: {user}, {away // 60} min in the background")
    for _ in range(draw(st.integers(0, 6))):
        i = draw(st.integers(0, n_chunks - 2))
        e = chunks[i][draw(st.integers(0, len(chunks[i]) - 1))]
        kind = draw(st.sampled_from(["exact_dup", "resent_dup", "late", "login", "long_session"]))
        changes.append(f"{kind} of {e['event_name']} {e['event_id'][:8]} from chunk {i}")
        if kind == "exact_dup":
            copy = dict(e)
        elif kind == "resent_dup":
            shift = timedelta(minutes=draw(st.integers(1, 600)))
            copy = e | {"collector_tstamp": e["collector_tstamp"] + shift,
                        "dvce_sent_tstamp": e["dvce_sent_tstamp"] + shift}  # fmt: skip
        elif kind == "late":
            shift = timedelta(hours=draw(st.integers(1, 24 * 5)))
            copy = e | {"event_id": fresh_id(), "collector_tstamp": e["collector_tstamp"] + shift,
                        "dvce_sent_tstamp": e["dvce_sent_tstamp"] + shift}  # fmt: skip
        elif kind == "login":
            copy = e | {"event_id": fresh_id(), "user_id": f"late-login-{draw(st.integers(0, 3))}"}
        else:
            shift = timedelta(days=draw(st.integers(1, 4)), minutes=1)
            moved = (
                "collector_tstamp",
                "dvce_created_tstamp",
                "dvce_sent_tstamp",
                "derived_tstamp",
            )
            copy = e | {"event_id": fresh_id(), **{k: e[k] + shift for k in moved}}
        later_chunk(i).append(copy)
    failed_at = cfg.start
    for i, chunk in enumerate(chunks):
        for _ in range(draw(st.integers(1 if i == 0 else 0, 3))):
            failed_at += timedelta(minutes=draw(st.integers(0, 90)))  # the hour may span chunks
            chunk.append(FailedEvent("not an event", "tsv_field_count", "bad", "test", failed_at))
    forgets: dict[int, list[tuple[str, str]]] = {}
    for _ in range(draw(st.integers(0, 2))):  # forget someone seen by then, between chunks
        i = draw(st.integers(0, n_chunks - 2))
        seen = [e for c in chunks[: i + 1] for e in c if isinstance(e, dict) and device_of(e)]
        e = seen[draw(st.integers(0, len(seen) - 1))]
        if e.get("user_id") and draw(st.booleans()):
            forgets.setdefault(i, []).append(("user_id", e["user_id"]))
        else:  # a browser's cookie id, or an app install's (client_session.userId)
            forgets.setdefault(i, []).append(("domain_userid", device_of(e)))
    return Stream(cfg, chunks, changes, forgets)


# Shrinking re-runs dbt many times; the drawn Stream's repr says enough to reproduce a failure.
def device_of(event: dict) -> str | None:
    """The device an event names: the browser's cookie id, else an app's install id."""
    if event.get("domain_userid"):
        return event["domain_userid"]
    session = event.get("contexts_com_snowplowanalytics_snowplow_client_session_1")
    if isinstance(session, str):
        session = json.loads(session)
    if isinstance(session, dict):
        session = session.get("data")
    return (session or [{}])[0].get("userId") if isinstance(session, list) else None


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(stream=chunked_streams())
def test_incremental_runs_equal_a_full_refresh(
    make_dbt: Callable[[str], Dbt], stream: Stream
) -> None:
    dbt = make_dbt("invariant")
    for i, chunk in enumerate(stream.chunks):
        dbt.load(chunk)
        dbt(*REFRESH, vars=AS_OF)
        for kind, value in stream.forgets.get(i, []):
            with dbt.connect() as con:
                forget(
                    con, Ids(kind, value), "delete_only", b"property-test-salt", checkpoint=False
                )
    dbt(*REFRESH, "--full-refresh", vars=AS_OF, schema="derived_full")
    con = dbt.connect()
    for model in MODELS:
        suffix = "_internal" if model in INTERNAL else ""
        incremental, full = f"derived{suffix}.{model}", f"derived_full{suffix}.{model}"
        rows = con.execute(f"select count(*) from {full}").fetchone()[0]
        if model not in ("quarantined_sessions", "audiences"):
            assert rows > 0, model
        # New entity columns are appended to an incremental table: compare by name, not position.
        columns = {name: [r[0] for r in con.execute(f"describe {name}").fetchall()]
                   for name in (incremental, full)}  # fmt: skip
        assert sorted(columns[incremental]) == sorted(columns[full]), model
        compared = [c for c in columns[full] if c not in REFRESH_TIME.get(model, set())]
        names = ", ".join(f'"{c}"' for c in compared)
        for a, b in ((incremental, full), (full, incremental)):
            query = f"select {names} from {a} except all select {names} from {b}"
            extra = con.execute(query).fetchall()
            assert extra == [], f"{model}: rows in {a} and not in {b}: {extra[:3]}"
