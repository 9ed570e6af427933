"""Privacy rules (loader/privacy.py) on each shape of stored data: collector records before the
spool, events, chunks and failed events before a batch. The live paths (collector, files, tail,
Kafka) are exercised in test_hostile_sources.py."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loader.columnar import parse_block
from loader.contract import FIELDS
from loader.enrich import EnrichConfig, Received, enrich_or_fail
from loader.enriched import parse_line
from loader.errors import ConfigError
from loader.failed import FailedEvent
from loader.privacy import Privacy, anonymize_ip

EID = "c6ef3124-b53a-4b13-a233-0088f79dcbcb"
AT = datetime(2026, 1, 1, 12, 0, 0)


@pytest.mark.parametrize(
    ("value", "one", "two"),
    [
        ("203.0.113.77", "203.0.113.x", "203.0.x.x"),
        ("203.0.113.77 ", "203.0.113.x", "203.0.x.x"),  # trailing space
        ("203.0.113.77:8080", "203.0.113.x", "203.0.x.x"),  # a port
        ("203.000.113.077", "203.0.113.x", "203.0.x.x"),  # zero-padded octets
        ("::ffff:203.0.113.77", "203.0.113.x", "203.0.x.x"),  # IPv4-mapped IPv6
        ("fe80::1%eth0", "fe80:0000:0000:0000:0000:0000:x:x", "fe80:0000:0000:0000:x:x:x:x"),
        ("[2001:db8::1]:443", "2001:0db8:0000:0000:0000:0000:x:x", "2001:0db8:0000:0000:x:x:x:x"),
        ("203.0.113.x", "203.0.113.x", "203.0.x.x"),  # blanked already (Snowplow's enrichment)
        ("203.0.x.x", "203.0.x.x", "203.0.x.x"),
        ("not an address", "x", "x"),
        ("1.2.3.4.5", "x", "x"),
    ],
)
def test_every_form_of_an_address_is_anonymized(value: str, one: str, two: str) -> None:
    assert (anonymize_ip(value, 1), anonymize_ip(value, 2)) == (one, two)


@given(st.ip_addresses(), st.integers(1, 4))
def test_no_address_survives_anonymization(address, octets: int) -> None:
    out = anonymize_ip(str(address), octets)
    assert out.count("x") >= (octets if address.version == 4 or "." in out else 2 * octets)
    assert str(address) not in out or octets == 0


def test_a_missing_salt_or_a_derived_field_fails_fast(monkeypatch) -> None:
    monkeypatch.delenv("PERSONA_PII_SALT", raising=False)
    with pytest.raises(ConfigError, match="PERSONA_PII_SALT"):
        Privacy.from_env(("user_id",))
    monkeypatch.setenv("PERSONA_PII_SALT", "s3cret")
    with pytest.raises(ConfigError, match="page_url"):
        Privacy.from_env(("page_url",))  # parsed into page_urlhost & co: refused, not ignored


def test_pii_is_pseudonymized_with_the_salt_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("PERSONA_PII_SALT", "s3cret")
    privacy = Privacy.from_env(("user_id",))

    def user_id(p: Privacy) -> str:
        record = p.protect_record({"p": {"e": "pv", "eid": EID, "uid": "jane@example.com"}})
        event = enrich_or_fail(Received(record["p"], AT), EnrichConfig())
        assert not isinstance(event, FailedEvent)
        return event["user_id"]

    a, b = user_id(privacy), user_id(privacy)
    assert a == b != "jane@example.com" and len(a) == 64
    monkeypatch.setenv("PERSONA_PII_SALT", "other")
    assert user_id(Privacy.from_env(("user_id",))) != a


def test_collector_records_are_protected_before_the_spool(monkeypatch) -> None:
    monkeypatch.setenv("PERSONA_PII_SALT", "s3cret")
    privacy = Privacy.from_env(("user_id", "network_userid"), anonymize_ip_octets=1)
    record = privacy.protect_record(
        {"t": 1, "ip": "198.51.100.23", "nuid": "n-1",
         "p": {"e": "pv", "eid": EID, "uid": "jane", "ip": "203.0.113.9", "tnuid": "n-2"}}
    )  # fmt: skip
    assert record["ip"] == "198.51.100.x" and record["p"]["ip"] == "203.0.113.x"
    assert {record["nuid"], record["p"]["tnuid"], record["p"]["uid"]}.isdisjoint(
        {"n-1", "n-2", "jane"}
    )
    assert record["nuid"] == privacy.pseudonym("n-1")
    bad = privacy.protect_record(
        {"t": 1, "ip": "198.51.100.23", "bad": '{"data":[{"uid":"jane","ip":"198.51.100.23"}'}
    )
    assert "jane" not in bad["bad"] and "198.51.100.23" not in bad["bad"]
    assert privacy.pseudonym("jane") in bad["bad"] and "198.51.100.x" in bad["bad"]


def test_enriched_tsv_events_chunks_and_failed_lines(fixture_line: str, monkeypatch) -> None:
    monkeypatch.setenv("PERSONA_PII_SALT", "s3cret")
    privacy = Privacy.from_env(("user_id", "domain_userid"), anonymize_ip_octets=1)
    values = fixture_line.split("\t")
    at = {f.name: i for i, f in enumerate(FIELDS)}
    values[at["user_id"]], values[at["user_ipaddress"]] = "jane", "198.51.100.23"
    values[at["domain_userid"]] = "duid-1"
    line = "\t".join(values)
    event = privacy.protect(parse_line(line))
    assert (event["user_id"], event["user_ipaddress"], event["domain_userid"]) == (
        privacy.pseudonym("jane"), "198.51.100.x", privacy.pseudonym("duid-1"),
    )  # fmt: skip
    chunk = privacy.protect(parse_block(((line + "\n") * 3).encode()))
    rows = chunk.table.select(["user_id", "user_ipaddress", "domain_userid"]).to_pylist()
    assert rows == [{"user_id": event["user_id"], "user_ipaddress": "198.51.100.x",
                     "domain_userid": event["domain_userid"]}] * 3  # fmt: skip
    values[at["collector_tstamp"]] = "nonsense"  # the line fails
    failed = privacy.protect(parse_line("\t".join(values)))
    assert isinstance(failed, FailedEvent)
    assert "jane" not in failed.raw and "198.51.100.23" not in failed.raw
    assert "duid-1" not in failed.raw and privacy.pseudonym("jane") in failed.raw
    short = privacy.protect(FailedEvent("uid=jane&ip=198.51.100.23\tonly two fields", "x", "y"))
    assert "jane" not in short.raw and "198.51.100.23" not in short.raw


def test_scrubbing_leaves_what_only_looks_like_an_address() -> None:
    privacy = Privacy(anonymize_ip_octets=1)
    text = "2026-01-02 17:13:39.507 v1.2.3 ip=203.0.113.77 fe80::1%eth0"
    assert privacy.scrub(text) == (
        "2026-01-02 17:13:39.507 v1.2.3 ip=203.0.113.x fe80:0000:0000:0000:0000:0000:x:x"
    )
