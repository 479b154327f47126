"""uvicorn's websockets-sansio protocol, trimmed for thousands of sockets that sit idle for hours.

An agent's desktop holds its socket all day and mostly hears nothing. Measured with tracemalloc on
10,000 idle agents, uvicorn's protocol kept about 15 KiB per socket that an open, quiet connection
never uses again: the handshake's request and response (with their headers), an `asyncio.Queue`
(three deques and an event: 3 KiB while empty) for incoming frames, and an `asyncio.Event` for write
flow control. `LeanWebSocketProtocol` drops the handshake once the socket is accepted, and replaces
the queue and the event with a list and a future made only while someone waits. It also offers the
app ASGI extensions to write several queued messages at once (`SEND_FRAMES`), and to write from
code that cannot await (`SEND_NOW`). Everything else is
uvicorn's: framing, keepalive pings, close handshake, limits.

It relies on three attributes of uvicorn's implementation (`queue`, `writable`, `request` and
`response`); the whole socket test suite runs through it, so an upgrade that changes them fails there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.http11 import Request


class _Inbox:
    """The part of `asyncio.Queue` the protocol uses: `put_nowait`, `get`, `empty`; unbounded (the
    protocol pauses reading from the transport while a frame is unread, which bounds it)."""

    __slots__ = ("_items", "_waiters")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiters: list[asyncio.Future[None]] = []

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        while self._waiters:
            waiter = self._waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                break

    async def get(self) -> Any:
        while not self._items:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                raise
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items


class _Gate:
    """The part of `asyncio.Event` the protocol uses for write flow control: open unless the
    transport's buffer is full; waiters are woken when it opens again."""

    __slots__ = ("_open", "_waiters")

    def __init__(self) -> None:
        self._open = True
        self._waiters: list[asyncio.Future[None]] = []

    def is_set(self) -> bool:
        return self._open

    def set(self) -> None:
        self._open = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._open = False

    async def wait(self) -> None:
        while not self._open:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                raise


SEND_FRAMES = "switchboard.send_frames"
"""The ASGI extension (in `scope["extensions"]`) that writes several messages in one go: see
`LeanWebSocketProtocol.send_frames`. An app that does not find it sends one `websocket.send` each."""

SendFrames = Callable[[Sequence[bytes | str]], Awaitable[None]]

SEND_NOW = "switchboard.send_now"
"""The ASGI extension that writes messages from code that cannot await: see
`LeanWebSocketProtocol.send_now`."""

SendNow = Callable[[Sequence[bytes | str]], bool]


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """See the module docstring. Pass it as uvicorn's `ws` (`uvicorn.Config(app, ws=LeanWebSocketProtocol)`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _Inbox()  # type: ignore[assignment]
        self.writable = _Gate()  # type: ignore[assignment]

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # only an upgrade that is going ahead has one
        if scope is not None:
            scope["extensions"][SEND_FRAMES] = self.send_frames
            scope["extensions"][SEND_NOW] = self.send_now

    async def send_frames(self, payloads: Sequence[bytes | str]) -> None:
        """Send several messages (str: a text frame, bytes: a binary one) in one write to the transport:
        what a busy socket has queued (a media server's acknowledgements, a burst of events) costs one
        system call instead of one each. The same checks as `websocket.send`: flow control first,
        and `ClientDisconnected` once the socket is closing or gone."""
        await self.writable.wait()
        self._write(payloads)

    def send_now(self, payloads: Sequence[bytes | str]) -> bool:
        """`send_frames` without waiting: False (nothing written) while the transport's buffer is full."""
        if not self.writable.is_set():
            return False
        self._write(payloads)
        return True

    def _write(self, payloads: Sequence[bytes | str]) -> None:
        if self.disconnected or self.close_sent or not self.handshake_complete:
            raise ClientDisconnected()
        try:
            for payload in payloads:
                if isinstance(payload, str):
                    self.conn.send_text(payload.encode())
                else:
                    self.conn.send_binary(payload)
        except InvalidState:
            raise ClientDisconnected() from None
        self.transport.write(b"".join(self.conn.data_to_send()))

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete and self.request is not None:
            # The 101 response is written: the handshake's request and response are never read again.
            # websockets' parser keeps the request for the socket's life, so its headers are emptied.
            self.request.headers.clear()
            self.request = self.response = None  # type: ignore[assignment]
