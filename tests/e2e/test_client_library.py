"""The client library's own promises: auto-reconnect with resume, and stopping when it cannot help."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from clients.agent import AgentClient, ConnectionClosed
from protocol.frames import Event
from server.app import create_app
from tests.e2e.conftest import handling_config
from tests.redis_server import RedisServer
from tests.support import API_KEY, serving, token


async def test_auto_reconnect_resumes_across_a_node_restart_and_loses_nothing(shared_redis: RedisServer):
    """A node on Redis is stopped and started again on the same port: the client comes back by itself,
    resumed, and every event of the gap arrives once, in order."""
    prefix = "reconnect"
    config = handling_config()
    states: list[str] = []
    app = create_app(config, redis_url=shared_redis.url, redis_prefix=prefix)
    async with serving(app) as first:
        port = first.port
        client = AgentClient(first.ws, token("ann"), auto_reconnect=True, on_state=states.append)
        await client.open()
        await client.set_status("ready")
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(base_url=first.http, headers=headers) as api:
            chats = [(await api.post("/v1/engagements", json={"queue": "chat"})).json()["id"] for _ in range(2)]
        for _ in chats:
            await client.next_event("engagement")
    # the node is down; the consumers leave meanwhile, through another node
    async with serving(create_app(config, redis_url=shared_redis.url, redis_prefix=prefix)) as other:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(base_url=other.http, headers=headers) as api:
            for eid in chats:
                await api.post(f"/v1/engagements/{eid}/end")
    async with serving(create_app(config, redis_url=shared_redis.url, redis_prefix=prefix), port=port):
        ended = [await client.next_event("engagement", timeout=15) for _ in chats]
        assert [e.engagement.state for e in ended] == ["wrap_up", "wrap_up"]
        assert client.state == "connected" and client.welcome is not None and client.welcome.resumed
        assert "reconnecting" in states
        await client.set_status("ready")  # and requests work on the new connection
        seqs = [e.seq for e in ended]
        assert seqs == sorted(set(seqs))
        assert not [e for e in client.drain() if isinstance(e, Event) and e.seq in seqs]
        await client.close()
    assert client.state == "closed"


async def test_auto_reconnect_stops_when_the_token_is_refused():
    config = handling_config()
    async with serving(create_app(config)) as live:
        client = AgentClient(live.ws, token("ann", ttl_s=1.5), auto_reconnect=True)
        await client.open()
        await asyncio.sleep(1.6)
        with pytest.raises(ConnectionClosed) as closed:
            await client.set_status("ready")  # the token expired: the server closes with 4401
        assert closed.value.code == 4401
        with pytest.raises(ConnectionClosed):
            await client.next_event("ring", timeout=5)  # the stream ends rather than waiting for more
        assert client.state == "closed"
        await client.close()


async def test_events_skipped_by_next_event_are_kept_in_order_for_the_next_read():
    async with serving(create_app(handling_config())) as live:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with (
            httpx.AsyncClient(base_url=live.http, headers=headers) as api,
            AgentClient.connect(live.ws, token("ann")) as ann,
        ):
            await ann.set_status("ready")  # after the sign-in's status event: two status events
            chat = (await api.post("/v1/engagements", json={"queue": "chat"})).json()["id"]
            await api.post(f"/v1/engagements/{chat}/messages", json={"text": "Hello?"})

            line = await ann.next_event("message")  # passes over both statuses and the engagement
            assert line.text == "Hello?"
            stream = ann.events()
            async with asyncio.timeout(5):
                skipped = [await anext(stream) for _ in range(3)]
            assert [(type(e).__struct_config__.tag, e.seq) for e in skipped] == [
                ("status", line.seq - 3),
                ("status", line.seq - 2),
                ("engagement", line.seq - 1),
            ]

            await api.post(f"/v1/engagements/{chat}/messages", json={"text": "Anyone?"})
            await api.post(f"/v1/engagements/{chat}/end")
            ended = await ann.next_event("engagement", where=lambda e: e.engagement.state == "wrap_up")
            assert (await ann.next_event("message")).text == "Anyone?"  # skipped above, found among the kept
            assert ann.drain() == [] and ended.seq == line.seq + 2


async def test_the_events_kept_for_later_are_bounded_oldest_dropped_first():
    async with serving(create_app(handling_config())) as live:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with (
            httpx.AsyncClient(base_url=live.http, headers=headers) as api,
            AgentClient.connect(live.ws, token("ann"), max_kept=2) as ann,
        ):
            await ann.set_status("ready")
            chat = (await api.post("/v1/engagements", json={"queue": "chat"})).json()["id"]
            await api.post(f"/v1/engagements/{chat}/messages", json={"text": "Hello?"})
            line = await ann.next_event("message")
            assert [e.seq for e in ann.drain()] == [line.seq - 2, line.seq - 1]  # the first status is gone
