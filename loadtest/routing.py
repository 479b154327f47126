"""`routing`: simulated agents in one queue, Poisson arrivals, exponential handle times.

Each simulated agent accepts what rings (or is assigned), holds it for an exponential time of mean
`aht`, ends it, finishes wrap-up at once and is ready again. The report gives the ring latency
(engagement created -> offer at the agent's socket), throughput, waits, and compares them with
Erlang C for the measured load and with an ideal work-conserving FIFO router replaying the same
arrivals and occupation times. Agents live in several processes so the load generator is not the
bottleneck; the generator's own CPU is reported.
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing as mp
import os
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

import msgspec
import uvloop

from loadtest.cluster import Center
from loadtest.stats import percentiles
from server.queueing import erlang_c, erlang_c_asa, fifo_replay

WAITED_S = 0.05  # an engagement "waited" when it was offered more than this after creation


@dataclass
class Plan:
    agents: int
    rate: float
    aht: float
    duration: float
    manual: bool = False
    workers: int = 2
    seed: int = 1


@dataclass
class Outcome:
    created: dict[str, float] = field(default_factory=dict)
    offered: dict[str, float] = field(default_factory=dict)
    freed: dict[str, float] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    worker_cpu_s: float = 0.0


def agent_ids(n: int) -> list[str]:
    return [f"a{i:05d}" for i in range(n)]


def center_toml(plan: Plan) -> str:
    lines = [
        "[server]",
        'secret = "loadtest-secret-0123456789-0123456789-abc"',
        'api_keys = ["loadtest-key"]',
        "grace_s = 60",
        "hello_timeout_s = 60",
        "event_log_size = 64",
        "max_body_bytes = 65536",
        "",
        "[[queues]]",
        'id = "load"',
        'channel = "voice"',
        f'acceptance = "{"manual" if plan.manual else "auto"}"',
        "ring_timeout_s = 30",
        "",
    ]
    for agent in agent_ids(plan.agents):
        lines += ["[[agents]]", f'id = "{agent}"', 'queues = ["load"]', ""]
    return "\n".join(lines)


# --- the agents, in worker processes ------------------------------------------------------------


class _Eng(msgspec.Struct):
    id: str
    agent: str | None = None
    state: str = ""


class _Frame(msgspec.Struct):
    """The fields of a server frame the simulated agents look at (the decoder skips the rest)."""

    type: str
    re: int | None = None
    offer: str | None = None
    engagement: _Eng | str | None = None
    code: str = ""


_decode = msgspec.json.Decoder(_Frame).decode
_encode = msgspec.json.Encoder().encode


def agent_worker(
    ws_urls: list[str],
    ids: list[str],
    secret: str,
    plan: Plan,
    results: mp.Queue[Any],
    ready: MpEvent,
    stop: MpEvent,
    finished: Any,
) -> None:
    uvloop.run(_agents(ws_urls, ids, secret, plan, results, ready, stop, finished))


async def _agents(
    ws_urls: list[str],
    ids: list[str],
    secret: str,
    plan: Plan,
    results: mp.Queue[Any],
    ready: MpEvent,
    stop: MpEvent,
    finished: Any,
) -> None:
    """This worker's agents on raw sockets: the time a ring or assignment arrives is read as the frame
    comes off the socket, before anything else runs, so the generator adds as little as it can."""
    from loadtest.connections import open_agent, request
    from server.auth import issue

    rng = random.Random(plan.seed * 7919 + int(ids[0][1:]))
    offered: dict[str, float] = {}
    freed: dict[str, float] = {}
    errors: dict[str, int] = {}
    desks = []
    for i, agent in enumerate(ids):
        ws, _ = await open_agent(ws_urls[i % len(ws_urls)], issue(secret, agent, "agent", 24 * 3600))
        await request(ws, {"type": "set_status", "id": 1, "status": "ready"}, lambda _: None)
        desks.append(_Desk(agent, ws, plan, rng, offered, freed, errors, finished))
    ready.set()
    tasks = [asyncio.create_task(desk.run()) for desk in desks]
    await asyncio.get_running_loop().run_in_executor(None, stop.wait)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(*(desk.ws.close() for desk in desks), return_exceptions=True)
    cpu = os.times()
    results.put({"offered": offered, "freed": freed, "errors": errors, "cpu_s": cpu.user + cpu.system})


class _Desk:
    """One agent: take what comes, talk for Exp(aht), end, wrap up at once, ready again."""

    def __init__(
        self,
        agent: str,
        ws: Any,
        plan: Plan,
        rng: random.Random,
        offered: dict[str, float],
        freed: dict[str, float],
        errors: dict[str, int],
        finished: Any,
    ) -> None:
        self.agent, self.ws, self.plan, self.rng = agent, ws, plan, rng
        self.offered, self.freed, self.errors = offered, freed, errors
        self.finished = finished  # engagements wrapped up, all workers together (shared)
        self.wrapping: dict[int, str] = {}  # request id of a wrap_up_done -> its engagement
        self.next_id = 1
        self.started: set[str] = set()
        self.talks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        async for raw in self.ws:
            now = time.time()
            frame = _decode(raw)
            eng = frame.engagement
            if frame.type == "ring" and isinstance(eng, _Eng):
                self.offered.setdefault(eng.id, now)
                await self.ws.send(_encode({"type": "accept", "offer": frame.offer}).decode())
            elif frame.type == "engagement" and isinstance(eng, _Eng) and eng.agent == self.agent:
                if eng.state == "active" and eng.id not in self.started:
                    self.offered.setdefault(eng.id, now)  # auto-accept: the assignment is the offer
                    self.started.add(eng.id)
                    talk = loop.create_task(self._talk(eng.id, self.rng.expovariate(1 / self.plan.aht)))
                    self.talks.add(talk)
                    talk.add_done_callback(self.talks.discard)
            elif frame.type == "ok" and frame.re in self.wrapping:
                self.freed[self.wrapping.pop(frame.re)] = now
                with self.finished.get_lock():
                    self.finished.value += 1
            elif frame.type == "error":
                self.errors[frame.code] = self.errors.get(frame.code, 0) + 1

    async def _talk(self, eid: str, talk_s: float) -> None:
        await asyncio.sleep(talk_s)
        self.next_id += 1
        self.wrapping[self.next_id] = eid
        await self.ws.send(_encode({"type": "end", "engagement": eid}).decode())
        await self.ws.send(_encode({"type": "wrap_up_done", "id": self.next_id, "engagement": eid}).decode())


# --- arrivals, in the main process ---------------------------------------------------------------


async def arrivals(
    http_urls: list[str], api_key: str, plan: Plan, outcome: Outcome, progress: Callable[[int], None]
) -> None:
    """Poisson arrivals at `plan.rate` for `plan.duration`, spread over the nodes."""
    import aiohttp

    rng = random.Random(plan.seed)
    headers = {"Authorization": f"Bearer {api_key}"}
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(headers=headers, connector=connector, timeout=aiohttp.ClientTimeout(30)) as api:
        pending: set[asyncio.Task[None]] = set()
        start = time.perf_counter()
        at = 0.0
        n = 0
        while True:
            at += rng.expovariate(plan.rate)
            if at >= plan.duration:
                break
            delay = start + at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(_create(api, http_urls[n % len(http_urls)], outcome, n))
            pending.add(task)
            task.add_done_callback(pending.discard)
            n += 1
            progress(n)
        await asyncio.gather(*pending)


async def _create(api: Any, base: str, outcome: Outcome, n: int) -> None:
    """One arrival; a refused or unanswered one is counted in `errors` (`create <status>`, `create
    timeout`), as a capacity planner needs to see it, and the run goes on."""
    created = time.time()
    try:
        async with api.post(f"{base}/v1/engagements", json={"queue": "load", "variables": {"n": n}}) as response:
            if response.status != 201:
                failed = f"create {response.status}"
                outcome.errors[failed] = outcome.errors.get(failed, 0) + 1
                return
            outcome.created[(await response.json())["id"]] = created
    except TimeoutError:
        outcome.errors["create timeout"] = outcome.errors.get("create timeout", 0) + 1


# --- analysis ------------------------------------------------------------------------------------


def analyse(plan: Plan, outcome: Outcome, wall_s: float) -> dict[str, Any]:
    done = [e for e in outcome.created if e in outcome.offered and e in outcome.freed]
    latency = [outcome.offered[e] - outcome.created[e] for e in done]
    services = [outcome.freed[e] - outcome.offered[e] for e in done]
    t0 = min(outcome.created.values()) if outcome.created else 0.0
    arrivals_at = [outcome.created[e] - t0 for e in done]
    measured_rate = len(outcome.created) / plan.duration
    mean_service = statistics.fmean(services) if services else 0.0
    load = measured_rate * mean_service
    p_wait = erlang_c(plan.agents, load)
    erlang_wait = erlang_c_asa(plan.agents, load, mean_service)
    ideal = fifo_replay(arrivals_at, services, plan.agents)
    mean_wait = statistics.fmean(latency) if latency else 0.0
    span = max((outcome.offered[e] for e in done), default=t0) - t0  # first arrival to last offer
    return {
        "plan": plan.__dict__,
        "engagements": {"created": len(outcome.created), "offered": len(outcome.offered), "completed": len(done)},
        "errors": outcome.errors,
        "throughput_per_s": round(len(done) / span, 2) if span > 0 else 0.0,
        "ring_latency": percentiles(latency),
        "ring_latency_not_waiting": percentiles([x for x in latency if x <= WAITED_S]),
        "wait": {
            "mean_ms": round(mean_wait * 1000, 3),
            "share_waiting": round(sum(x > WAITED_S for x in latency) / len(latency), 4) if latency else 0.0,
            "ideal_fifo_mean_ms": round(statistics.fmean(ideal) * 1000, 3) if ideal else 0.0,
            "gap_to_ideal_fifo_ms": round((mean_wait - (statistics.fmean(ideal) if ideal else 0.0)) * 1000, 3),
        },
        "erlang_c": {
            "offered_load_erlangs": round(load, 3),
            "measured_rate_per_s": round(measured_rate, 3),
            "mean_handle_s": round(mean_service, 4),
            "p_wait": round(p_wait, 4),
            "mean_wait_ms": round(erlang_wait * 1000, 3) if math.isfinite(erlang_wait) else None,
        },
    }


def write_records(path: Path, outcome: Outcome) -> None:
    with path.open("w") as out:
        for eid, created in outcome.created.items():
            record = {
                "id": eid,
                "created": created,
                "offered": outcome.offered.get(eid),
                "freed": outcome.freed.get(eid),
            }
            out.write(json.dumps(record) + "\n")


def histogram_png(path: Path, samples_ms: list[float], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4))
    axes.hist(samples_ms, bins=60, log=True, color="#3465a4")
    axes.set_xlabel("milliseconds")
    axes.set_ylabel("count (log)")
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


# --- the whole run -------------------------------------------------------------------------------


def run(plan: Plan, center: Center, progress: Callable[[str, int, int], None]) -> tuple[dict[str, Any], Outcome]:
    """Run the scenario against `center` (nodes already serving the config of `center_toml(plan)`)."""
    ctx = mp.get_context("spawn")
    results: mp.Queue[Any] = ctx.Queue()
    stop = ctx.Event()
    ids = agent_ids(plan.agents)
    workers = []
    readies = []
    finished = ctx.Value("q", 0)
    for w in range(plan.workers):
        ready = ctx.Event()
        share = ids[w :: plan.workers]
        if not share:
            continue
        args = (center.ws_urls, share, center.secret, plan, results, ready, stop, finished)
        worker = ctx.Process(target=agent_worker, args=args, daemon=True)
        worker.start()
        workers.append(worker)
        readies.append(ready)
    for i, ready in enumerate(readies):
        if not ready.wait(120):
            raise RuntimeError(f"agent worker {i} did not sign its agents in")
    outcome = Outcome()
    expected = int(plan.rate * plan.duration)
    started = time.perf_counter()
    cpu_before = center.server_cpu_s(), center.redis_cpu_s()
    uvloop.run(arrivals(center.http_urls, center.api_key, plan, outcome, lambda n: progress("arrivals", n, expected)))
    drain_deadline = time.perf_counter() + 10 * plan.aht + 30
    _wait_for_completion(outcome, finished, drain_deadline, progress)
    wall = time.perf_counter() - started
    cpu_after = center.server_cpu_s(), center.redis_cpu_s()
    stop.set()
    for _ in workers:
        part = results.get(timeout=60)
        outcome.offered.update(part["offered"])
        outcome.freed.update(part["freed"])
        for code, n in part["errors"].items():
            outcome.errors[code] = outcome.errors.get(code, 0) + n
        outcome.worker_cpu_s += part["cpu_s"]
    for worker in workers:
        worker.join(30)
    report = analyse(plan, outcome, wall)
    me = os.times()
    report["load_generator_cpu_s"] = round(outcome.worker_cpu_s + me.user + me.system, 2)
    report["wall_s"] = round(wall, 2)
    # from the first arrival until every engagement is done (agents signing in excluded)
    report["work_cpu_s"] = {
        "nodes": round(cpu_after[0] - cpu_before[0], 3),
        "redis": round(cpu_after[1] - cpu_before[1], 3),
    }
    return report, outcome


def _wait_for_completion(
    outcome: Outcome, finished: Any, deadline: float, progress: Callable[[str, int, int], None]
) -> None:
    """Until every engagement created is wrapped up (bounded in time). The agents count what they
    finish: asking the server would put the polling into the work measured."""
    while time.perf_counter() < deadline:
        done = finished.value
        progress("draining", done, len(outcome.created))
        if done >= len(outcome.created):
            return
        time.sleep(0.05)
