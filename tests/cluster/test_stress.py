"""A randomized day on three real nodes: hundreds of engagements, agents who accept, decline, let rings
time out, drop and reconnect anywhere; then the final state and every history are checked."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from redis.asyncio import Redis

from clients.agent import AgentClient, ClientError, RequestTimeout
from loadtest.invariants import history_violations, violations
from protocol.frames import EngagementEvent, Event, Ring, StatusEvent
from server.config import Directory, decode
from server.store.redis import RedisStore
from tests.cluster.nodes import NodeProcess, cluster
from tests.redis_server import RedisServer
from tests.support import API_KEY, SECRET, token

AGENTS = ["ann", "ben", "cat"]
ENGAGEMENTS = 240


@dataclass
class Tally:
    accepted: int = 0
    declined: int = 0
    ignored: int = 0
    drops: int = 0
    resumed: int = 0
    fresh: int = 0
    hangups: int = 0
    seq_problems: list[str] = field(default_factory=list)


class SimulatedAgent:
    """An agent at a desk who mostly works, sometimes lets a ring go, and whose network drops."""

    def __init__(self, agent_id: str, nodes: list[NodeProcess], rng: random.Random, tally: Tally) -> None:
        self.id = agent_id
        self.nodes = nodes
        self.rng = rng
        self.tally = tally
        self.client = AgentClient(rng.choice(nodes).ws, token(agent_id), request_timeout=10)
        self.expected = 0
        self.work: set[asyncio.Task[None]] = set()
        self.busy_with: set[str] = set()

    async def run(self, stop: asyncio.Event) -> None:
        welcome = await self.client.open()
        self.expected = welcome.seq
        await self.client.set_status("ready")
        while not stop.is_set():
            if self.rng.random() < 0.01:
                await self.reconnect()
                continue
            try:
                event = await self.client.next_event(timeout=0.1)
            except RequestTimeout:
                continue
            except ClientError:
                await self.reconnect()
                continue
            await self.handle(event)
        for task in self.work:
            task.cancel()
        await self.client.close()

    def check_seq(self, event: object) -> None:
        if isinstance(event, Event) and event.seq:
            if event.seq != self.expected + 1:
                self.tally.seq_problems.append(f"{self.id}: got seq {event.seq} after {self.expected}")
            self.expected = event.seq

    async def handle(self, event: object) -> None:
        self.check_seq(event)
        try:
            if isinstance(event, Ring):
                roll = self.rng.random()
                if roll < 0.65:
                    await self.client.accept(event.offer)
                    self.tally.accepted += 1
                elif roll < 0.9:
                    await self.client.decline(event.offer)
                    self.tally.declined += 1
                else:
                    self.tally.ignored += 1  # let it time out
            elif isinstance(event, EngagementEvent) and event.engagement.agent == self.id:
                self.work_on(event.engagement.id, event.engagement.state, event.engagement.queue)
            elif isinstance(event, StatusEvent) and event.status == "not_ready" and event.next_status is None:
                await asyncio.sleep(self.rng.uniform(0.05, 0.3))
                await self.client.set_status("ready")
        except ClientError:
            pass  # the request raced with a timeout, a hang-up or a drop: the next events say what happened

    def work_on(self, eid: str, state: str, queue: str) -> None:
        if state in ("active", "wrap_up") and eid not in self.busy_with:
            self.busy_with.add(eid)
            task = asyncio.create_task(self.finish(eid, state, queue))
            self.work.add(task)
            task.add_done_callback(lambda t: (self.work.discard(t), self.busy_with.discard(eid)))

    async def finish(self, eid: str, state: str, queue: str) -> None:
        with contextlib.suppress(ClientError):
            if state == "active":
                await asyncio.sleep(self.rng.uniform(0.05, 0.4))
                await self.client.end(eid)
            await asyncio.sleep(self.rng.uniform(0.0, 0.1))
            if queue == "calls":
                await self.client.disposition(eid, ["ok"])
            await self.client.wrap_up_done(eid)

    async def reconnect(self) -> None:
        self.tally.drops += 1
        await self.client.drop()
        await asyncio.sleep(self.rng.choice([0.0, 0.1, 0.3, 1.5]))  # sometimes past the 1 s grace
        self.client.url = f"{self.rng.choice(self.nodes).ws}/v1/agent"
        for _ in range(20):
            try:
                welcome = await self.client.resume()
                break
            except (ClientError, OSError):
                await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"{self.id} could not reconnect")
        if welcome.resumed:
            self.tally.resumed += 1
        else:
            self.tally.fresh += 1
            self.expected = welcome.seq
        for eng in welcome.engagements:  # whatever was interrupted by the drop is picked up again
            self.work_on(eng.id, eng.state, eng.queue)
        if welcome.status != "ready":
            with contextlib.suppress(ClientError):
                await self.client.set_status("ready")


async def traffic(nodes: list[NodeProcess], rng: random.Random, tally: Tally) -> list[str]:
    ids: list[str] = []
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10) as api:
        hangups = []
        for i in range(ENGAGEMENTS):
            queue = "chat" if i % 4 == 0 else "calls"
            created = await api.post(f"{rng.choice(nodes).http}/v1/engagements", json={"queue": queue})
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
            if rng.random() < 0.1:
                hangups.append(asyncio.create_task(hang_up(api, rng, nodes, ids[-1], tally)))
            await asyncio.sleep(rng.expovariate(40))
        await asyncio.gather(*hangups)
    return ids


async def hang_up(api: httpx.AsyncClient, rng: random.Random, nodes: list[NodeProcess], eid: str, tally: Tally) -> None:
    await asyncio.sleep(rng.uniform(0, 1.5))
    r = await api.post(f"{rng.choice(nodes).http}/v1/engagements/{eid}/end")
    assert r.status_code == 200, r.text
    tally.hangups += 1


async def test_a_randomized_day_on_three_nodes_keeps_every_invariant(private_redis: RedisServer, tmp_path: Path):
    rng = random.Random(20261124)
    tally = Tally()
    with cluster(
        3, private_redis.url, tmp_path, secret=SECRET, api_key=API_KEY, grace_s=1.0, ring_timeout_s=0.8
    ) as nodes:
        stop = asyncio.Event()
        agents = [SimulatedAgent(a, nodes, random.Random(rng.random()), tally) for a in AGENTS]
        desks = [asyncio.create_task(a.run(stop)) for a in agents]
        ids = await traffic(nodes, rng, tally)

        # no more arrivals: the agents work the queues empty
        store = RedisStore(
            Redis.from_url(private_redis.url), prefix=nodes[0].args[nodes[0].args.index("--redis-prefix") + 1]
        )
        deadline = time.monotonic() + 90
        while True:
            engagements = [e for i in ids if (e := await store.engagement(i))]
            if all(e.state.is_final for e in engagements) or time.monotonic() > deadline:
                break

            await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*desks)

        directory = Directory(decode((tmp_path / "center.toml").read_text()))
        agents_now = [a for a in await store.agents(AGENTS) if a]
        queues = [q for q in await asyncio.gather(*(store.queue(q) for q in directory.queues)) if q]
        await store.close()

    assert len(engagements) == ENGAGEMENTS, "an engagement record was lost"
    unfinished = [(e.id, e.state) for e in engagements if not e.state.is_final]

    assert not unfinished, f"left unfinished: {unfinished[:5]}; {tally}"
    assert {e.state.value for e in engagements} <= {"closed", "abandoned"}
    problems = violations(directory, agents_now, engagements, queues) + history_violations(directory, engagements)
    assert not problems, problems[:10]
    assert not tally.seq_problems, tally.seq_problems[:10]
    # the run exercised what it claims to
    assert tally.accepted > 100 and tally.declined > 20 and tally.ignored > 5, tally
    assert tally.drops > 5 and tally.resumed > 0, tally
    assert sum(e.state.value == "abandoned" for e in engagements) > 0
    assert any(h.event == "expired" for e in engagements for h in e.history)
