"""`storm`: every agent drops at once and comes back at once, resuming where it left off.

C agents sign in (raw sockets in worker processes) and go ready, so each has events in its log.
Then every socket is aborted at the same instant (no close handshake, as a network failure). Once
the server has noticed all the drops, a supervisor socket changes each agent's status `missed`
times (`set_agent_status`, each a logged `status` event the agent does not see). Then all agents
reconnect at the same instant with `hello {resume_from: <last seq seen>, epoch}`.

Measured: time from the reconnect signal to the last `welcome {resumed: true}` and to the last
agent holding every event it missed; per agent, the seqs received after the welcome are checked
against the gap (last seen, welcome.seq]: any seq missing is lost, any seq seen twice (or already
seen before the drop) is duplicated. Both must be 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.synchronize import Event as MpEvent
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from loadtest import connections
from loadtest.cluster import Center
from loadtest.connections import (
    Incoming,
    agent_ids,
    decode_incoming,
    encode,
    issue_tokens,
    open_agent,
    raise_nofile,
    request,
)
from loadtest.stats import percentiles

SUPERVISOR = "storm-sup"


@dataclass
class Plan:
    clients: int
    nodes: int = 1
    workers: int = 2
    missed: int = 3
    window: int = 256
    timeout: float = 120.0
    queue_size: int = 100


def center_toml(plan: Plan) -> str:
    # Every event missed must still be in the per-agent log. A supervisor's welcome queues one
    # agent_state per agent in its bounded outbox before its writer starts, so with more agents than
    # `outbound_queue` the supervisor socket would be closed at once as a slow consumer: room for that.
    extra = f'[[supervisors]]\nid = "{SUPERVISOR}"\n'
    return connections.center_toml(
        plan.clients,
        queue_size=plan.queue_size,
        event_log_size=max(64, plan.missed + 16),
        outbound_queue=max(1000, 2 * plan.clients + 64),
        extra=extra,
    )


@dataclass
class Desk:
    index: int
    token: str
    ws: ClientConnection | None = None
    last_seq: int = 0
    epoch: str = ""
    reader: asyncio.Task[None] | None = None
    repeats: int = 0

    def on_event(self, incoming: Incoming) -> None:
        if incoming.seq and incoming.re is None:
            self.last_seq = max(self.last_seq, incoming.seq)


@dataclass
class Signals:
    ready: MpEvent
    dropped: MpEvent
    drop: MpEvent
    reconnect: MpEvent
    stop: MpEvent
    drop_at: Any
    reconnect_at: Any
    connected: Any
    resumed: Any
    caught_up: Any
    finished: MpEvent


def worker(ws_urls: list[str], indices: list[int], plan: Plan, signals: Signals, results: mp.Queue[Any]) -> None:
    import uvloop

    raise_nofile(2 * len(indices) + 256)
    uvloop.run(_worker(ws_urls, indices, plan, signals, results))


async def _wait(event: MpEvent, at: Any) -> None:
    await asyncio.get_running_loop().run_in_executor(None, event.wait)
    delay = at.value - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def _read(desk: Desk) -> None:
    assert desk.ws is not None
    try:
        async for payload in desk.ws:
            desk.on_event(decode_incoming(payload))
    except ConnectionClosed:
        pass


async def _tail(desk: Desk) -> None:
    """After catching up: any event at or below the last seq seen is a repeat."""
    assert desk.ws is not None
    with contextlib.suppress(ConnectionClosed):
        async for payload in desk.ws:
            incoming = decode_incoming(payload)
            if incoming.seq and incoming.re is None:
                if incoming.seq <= desk.last_seq:
                    desk.repeats += 1
                desk.last_seq = max(desk.last_seq, incoming.seq)


async def _worker(ws_urls: list[str], indices: list[int], plan: Plan, signals: Signals, results: mp.Queue[Any]) -> None:
    ids = agent_ids(plan.clients)
    desks = [Desk(i, token) for i, token in zip(indices, issue_tokens([ids[i] for i in indices]), strict=True)]
    gate = asyncio.Semaphore(64)

    async def sign_in(desk: Desk) -> None:
        async with gate:
            ws, welcome = await open_agent(ws_urls[desk.index % len(ws_urls)], desk.token)
            desk.ws, desk.last_seq, desk.epoch = ws, welcome.seq, welcome.epoch
            await request(ws, {"type": "set_status", "id": 2, "status": "ready"}, desk.on_event)
        desk.reader = asyncio.create_task(_read(desk))
        signals.connected.value += 1

    await asyncio.gather(*(sign_in(d) for d in desks))
    signals.ready.set()

    await _wait(signals.drop, signals.drop_at)
    for desk in desks:  # all at once: no await between the aborts
        assert desk.ws is not None
        desk.ws.transport.abort()
    for desk in desks:
        if desk.reader is not None:
            await desk.reader
    signals.dropped.set()

    await _wait(signals.reconnect, signals.reconnect_at)
    go = signals.reconnect_at.value
    welcomes: list[float] = []
    caught: list[float] = []
    outcome = {"resumed": 0, "not_resumed": 0, "failed": 0, "lost": 0, "duplicated": 0, "gap": 0, "timed_out": 0}
    errors: dict[str, int] = {}

    async def resume(desk: Desk) -> None:
        url = ws_urls[(desk.index + (1 if len(ws_urls) > 1 else 0)) % len(ws_urls)]  # back on another node
        seen_before = desk.last_seq
        try:
            ws, welcome = await open_agent(url, desk.token, resume_from=seen_before, epoch=desk.epoch)
        except Exception as exc:
            outcome["failed"] += 1
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            return
        desk.ws = ws
        welcomes.append(time.time() - go)
        head = welcome.seq
        outcome["gap"] += head - seen_before
        if not welcome.resumed:
            outcome["not_resumed"] += 1
            outcome["lost"] += head - seen_before
            return
        outcome["resumed"] += 1
        signals.resumed.value += 1
        got: list[int] = []
        try:
            async with asyncio.timeout(plan.timeout):
                while head > seen_before and (not got or got[-1] < head):
                    incoming = decode_incoming(await ws.recv())
                    if incoming.seq and incoming.re is None:
                        got.append(incoming.seq)
        except (TimeoutError, ConnectionClosed):
            outcome["timed_out"] += 1
        else:
            caught.append(time.time() - go)
            signals.caught_up.value += 1
        wanted = set(range(seen_before + 1, head + 1))
        outcome["lost"] += len(wanted - set(got))
        outcome["duplicated"] += len(got) - len(set(got)) + sum(1 for s in got if s <= seen_before)
        desk.last_seq = max([head, *got])
        desk.reader = asyncio.create_task(_tail(desk))  # a repeat arriving later counts too

    await asyncio.gather(*(resume(d) for d in desks))
    signals.finished.set()
    await asyncio.get_running_loop().run_in_executor(None, signals.stop.wait)
    for desk in desks:
        if desk.ws is not None:
            desk.ws.transport.abort()
    for desk in desks:
        if desk.reader is not None:
            await desk.reader
    outcome["duplicated"] += sum(d.repeats for d in desks)
    cpu = os.times()
    results.put(
        {
            **outcome,
            "errors": errors,
            "welcome_s": welcomes,
            "caught_up_s": caught,
            "cpu_s": cpu.user + cpu.system,
        }
    )


async def _wait_disconnected(
    http_url: str, api_key: str, clients: int, progress: Callable[[str, int, int], None]
) -> float:
    """Poll until the server shows no agent connected; returns how long that took."""
    started = time.time()
    async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {api_key}"}) as api:
        while time.time() - started < 120:
            agents = (await api.get(f"{http_url}/v1/agents")).json()
            gone = sum(1 for a in agents if not a["connected"])
            progress("noticed", gone, clients)
            if gone >= clients:
                break
            await asyncio.sleep(0.2)
    return time.time() - started


async def _supervise(center: Center, plan: Plan, progress: Callable[[str, int, int], None]) -> dict[str, Any]:
    """Change every agent's status `plan.missed` times from a supervisor socket, pipelined."""
    token = issue_tokens([SUPERVISOR], role="supervisor")[0]
    ws, _ = await open_agent(center.ws_urls[0], token, path="/v1/supervisor")
    window = asyncio.Semaphore(plan.window)
    total = plan.clients * plan.missed
    counts = {"ok": 0, "error": 0, "events": 0}
    codes: dict[str, int] = {}
    done = asyncio.Event()

    async def read() -> None:
        try:
            async for payload in ws:
                incoming = decode_incoming(payload)
                if incoming.type in ("ok", "error") and isinstance(incoming.re, int):
                    counts[incoming.type] += 1
                    if incoming.type == "error":
                        codes[incoming.code] = codes.get(incoming.code, 0) + 1
                    window.release()
                    progress("missed", counts["ok"] + counts["error"], total)
                    if counts["ok"] + counts["error"] >= total:
                        done.set()
                else:
                    counts["events"] += 1
        except ConnectionClosed:
            done.set()

    reader = asyncio.create_task(read())
    ids = agent_ids(plan.clients)
    n = 0
    started = time.time()
    for m in range(plan.missed):
        for agent in ids:
            await window.acquire()
            n += 1
            frame = {"type": "set_agent_status", "id": n, "agent": agent, "status": "not_ready", "reason": f"storm-{m}"}
            await ws.send(encode(frame).decode())
    async with asyncio.timeout(plan.timeout):
        await done.wait()
    elapsed = time.time() - started
    await ws.close()
    await reader
    if ws.close_code not in (None, 1000):
        raise RuntimeError(f"the supervisor socket was closed with {ws.close_code}: {ws.close_reason}")
    return {**counts, "error_codes": codes, "seconds": round(elapsed, 3)}


def run(plan: Plan, center: Center, progress: Callable[[str, int, int], None]) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    results: mp.Queue[Any] = ctx.Queue()
    drop, reconnect, stop = ctx.Event(), ctx.Event(), ctx.Event()
    drop_at, reconnect_at = ctx.Value("d", 0.0, lock=False), ctx.Value("d", 0.0, lock=False)
    workers: list[Any] = []
    all_signals: list[Signals] = []
    for w in range(plan.workers):
        indices = list(range(w, plan.clients, plan.workers))
        if not indices:
            continue
        signals = Signals(
            ready=ctx.Event(),
            dropped=ctx.Event(),
            drop=drop,
            reconnect=reconnect,
            stop=stop,
            drop_at=drop_at,
            reconnect_at=reconnect_at,
            connected=ctx.Value("q", 0, lock=False),
            resumed=ctx.Value("q", 0, lock=False),
            caught_up=ctx.Value("q", 0, lock=False),
            finished=ctx.Event(),
        )
        process = ctx.Process(target=worker, args=(center.ws_urls, indices, plan, signals, results), daemon=True)
        process.start()
        workers.append(process)
        all_signals.append(signals)

    def wait_all(what: str, flag: Callable[[Signals], MpEvent], counter: Callable[[Signals], int] | None) -> None:
        deadline = time.time() + plan.timeout + plan.clients / 20
        while not all(flag(s).is_set() for s in all_signals):
            if counter is not None:
                progress(what, sum(counter(s) for s in all_signals), plan.clients)
            if time.time() > deadline or not all(p.is_alive() for p in workers):
                raise RuntimeError(f"storm workers did not finish the {what} phase")
            time.sleep(0.05)

    wait_all("connect", lambda s: s.ready, lambda s: int(s.connected.value))
    drop_at.value = time.time() + 0.2
    drop.set()
    wait_all("drop", lambda s: s.dropped, None)
    noticed_s = asyncio.run(_wait_disconnected(center.http_urls[0], center.api_key, plan.clients, progress))
    supervisor = asyncio.run(_supervise(center, plan, progress))

    cpu_before = center.server_cpu_s()
    reconnect_at.value = time.time() + 0.3
    reconnect.set()
    deadline = time.time() + plan.timeout + 10
    while time.time() < deadline:
        resumed = sum(int(s.resumed.value) for s in all_signals)
        caught = sum(int(s.caught_up.value) for s in all_signals)
        progress("resume", resumed, plan.clients)
        progress("caught up", caught, plan.clients)
        if all(s.finished.is_set() for s in all_signals) or not all(p.is_alive() for p in workers):
            break
        time.sleep(0.05)
    resume_cpu = center.server_cpu_s() - cpu_before
    time.sleep(0.5)  # anything repeated after catching up arrives meanwhile
    stop.set()
    parts = [results.get(timeout=plan.timeout) for _ in workers]
    for process in workers:
        process.join(30)
    totals = {k: sum(p[k] for p in parts) for k in ("resumed", "not_resumed", "failed", "lost", "duplicated", "gap")}
    totals["timed_out"] = sum(p["timed_out"] for p in parts)
    welcome_s = [x for p in parts for x in p["welcome_s"]]
    caught_s = [x for p in parts for x in p["caught_up_s"]]
    errors: dict[str, int] = {}
    for part in parts:
        for name, count in part["errors"].items():
            errors[name] = errors.get(name, 0) + count
    everyone = totals["resumed"] == plan.clients
    me = os.times()
    return {
        "plan": plan.__dict__,
        "agents": plan.clients,
        "resumed": totals["resumed"],
        "not_resumed": totals["not_resumed"],
        "failed": totals["failed"],
        "errors": errors,
        "timed_out": totals["timed_out"],
        "events_missed_expected": plan.clients * plan.missed,
        "events_in_gaps": totals["gap"],
        "events_lost": totals["lost"],
        "events_duplicated": totals["duplicated"],
        "time_to_all_disconnected_s": round(noticed_s, 3),
        "time_to_all_resumed_s": round(max(welcome_s), 3) if everyone and welcome_s else None,
        "time_to_all_caught_up_s": round(max(caught_s), 3) if everyone and caught_s else None,
        "resume_latency": percentiles(welcome_s),
        "caught_up_latency": percentiles(caught_s),
        "supervisor": supervisor,
        "server_cpu_resume_s": round(resume_cpu, 2),
        "load_generator_cpu_s": round(sum(p["cpu_s"] for p in parts) + me.user + me.system, 2),
    }
