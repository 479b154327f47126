"""The servers `fanout` compares Switchboard with, runnable as subprocesses:

    python -m loadtest.peers socketio --port 0 [--redis URL]
    python -m loadtest.peers websockets --port 0

Each prints "... listening on http://127.0.0.1:PORT" once it accepts connections, as `switchboard
serve` does, so `PeerProcess` starts them like nodes.

- `socketio`: python-socketio's `AsyncServer` under uvicorn (the same ASGI server and WebSocket
  implementation as Switchboard). A client joins the room named in its connect `auth`
  (`{"room": "r17"}`); a `publish {room, text}` event is re-emitted to that room as `fragment` and
  acknowledged once emitted. With `--redis`, the server uses `AsyncRedisManager`, so with several
  processes every emit crosses Redis pub/sub to the process holding the room, like Switchboard's
  broker; without it, the in-process manager (as Switchboard runs in memory on one node).
- `websockets`: the floor, a bare `websockets` server. Client N connects to `/c/N`; a publisher on
  `/pub` sends `"<N> <text>"` and the server forwards `<text>` to client N, then answers `k`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

from loadtest.servers import NodeProcess


class PeerProcess(NodeProcess):
    """One peer server process, started and stopped like a node."""

    def __init__(self, name: str, kind: str, redis_url: str | None, logdir: Path) -> None:
        self.name = name
        self.args = [sys.executable, "-m", "loadtest.peers", kind, "--port", "0"]
        if redis_url is not None:
            self.args += ["--redis", redis_url]
        self.logfile = logdir / f"{name}.log"
        self.proc = None
        self.port = 0


async def _announce_uvicorn(server: Any, task: asyncio.Task[None], what: str, host: str) -> None:
    while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.02)
    if server.started:
        port = server.servers[0].sockets[0].getsockname()[1]
        print(f"{what} listening on http://{host}:{port}", flush=True)


async def serve_socketio(host: str, port: int, redis_url: str | None) -> None:
    import socketio
    import uvicorn

    manager = socketio.AsyncRedisManager(redis_url) if redis_url else None
    sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager, logger=False, engineio_logger=False)

    async def connect(sid: str, environ: dict[str, Any], auth: dict[str, Any] | None) -> None:
        room = (auth or {}).get("room")
        if room:
            await sio.enter_room(sid, room)

    async def publish(sid: str, data: dict[str, Any]) -> int:
        await sio.emit("fragment", data["text"], room=data["room"])
        return 1

    sio.on("connect", connect)
    sio.on("publish", publish)
    app = socketio.ASGIApp(sio)
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, ws="websockets-sansio", log_level="warning", access_log=False)
    )
    task = asyncio.create_task(server.serve())
    await _announce_uvicorn(server, task, "socketio peer", host)
    await task


async def serve_websockets(host: str, port: int) -> None:
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    clients: dict[str, ServerConnection] = {}

    async def handler(ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else ""
        if path.startswith("/c/"):
            name = path[3:]
            clients[name] = ws
            try:
                await ws.wait_closed()
            finally:
                if clients.get(name) is ws:
                    del clients[name]
        elif path == "/pub":
            async for message in ws:
                to, _, text = str(message).partition(" ")
                client = clients.get(to)
                if client is not None:
                    with contextlib.suppress(ConnectionClosed):
                        await client.send(text)
                await ws.send("k")

    async with serve(handler, host, port, max_size=None, compression=None) as server:
        bound = next(iter(server.sockets)).getsockname()[1]
        print(f"websockets peer listening on http://{host}:{bound}", flush=True)
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.peers", description="fanout's peer servers")
    parser.add_argument("kind", choices=["socketio", "websockets"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--redis", help="socketio: AsyncRedisManager on this Redis (for several processes)")
    args = parser.parse_args(argv)
    import uvloop

    if args.kind == "socketio":
        uvloop.run(serve_socketio(args.host, args.port, args.redis))
    else:
        uvloop.run(serve_websockets(args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
