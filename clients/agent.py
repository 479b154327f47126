"""The asyncio client library: connect, `hello`, typed events as an async iterator, typed requests.

    async with AgentClient.connect("ws://127.0.0.1:8000", token) as agent:
        await agent.set_status("ready")
        ring = await agent.next_event("ring")
        await agent.accept(ring.offer)

Every request gets a future resolved by the reply with the same `re`; an `error` reply raises
`RequestFailed` with its code, and no reply within the timeout raises `RequestTimeout`. Events keep
their order and update `last_seq`, which `resume()` uses to pick up exactly where the socket dropped.
The events `next_event` skips while it waits for the one asked for are kept, in order, for the next
read (`next_event`, `events()` or `drain()`), so mixing the two ways of reading loses nothing.
With `auto_reconnect=True` the client does that by itself after a drop, with jittered exponential
backoff, and the event stream just goes on (`state` says `connected` or `reconnecting`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Self

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed as WsConnectionClosed
from websockets.exceptions import InvalidHandshake

from protocol.codec import CODECS, JSON, Codec
from protocol.frames import (
    Accept,
    ClientFrame,
    Decline,
    Disposition,
    End,
    Error,
    Event,
    ForceEnd,
    ForceTransfer,
    ForceWrapUpDone,
    Hello,
    Note,
    Ok,
    Open,
    Ping,
    Pong,
    Release,
    Reply,
    Search,
    SearchResult,
    Send,
    ServerFrame,
    SetAgentStatus,
    SetStatus,
    Transfer,
    Unwatch,
    Watch,
    Welcome,
    WrapUpDone,
)


class ClientError(Exception):
    """Base of the library's errors."""


class RequestFailed(ClientError):
    """The server answered a request with `error`; `code` is one of protocol.codes.ErrorCode."""

    def __init__(self, error: Error) -> None:
        super().__init__(f"{error.code}: {error.message}")
        self.code = error.code
        self.message = error.message
        self.error = error


class RequestTimeout(ClientError):
    """No reply arrived in time."""


class ConnectionClosed(ClientError):
    """The socket closed; `code` and `reason` are the server's close code and reason when it sent one."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"connection closed ({code}): {reason}")
        self.code = code
        self.reason = reason


FATAL_CLOSES = frozenset({1009, 4400, 4401, 4403})
"""Close codes after which reconnecting as is cannot help (see protocol.codes.CLOSE_HELP)."""


def _tag(frame: ServerFrame | ClientFrame) -> str:
    return str(type(frame).__struct_config__.tag)


class _Client:
    path = "/v1/agent"

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        subprotocol: str = JSON.subprotocol,
        request_timeout: float = 10.0,
        token_in_url: bool = False,
        auto_reconnect: bool = False,
        max_backoff_s: float = 10.0,
        on_state: Callable[[str], None] | None = None,
        max_kept: int = 10_000,
    ) -> None:
        """`max_kept` bounds the events kept for later reads after `next_event` skipped them: past it, the
        oldest kept ones are dropped (a client that only ever waits for rings must not grow forever)."""
        self.url = url.rstrip("/")
        if not self.url.endswith(self.path):
            self.url += self.path
        self.token = token
        self.codec: Codec = CODECS[subprotocol]
        self.request_timeout = request_timeout
        self.token_in_url = token_in_url
        self.welcome: Welcome | None = None
        self.last_seq = 0
        self.epoch: str | None = None
        self._ids = itertools.count(1)
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[Any, asyncio.Future[ServerFrame]] = {}
        self._events: asyncio.Queue[ServerFrame | ConnectionClosed] = asyncio.Queue()
        self._kept: deque[ServerFrame] = deque(maxlen=max_kept)  # skipped by `next_event`, older than `_events`
        self._closed: ConnectionClosed | None = None
        self.auto_reconnect = auto_reconnect
        self.max_backoff_s = max_backoff_s
        self.on_state = on_state
        self.state = "closed"
        self._closing = False
        self._reconnector: asyncio.Task[None] | None = None

    # --- connection ------------------------------------------------------------------------------

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, url: str, token: str | None, **options: Any) -> AsyncIterator[Self]:
        client = cls(url, token, **options)
        await client.open()
        try:
            yield client
        finally:
            await client.close()

    async def open(self, resume: bool = False) -> Welcome:
        """Open the socket and say hello; with `resume`, ask for the events missed since `last_seq`."""
        url = self.url + (f"?token={self.token}" if self.token_in_url and self.token else "")
        self._ws = await connect(url, subprotocols=[self.codec.subprotocol], max_size=None)  # type: ignore[list-item]
        self._closed = None
        self._reader = asyncio.create_task(self._read())
        hello = Hello(
            id=next(self._ids),
            token=None if self.token_in_url else self.token,
            resume_from=self.last_seq if resume else None,
            epoch=self.epoch if resume else None,
        )
        welcome = await self._request(hello)
        assert isinstance(welcome, Welcome)
        self.welcome = welcome
        self.epoch = welcome.epoch or None
        if not welcome.resumed:
            self.last_seq = welcome.seq
        self._closing = False
        self._set_state("connected")
        return welcome

    async def resume(self) -> Welcome:
        """Reconnect after a drop; missed events follow `welcome` (or a fresh snapshot if too old).
        Events not consumed yet stay queued; only the marker of the old connection's end is dropped."""
        await self._disconnect()
        kept = self.drain()
        while not self._events.empty():  # what is left is the old connection's end marker
            self._events.get_nowait()
        for event in kept:
            self._events.put_nowait(event)
        return await self.open(resume=True)

    async def close(self) -> None:
        """Close for good: no reconnecting after this."""
        self._closing = True
        if self._reconnector is not None:
            self._reconnector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnector
        await self._disconnect()
        self._set_state("closed")

    async def _disconnect(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._reader = None

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            if self.on_state is not None:
                self.on_state(state)

    async def _reconnect(self) -> None:
        """Reconnect with jittered exponential backoff and resume from `last_seq`, until it works or
        the server says not to (bad token, wrong endpoint, protocol error)."""
        self._set_state("reconnecting")
        delay = 0.1
        while not self._closing:
            await asyncio.sleep(random.uniform(delay / 2, delay))
            try:
                await self.open(resume=True)
                return
            except ConnectionClosed as exc:
                if exc.code in FATAL_CLOSES:
                    self._events.put_nowait(exc)
                    self._set_state("closed")
                    return
            except (OSError, InvalidHandshake, TimeoutError, RequestTimeout):
                pass  # the server is not back yet
            delay = min(delay * 2, self.max_backoff_s)

    async def drop(self) -> None:
        """Cut the connection abruptly (no close handshake), as a network failure would."""
        if self._ws is not None:
            self._ws.transport.abort()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    @property
    def closed(self) -> ConnectionClosed | None:
        return self._closed

    async def _read(self) -> None:
        assert self._ws is not None
        ws = self._ws
        try:
            async for payload in ws:
                frame = self.codec.decode_server(payload)
                if isinstance(frame, Reply) and frame.re is not None and frame.re in self._pending:
                    future = self._pending.pop(frame.re)
                    if not future.done():
                        future.set_result(frame)
                    continue
                if isinstance(frame, Event) and frame.seq:
                    self.last_seq = max(self.last_seq, frame.seq)
                self._events.put_nowait(frame)
        except WsConnectionClosed:
            pass
        finally:
            rcvd = ws.protocol.close_rcvd
            closed = ConnectionClosed(rcvd.code if rcvd else None, rcvd.reason if rcvd else "connection lost")
            self._closed = closed
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(closed)
            self._pending.clear()
            if self.auto_reconnect and not self._closing and closed.code not in FATAL_CLOSES:
                # only a connection that was up is re-established here: a failed first `open()` raises to
                # its caller, and a failed attempt of a running reconnect loop is retried by the loop
                if self.state == "connected":
                    self._reconnector = asyncio.create_task(self._reconnect())
            else:
                self._events.put_nowait(closed)
                self._set_state("closed")

    # --- requests --------------------------------------------------------------------------------

    async def _request(self, frame: ClientFrame, timeout: float | None = None) -> ServerFrame:
        if self._ws is None or self._closed is not None:
            raise self._closed or ConnectionClosed(None, "not connected")
        future: asyncio.Future[ServerFrame] = asyncio.get_running_loop().create_future()
        self._pending[frame.id] = future
        try:
            await self._ws.send(self.codec.encode(frame))
        except WsConnectionClosed as exc:
            self._pending.pop(frame.id, None)
            rcvd = exc.rcvd
            raise ConnectionClosed(rcvd.code if rcvd else None, rcvd.reason if rcvd else "connection lost") from None
        try:
            async with asyncio.timeout(timeout or self.request_timeout):
                reply = await future
        except TimeoutError:
            self._pending.pop(frame.id, None)
            raise RequestTimeout(f"no reply to {_tag(frame)} within {timeout or self.request_timeout}s") from None
        if isinstance(reply, Error):
            raise RequestFailed(reply)
        return reply

    async def request(self, make: Callable[[int], ClientFrame], timeout: float | None = None) -> ServerFrame:
        """Send the frame built by `make(id)` and wait for its reply (raising on `error`)."""
        return await self._request(make(next(self._ids)), timeout)

    async def send_raw(self, payload: bytes | str) -> None:
        """Send bytes as they are (for protocol tests)."""
        assert self._ws is not None
        await self._ws.send(payload)

    async def _ok(self, make: Callable[[int], ClientFrame]) -> Ok:
        reply = await self.request(make)
        assert isinstance(reply, Ok)
        return reply

    async def ping(self) -> Pong:
        reply = await self.request(lambda i: Ping(id=i))
        assert isinstance(reply, Pong)
        return reply

    # --- events ----------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[ServerFrame]:
        """Server frames that are not replies, in order (those `next_event` skipped first); ends when the
        connection closes."""
        while True:
            if self._kept:
                yield self._kept.popleft()
                continue
            item = await self._events.get()
            if isinstance(item, ConnectionClosed):
                self._events.put_nowait(item)
                return
            yield item

    async def next_event(self, *types: str, timeout: float = 5.0, where: Callable[[Any], bool] | None = None) -> Any:
        """The next event of one of `types` (and matching `where`); raises on timeout. The events it
        passes over are kept, in order, for the next read."""

        def wanted(item: ServerFrame) -> bool:
            return (not types or _tag(item) in types) and (where is None or where(item))

        for i, kept in enumerate(self._kept):
            if wanted(kept):
                del self._kept[i]
                return kept

        async def wait() -> ServerFrame:
            while True:
                item = await self._events.get()
                if isinstance(item, ConnectionClosed):
                    self._events.put_nowait(item)
                    raise item
                if wanted(item):
                    return item
                self._kept.append(item)

        try:
            async with asyncio.timeout(timeout):
                return await wait()
        except TimeoutError:
            raise RequestTimeout(f"no {' or '.join(types) or 'event'} within {timeout}s") from None

    def drain(self) -> list[ServerFrame]:
        """Events received so far and not yet consumed (those `next_event` skipped first), in order."""
        out = list(self._kept)
        self._kept.clear()
        while not self._events.empty():
            item = self._events.get_nowait()
            if isinstance(item, ConnectionClosed):
                self._events.put_nowait(item)
                break
            out.append(item)
        return out


class AgentClient(_Client):
    """An agent's socket (`/v1/agent`)."""

    path = "/v1/agent"

    async def set_status(self, status: str, reason: str | None = None) -> Ok:
        return await self._ok(lambda i: SetStatus(id=i, status=status, reason=reason))  # type: ignore[arg-type]

    async def accept(self, offer: str) -> Ok:
        return await self._ok(lambda i: Accept(id=i, offer=offer))

    async def decline(self, offer: str, reason: str | None = None) -> Ok:
        return await self._ok(lambda i: Decline(id=i, offer=offer, reason=reason))

    async def note(self, engagement: str, text: str) -> Ok:
        return await self._ok(lambda i: Note(id=i, engagement=engagement, text=text))

    async def disposition(self, engagement: str, codes: list[str]) -> Ok:
        return await self._ok(lambda i: Disposition(id=i, engagement=engagement, codes=codes))

    async def end(self, engagement: str) -> Ok:
        return await self._ok(lambda i: End(id=i, engagement=engagement))

    async def wrap_up_done(self, engagement: str) -> Ok:
        return await self._ok(lambda i: WrapUpDone(id=i, engagement=engagement))

    async def open_engagement(self, engagement: str) -> Ok:
        return await self._ok(lambda i: Open(id=i, engagement=engagement))

    async def send(self, engagement: str, text: str, subject: str | None = None) -> Ok:
        return await self._ok(lambda i: Send(id=i, engagement=engagement, text=text, subject=subject))

    async def transfer(self, engagement: str, *, queue: str | None = None, agent: str | None = None) -> Ok:
        return await self._ok(lambda i: Transfer(id=i, engagement=engagement, queue=queue, agent=agent))

    async def release(self, engagement: str) -> Ok:
        return await self._ok(lambda i: Release(id=i, engagement=engagement))

    async def search(self, engagement: str, query: str) -> SearchResult:
        reply = await self.request(lambda i: Search(id=i, engagement=engagement, query=query))
        assert isinstance(reply, SearchResult)
        return reply


class SupervisorClient(_Client):
    """A supervisor's socket (`/v1/supervisor`)."""

    path = "/v1/supervisor"

    async def watch(self, engagement: str) -> Ok:
        return await self._ok(lambda i: Watch(id=i, engagement=engagement))

    async def unwatch(self, engagement: str) -> Ok:
        return await self._ok(lambda i: Unwatch(id=i, engagement=engagement))

    async def set_agent_status(self, agent: str, status: str, reason: str | None = None) -> Ok:
        return await self._ok(lambda i: SetAgentStatus(id=i, agent=agent, status=status, reason=reason))  # type: ignore[arg-type]

    async def force_wrap_up_done(self, engagement: str) -> Ok:
        return await self._ok(lambda i: ForceWrapUpDone(id=i, engagement=engagement))

    async def force_end(self, engagement: str) -> Ok:
        return await self._ok(lambda i: ForceEnd(id=i, engagement=engagement))

    async def force_transfer(self, engagement: str, *, queue: str | None = None, agent: str | None = None) -> Ok:
        return await self._ok(lambda i: ForceTransfer(id=i, engagement=engagement, queue=queue, agent=agent))
