"""``persona mcp`` answers through the ``mcp`` client library: over stdio (the client launches
it as a subprocess) and over streamable HTTP (a bearer token: the API's), on a copy of the demo
warehouse. Each answer is checked against SQL on the same warehouse."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import duckdb
import pytest
import requests
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from serving.event_logs import BUILTIN_LOG
from tests.conftest import ROOT
from tests.loader.live_collector import free_port
from tests.serving.conftest import TOKEN, copy_warehouse

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
TOOLS = {"get_user_context", "recommend_items", "explain_segment_membership", "segments",
         "anomalies"}  # fmt: skip


@pytest.fixture(scope="module")
def warehouse(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("mcp")
    path = copy_warehouse(demo, tmp / "warehouse.duckdb")
    with duckdb.connect(str(path), read_only=True) as con:

        def one(sql: str, params: list[Any] | None = None) -> Any:
            return con.execute(sql, params or []).fetchall()

        user, lifecycle, rfm = one(
            "select user_id, lifecycle_stage, rfm_segment from derived.profiles p "
            "join derived.segment_membership using (user_id) where user_id like '%@%' "
            "and rfm_segment is not null "
            "order by user_id limit 1"
        )[0]
        sizes = dict(one("select segment, count(*) from derived.segment_membership group by 1"))
        member_of = [r[0] for r in one(
            "select segment from derived.segment_membership where user_id = ? order by 1", [user]
        )]  # fmt: skip
        devices = [r[0] for r in one("select device_id from derived.identity_map "
                                     "where user_id = ?", [user])]  # fmt: skip
        session, events = one(
            "select domain_sessionid, count(distinct event_id) filter (where event_name in "
            "('page_view', 'snowplow_ecommerce_action', 'site_search')) from atomic.events "
            "where user_id = ? or domain_userid in (select unnest(?::varchar[])) "
            "group by 1 order by max(collector_tstamp) desc limit 1",
            [user, devices],
        )[0]
        item, neighbour = one(
            "select product_id, similar_product_id from derived.current_item_similarity "
            "order by similarity desc, product_id limit 1"
        )[0]
        bots = [r[0] for r in one("select subject from derived.anomalies "
                                  "where detector = 'behaviour'")]  # fmt: skip
    return {"path": path, "tmp": tmp, "user": user, "lifecycle": lifecycle, "rfm": rfm,
            "sizes": sizes, "segments": member_of, "session": session,
            "events": min(events, BUILTIN_LOG.max_events), "item": item, "neighbour": neighbour,
            "bots": bots}  # fmt: skip


def env(world: dict[str, Any], **more: str) -> dict[str, str]:
    return {"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", ""),
            "PERSONA_CONTEXT_SALT": "test-salt", **more}  # fmt: skip


def command(world: dict[str, Any], *flags: str) -> list[str]:
    return ["-m", "persona", "mcp", "--warehouse", str(world["path"]), "--state-dir",
            str(world["tmp"] / "state"), *flags]  # fmt: skip


async def call(client: Client, tool: str, **arguments: Any) -> Any:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    if result.structured_content is not None:
        got = result.structured_content
        return got.get("result", got) if set(got) == {"result"} else got
    return result.content[0].text


async def ask_everything(client: Client, world: dict[str, Any]) -> None:
    assert {t.name for t in (await client.list_tools()).tools} == TOOLS
    text = await call(client, "get_user_context", user=world["user"])
    assert f"lifecycle stage {world['lifecycle']}; RFM {world['rfm']} " in text
    assert f"\nSegments: {', '.join(world['segments'])}.\n" in text
    assert f"({world['events']} of {world['events']} recent events" in text
    assert world["user"] not in text and "@" not in text and not UUID.search(text), text
    short = await call(client, "get_user_context", user=world["user"], max_tokens=150)
    assert "older left out for length" in short and "lifecycle stage" in short

    pseudonym = re.search(r"Visitor: (user-[0-9a-f]{12})", text)[1]  # type: ignore[index]
    for segment in world["segments"]:  # a pseudonym given out is taken back
        why = await call(client, "explain_segment_membership", user=pseudonym, segment=segment)
        assert why["member"] and why["user"] == pseudonym
        assert why["conditions"] and all(c["holds"] for c in why["conditions"]), why
    not_in = sorted(set(world["sizes"]) - set(world["segments"]))[0]
    why = await call(client, "explain_segment_membership", user=world["user"], segment=not_in)
    assert not why["member"] and not all(c["holds"] for c in why["conditions"])
    missing = await client.call_tool("explain_segment_membership",
                                     {"user": world["user"], "segment": "nope"})  # fmt: skip
    assert missing.is_error and "nope" in missing.content[0].text

    sizes = {s["segment"]: s["members"] for s in await call(client, "segments")}
    assert {k: v for k, v in sizes.items() if v} == world["sizes"]

    recs = await call(client, "recommend_items", items=[world["item"]], k=5)
    assert recs["strategy"] == "live" and world["neighbour"] in [
        i["product_id"] for i in recs["items"]]  # fmt: skip
    mine = await call(client, "recommend_items", user=world["user"], k=3)
    assert len(mine["items"]) == 3 and mine["rule_set_version"] == recs["rule_set_version"]

    anomalies = await call(client, "anomalies", limit=200, detector="behaviour")
    assert len(anomalies) == len(world["bots"]) > 0
    assert all(a["subject"].startswith("device-") for a in anomalies)
    assert not any(bot in repr(anomalies) for bot in world["bots"])


def test_the_tools_answer_over_stdio(warehouse) -> None:
    params = StdioServerParameters(command=sys.executable, args=command(warehouse),
                                   env=env(warehouse), cwd=str(ROOT))  # fmt: skip

    async def main() -> None:
        async with Client(params) as client:
            await ask_everything(client, warehouse)

    anyio.run(main)


@pytest.fixture
def http_server(warehouse) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, *command(warehouse, "--transport", "http", "--listen",
                                  f"127.0.0.1:{port}")],
        env=env(warehouse, PERSONA_API_TOKEN=TOKEN), cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(url, timeout=1)
            break
        except requests.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"persona mcp did not start: {proc.stderr.read()}") from None
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_the_tools_answer_over_http_with_the_token_only(warehouse, http_server: str) -> None:
    async def main(token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        transport = streamable_http_client(
            http_server, http_client=create_mcp_http_client(headers=headers)
        )
        async with Client(transport) as client:
            await ask_everything(client, warehouse)

    anyio.run(main, TOKEN)
    with pytest.raises(BaseException) as refused_client:
        anyio.run(main, "wrong-token")
    errors = list(leaves(refused_client.value))  # the client never gets to list the tools
    assert any(isinstance(e, MCPError) and "error response" in str(e) for e in errors), errors
    hello = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        refused = requests.post(http_server, json=hello, headers=headers, timeout=5)
        assert refused.status_code == 401, refused.text


def leaves(exc: BaseException) -> Iterator[BaseException]:
    """An exception group's exceptions (and their causes), or the exception itself."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from leaves(inner)
    else:
        yield exc
        if exc.__cause__ is not None:
            yield from leaves(exc.__cause__)


def test_http_without_a_token_fails_fast(warehouse) -> None:
    got = subprocess.run([sys.executable, *command(warehouse, "--transport", "http")],
                         env=env(warehouse), cwd=ROOT, capture_output=True, text=True,
                         timeout=30)  # fmt: skip
    assert got.returncode == 2 and "PERSONA_API_TOKEN" in got.stderr
