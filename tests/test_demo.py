"""`switchboard demo`: simulated consumers and colleagues bring the demo to life within seconds."""

from __future__ import annotations

import asyncio
import random

import httpx

from clients.agent import AgentClient
from protocol.frames import EngagementEvent, Ring
from server.app import create_app
from server.auth import issue
from server.config import load
from server.demo import Life, simulate
from tests.support import serving


async def first_call(alice: AgentClient) -> Ring:
    """Like a person at the desktop: finish the wrap-up of chats that end, until a call rings."""
    async with asyncio.timeout(20):
        while True:
            event = await alice.next_event("ring", "engagement", timeout=20)
            if isinstance(event, Ring) and event.engagement.channel == "voice":
                return event
            if isinstance(event, EngagementEvent) and event.engagement.state == "wrap_up":
                await alice.wrap_up_done(event.engagement.id)


async def test_a_newcomer_at_the_desktop_gets_rings_with_context_and_live_transcript_while_colleagues_work():
    config = load(None)
    async with serving(create_app(config)) as live:
        life = Life(http=live.http, ws=live.ws, config=config, speed=20, rng=random.Random(5))
        stop = asyncio.Event()
        simulation = asyncio.create_task(simulate(life, rate=0.1, stop=stop))
        alice = AgentClient(live.ws, issue(config.server.secret or "", "alice"))
        await alice.open()
        try:
            await alice.set_status("ready")
            ring = await first_call(alice)
            assert ring.engagement.variables  # the flow's variables travel with the ring
            await alice.accept(ring.offer)
            said = await alice.next_event("transcript", where=lambda t: len(t.fragments) == 1, timeout=15)
            assert said.fragments[0].text
            key = {"Authorization": f"Bearer {config.server.api_keys[0]}"}
            async with httpx.AsyncClient(base_url=live.http, headers=key) as api:
                for _ in range(100):  # bounded: up to ~10 s for a colleague to be seen at work
                    agents = {a["id"]: a for a in (await api.get("/v1/agents")).json()}
                    if any(agents[c]["engagements"] for c in ("bob", "dan")):
                        break
                    await asyncio.sleep(0.1)
                assert agents["bob"]["connected"] and agents["dan"]["connected"]
                assert any(agents[c]["engagements"] for c in ("bob", "dan")), agents
                assert not agents["carol"]["connected"]  # the simulator never acts for the humans' agents
        finally:
            stop.set()
            await alice.close()
            await asyncio.wait_for(simulation, 30)
