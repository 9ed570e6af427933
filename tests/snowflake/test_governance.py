"""Governed access as the dbt project configures it for Snowflake: grants per layer and the PII
tags (compiled offline; `persona snowflake setup` creates the roles, tag and policy)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Columns that hold personal data wherever a model has them: ids of a person or a device, IPs.
PII_NAMES = {"user_id", "domain_userid", "network_userid", "user_ipaddress", "stitched_user_id",
             "first_domain_userid", "user_fingerprint"}  # fmt: skip
SEGMENT_LAYER = {"segment_members", "segment_definitions", "segment_membership",
                 "segment_changes", "audiences"}  # fmt: skip


def models(target: Path) -> dict[str, dict[str, Any]]:
    manifest = json.loads((target / "manifest.json").read_text())
    return {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}


def test_grants_per_layer(snowflake_target: Path) -> None:
    for name, node in models(snowflake_target).items():
        grants = node["config"]["grants"]
        if node["schema"].endswith("_internal"):
            assert grants.get("select", []) == [], name  # the transformer's alone
        elif name in SEGMENT_LAYER:
            assert sorted(grants["select"]) == ["PERSONA_ACTIVATION", "PERSONA_ANALYST"], name
        else:
            assert grants["select"] == ["PERSONA_ANALYST"], name


def test_every_pii_column_is_marked_and_tagged(snowflake_target: Path) -> None:
    tagged = 0
    for name, node in models(snowflake_target).items():
        hooks = " ".join(h["sql"] for h in node["config"]["post-hook"])
        assert "persona.pii_tags()" in hooks, name
        for column, info in node["columns"].items():
            meta = info.get("meta") or info.get("config", {}).get("meta") or {}
            if column in PII_NAMES:
                assert meta.get("pii") is True, f"{name}.{column} holds PII: meta {{pii: true}}"
                tagged += 1
    assert tagged >= 25


def test_the_pii_post_hook_tags_the_marked_columns(snowflake_target: Path) -> None:
    """What snowflake__pii_tags() renders for a node whose yml marks user_id and domain_userid
    (meta, and config.meta) and not page_url: one ALTER naming exactly those two."""
    (probe,) = (snowflake_target / "compiled").rglob("pii_probe.sql")
    sql = " ".join(probe.read_text().split())
    assert sql == (
        "alter dynamic table PERSONA.derived.pii_probe modify column user_id set tag "
        "PERSONA.GOVERNANCE.PII = 'true', column domain_userid set tag "
        "PERSONA.GOVERNANCE.PII = 'true'"
    )
