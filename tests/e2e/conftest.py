"""A live server per test: the app under uvicorn on a free loopback port, with a small contact center."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect

from server.app import create_app
from server.config import Config
from tests.redis_server import RedisServer
from tests.support import API_KEY, Running, agent, make_config, serving, token, voice_queue


def center_config(**server: Any) -> Config:
    return make_config(
        [
            voice_queue(
                "calls",
                name="Calls",
                ring_timeout_s=3,
                wrap_up_s=30,
                transcription=True,
                dispositions=[{"code": "resolved", "label": "Resolved"}, {"code": "callback", "label": "Call back"}],
                disposition_required=True,
            ),
            {
                "id": "chat",
                "channel": "chat",
                "acceptance": "auto",
                "wrap_up_s": 30,
                "dispositions": [{"code": "sale"}],
            },
            voice_queue("quick", ring_timeout_s=0.4),
        ],
        [
            agent("ann", "calls", "chat", "quick"),
            agent("ben", "calls", "quick"),
            agent("cat", "calls"),
        ],
        server={"grace_s": 2, **server},
        address_book=[
            {"id": "c-1", "name": "Jeanne Dupont", "phone": "+33 6 12 34 56 78", "fields": {"tier": "gold"}},
        ],
    )


def handling_config(webhook_url: str | None = None, inactivity_close_s: float | None = None) -> Config:
    """A center for the handling tests: a voice queue with transcription, chat, email, a second voice queue."""
    chat: dict[str, Any] = {"id": "chat", "channel": "chat", "acceptance": "auto", "dispositions": [{"code": "sale"}]}
    if webhook_url:
        chat["webhook_url"] = webhook_url
    mail: dict[str, Any] = {
        "id": "mail",
        "channel": "email",
        "dispositions": [{"code": "answered"}],
        "disposition_required": True,
    }
    if inactivity_close_s:
        mail["inactivity_close_s"] = inactivity_close_s
    return make_config(
        [
            voice_queue("calls", transcription=True, dispositions=[{"code": "resolved"}], ring_timeout_s=10),
            chat,
            mail,
            voice_queue("billing", ring_timeout_s=10),
        ],
        [
            agent("ann", "calls", "chat", "mail"),
            agent("ben", "calls", "chat", "mail", "billing"),
            agent("cat", "billing"),
        ],
        server={"grace_s": 2, "webhook_secret": "hook-secret"},
    )


AppFactory = Callable[[Config], Starlette]


@pytest.fixture(params=["memory", "redis"])
def app_for(request: pytest.FixtureRequest) -> AppFactory:
    """Builds the app on each backend: the embedded default, and one node on a private Redis."""
    if request.param == "memory":
        return create_app
    redis: RedisServer = request.getfixturevalue("shared_redis")
    return lambda config: create_app(config, redis_url=redis.url, redis_prefix=f"t{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def live(app_for: AppFactory) -> AsyncIterator[Running]:
    async with serving(app_for(center_config())) as running:
        yield running


@pytest.fixture
async def api(live: Running) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=live.http, headers=headers, timeout=5) as client:
        yield client


class Raw:
    """A bare JSON WebSocket client: what any third-party client sees, with no project code.

    Frames skipped while waiting for something else are kept, in order, for the next wait.
    """

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.kept: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        if self.kept:
            return self.kept.pop(0)
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def first(self, match: Any, timeout: float = 5.0) -> dict[str, Any]:
        """The first frame (kept or new) for which `match(frame)` is true; the others are kept."""
        for i, frame in enumerate(self.kept):
            if match(frame):
                return self.kept.pop(i)

        async def wait() -> dict[str, Any]:
            while True:
                frame = json.loads(await self.ws.recv())
                if match(frame):
                    return frame
                self.kept.append(frame)

        return await asyncio.wait_for(wait(), timeout)

    async def until(self, *types: str, timeout: float = 5.0) -> dict[str, Any]:
        return await self.first(lambda f: f["type"] in types, timeout)

    async def request(self, frame: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        """Send a frame with an id and return its reply."""
        await self.send(frame)
        return await self.first(lambda f: f.get("re") == frame["id"], timeout)


async def raw_agent(live: Running, agent_id: str, **hello: Any) -> tuple[Raw, dict[str, Any]]:
    ws = await connect(f"{live.ws}/v1/agent", subprotocols=["switchboard.v1.json"])  # type: ignore[list-item]
    raw = Raw(ws)
    welcome = await raw.request({"type": "hello", "id": "h", "token": token(agent_id), **hello})
    assert welcome["type"] == "welcome", welcome
    return raw, welcome
