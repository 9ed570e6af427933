"""A retrain that copies the lists of users whose inputs did not change (user_rule_inputs) gives
the rows a retrain scoring every user gives: a random log, a retrain, random new events (some
users changed, most not, the clock moved or not, events leaving the window or not), then the
second retrain twice in the same warehouse, with reuse and without, compared row for row.

Each example is three real dbt retrains (~15 s). PERSONA_REUSE_EXAMPLES sets how many: 2 by
default, as `make test` and CI run them; more for a longer search. No shrinking (each step
would be three more retrains): a failing example prints its scenario."""

from __future__ import annotations

import os
import random
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from recs import retrain

START = datetime(2026, 1, 1)
EXAMPLES = int(os.environ.get("PERSONA_REUSE_EXAMPLES", "2"))
COLUMNS = "user_id, recommendation_rank, product_id, recommended_by, reason, reason_detail, score"


def events(rng: random.Random, user: str, group: int, start: datetime, days: float) -> list:
    """A few views and purchases of the user's group's items (a purchase sometimes repeated,
    some due, some not), now and then a shared item; float weights: no two scores tie."""
    rows = []
    for _ in range(rng.choice([1, 2, 3, 5, 9])):
        shared = rng.random() < 0.1
        item = f"s{rng.randrange(3)}" if shared else f"g{group}i{int(rng.random() ** 2 * 8)}"
        at = start + timedelta(seconds=rng.randrange(int(days * 86400)))
        if rng.random() < 0.5:
            every = timedelta(days=rng.choice([2, 9, 20]))
            for n in range(rng.choice([1, 2, 3])):
                if at + n * every <= start + timedelta(days=days):
                    rows.append((user, item, at + n * every, 1 + rng.random(), "transaction"))
        else:
            rows.append((user, item, at, 1 + rng.random(), "product_view"))
    return rows


@st.composite
def scenarios(draw: Any) -> dict[str, Any]:
    """Taste groups (their items co-occur among themselves only); the new events come to some
    users of group 0 (and one new user), at or before the old window's end or up to 20 days
    after it."""
    return {
        "seed": draw(st.integers(0, 2**32 - 1)),
        "groups": draw(st.integers(2, 4)),
        "users": draw(st.integers(4, 12)),
        "changed": draw(st.integers(1, 4)),
        "later_days": draw(st.sampled_from([0.0, 0.5, 3.0, 20.0])),
        "vars": {
            "recs_compute": draw(st.sampled_from(["python", "sql"])),
            "recs_training_days": draw(st.sampled_from([None, None, 50])),
            "recs_half_life_days": draw(st.sampled_from([30, 30, 0])),
            "recs_buy_again_horizon_days": draw(st.sampled_from([30, 30, 3])),
            "recs_buy_again_weight": draw(st.sampled_from([0.3, 1.0])),
        },
    }


def logs(s: dict[str, Any]) -> tuple[list, list]:
    rng = random.Random(s["seed"])
    before = []
    for g in range(s["groups"]):
        for u in range(s["users"]):
            before += events(rng, f"g{g}u{u}", g, START, 60)
    end = max(r[2] for r in before)
    # new events: from 2 days before the old end (late) up to `later_days` after it
    since, days = end - timedelta(days=2), 2 + s["later_days"]
    after = list(before)
    for u in rng.sample(range(s["users"]), min(s["changed"], s["users"])):
        after += events(rng, f"g0u{u}", 0, since, days)
    after += events(rng, "newcomer", 0, since, days)
    return before, after


VARS = {
    "recs_recommend_again": ["transaction"],
    "recs_max_items_per_user": 4,  # heavy users are cut
    "recs_neighbours": 4,
    "recs_min_cooccurrence": 1,
    "recs_top_k": 4,
}


# the models only: their data tests run elsewhere (tests/recs, dbt build)
MODELS = ("--selector", "retrain", "--exclude-resource-type", "test")


def lists(con: duckdb.DuckDBPyConnection, version: str) -> list[tuple]:
    return con.execute(
        f"select {COLUMNS} from derived.user_recommendations where rule_set_version = ? "
        "order by 1, 2",
        [version],
    ).fetchall()


@pytest.mark.slow
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(s=scenarios())
def test_a_retrain_that_reuses_equals_one_that_scores_everyone(
    tmp_path_factory: pytest.TempPathFactory, s: dict[str, Any]
) -> None:
    warehouse = tmp_path_factory.mktemp("reuse") / "w.duckdb"
    before, after = logs(s)
    dbt_vars = {**VARS, **s["vars"]}
    with duckdb.connect(str(warehouse)) as con:
        retrain.load_log(con, before)
    retrain.run(warehouse, {**dbt_vars, "recs_rule_set_version": "v1"}, select=MODELS)
    with duckdb.connect(str(warehouse)) as con:
        retrain.load_log(con, after)
    retrain.run(warehouse, {**dbt_vars, "recs_rule_set_version": "v2"}, select=MODELS)
    full = {**dbt_vars, "recs_rule_set_version": "v3", "recs_reuse_unchanged": False}
    retrain.run(warehouse, full, select=MODELS)
    with duckdb.connect(str(warehouse)) as con:
        reused, scored = lists(con, "v2"), lists(con, "v3")
        copied, users, again = con.execute(
            "select count(reused_from) filter (where rule_set_version = 'v2'), "
            "count(*) filter (where rule_set_version = 'v2'), "
            "count(reused_from) filter (where rule_set_version = 'v3') "
            "from derived.user_rule_inputs"
        ).fetchone()
    note(f"{copied} of {users} users copied")
    assert again == 0  # recs_reuse_unchanged: false scores everyone
    # the changed users and the newcomer are scored again; without a moving window, users of
    # a quiet group who bought nothing keep their list (the test has something to compare)
    assert copied < users
    assert len(reused) == len(scored) > 0
    for got, want in zip(reused, scored, strict=True):
        assert got[:6] == want[:6], (got, want)
        assert got[6] == pytest.approx(want[6], rel=1e-9, abs=1e-12), (got, want)
