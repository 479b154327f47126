"""Limits that keep a node up under abuse: origins, floods, garbage, too many sockets."""

from __future__ import annotations

import json

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import AppFactory, Raw, center_config, raw_agent
from tests.support import Running, serving, token


async def close_code(ws: object) -> int | None:
    """Read until the server closes; its close code."""
    try:
        for _ in range(10_000):
            await ws.recv()  # type: ignore[attr-defined]
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    raise AssertionError("the server never closed the socket")


async def test_a_page_from_another_site_may_not_open_a_socket(live: Running):
    async with connect(f"{live.ws}/v1/agent", origin="https://evil.example") as ws:  # type: ignore[arg-type]
        assert await close_code(ws) == 4403
    same = f"http://127.0.0.1:{live.port}"
    async with connect(f"{live.ws}/v1/agent", origin=same) as ws:  # type: ignore[arg-type]
        await ws.send(json.dumps({"type": "hello", "id": 1, "token": token("ann")}))
        assert json.loads(await ws.recv())["type"] == "welcome"


async def test_configured_origins_are_allowed(app_for: AppFactory):
    config = center_config(allowed_origins=["https://desk.example.com"])
    async with (
        serving(app_for(config)) as live,
        connect(f"{live.ws}/v1/agent", origin="https://desk.example.com") as ws,  # type: ignore[arg-type]
    ):
        await ws.send(json.dumps({"type": "hello", "id": 1, "token": token("ann")}))
        assert json.loads(await ws.recv())["type"] == "welcome"


async def test_a_flood_is_answered_rate_limited_then_closed_with_4429(app_for: AppFactory):
    async with serving(app_for(center_config(rate_per_s=5, rate_burst=10))) as live:
        raw, _ = await raw_agent(live, "ann")
        for i in range(15):
            await raw.send({"type": "ping", "id": i})
        replies = [await raw.recv() for _ in range(15)]
        assert [r["type"] for r in replies].count("pong") >= 10
        limited = [r for r in replies if r["type"] == "error"]
        assert limited and {r["code"] for r in limited} == {"rate_limited"}
        assert {r["re"] for r in limited} <= set(range(15))  # each refusal names its request
        for i in range(40):  # keeps flooding after being told
            await raw.send({"type": "ping", "id": 100 + i})
        assert await close_code(raw.ws) == 4429


async def test_a_client_sending_only_garbage_is_closed_with_4400(app_for: AppFactory):
    async with serving(app_for(center_config(max_bad_frames=5))) as live:
        raw, _ = await raw_agent(live, "ann")
        for _ in range(3):
            await raw.send("{not json")
        assert (await raw.until("error"))["code"] == "bad_frame"
        assert (await raw.request({"type": "ping", "id": "ok"}))["type"] == "pong"  # a good frame resets the count
        for _ in range(6):
            await raw.send("\x00garbage")
        assert await close_code(raw.ws) == 4400


async def test_a_node_at_its_connection_limit_says_try_again_later(app_for: AppFactory):
    async with serving(app_for(center_config(max_connections=2))) as live:
        first, _ = await raw_agent(live, "ann")
        second, _ = await raw_agent(live, "ben")
        async with connect(f"{live.ws}/v1/agent") as third:
            assert await close_code(third) == 1013
        await first.ws.close()
        again = Raw(await connect(f"{live.ws}/v1/agent"))
        assert (await again.request({"type": "hello", "id": 1, "token": token("cat")}))["type"] == "welcome"
        await again.ws.close()
        await second.ws.close()
