"""The agent socket's contract: handshake, credentials, bad input, formats, limits, supervisors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import httpx
import msgspec
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from clients.agent import AgentClient, SupervisorClient
from server.app import create_app
from server.auth import issue
from server.bus.base import Delivery
from server.bus.memory import MemoryBroker
from tests.e2e.conftest import AppFactory, Raw, center_config, raw_agent
from tests.support import API_KEY, SECRET, Running, serving, token


async def closed_with(ws: object, within: float = 5.0) -> tuple[int | None, str]:
    """Read until the server closes; return its close code and reason."""
    try:
        async with asyncio.timeout(within):
            while True:
                await ws.recv()  # type: ignore[attr-defined]
    except ConnectionClosed as exc:
        rcvd = exc.rcvd
        return (rcvd.code, rcvd.reason) if rcvd else (None, "")


async def test_forged_token_is_closed_with_4401(live: Running):
    forged = issue("another-secret-that-is-long-enough-0123456789", "ann", "agent")
    async with connect(f"{live.ws}/v1/agent") as ws:
        await ws.send(json.dumps({"type": "hello", "token": forged}))
        code, reason = await closed_with(ws)
    assert code == 4401
    assert "invalid token" in reason


async def test_expired_token_in_the_url_is_closed_at_once_with_4401(live: Running):
    expired = issue(SECRET, "ann", "agent", ttl_s=-10)
    async with connect(f"{live.ws}/v1/agent?token={expired}") as ws:
        code, reason = await closed_with(ws)
    assert (code, reason) == (4401, "token expired")


async def test_token_for_an_unknown_agent_is_refused(live: Running):
    async with connect(f"{live.ws}/v1/agent") as ws:
        await ws.send(json.dumps({"type": "hello", "token": token("mallory")}))
        code, _ = await closed_with(ws)
    assert code == 4401


async def test_a_role_that_does_not_fit_the_path_is_closed_with_4403(live: Running):
    async with connect(f"{live.ws}/v1/agent") as ws:
        await ws.send(json.dumps({"type": "hello", "token": token("sue", "supervisor")}))
        code, _ = await closed_with(ws)
    assert code == 4403
    async with connect(f"{live.ws}/v1/supervisor") as ws:
        await ws.send(json.dumps({"type": "hello", "token": token("ann")}))
        code, _ = await closed_with(ws)
    assert code == 4403


async def test_the_token_may_come_in_the_url_for_browsers(live: Running):
    async with AgentClient.connect(live.ws, token("ann"), token_in_url=True) as ann:
        assert ann.welcome is not None and ann.welcome.agent == "ann" and ann.welcome.name == "Ann"


async def test_the_first_frame_must_be_hello(live: Running):
    async with connect(f"{live.ws}/v1/agent") as ws:
        await ws.send(json.dumps({"type": "ping", "id": 7}))
        error = json.loads(await ws.recv())
        code, _ = await closed_with(ws)
    assert error == {"type": "error", "re": 7, "code": "hello_required", "message": error["message"]}
    assert code == 4400


async def test_no_hello_in_time_is_closed_with_4408(app_for: AppFactory):
    async with serving(app_for(center_config(hello_timeout_s=0.2))) as live, connect(f"{live.ws}/v1/agent") as ws:
        code, _ = await closed_with(ws)
    assert code == 4408


async def test_bad_frames_get_typed_errors_and_the_socket_stays_open(live: Running, api: httpx.AsyncClient):
    raw, _ = await raw_agent(live, "ann")
    await raw.request({"type": "set_status", "id": 0, "status": "ready"})
    eid = (await api.post("/v1/engagements", json={"queue": "calls"})).json()["id"]
    ring = await raw.until("ring")
    before = (await api.get(f"/v1/engagements/{eid}")).json()

    await raw.send("{not json")
    assert (await raw.until("error"))["code"] == "bad_frame"
    await raw.send("[1, 2]")
    assert (await raw.until("error"))["code"] == "bad_frame"
    assert (await raw.request({"type": "teleport", "id": 1}))["code"] == "unknown_type"
    wrong = await raw.request({"type": "accept", "id": 2, "offer": 42})
    assert wrong["code"] == "invalid_field" and "$.offer" in wrong["message"]
    missing = await raw.request({"type": "note", "id": 3, "text": "no engagement id"})
    assert missing["code"] == "invalid_field" and "engagement" in missing["message"]
    extra = await raw.request({"type": "ping", "id": 4, "colour": "blue"})
    assert extra["code"] == "invalid_field" and "colour" in extra["message"]
    untyped = await raw.request({"id": 5, "offer": "x"})
    assert untyped["code"] == "invalid_field" and "type" in untyped["message"]
    wrong_state = await raw.request({"type": "end", "id": 6, "engagement": eid})
    assert wrong_state["code"] == "not_yours"  # ringing is not handling
    unknown = await raw.request({"type": "accept", "id": 7, "offer": "e-nope-o1"})
    assert unknown["code"] == "not_found"
    supervisor_only = await raw.request({"type": "force_end", "id": 8, "engagement": eid})
    assert supervisor_only["code"] == "forbidden"
    no_id = {"type": "decline"}
    await raw.send(no_id)
    error = await raw.until("error")
    assert error["re"] is None and error["code"] == "invalid_field"

    assert (await raw.request({"type": "ping", "id": 9}))["type"] == "pong"
    after = (await api.get(f"/v1/engagements/{eid}")).json()
    assert after == before
    assert (await raw.request({"type": "accept", "id": 10, "offer": ring["offer"]}))["type"] == "ok"
    await raw.ws.close()


async def test_acting_on_another_agents_offer_or_engagement_is_refused(live: Running, api: httpx.AsyncClient):
    async with AgentClient.connect(live.ws, token("ann")) as ann:
        raw_ben, _ = await raw_agent(live, "ben")
        await ann.set_status("ready")
        eid = (await api.post("/v1/engagements", json={"queue": "calls"})).json()["id"]
        ring = await ann.next_event("ring")
        theft = await raw_ben.request({"type": "accept", "id": 1, "offer": ring.offer})
        assert theft["code"] == "not_yours"
        await ann.accept(ring.offer)
        for frame in (
            {"type": "note", "engagement": eid, "text": "mine now"},
            {"type": "end", "engagement": eid},
            {"type": "disposition", "engagement": eid, "codes": ["resolved"]},
        ):
            reply = await raw_ben.request({**frame, "id": frame["type"]})
            assert reply["code"] == "not_yours", reply
        record = (await api.get(f"/v1/engagements/{eid}")).json()
        assert record["agent"] == "ann" and record["notes"] == "" and record["state"] == "active"
        await raw_ben.ws.close()


async def test_msgpack_subprotocol_uses_binary_frames(live: Running):
    async with connect(f"{live.ws}/v1/agent", subprotocols=["switchboard.v1.msgpack"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "switchboard.v1.msgpack"
        await ws.send(msgspec.msgpack.encode({"type": "hello", "id": 1, "token": token("ann")}))
        welcome = await ws.recv()
        assert isinstance(welcome, bytes)
        assert msgspec.msgpack.decode(welcome)["type"] == "welcome"
        await ws.send(msgspec.msgpack.encode({"type": "ping", "id": 2}))
        frames = [msgspec.msgpack.decode(await ws.recv()) for _ in range(2)]
        assert [f["type"] for f in frames] == ["status", "pong"]  # sign-in's status event, then the reply
        assert frames[1]["re"] == 2


async def frames_until_reply(ws: object, request_id: int) -> list[dict]:
    """Every frame, in arrival order, up to and including the reply to `request_id`."""
    frames: list[dict] = []
    async with asyncio.timeout(5):
        while not frames or frames[-1].get("re") != request_id:
            frames.append(json.loads(await ws.recv()))  # type: ignore[attr-defined]
    return frames


def kinds(frames: list[dict]) -> list[str]:
    return [f["type"] + (f":{f['engagement']['state']}" if f["type"] == "engagement" else "") for f in frames]


async def test_replies_come_after_the_events_their_request_caused(live: Running, api: httpx.AsyncClient):
    async with connect(f"{live.ws}/v1/agent") as ws:
        await ws.send(json.dumps({"type": "hello", "id": 1, "token": token("ann")}))
        await ws.send(json.dumps({"type": "set_status", "id": 2, "status": "ready"}))
        assert kinds(await frames_until_reply(ws, 2)) == ["welcome", "status", "status", "ok"]  # signed in, ready
        await api.post("/v1/engagements", json={"queue": "chat"})  # auto-accept: it lands on ann
        chat = json.loads(await ws.recv())
        assert chat["type"] == "engagement" and chat["engagement"]["state"] == "active"
        eid = chat["engagement"]["id"]
        await ws.send(json.dumps({"type": "end", "id": 3, "engagement": eid}))
        await ws.send(json.dumps({"type": "ping", "id": 4}))
        frames = await frames_until_reply(ws, 4)
        assert kinds(frames) == ["engagement:wrap_up", "ok", "pong"], frames
        assert frames[1]["re"] == 3


class LosingBroker(MemoryBroker):
    """Loses every `status` event on its way to the sockets, as Redis pub/sub may lose any message."""

    async def publish(self, deliveries: Sequence[Delivery]) -> None:
        await super().publish([d for d in deliveries if getattr(d.frame, "type", None) != "status"])


async def test_a_reply_whose_events_the_broker_lost_follows_them_read_from_the_log():
    app = create_app(center_config(), broker=LosingBroker())
    async with serving(app) as running, connect(f"{running.ws}/v1/agent") as ws:
        await ws.send(json.dumps({"type": "hello", "id": 1, "token": token("ann")}))
        await ws.send(json.dumps({"type": "set_status", "id": 2, "status": "ready"}))
        frames = await frames_until_reply(ws, 2)
    assert kinds(frames) == ["welcome", "status", "status", "ok"]
    assert [f["seq"] for f in frames[1:3]] == [frames[0]["seq"] + 1, frames[0]["seq"] + 2]
    assert frames[2]["status"] == "ready"


async def test_json_is_the_default_and_unknown_subprotocols_are_refused(live: Running):
    async with connect(f"{live.ws}/v1/agent") as ws:
        assert ws.subprotocol is None
        await ws.send(json.dumps({"type": "hello", "id": 1, "token": token("ann")}))
        assert isinstance(await ws.recv(), str)
    async with connect(f"{live.ws}/v1/agent", subprotocols=["graphql-ws"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol is None
        assert await closed_with(ws) == (4400, "unsupported subprotocol")


async def test_a_frame_over_the_size_limit_closes_with_1009(app_for: AppFactory):
    config = center_config(max_frame_bytes=4096)
    async with serving(app_for(config), max_frame_bytes=4096) as live:
        raw, _ = await raw_agent(live, "ann")
        await raw.send({"type": "note", "id": 1, "engagement": "x", "text": "a" * 8000})
        code, _ = await closed_with(raw.ws)
    assert code == 1009


async def test_the_app_itself_enforces_the_frame_limit_under_a_laxer_server(app_for: AppFactory):
    config = center_config(max_frame_bytes=4096)
    async with serving(app_for(config), max_frame_bytes=1 << 20) as live:
        raw, _ = await raw_agent(live, "ann")
        await raw.send({"type": "note", "id": 1, "engagement": "x", "text": "é" * 3000})
        code, _ = await closed_with(raw.ws)
    assert code == 1009


async def test_supervisor_socket_acts_on_agents_and_is_forbidden_agent_actions(live: Running, api: httpx.AsyncClient):
    async with (
        AgentClient.connect(live.ws, token("ann")) as ann,
        SupervisorClient.connect(live.ws, token("sue", "supervisor")) as sue,
    ):
        assert sue.welcome is not None and sue.welcome.role == "supervisor"
        async with connect(f"{live.ws}/v1/supervisor") as ws:
            raw = Raw(ws)
            await raw.request({"type": "hello", "id": "h", "token": token("sue", "supervisor")})
            forbidden = await raw.request({"type": "accept", "id": "x", "offer": "o"})
            assert forbidden["code"] == "forbidden"
        ok = await sue.set_agent_status("ann", "ready")
        assert ok.status == "ready"
        status = await ann.next_event("status", where=lambda e: e.status == "ready")
        assert status.reason is None
        eid = (await api.post("/v1/engagements", json={"queue": "chat"})).json()["id"]
        await ann.next_event("engagement")
        await sue.force_end(eid)
        await sue.force_wrap_up_done(eid)
        record = (await api.get(f"/v1/engagements/{eid}")).json()
        assert record["state"] == "closed"
        assert [h["actor"] for h in record["history"][-2:]] == ["supervisor:sue", "supervisor:sue"]


async def test_a_client_that_stops_reading_is_disconnected_while_the_agents_other_socket_carries_on(
    app_for: AppFactory,
):
    async with serving(app_for(center_config(outbound_queue=8))) as live:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with (
            httpx.AsyncClient(base_url=live.http, headers=headers) as api,
            AgentClient.connect(live.ws, token("ann")) as reader,
        ):
            stuck = await connect(f"{live.ws}/v1/agent", max_size=None, max_queue=1, compression=None)
            await stuck.send(json.dumps({"type": "hello", "id": 1, "token": token("ann")}))
            await reader.set_status("ready")
            big = {f"field{i}": "x" * 35_000 for i in range(25)}
            eid = (await api.post("/v1/engagements", json={"queue": "chat", "variables": big})).json()["id"]
            for _ in range(40):  # each disposition sends ~1.8 MB snapshots to both sockets of ann
                await reader.disposition(eid, ["sale"])
            code, reason = await closed_with(stuck, within=10)
            assert (code, reason) == (4500, "outbound queue full")
            agents = {a["id"]: a for a in (await api.get("/v1/agents")).json()}
            assert agents["ann"]["connected"] is True  # the reading tab is still there
            await reader.disposition(eid, [])
            latest = await reader.next_event("engagement", where=lambda e: e.engagement.dispositions == [])
            assert latest.engagement.id == eid
