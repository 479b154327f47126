"""Safe by default and bounded: credentials on every read, caps on what one engagement holds, retention
and reporting, idempotent creates, and sockets closed when their token runs out. On both stores."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from starlette.routing import Route
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from server.app import create_app
from server.auth import issue
from server.config import Config
from server.transport import http
from tests.e2e.conftest import Raw, handling_config
from tests.redis_server import RedisServer
from tests.support import API_KEY, SECRET, Running, agent, make_config, serving, token, voice_queue


class Clock:
    """Real time plus an offset the test moves forward: timers keep running, and a day can pass at once."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


Build = Callable[..., Any]


@pytest.fixture(params=["memory", "redis"])
def build(request: pytest.FixtureRequest) -> Build:
    """`build(config, **kwargs)`: the app on each store (Redis: a fresh prefix on the shared server)."""
    if request.param == "memory":
        return create_app
    redis_server: RedisServer = request.getfixturevalue("shared_redis")
    prefix = f"t{uuid.uuid4().hex[:8]}"
    return lambda config, **kw: create_app(config, redis_url=redis_server.url, redis_prefix=prefix, **kw)


def key_client(live: Running) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=live.http, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5)


async def agent_socket(live: Running, who: str, **hello: Any) -> Raw:
    raw = Raw(await connect(f"{live.ws}/v1/agent"))
    welcome = await raw.request({"type": "hello", "id": "h", "token": hello.pop("tok", None) or token(who), **hello})
    assert welcome["type"] == "welcome", welcome
    return raw


async def close_code(raw: Raw, timeout: float = 5.0) -> int | None:
    try:
        async with asyncio.timeout(timeout):
            while True:
                await raw.ws.recv()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


# --- every read needs a credential ----------------------------------------------------------------


def read_paths(eid: str) -> list[str]:
    """Every GET route of the HTTP API, with ids filled in: a read route added later is covered at once."""
    ids = {"{id}": eid}
    paths = []
    for route in http.routes:
        if isinstance(route, Route) and "GET" in (route.methods or ()):
            path = route.path
            if path.startswith("/v1/queues/"):
                path = path.replace("{id}", "calls")
            elif path.startswith("/v1/agents/"):
                path = path.replace("{id}", "ann")
            for placeholder, value in ids.items():
                path = path.replace(placeholder, value)
            paths.append(path)
    return paths


OPEN = {"/healthz", "/readyz", "/openapi.json", "/metrics"}


async def test_every_read_needs_the_api_key_or_an_agents_or_supervisors_token(build: Build):
    async with serving(build(handling_config())) as live, key_client(live) as api:
        created = (await api.post("/v1/engagements", json={"queue": "calls"})).json()
        eid, consumer = created["id"], created["consumer_token"]
        paths = [p for p in read_paths(eid) if p not in OPEN]
        assert {"/v1/queues", "/v1/agents", "/v1/queues/calls", "/v1/agents/ann", f"/v1/engagements/{eid}"} <= set(
            paths
        ) and f"/v1/engagements/{eid}/transcript" in paths
        expired = issue(SECRET, "ann", "agent", 60, now=time.time() - 120)
        refused = {
            "none": ({}, 401, "unauthorized"),
            "a wrong key": ({"Authorization": "Bearer not-the-key"}, 401, "unauthorized"),
            "an expired token": ({"Authorization": f"Bearer {expired}"}, 401, "unauthorized"),
            "a token signed elsewhere": (
                {"Authorization": f"Bearer {issue('x' * 40, 'ann', 'agent', 60)}"},
                401,
                "unauthorized",
            ),
            "a consumer's token": ({"Authorization": f"Bearer {consumer}"}, 403, "forbidden"),
        }
        allowed = {
            "the API key": {"Authorization": f"Bearer {API_KEY}"},
            "a supervisor's token": {"Authorization": f"Bearer {token('sue', 'supervisor')}"},
            "an agent's token": {"Authorization": f"Bearer {token('ben')}"},
        }
        async with httpx.AsyncClient(base_url=live.http, timeout=5) as anyone:
            for path in paths:
                for who, (headers, status, code) in refused.items():
                    response = await anyone.get(path, headers=headers)
                    assert (response.status_code, response.json()["code"]) == (status, code), (path, who)
                for who, headers in allowed.items():
                    assert (await anyone.get(path, headers=headers)).status_code == 200, (path, who)
            for path in sorted(OPEN - {"/metrics"}):
                assert (await anyone.get(path)).status_code == 200, path


async def test_status_reasons_and_histories_are_for_the_agent_supervisors_and_the_key(build: Build):
    async with serving(build(handling_config())) as live, key_client(live) as api:
        ann = await agent_socket(live, "ann")
        await ann.request({"type": "set_status", "id": "s", "status": "not_ready", "reason": "doctor"})

        async def seen_by(credential: str) -> tuple[dict[str, Any], dict[str, Any]]:
            headers = {"Authorization": f"Bearer {credential}"}
            listing = (await api.get("/v1/agents", headers=headers)).json()
            return next(a for a in listing if a["id"] == "ann"), (
                await api.get("/v1/agents/ann", headers=headers)
            ).json()

        for credential in (API_KEY, token("sue", "supervisor"), token("ann")):
            listed, detail = await seen_by(credential)
            assert listed["reason"] == detail["reason"] == "doctor"
            assert [h["reason"] for h in detail["history"]][-1] == "doctor"
        listed, detail = await seen_by(token("ben"))  # a colleague sees the status, not why, nor the history
        assert listed["status"] == detail["status"] == "not_ready"
        assert listed["reason"] is None and detail["reason"] is None and detail["history"] is None
        await ann.ws.close()


async def test_metrics_stay_open_unless_the_key_is_required():
    config = handling_config()
    async with serving(create_app(config)) as live, httpx.AsyncClient(base_url=live.http) as anyone:
        assert (await anyone.get("/metrics")).status_code == 200
    locked = make_config([voice_queue("calls")], [agent("ann", "calls")], server={"metrics_need_key": True})
    async with serving(create_app(locked)) as live, httpx.AsyncClient(base_url=live.http) as anyone:
        response = await anyone.get("/metrics")
        assert response.status_code == 401 and response.json()["code"] == "unauthorized"
        with_key = await anyone.get("/metrics", headers={"Authorization": f"Bearer {API_KEY}"})
        assert with_key.status_code == 200 and "switchboard_" in with_key.text


# --- caps on one engagement -----------------------------------------------------------------------

LIMITS = {
    "notes_bytes": 100,
    "message_bytes": 200,
    "thread_messages": 4,
    "thread_bytes": 500,
    "fragment_bytes": 100,
    "transcript_fragments": 5,
    "transcript_bytes": 300,
}


def capped_config() -> Config:
    return make_config(
        [
            voice_queue("calls", transcription=True, acceptance="auto"),
            {"id": "chat", "channel": "chat", "acceptance": "auto"},
        ],
        [agent("ann", "calls", "chat")],
        limits=LIMITS,
    )


@pytest.fixture
async def capped(build: Build) -> AsyncIterator[tuple[Running, httpx.AsyncClient, Raw]]:
    async with serving(build(capped_config())) as live, key_client(live) as api:
        ann = await agent_socket(live, "ann")
        await ann.request({"type": "set_status", "id": "r", "status": "ready"})
        yield live, api, ann
        await ann.ws.close()


def assert_refused(response: httpx.Response, status: int, code: str) -> None:
    assert (response.status_code, response.json()["code"]) == (status, code), response.text


def said(*texts: str, **extra: Any) -> dict[str, Any]:
    return {"fragments": [{"speaker": "consumer", "text": t, **extra} for t in texts]}


async def test_a_transcript_past_its_caps_is_refused_whole_and_the_call_goes_on(capped: Any):
    _, api, ann = capped
    eid = (await api.post("/v1/engagements", json={"queue": "calls"})).json()["id"]
    url = f"/v1/engagements/{eid}/transcript"
    assert_refused(await api.post(url, json=said("x" * 101)), 413, "too_large")  # one fragment too big
    assert (await api.post(url, json=said("a" * 50, "b" * 50, "c" * 50))).status_code == 202
    # three more would make 6 fragments: refused whole, nothing of it kept
    assert_refused(await api.post(url, json=said("d", "e", "f")), 413, "limit_reached")
    assert (await api.post(url, json=said("g" * 90, id="p", final=False))).status_code == 202
    # 240 bytes; a final replacing its partial changes the size, not the count: 210 bytes, taken
    assert (await api.post(url, json=said("G" * 60, id="p"))).status_code == 202
    assert_refused(await api.post(url, json=said("h" * 91)), 413, "limit_reached")  # 301 bytes: one too many
    assert (await api.post(url, json=said("h" * 10))).status_code == 202  # the fifth fragment
    assert_refused(await api.post(url, json=said("i")), 413, "limit_reached")  # a sixth
    kept = (await api.get(url)).json()["fragments"]
    assert [f["text"][0] for f in kept] == ["a", "b", "c", "G", "h"]
    assert sum(len(f["text"]) for f in kept) <= LIMITS["transcript_bytes"]
    assert (await api.get(f"/v1/engagements/{eid}")).json()["transcript_count"] == 5
    # the call itself still works: the agent ends it and wraps up
    assert (await ann.request({"type": "end", "id": "e", "engagement": eid}))["type"] == "ok"
    assert (await ann.request({"type": "wrap_up_done", "id": "w", "engagement": eid}))["type"] == "ok"


async def test_a_thread_past_its_caps_is_refused_on_every_way_in_and_the_chat_goes_on(capped: Any):
    live, api, ann = capped
    created = (await api.post("/v1/engagements", json={"queue": "chat", "body": "m" * 100})).json()
    eid = created["id"]
    url = f"/v1/engagements/{eid}/messages"
    consumer = Raw(await connect(f"{live.ws}/v1/consumer/{eid}"))
    welcome = await consumer.request({"type": "hello", "id": "h", "token": created["consumer_token"]})
    assert welcome["type"] == "welcome"

    assert_refused(await api.post(url, json={"text": "x" * 201}), 413, "too_large")
    big = await ann.request({"type": "send", "id": "s0", "engagement": eid, "text": "x" * 201})
    assert (big["type"], big["code"]) == ("error", "too_large")
    assert (await api.post(url, json={"text": "n" * 150})).status_code == 202  # 250 bytes in 2 messages
    assert (await ann.request({"type": "send", "id": "s1", "engagement": eid, "text": "o" * 200}))["type"] == "ok"
    # 450 bytes: another 100 would pass the 500-byte cap, from the flow, the agent or the consumer alike
    assert_refused(await api.post(url, json={"text": "p" * 100}), 413, "limit_reached")
    full = await ann.request({"type": "send", "id": "s2", "engagement": eid, "text": "q" * 100})
    assert (full["type"], full["code"]) == ("error", "limit_reached")
    theirs = await consumer.request({"type": "send", "id": "c1", "engagement": eid, "text": "r" * 100})
    assert (theirs["type"], theirs["code"]) == ("error", "limit_reached")
    assert (await ann.request({"type": "send", "id": "s3", "engagement": eid, "text": "ok"}))["type"] == "ok"
    assert_refused(await api.post(url, json={"text": "x"}), 413, "limit_reached")  # 4 messages: full
    thread = (await api.get(f"/v1/engagements/{eid}")).json()["messages"]
    assert [m["text"][0] for m in thread] == ["m", "n", "o", "o"] and len(thread) == LIMITS["thread_messages"]
    long_note = await ann.request({"type": "note", "id": "n", "engagement": eid, "text": "w" * 101})
    assert (long_note["type"], long_note["code"]) == ("error", "too_large")
    assert (await ann.request({"type": "note", "id": "n2", "engagement": eid, "text": "fine"}))["type"] == "ok"
    assert (await ann.request({"type": "end", "id": "e", "engagement": eid}))["type"] == "ok"
    await consumer.ws.close()


# --- retention and reporting ----------------------------------------------------------------------


async def test_closed_engagements_are_reported_then_forgotten_after_retention_in_memory(tmp_path: Path):
    clock = Clock()
    report = tmp_path / "reports" / "closed.jsonl"
    config = make_config(
        [voice_queue("calls")], [agent("ann", "calls")], server={"retention_s": 3600}, reporting={"file": str(report)}
    )
    async with serving(create_app(config, clock=clock)) as live, key_client(live) as api:
        ended = (await api.post("/v1/engagements", json={"queue": "calls"})).json()["id"]
        waiting = (await api.post("/v1/engagements", json={"queue": "calls"})).json()["id"]
        assert (await api.post(f"/v1/engagements/{ended}/end")).json()["state"] == "abandoned"
        lines = [json.loads(line) for line in report.read_text().splitlines()]
        assert [(r["id"], r["state"]) for r in lines] == [(ended, "abandoned")]
        assert [h["event"] for h in lines[0]["history"]] == ["created", "abandoned"]
        clock.advance(3500)
        await asyncio.sleep(1.2)  # the store sweeps once a timer poll (a second in memory)
        assert (await api.get(f"/v1/engagements/{ended}")).status_code == 200  # not yet
        clock.advance(200)
        for _ in range(40):  # bounded: the next sweep forgets it
            if (await api.get(f"/v1/engagements/{ended}")).status_code == 404:
                break
            await asyncio.sleep(0.1)
        assert (await api.get(f"/v1/engagements/{ended}")).status_code == 404
        assert (await api.get(f"/v1/engagements/{waiting}")).json()["state"] == "queued"  # still waiting: kept


async def test_on_redis_the_commit_that_ends_an_engagement_sets_its_ttl_and_adds_it_to_the_report_stream(
    shared_redis: RedisServer,
):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    config = make_config(
        [voice_queue("calls", transcription=True)], [agent("ann", "calls")], server={"retention_s": 7200}
    )
    app = create_app(config, redis_url=shared_redis.url, redis_prefix=prefix)
    db = aioredis.Redis.from_url(shared_redis.url)
    base = f"{prefix}:{{{prefix}}}"
    try:
        async with serving(app) as live, key_client(live) as api:
            eid = (await api.post("/v1/engagements", json={"queue": "calls"})).json()["id"]
            await api.post(f"/v1/engagements/{eid}/transcript", json=said("hi"))
            assert await db.ttl(f"{base}:e:{eid}") == -1  # live: kept as long as it lives
            assert (await api.post(f"/v1/engagements/{eid}/end")).json()["state"] == "abandoned"
            for key in (f"{base}:e:{eid}", f"{base}:x:{eid}"):
                assert 7100 < await db.ttl(key) <= 7200, key
            entries = await db.xrange(f"{base}:reports")
            reported = [json.loads(fields[b"e"]) for _, fields in entries]
            assert [(r["id"], r["state"]) for r in reported] == [(eid, "abandoned")]
    finally:
        await db.aclose()


# --- idempotent creates ---------------------------------------------------------------------------


async def test_a_create_retried_with_its_idempotency_key_gets_the_same_engagement(build: Build):
    clock = Clock()
    async with serving(build(handling_config(), clock=clock)) as live, key_client(live) as api:
        body = {"queue": "calls", "consumer": {"name": "Ana"}, "variables": {"order": "A-1"}}
        once = {"Idempotency-Key": "flow-42"}
        first = await api.post("/v1/engagements", json=body, headers=once)
        assert first.status_code == 201
        # the flow timed out and sends it again, keys in another order: same engagement, 200
        reordered = {"variables": {"order": "A-1"}, "consumer": {"name": "Ana"}, "queue": "calls"}
        again = await api.post("/v1/engagements", json=reordered, headers=once)
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
        assert again.json()["consumer_token"]
        other = await api.post("/v1/engagements", json={**body, "priority": 5}, headers=once)
        assert_refused(other, 422, "idempotency_mismatch")
        # retries racing each other still make one engagement
        racing = await asyncio.gather(
            *(api.post("/v1/engagements", json=body, headers={"Idempotency-Key": "flow-43"}) for _ in range(6))
        )
        assert sorted(r.status_code for r in racing) == [200] * 5 + [201]
        assert len({r.json()["id"] for r in racing}) == 1
        assert (await api.get("/v1/queues/calls")).json()["stats"]["waiting"] == 2  # flow-42 and flow-43, once each
        assert (await api.post("/v1/engagements", json=body)).status_code == 201  # no key: a new one each time
        clock.advance(24 * 3600 + 1)  # a day later the key is free again
        later = await api.post("/v1/engagements", json=body, headers=once)
        assert later.status_code == 201 and later.json()["id"] != first.json()["id"]
        too_long = await api.post("/v1/engagements", json=body, headers={"Idempotency-Key": "k" * 256})
        assert_refused(too_long, 400, "invalid_field")


# --- tokens that run out --------------------------------------------------------------------------


async def test_an_idle_socket_is_closed_with_4401_when_its_token_expires_unless_refreshed(build: Build):
    clock = Clock()
    async with serving(build(handling_config(), clock=clock)) as live:
        quiet = await agent_socket(live, "ann", tok=issue(SECRET, "ann", "agent", 600, now=clock()))
        refreshed = Raw(await connect(f"{live.ws}/v1/supervisor"))
        hello = {"type": "hello", "id": "h", "token": issue(SECRET, "sue", "supervisor", 600, now=clock())}
        assert (await refreshed.request(hello))["type"] == "welcome"
        clock.advance(500)
        fresh = issue(SECRET, "sue", "supervisor", 600, now=clock())
        assert (await refreshed.request({"type": "hello", "id": "h2", "token": fresh}))["type"] == "welcome"
        clock.advance(150)  # past the first tokens' expiry: the quiet socket goes, the refreshed one stays
        assert await close_code(quiet, timeout=3) == 4401
        assert (await refreshed.request({"type": "ping", "id": "p"}))["type"] == "pong"
        clock.advance(500)  # past the refreshed token's expiry too
        assert await close_code(refreshed, timeout=3) == 4401
