"""`switchboard demo`: the demo center with life in it, so a newcomer sees rings within seconds.

Simulated consumers call, chat and write through the public HTTP API (with the flow's variables, a
bot's summary, a live transcript during calls, chat lines, emails), and simulated colleagues (the
demo's bob and dan) sign in on the agent socket and handle what comes to them, through the same
client library anyone can use. Alice and carol are left to the person at the browser desktop; the
simulator never acts for them. Every pause is scaled by `speed`, so tests can run a day in seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import random
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import httpx
import msgspec

from clients.agent import AgentClient, ClientError
from protocol.frames import EngagementEvent, MessageEvent, Ring
from protocol.model import Scalar
from server.auth import issue
from server.config import Config

log = logging.getLogger("switchboard.demo")

COLLEAGUES = ("bob", "dan")


class CallScript(msgspec.Struct, frozen=True):
    consumer: dict[str, str]
    variables: dict[str, Scalar]
    lines: list[tuple[str, str]]
    summary: str | None = None


class ChatScript(msgspec.Struct, frozen=True):
    consumer: dict[str, str]
    variables: dict[str, Scalar]
    lines: list[str]
    summary: str | None = None


class EmailScript(msgspec.Struct, frozen=True):
    consumer: dict[str, str]
    subject: str
    body: str


class Script(msgspec.Struct, frozen=True):
    calls: list[CallScript]
    chats: list[ChatScript]
    emails: list[EmailScript]
    replies: list[str]


SCRIPT = msgspec.toml.decode(resources.files("server").joinpath("demo_script.toml").read_bytes(), type=Script)


def _body(queue: str, script: CallScript | ChatScript) -> dict[str, Any]:
    body: dict[str, Any] = {"queue": queue, "consumer": script.consumer, "variables": script.variables}
    if script.summary:
        body["summary"] = script.summary
    return body


@dataclass
class Life:
    """Where the simulation talks to the server, and how fast its clock runs."""

    http: str
    ws: str
    config: Config
    speed: float = 1.0
    rng: random.Random = field(default_factory=random.Random)

    def pause(self, low: float, high: float) -> Any:
        return asyncio.sleep(self.rng.uniform(low, high) / self.speed)

    def api(self) -> httpx.AsyncClient:
        key = self.config.server.api_keys[0]
        return httpx.AsyncClient(base_url=self.http, headers={"Authorization": f"Bearer {key}"}, timeout=10)


async def consumers(life: Life, rate: float, stop: asyncio.Event) -> None:
    """New consumers arrive at `rate` per second (Poisson), each living their own conversation."""
    alive: set[asyncio.Task[None]] = set()
    async with life.api() as api:
        try:
            while not stop.is_set():
                kind = life.rng.choices(["call", "chat", "email"], weights=[5, 3, 2])[0]
                task = asyncio.create_task({"call": call, "chat": chat, "email": email}[kind](life, api))
                alive.add(task)
                task.add_done_callback(alive.discard)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(life.rng.expovariate(rate) / life.speed):
                        await stop.wait()
        finally:
            for task in alive:  # the consumers still on the line hang up with the simulation
                task.cancel()
            await asyncio.gather(*alive, return_exceptions=True)


async def _state(api: httpx.AsyncClient, eid: str) -> str:
    return str((await api.get(f"/v1/engagements/{eid}")).json()["state"])


async def _until_handled(life: Life, api: httpx.AsyncClient, eid: str, patience_s: float) -> bool:
    """Wait (as a consumer on hold would) until someone takes it; hang up after `patience_s`."""
    waited = 0.0
    while waited < patience_s:
        if await _state(api, eid) in ("active", "assigned", "open"):
            return True
        await asyncio.sleep(1.0 / life.speed)
        waited += 1.0
    await api.post(f"/v1/engagements/{eid}/end")
    return False


async def call(life: Life, api: httpx.AsyncClient) -> None:
    script = life.rng.choice(SCRIPT.calls)
    queue = life.rng.choices(["support-voice", "escalations-voice", "advice-video"], weights=[6, 2, 2])[0]
    created = (await api.post("/v1/engagements", json=_body(queue, script))).json()
    eid = created["id"]
    transcribed = any(q.transcription for q in life.config.queues if q.id == queue)
    if transcribed:  # what the IVR's bot heard before the handover
        said = {"speaker": "bot", "text": "Bonjour, je vous passe un conseiller."}
        await api.post(f"/v1/engagements/{eid}/transcript", json={"fragments": [said]})
    if not await _until_handled(life, api, eid, patience_s=120):
        return
    for speaker, text in script.lines:
        await life.pause(2, 5)
        if await _state(api, eid) != "active":
            return
        if transcribed:
            words = text.split()
            partial = {"id": f"{eid}-{len(text)}", "speaker": speaker, "text": " ".join(words[: len(words) // 2])}
            await api.post(f"/v1/engagements/{eid}/transcript", json={"fragments": [{**partial, "final": False}]})
            await life.pause(0.3, 0.8)
            await api.post(f"/v1/engagements/{eid}/transcript", json={"fragments": [{**partial, "text": text}]})
    await life.pause(5, 15)
    if await _state(api, eid) == "active":
        await api.post(f"/v1/engagements/{eid}/end")  # the consumer hangs up


async def chat(life: Life, api: httpx.AsyncClient) -> None:
    script = life.rng.choice(SCRIPT.chats)
    eid = (await api.post("/v1/engagements", json=_body("sales-chat", script))).json()["id"]
    if not await _until_handled(life, api, eid, patience_s=90):
        return
    for line in script.lines:
        await life.pause(3, 8)
        if await _state(api, eid) != "active":
            return
        await api.post(f"/v1/engagements/{eid}/messages", json={"text": line})
    await life.pause(10, 20)
    if await _state(api, eid) == "active":
        await api.post(f"/v1/engagements/{eid}/end")


async def email(life: Life, api: httpx.AsyncClient) -> None:
    script = life.rng.choice(SCRIPT.emails)
    body = {"queue": "care-email", "consumer": script.consumer, "subject": script.subject, "body": script.body}
    await api.post("/v1/engagements", json=body)


async def colleague(life: Life, agent_id: str, stop: asyncio.Event) -> None:
    """A simulated agent: answers most rings, talks a while, wraps up, answers emails and chats."""
    token = issue(life.config.server.secret or "", agent_id, "agent", 24 * 3600)
    client = AgentClient(life.ws, token, auto_reconnect=True)
    await client.open()
    await client.set_status("ready")
    working: dict[str, asyncio.Task[None]] = {}
    try:
        while not stop.is_set():
            try:
                event = await client.next_event(timeout=0.5)
            except ClientError:
                continue
            if isinstance(event, Ring):
                await life.pause(1, 4)
                with contextlib.suppress(ClientError):
                    if life.rng.random() < 0.85:
                        await client.accept(event.offer)
                    else:
                        await client.decline(event.offer, "busy with something else")
            elif isinstance(event, EngagementEvent) and event.engagement.agent == agent_id:
                eng = event.engagement
                if eng.state in ("active", "assigned") and eng.id not in working:
                    task = asyncio.create_task(_work(life, client, eng.id, eng.channel, eng.queue))
                    working[eng.id] = task
                    task.add_done_callback(functools.partial(_forget, working, eng.id))
            elif isinstance(event, MessageEvent) and event.direction == "in":
                await life.pause(2, 6)
                with contextlib.suppress(ClientError):
                    await client.send(event.engagement, life.rng.choice(SCRIPT.replies))
    finally:
        for task in list(working.values()):
            task.cancel()
        await client.close()


def _forget(working: dict[str, asyncio.Task[None]], engagement_id: str, _: object) -> None:
    working.pop(engagement_id, None)


async def _work(life: Life, client: AgentClient, eid: str, channel: str, queue_id: str) -> None:
    queue = next(q for q in life.config.queues if q.id == queue_id)
    codes = [queue.dispositions[0].code] if queue.dispositions else []
    with contextlib.suppress(ClientError):
        if channel == "email":
            await life.pause(3, 10)
            await client.open_engagement(eid)
            await client.send(eid, "Thank you for your message; it is taken care of.")
            if codes:
                await client.disposition(eid, codes)
            await client.end(eid)
            return
        await life.pause(20, 60)
        with contextlib.suppress(ClientError):  # the consumer may have hung up first
            await client.end(eid)
        await life.pause(2, 6)
        if codes:
            await client.disposition(eid, codes)
        await client.wrap_up_done(eid)


async def simulate(life: Life, rate: float, stop: asyncio.Event) -> None:
    """Colleagues at their desks, then consumers arriving, until `stop`."""
    present = {a.id for a in life.config.agents}
    desks = [asyncio.create_task(colleague(life, a, stop)) for a in COLLEAGUES if a in present]
    try:
        await consumers(life, rate, stop)
    finally:
        stop.set()
        await asyncio.gather(*desks, return_exceptions=True)


def run(args: argparse.Namespace) -> int:
    from server import logs
    from server.app import create_app
    from server.cli import refuse_exposure, warn_of_exposure
    from server.config import load
    from server.serving import serve

    config = load(None)
    if refuse_exposure(config, args.host, demo=True):
        return 2
    app = create_app(config, demo=True)
    logs.configure(args.log_level, args.log_format, app.state.node.node_id)
    warn_of_exposure(config, args.host, demo=True)

    async def simulation(host: str, port: int) -> None:
        base = f"{host}:{port}"
        print(f"Switchboard demo on http://{base}/", flush=True)
        print(
            f"  open http://{base}/ and pick Alice or Carol: calls, chats and emails arrive within seconds", flush=True
        )
        print(f"  supervisor view: http://{base}/supervisor (pick Sam)", flush=True)
        print(f"  ingest key: {config.server.api_keys[0]}   (bob and dan are simulated colleagues)", flush=True)
        life = Life(http=f"http://{base}", ws=f"ws://{base}", config=config)
        await simulate(life, args.rate, asyncio.Event())

    serve(app, args.host, args.port, args.log_level, simulation)
    return 0
