"""Every page through Streamlit's AppTest on a small built warehouse: the numbers shown are
the numbers SQL run here (against the base models, not the dashboard's aggregates) gives, each
chart comes with what it shows and its SQL, and nothing fails on screen."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.source import snapshot_path
from dashboard.style import NOTHING
from tests.conftest import ROOT

APP = str(ROOT / "dashboard" / "app.py")


@pytest.fixture
def open_page(warehouse: Path, reports: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PERSONA_DUCKDB", str(warehouse))
    monkeypatch.setenv("PERSONA_DASHBOARD_REPORTS", str(reports))
    monkeypatch.delenv("PERSONA_TARGET", raising=False)

    def run(page: str) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=60)
        at.run()
        at.switch_page(f"views/{page}.py").run()
        assert_clean(at)
        if page != "customer":  # its charts come once a customer is chosen
            assert_explained(at)
        return at

    return run


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def assert_explained(at: AppTest) -> None:
    """Every chart or table has a one-line caption and its SQL (or, for a chart drawn from a
    report file, the file) one click away."""
    sql = [e for e in at.expander if e.label == "SQL"]
    files = [e for e in at.expander if e.label == "Source"]
    assert len(sql) + len(files) >= len(at.subheader) >= 1
    assert len(at.caption) >= len(at.subheader)
    for block in sql:
        assert block.code[0].value.lower().startswith(("select", "with"))


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def charts(at: AppTest) -> list:
    return list(at.get("vega_lite_chart"))


def test_pipeline_counts_good_and_failed_events(open_page, sql) -> None:
    at = open_page("pipeline")
    [(good,)] = sql("select count(*) from derived.events")
    [(failed,)] = sql("select count(*) from atomic.failed_events")
    shown = metrics(at)
    assert shown["Events in the warehouse"] == f"{good:,}"
    assert shown["Failed events"] == f"{failed:,}" and failed > 0
    assert shown["Failure rate"] == f"{100 * failed / (good + failed):.2f}%"
    assert len(charts(at)) == 3  # good/failed, latency, failed by type
    by_type = dict(sql("select error_type, count(*) from atomic.failed_events group by 1"))
    examples = at.dataframe[-1].value
    assert set(examples["error_type"]) == set(by_type)
    assert len(examples) == sum(min(n, 3) for n in by_type.values())


def test_traffic_matches_sessions_and_the_channel_filter_filters(open_page, sql) -> None:
    at = open_page("traffic")
    ((sessions, converted, viewed, carted, bought),) = sql(
        "select count(*), count(*) filter (where conversions > 0),"
        " count(*) filter (where product_views > 0),"
        " count(*) filter (where product_views > 0 and add_to_carts > 0),"
        " count(*) filter (where product_views > 0 and add_to_carts > 0 and purchases > 0)"
        " from derived.sessions"
    )
    shown = metrics(at)
    assert shown["Sessions"] == f"{sessions:,}"
    assert shown["Converted"] == f"{100 * converted / sessions:.1f}%"
    assert shown["Drop-off before “added to cart”"] == f"{100 * (1 - carted / viewed):.1f}%"
    assert shown["Drop-off before “bought”"] == f"{100 * (1 - bought / carted):.1f}%"
    assert len(charts(at)) == 5

    ((channel, n),) = sql(
        "select default_channel_group, count(*) from derived.sessions"
        " group by 1 order by 2 desc limit 1"
    )
    at.multiselect[0].set_value([channel]).run()
    assert_clean(at)
    assert metrics(at)["Sessions"] == f"{n:,}" and n < sessions


def test_segments_sizes_and_members_download(open_page, sql) -> None:
    at = open_page("segments")
    sizes = dict(sql("select segment, count(*) from derived.segment_membership group by 1"))
    shown = metrics(at)
    for segment, size in sizes.items():
        assert shown[segment] == f"{size:,}"
    summary = at.dataframe[0].value
    assert dict(zip(summary["segment"], summary["members"], strict=True)) == {
        s: sizes.get(s, 0) for s in summary["segment"]
    }
    chosen = at.selectbox(key="download_segment").value
    button = at.get("download_button")[0]
    assert f"{sizes.get(chosen, 0):,} members of {chosen}" in button.proto.label


def test_customer_360_finds_a_customer_by_user_or_device(open_page, sql) -> None:
    at = open_page("customer")
    ((user, revenue, sessions),) = sql(
        "select user_id, revenue, sessions from derived.profiles"
        " order by revenue desc, sessions desc, user_id limit 1"
    )
    at.selectbox(key="customer_top").select_index(0).run()
    assert_clean(at)
    assert_explained(at)
    assert at.header[0].value == user
    shown = metrics(at)
    assert shown["Revenue"] == f"{revenue:,.2f}" and shown["Sessions"] == f"{sessions:,}"
    ((n_sessions,),) = sql(
        "select count(*) from derived.sessions where stitched_user_id = ?", [user]
    )
    assert len(charts(at)) == 1 and n_sessions == sessions

    ((device,),) = sql(
        "select device_id from derived.identity_map where user_id = ? limit 1", [user]
    )
    at.selectbox(key="customer_top").set_value(None)
    at.text_input(key="customer_search").input(device).run()
    assert_clean(at)
    assert at.header[0].value == user

    at.text_input(key="customer_search").input("' or 1=1 --").run()
    assert_clean(at)
    assert not at.header and "No user or device matches" in at.info[0].value


def test_anomalies_show_each_detector(open_page, sql) -> None:
    at = open_page("anomalies")
    flagged = dict(sql("select detector, count(*) from derived.anomalies group by 1"))
    shown = metrics(at)
    assert shown["Bot-like devices: flagged"] == f"{flagged.get('behaviour', 0):,}"
    assert shown["Traffic: flagged"] == f"{flagged.get('traffic', 0):,}"
    assert len(charts(at)) >= 2  # the traffic series, the bots (failed events: too few)


def test_rule_sets_show_versions_the_served_one_and_the_reports(open_page, sql) -> None:
    at = open_page("rulesets")
    versions = sql("select rule_set_version from derived.rule_set_versions")
    ((served,),) = sql("select distinct rule_set_version from derived.current_user_recommendations")
    shown = metrics(at)
    assert shown["Versions kept"] == f"{len(versions):,}" and shown["Served"] == served
    assert len(charts(at)) == 3  # versions, evaluation, cadence
    assert any("Recommended: day" in c.value for c in at.caption)


def test_a_missing_warehouse_says_what_to_run(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PERSONA_DUCKDB", str(tmp_path / "nowhere.duckdb"))
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert_clean(at)
    assert any(
        f"no warehouse at {tmp_path / 'nowhere.duckdb'}: run `make demo`" in w.value
        for w in at.warning
    )


def test_reads_without_writing_and_reads_the_snapshot_while_a_writer_holds_the_file(
    warehouse: Path, tmp_path: Path, monkeypatch, duckdb_holder
) -> None:
    held = tmp_path / "live.duckdb"
    held.write_bytes(warehouse.read_bytes())
    before = hashlib.sha256(held.read_bytes()).hexdigest()
    monkeypatch.setenv("PERSONA_DUCKDB", str(held))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert metrics(at)["Events in the warehouse"] != NOTHING
    assert hashlib.sha256(held.read_bytes()).hexdigest() == before  # read-only
    assert not held.with_name("live.duckdb.wal").exists()

    duckdb_holder(held)  # what `persona serve` does: hold the file for writing
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert_clean(at)
    assert any("no snapshot at" in w.value and "persona serve" in w.value for w in at.warning)

    snapshot_path(held).write_bytes(warehouse.read_bytes())  # as the live mode publishes it
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert_clean(at)
    assert "live snapshot" in at.sidebar.caption[0].value
    assert metrics(at)["Events in the warehouse"] != NOTHING


def test_customer_360_shows_the_interventions_fired_for_their_devices(
    warehouse: Path, reports: Path, sql, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live process's record (serving/interventions/outbox.py), written by its own code on
    a copy of the warehouse: a fire for one of the customer's devices shows on their page."""
    import shutil

    import duckdb

    from serving.interventions.outbox import Fire, Outbox, utcnow

    ((user, device),) = sql(
        "select user_id, device_id from derived.identity_map where user_id is not null "
        "and device_id_type = 'domain_userid' order by user_id limit 1"
    )
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(warehouse, copy)
    with duckdb.connect(str(copy)) as con:
        outbox = Outbox(con)
        outbox.record([Fire(outbox.next_seq(), "i-1", "third_view_in_a_category", 1, "rule",
                            "domain_userid", device, {}, utcnow())], [])  # fmt: skip
        outbox.close()
    monkeypatch.setenv("PERSONA_DUCKDB", str(copy))
    monkeypatch.setenv("PERSONA_DASHBOARD_REPORTS", str(reports))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("views/customer.py").run()
    at.text_input(key="customer_search").input(user).run()
    assert_clean(at)
    fired = [t for t in at.dataframe if "third_view_in_a_category" in t.value.to_string()]
    assert fired, [s.value for s in at.subheader]
