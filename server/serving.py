"""Running an app under uvicorn as `switchboard serve` and `switchboard demo` do: uvloop, the lean
websockets-sansio protocol (`server.wsprotocol`), the frame limit, and a graceful drain on the first
SIGTERM or Ctrl-C.

On the first signal the node drains (clients get `closing` and move to another node with
`resume_from`), then uvicorn shuts down and the process exits 0; a second signal stops at once.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import Any

import uvicorn
import uvloop
from starlette.applications import Starlette

from server.node import Node
from server.wsprotocol import LeanWebSocketProtocol


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, node: Node) -> None:
        super().__init__(config)
        self.node = node
        self.loop: asyncio.AbstractEventLoop | None = None
        self._drain: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain is None and self.loop is not None and not self.should_exit:
            self.loop.call_soon_threadsafe(self._start_drain)
            return
        super().handle_exit(sig, frame)

    def _start_drain(self) -> None:
        if self._drain is None:
            self._drain = asyncio.ensure_future(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        await self.node.drain()
        self.should_exit = True


Alongside = Callable[[str, int], Coroutine[Any, Any, None]]


def serve(app: Starlette, host: str, port: int, log_level: str, then: Alongside | None = None) -> None:
    """Serve until a signal; once listening, run `then(host, port)` alongside (say where, simulate...)."""
    node: Node = app.state.node
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ws=LeanWebSocketProtocol,
        ws_max_size=node.dir.server.max_frame_bytes,
        ws_per_message_deflate=False,  # its zlib state costs ~40 KiB per socket; frames are small JSON
        lifespan="on",
        log_level=log_level,
        log_config=None,  # logging is set up by server.logs, in the chosen format
        access_log=False,
    )
    server = DrainingServer(config, node)

    async def main() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.02)
        if not server.started:
            await task
            return
        server.loop = asyncio.get_running_loop()
        # Modules, config and app objects live as long as the process: move them out of the collector's
        # reach, so that its full collections (which stall every socket) scan only what comes and goes.
        gc.collect()
        gc.freeze()
        bound = server.servers[0].sockets[0].getsockname()[1]
        alongside = asyncio.create_task(then(host, bound)) if then else None
        await task
        if alongside is not None:
            alongside.cancel()
            await asyncio.gather(alongside, return_exceptions=True)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
