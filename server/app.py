"""The Starlette application factory: usable under any ASGI server, uvicorn being the default.

`create_app(config)` builds the node at once (so the app can be inspected before serving) and starts
its timers in the lifespan, closing the store and broker on the way out.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Match, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from server.bus.base import Broker
from server.bus.memory import MemoryBroker
from server.config import Config, Directory
from server.core.errors import Refused
from server.core.tx import IdSource
from server.node import Node, random_ids
from server.store.base import Store
from server.store.memory import MemoryStore
from server.transport import http
from server.transport.ingest import ingest_endpoint
from server.transport.session import endpoint

log = logging.getLogger("switchboard")


STATIC = Path(__file__).parent / "static"


def page(name: str) -> Callable[[Request], Awaitable[Response]]:
    """Serve one of the desktops' HTML pages (their scripts and styles are under /static)."""

    async def serve(request: Request) -> Response:
        return FileResponse(STATIC / name, media_type="text/html", headers={"cache-control": "no-cache"})

    return serve


class App(Starlette):
    """Starlette, with WebSocket connections sent straight to their route.

    An idle socket's coroutine chain lives as long as the socket: through Starlette's middleware and
    router it is eight more frames (about 5 KiB per socket, with 10,000 agents holding theirs all
    day), for middleware that does nothing for sockets (the error and exception middleware only act on
    HTTP; a session answers every error itself). HTTP requests, and unknown socket paths, take the
    usual way.
    """

    def __init__(self, *, sockets: list[WebSocketRoute], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sockets = sockets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            for route in self.sockets:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope["app"] = self
                    scope.update(child)
                    await route.endpoint(WebSocket(scope, receive=receive, send=send))
                    return
        await super().__call__(scope, receive, send)


def create_app(
    config: Config,
    *,
    redis_url: str | None = None,
    redis_prefix: str = "sb",
    store: Store | None = None,
    broker: Broker | None = None,
    clock: Callable[[], float] = time.time,
    ids: IdSource = random_ids,
    demo: bool = False,
) -> App:
    """The app for one node: in memory by default; with `redis_url`, one node of a cluster. `demo`
    serves the demo's sign-in list (a token for everyone): for a demo on this machine only."""
    directory = Directory(config)
    node_id = uuid.uuid4().hex[:12]
    poll_s = 1.0
    if redis_url is not None:
        from redis.asyncio import BlockingConnectionPool, Redis

        from server.bus.redis import RedisBroker
        from server.store.redis import RedisStore

        # a pool that makes a burst wait for a connection rather than fail
        client = Redis(connection_pool=BlockingConnectionPool.from_url(redis_url, max_connections=64, timeout=10))
        store = RedisStore(
            client,
            prefix=redis_prefix,
            log_size=config.server.event_log_size,
            retention_s=config.server.retention_s,
        )
        broker = RedisBroker(client, prefix=redis_prefix, node_id=node_id)
        poll_s = 0.05  # other nodes arm timers too: poll rather than wait to be woken
    node = Node(
        directory,
        store or MemoryStore(config.server.event_log_size),
        broker or MemoryBroker(),
        clock=clock,
        ids=ids,
        timer_poll_s=poll_s,
        node_id=node_id,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await node.start()
        try:
            yield
        finally:
            await node.stop()
            await node.broker.close()
            await node.store.close()

    sockets = [
        WebSocketRoute("/v1/agent", endpoint("agent")),
        WebSocketRoute("/v1/supervisor", endpoint("supervisor")),
        WebSocketRoute("/v1/consumer/{engagement}", endpoint("consumer")),
        WebSocketRoute("/v1/ingest", ingest_endpoint),
    ]
    app = App(
        sockets=sockets,
        routes=[
            Route("/", page("desktop.html"), methods=["GET"]),
            Route("/supervisor", page("supervisor.html"), methods=["GET"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
            *http.routes,
            *(http.demo_routes if demo else []),
            *sockets,
        ],
        exception_handlers={
            http.ApiError: http.on_api_error,
            Refused: http.on_refused,
            HTTPException: http.on_http_exception,
            Exception: http.on_unexpected,
        },
        lifespan=lifespan,
    )
    app.state.node = node
    return app
