"""Who may do what: every client frame type, sent as its owner, as another agent, by a supervisor (or
an agent, for supervisor frames), with no token and with an expired token."""

from __future__ import annotations

import asyncio
import contextlib
import typing
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from protocol.frames import Client
from server.app import create_app
from tests.e2e.conftest import Raw, handling_config
from tests.support import API_KEY, Running, serving, token

AGENT_FRAMES = [
    "set_status", "accept", "decline", "note", "disposition", "search", "send", "end", "wrap_up_done", "open",
    "transfer", "release",
]  # fmt: skip
SUPERVISOR_FRAMES = ["watch", "unwatch", "set_agent_status", "force_wrap_up_done", "force_end", "force_transfer"]
COMMON = ["hello", "ping"]


def test_the_matrix_covers_every_client_frame_type():
    tags = {c.__struct_config__.tag for c in typing.get_args(Client)}  # type: ignore[attr-defined]
    assert tags == set(AGENT_FRAMES + SUPERVISOR_FRAMES + COMMON)


class World:
    """A server with ann, ben and cat signed in, and engagements set up in the state each frame needs."""

    def __init__(self, live: Running, api: httpx.AsyncClient) -> None:
        self.live = live
        self.api = api
        self.socks: dict[str, Raw] = {}

    async def sock(self, who: str, role: str = "agent") -> Raw:
        if who not in self.socks:
            raw = Raw(await connect(f"{self.live.ws}/v1/{role}"))
            await raw.request({"type": "hello", "id": "h", "token": token(who, role)})
            if role == "agent":
                await raw.request({"type": "set_status", "id": "r", "status": "ready"})
            self.socks[who] = raw
        return self.socks[who]

    async def engagement(self, queue: str, **body: Any) -> dict[str, Any]:
        return (await self.api.post("/v1/engagements", json={"queue": queue, **body})).json()

    async def state(self, eid: str) -> dict[str, Any]:
        return (await self.api.get(f"/v1/engagements/{eid}")).json()

    async def ringing_ann(self) -> str:
        """A call ringing ann (ben not ready meanwhile); returns the offer id."""
        ann, ben = await self.sock("ann"), await self.sock("ben")
        await ben.request({"type": "set_status", "id": "b", "status": "not_ready", "reason": "setup"})
        await self.engagement("calls")
        ring = await ann.until("ring")
        await ben.request({"type": "set_status", "id": "b", "status": "ready"})
        return str(ring["offer"])

    async def held_by_ann(self, kind: str) -> str:
        """An engagement ann holds: an active call (with a line of transcript), a chat, an email, or a
        call in wrap-up."""
        ann = await self.sock("ann")
        if kind in ("call", "wrap_up"):
            offer = await self.ringing_ann()
            await ann.request({"type": "accept", "id": "a", "offer": offer})
            eid = offer.rpartition("-o")[0]
            await self.api.post(
                f"/v1/engagements/{eid}/transcript", json={"fragments": [{"speaker": "c", "text": "hi"}]}
            )
            if kind == "wrap_up":
                await ann.request({"type": "end", "id": "e", "engagement": eid})
            return eid
        queue = {"chat": "chat", "email": "mail"}[kind]
        ben = await self.sock("ben")
        await ben.request({"type": "set_status", "id": "b", "status": "not_ready", "reason": "setup"})
        created = await self.engagement(queue, body="hello")
        await ben.request({"type": "set_status", "id": "b", "status": "ready"})
        assert created["agent"] == "ann", created
        return str(created["id"])


# for each agent frame: how to set up ann's own target, and the frame sent about it
async def _frame(world: World, kind: str) -> dict[str, Any]:
    match kind:
        case "set_status":
            return {"type": "set_status", "status": "not_ready", "reason": "break"}
        case "accept" | "decline":
            return {"type": kind, "offer": await world.ringing_ann()}
        case "note":
            return {"type": "note", "engagement": await world.held_by_ann("call"), "text": "private"}
        case "disposition":
            return {"type": "disposition", "engagement": await world.held_by_ann("call"), "codes": ["resolved"]}
        case "search":
            return {"type": "search", "engagement": await world.held_by_ann("call"), "query": "hi"}
        case "send":
            return {"type": "send", "engagement": await world.held_by_ann("chat"), "text": "hello"}
        case "end":
            return {"type": "end", "engagement": await world.held_by_ann("call")}
        case "wrap_up_done":
            return {"type": "wrap_up_done", "engagement": await world.held_by_ann("wrap_up")}
        case "open":
            return {"type": "open", "engagement": await world.held_by_ann("email")}
        case "transfer":
            return {"type": "transfer", "engagement": await world.held_by_ann("call"), "queue": "billing"}
        case "release":
            return {"type": "release", "engagement": await world.held_by_ann("call")}
    raise AssertionError(kind)


async def _supervisor_frame(world: World, kind: str) -> dict[str, Any]:
    if kind == "set_agent_status":
        return {"type": kind, "agent": "ann", "status": "not_ready", "reason": "coaching"}
    eid = await world.held_by_ann("wrap_up" if kind == "force_wrap_up_done" else "call")
    extra = {"queue": "billing"} if kind == "force_transfer" else {}
    return {"type": kind, "engagement": eid, **extra}


@pytest.fixture
async def world() -> AsyncIterator[World]:
    config = handling_config()
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with serving(create_app(config)) as live, httpx.AsyncClient(base_url=live.http, headers=headers) as api:
        w = World(live, api)
        yield w
        for raw in w.socks.values():
            await raw.ws.close()


async def close_code(raw: Raw) -> int | None:
    try:
        for _ in range(100):
            await raw.ws.recv()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    raise AssertionError("not closed")


def _target(frame: dict[str, Any]) -> str | None:
    return frame.get("engagement") or (frame.get("offer", "").rpartition("-o")[0] or None)


async def _unchanged(world: World, frame: dict[str, Any], act: Callable[[], Awaitable[None]]) -> None:
    """Run `act` and check the frame's target engagement (if any) did not change."""
    eid = _target(frame)
    before = await world.state(eid) if eid else None
    await act()
    if eid:
        assert await world.state(eid) == before, f"{frame['type']} changed {eid}"


@pytest.mark.parametrize("kind", AGENT_FRAMES)
async def test_agent_frames_as_owner_as_another_agent_and_as_a_supervisor(world: World, kind: str):
    frame = await _frame(world, kind)
    if _target(frame):  # another agent: refused, nothing changes
        ben = await world.sock("ben")

        async def as_ben() -> None:
            reply = await ben.request({**frame, "id": "x"})
            assert reply["type"] == "error" and reply["code"] in ("not_yours", "not_found"), reply

        await _unchanged(world, frame, as_ben)
    sue = await world.sock("sue", "supervisor")

    async def as_supervisor() -> None:
        reply = await sue.request({**frame, "id": "s"})
        assert (reply["type"], reply["code"]) == ("error", "forbidden"), reply

    await _unchanged(world, frame, as_supervisor)
    ann = await world.sock("ann")
    reply = await ann.request({**frame, "id": "own"})
    assert reply["type"] in ("ok", "search_result"), reply


@pytest.mark.parametrize("kind", SUPERVISOR_FRAMES)
async def test_supervisor_frames_as_the_supervisor_and_as_an_agent(world: World, kind: str):
    frame = await _supervisor_frame(world, kind)
    ann = await world.sock("ann")

    async def as_agent() -> None:
        reply = await ann.request({**frame, "id": "a"})
        assert (reply["type"], reply["code"]) == ("error", "forbidden"), reply

    await _unchanged(world, frame, as_agent)
    sue = await world.sock("sue", "supervisor")
    reply = await sue.request({**frame, "id": "s"})
    assert reply["type"] == "ok", reply


async def test_without_a_token_no_frame_is_served(world: World):
    for kind in AGENT_FRAMES + SUPERVISOR_FRAMES + COMMON:
        path = "supervisor" if kind in SUPERVISOR_FRAMES else "agent"
        async with connect(f"{world.live.ws}/v1/{path}") as ws:
            raw = Raw(ws)
            await raw.send({"type": "hello", "id": 1})
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401, kind


async def test_a_frame_sent_as_the_token_expires_closes_the_socket_and_changes_nothing(world: World):
    """Every socket is closed at its token's expiry (see test_token_expiry.py); a frame that crosses that
    close on the way in must not act either."""
    kinds = AGENT_FRAMES + SUPERVISOR_FRAMES + COMMON
    eid = await world.held_by_ann("call")  # every frame names it (or an offer of it): it must not change
    frames = {k: {"type": k, "engagement": eid} for k in kinds}
    frames.update(
        set_status={"type": "set_status", "status": "not_ready"},
        set_agent_status={"type": "set_agent_status", "agent": "ann", "status": "not_ready"},
        accept={"type": "accept", "offer": f"{eid}-o1"},
        decline={"type": "decline", "offer": f"{eid}-o1"},
        note={"type": "note", "engagement": eid, "text": "late"},
        disposition={"type": "disposition", "engagement": eid, "codes": ["resolved"]},
        search={"type": "search", "engagement": eid, "query": "hi"},
        send={"type": "send", "engagement": eid, "text": "late"},
        transfer={"type": "transfer", "engagement": eid, "queue": "billing"},
        force_transfer={"type": "force_transfer", "engagement": eid, "queue": "billing"},
        hello={"type": "hello"},
        ping={"type": "ping"},
    )
    sockets = {}
    for kind in kinds:
        role = "supervisor" if kind in SUPERVISOR_FRAMES else "agent"
        who = "sue" if role == "supervisor" else "ann"
        raw = Raw(await connect(f"{world.live.ws}/v1/{role}"))
        await raw.request({"type": "hello", "id": "h", "token": token(who, role, ttl_s=1.2)})
        sockets[kind] = raw
    await asyncio.sleep(1.3)  # every token is now past its expiry (whole seconds in a JWT)
    for kind, raw in sockets.items():
        frame = frames[kind]

        async def send(raw: Raw = raw, frame: dict[str, Any] = frame) -> None:
            with contextlib.suppress(ConnectionClosed):  # closed at expiry already, or by this frame
                await raw.send({**frame, "id": "late"})
            assert await close_code(raw) == 4401

        await _unchanged(world, frame, send)
