"""Lean connections to Redis: one that carries many calls at once (the store's commits and reads), and
subscriptions (the broker's channel).

redis-py spends about 90 µs of CPU on a call (pool, retries, stream reader) where the network round
trip itself needs 30: on the path every routing decision and every line of transcript takes, that was
most of a node's cost. Here a call is packed by hiredis, written at once, and answered from the
connection's own reader in the order sent (Redis answers in order), so many calls are in flight on one
socket and a call costs what its bytes do. Everything else (timers, heartbeats, pub/sub) stays on
redis-py. Failures are redis-py's exceptions (`ConnectionError`, `ResponseError`), so callers handle
both alike.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError, ResponseError


class _Wire(asyncio.Protocol):
    """The socket: replies parsed as they come, each to the oldest call still waiting; on a subscribed
    connection, a published message (`[message, channel, data]`) goes to `on_message` instead."""

    def __init__(self, on_message: Callable[[bytes, bytes], None] | None = None) -> None:
        self.reader = hiredis.Reader()
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.on_message = on_message
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.outgoing: list[bytes] = []

    def flush(self) -> None:
        outgoing, self.outgoing = self.outgoing, []
        if self.transport is not None and not self.lost:
            self.transport.writelines(outgoing)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiting = self.waiting
        try:
            while (reply := self.reader.gets()) is not False:
                if self.on_message is not None and type(reply) is list and reply[0] == b"message":
                    self.on_message(reply[1], reply[2])
                    continue
                future = waiting.popleft()
                if not future.done():  # a caller that gave up (cancelled) no longer wants it
                    future.set_result(reply)
        except (hiredis.ProtocolError, IndexError) as exc:  # not Redis speaking, or more answers than calls
            assert self.transport is not None
            self.transport.abort()
            self._fail(ConnectionError(f"unreadable answer from Redis ({type(exc).__name__})"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"connection to Redis lost ({exc or 'closed'})"))

    def _fail(self, error: Exception) -> None:
        self.lost = True
        if not self.closed.done():
            self.closed.set_result(None)
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)


class Pipe:
    """Calls to the Redis a redis-py client points at (same host, port or socket, credentials, database
    and TLS), over one socket opened on first use and again after it is lost."""

    def __init__(self, client: Redis) -> None:
        pool = client.connection_pool
        self._options: Mapping[str, Any] = pool.connection_kwargs
        self._unix = issubclass(pool.connection_class, UnixDomainSocketConnection)
        self._tls = issubclass(pool.connection_class, SSLConnection)
        self._wire: _Wire | None = None
        self._opening = asyncio.Lock()
        self._scripts: dict[str, bytes] = {}  # sha -> text, for a Redis that forgot it (restarted)
        self._shas: dict[str, str] = {}

    async def call(self, *args: Any) -> Any:
        wire = self._wire
        if wire is None or wire.lost:
            wire = await self._open()
        return self._answer(await self._send(wire, args))

    async def script(self, text: str, keys: list[str], args: list[Any]) -> Any:
        """Run a Lua script by its SHA1, loading it first if Redis does not have it."""
        sha = self._shas.get(text)
        if sha is None:
            sha = self._shas[text] = hashlib.sha1(text.encode()).hexdigest()
            self._scripts[sha] = text.encode()
        try:
            return await self.call(b"EVALSHA", sha, len(keys), *keys, *args)
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await self.call(b"SCRIPT", b"LOAD", self._scripts[sha])
        return await self.call(b"EVALSHA", sha, len(keys), *keys, *args)

    def _send(self, wire: _Wire, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Queue a call; the calls of one turn of the event loop go out in one write (a write is a system
        call, and on a busy node they were the biggest single cost of talking to Redis)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        wire.waiting.append(future)
        if not wire.outgoing:
            loop.call_soon(wire.flush)
        wire.outgoing.append(hiredis.pack_command(args))
        return future

    @staticmethod
    def _answer(reply: Any) -> Any:
        if isinstance(reply, hiredis.ReplyError):
            raise ResponseError(str(reply))
        return reply

    async def _open(self) -> _Wire:
        async with self._opening:
            if self._wire is not None and not self._wire.lost:
                return self._wire
            self._wire = await self._connect(_Wire)
            return self._wire

    async def _connect(self, make: Callable[[], _Wire]) -> _Wire:
        """A new socket, signed in and on the right database."""
        options, loop = self._options, asyncio.get_running_loop()
        try:
            if self._unix:
                _, wire = await loop.create_unix_connection(make, options["path"])
            else:
                context = ssl.create_default_context() if self._tls else None
                host, port = options.get("host", "localhost"), options.get("port", 6379)
                _, wire = await loop.create_connection(make, host, port, ssl=context)
        except OSError as exc:
            raise ConnectionError(f"cannot reach Redis: {exc}") from exc
        if options.get("password"):
            user = options.get("username")
            login = (user, options["password"]) if user else (options["password"],)
            self._answer(await self._send(wire, (b"AUTH", *login)))
        if options.get("db"):
            self._answer(await self._send(wire, (b"SELECT", options["db"])))
        return wire

    async def subscribe(self, channel: str, on_message: Callable[[bytes, bytes], None]) -> Subscription:
        """A connection of its own subscribed to `channel`, every message on it handed to `on_message`
        as it is read (from the socket's own callback: no task, no turn of the loop)."""
        wire = await self._connect(lambda: _Wire(on_message))
        subscription = Subscription(self, wire)
        await subscription.add(channel)
        return subscription

    async def close(self) -> None:
        if self._wire is not None and self._wire.transport is not None:
            self._wire.transport.close()
        self._wire = None


class Subscription:
    """A subscribed connection: channels added and dropped while it lives; `closed` resolves when it is
    lost (the owner opens another and subscribes again)."""

    def __init__(self, pipe: Pipe, wire: _Wire) -> None:
        self._pipe = pipe
        self._wire = wire
        self.closed = wire.closed

    async def add(self, channel: str) -> None:
        await self._command(b"SUBSCRIBE", channel)

    async def drop(self, channel: str) -> None:
        await self._command(b"UNSUBSCRIBE", channel)

    async def _command(self, *args: Any) -> None:
        if self._wire.lost:
            raise ConnectionError("the subscription connection is lost")
        self._pipe._answer(await self._pipe._send(self._wire, args))

    def close(self) -> None:
        if self._wire.transport is not None:
            self._wire.transport.close()
