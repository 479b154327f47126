"""What the tests share: where the server is, what its contact center looks like, and a per-test harness
that opens sockets, creates engagements, and puts everything back as it was when the test ends.

Cleanup, so the suite can run again and again against the same live server and in any order: every
engagement a test created is ended by the supervisor (`force_end`, once more for one in wrap-up), every
agent a test signed in is set `not_ready` (reason `conformance`), then every socket is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conformance.wire import JSON, Frame, Sock, mint

FINAL_STATES = frozenset({"closed", "resolved", "abandoned"})
# An agent with nothing ringing, held or in wrap-up: DESIGN.md names the activities `ringing`, `busy` and
# `wrap_up` only; this implementation says `idle` (checked by the extension tests), another may say null.
IDLE = (None, "idle")


def of(eid: str, state: str | None = None) -> Callable[[Frame], bool]:
    """A condition on `ring` and `engagement` frames: about engagement `eid` (and in `state`)."""
    return lambda f: f["engagement"]["id"] == eid and (state is None or f["engagement"]["state"] == state)


def ids(engagements: list[Any]) -> list[str]:
    """The ids of `welcome.engagements`: DESIGN.md does not say whether it holds objects or ids."""
    return [e if isinstance(e, str) else e["id"] for e in engagements]


def actors(record: Frame) -> list[str]:
    """Who made each transition of an engagement's history (`api`, `system`, `agent:<id>`, `supervisor:<id>`)."""
    return [e["actor"] for e in record["history"]]


@dataclass
class Target:
    """The server under test. `own` is set when the suite started it (and may start more like it)."""

    http: str
    ws: str
    api_key: str
    secret: str
    supervisor: str
    max_timer_wait: float
    extensions: bool = False  # the tests marked `extension` run; the others may use extensions to find their way
    own: Path | None = None

    def token(self, subject: str, role: str = "agent", ttl_s: float = 600.0) -> str:
        return mint(self.secret, subject, role, ttl_s)


@dataclass
class Center:
    """The contact center as `GET /v1/queues` and `GET /v1/agents` describe it (configuration only)."""

    queues: dict[str, Frame]
    agents: dict[str, Frame]
    order: list[str] = field(default_factory=list)

    def members(self, queue_id: str) -> list[str]:
        return [a for a in self.order if any(m["id"] == queue_id for m in self.agents[a]["queues"])]

    def capacity(self, agent_id: str, channel: str) -> int:
        return int(self.agents[agent_id]["capacity"].get(channel, 0))

    def find_queue(
        self, why: str, *, where: Callable[[Frame], bool] | None = None, members: int = 1, **wanted: Any
    ) -> Frame:
        """The first queue whose fields equal `wanted`, for which `where` holds, and that has at least
        `members` agents with room on its channel; the test is skipped when there is none."""
        for q in self.queues.values():
            if not all(q.get(k) == v for k, v in wanted.items()) or (where is not None and not where(q)):
                continue
            if len(self.able(q["id"])) >= members:
                return q
        pytest.skip(
            f"{why}: the server has no queue with {wanted or 'that shape'} and {members} agent(s) able to take it"
        )

    def able(self, queue_id: str) -> list[str]:
        """The queue's members with room on its channel."""
        channel = self.queues[queue_id]["channel"]
        return [a for a in self.members(queue_id) if self.capacity(a, channel) > 0]


class Harness:
    """One test's view of the server: HTTP with the API key, sockets, and the cleanup afterwards."""

    def __init__(self, target: Target, center: Center, api: httpx.AsyncClient) -> None:
        self.target = target
        self.center = center
        self.api = api
        self.sockets: list[Sock] = []
        self.engagements: list[str] = []
        self.agents_used: set[str] = set()

    # --- sockets ---------------------------------------------------------------------------------

    async def connect(
        self,
        path: str,
        *,
        subprotocols: tuple[str, ...] | None = (JSON,),
        query: str = "",
        origin: str | None = None,
        headers: dict[str, str] | None = None,
        check_seq: bool = False,
    ) -> Sock:
        url = f"{self.target.ws}{path}" + (f"?{query}" if query else "")
        sock = await Sock.open(url, subprotocols=subprotocols, origin=origin, headers=headers, check_seq=check_seq)
        self.sockets.append(sock)
        return sock

    async def agent(
        self, agent_id: str, *, subprotocols: tuple[str, ...] = (JSON,), ready: bool = False, **hello: Any
    ) -> Sock:
        """An agent's desktop, signed in (`welcome` received and checked); `ready` sets them ready."""
        self.agents_used.add(agent_id)
        sock = await self.connect("/v1/agent", subprotocols=subprotocols, check_seq=True)
        welcome = await sock.request({"type": "hello", "token": self.target.token(agent_id), **hello})
        assert welcome["type"] == "welcome", welcome
        assert welcome["agent"] == agent_id, welcome
        if ready:
            await self.ready(sock)
        return sock

    async def ready(self, sock: Sock) -> Frame:
        """`set_status ready`, answered `ok` (its fields are this implementation's: see the extension tests)."""
        return await sock.ok({"type": "set_status", "status": "ready"})

    async def supervisor(self) -> Sock:
        sock = await self.connect("/v1/supervisor", check_seq=True)
        token = self.target.token(self.target.supervisor, "supervisor")
        welcome = await sock.request({"type": "hello", "token": token})
        assert welcome["type"] == "welcome", welcome
        return sock

    # --- HTTP ------------------------------------------------------------------------------------

    async def create(self, queue: str, **body: Any) -> Frame:
        """`POST /v1/engagements`; the engagement is ended when the test is over."""
        response = await self.api.post("/v1/engagements", json={"queue": queue, **body})
        assert response.status_code == 201, response.text
        created: Frame = response.json()
        self.engagements.append(created["id"])
        return created

    async def engagement(self, eid: str) -> Frame:
        response = await self.api.get(f"/v1/engagements/{eid}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def agent_info(self, agent_id: str) -> Frame:
        """The agent's entry in `GET /v1/agents` (the contract's route; `GET /v1/agents/{id}` is an extension)."""
        agents = (await self.api.get("/v1/agents")).json()
        return next(a for a in agents if a["id"] == agent_id)

    async def not_signed_in(self, *, besides: tuple[str, ...] = ()) -> list[str]:
        """Agents with no socket open: by `connected` where the extension is checked, else those still
        `offline` (never signed in; one whose grace period ended is `not_ready`, so after a first run
        against the same server there may be none)."""
        agents = [a for a in (await self.api.get("/v1/agents")).json() if a["id"] not in besides]
        if self.target.extensions:
            return [a["id"] for a in agents if not a["connected"]]
        return [a["id"] for a in agents if a["status"] == "offline"]

    async def until_disconnected(self, agent_id: str) -> None:
        """Give the server time to notice that the agent's socket is gone (no event says so to anyone):
        by polling `connected` where the extension is checked, else by waiting a moment."""
        if not self.target.extensions:
            await asyncio.sleep(0.5)
            return
        async with asyncio.timeout(5):
            while (await self.agent_info(agent_id))["connected"]:
                await asyncio.sleep(0.05)

    async def call(self, agent_id: str, queue: str, **body: Any) -> tuple[Sock, Frame]:
        """`agent_id` (the only one ready) is rung for a new engagement of `queue` and accepts it."""
        sock = await self.agent(agent_id, ready=True)
        eid = (await self.create(queue, **body))["id"]
        ring = await sock.expect("ring", where=of(eid))
        await sock.ok({"type": "accept", "offer": ring["offer"]})
        await sock.expect("engagement", where=of(eid, "active"))
        return sock, ring

    # --- cleanup ---------------------------------------------------------------------------------

    async def cleanup(self) -> None:
        """End what the test created, set its agents not ready, close its sockets."""
        try:
            if self.engagements or self.agents_used:
                sup = await self.supervisor()
                for eid in self.engagements:
                    for _ in range(3):
                        state = (await self.engagement(eid))["state"]
                        if state in FINAL_STATES:
                            break
                        await sup.request({"type": "force_end", "engagement": eid})
                for agent_id in sorted(self.agents_used):
                    reset = {
                        "type": "set_agent_status",
                        "agent": agent_id,
                        "status": "not_ready",
                        "reason": "conformance",
                    }
                    await sup.request(reset)
        finally:
            for sock in self.sockets:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(3):
                        await sock.close()
