"""One WebSocket: handshake, `hello`/`welcome`, requests in, events out through a bounded queue.

`Session` holds what every socket shares; `AgentSession`, `SupervisorSession` and `ConsumerSession`
say who may connect, what `welcome` shows, what each frame does and how events are numbered. A
session turns frames into core commands (`Node.run`) and outcomes into frames; it owns no routing
rule. Outbound traffic goes through one bounded queue drained by one writer task, so a slow client
costs bounded memory and is disconnected (`SLOW_CONSUMER`) when the queue fills.

Ordering on agent sockets: events carry the agent's `seq`; the writer sends them in `seq` order, drops
any it already sent and fills a gap from the store's log, so a client never sees a hole or a repeat.
Other sockets number their events themselves, one `seq` per socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from msgspec.structs import replace
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from protocol.codec import JSON, Codec, FrameError, choose
from protocol.codes import CloseCode, ErrorCode
from protocol.frames import (
    AGENT_ACTIONS,
    SUPERVISOR_ACTIONS,
    Client,
    Closing,
    EngagementEvent,
    Error,
    Event,
    Hello,
    Ok,
    Pong,
    QueueStats,
    Reply,
    Send,
    ServerFrame,
    Transcript,
    Unwatch,
    Watch,
    Welcome,
)
from server import logs
from server.auth import AuthError, Claims, Role, verify
from server.bus.base import Delivery, Unsubscribe
from server.core import lifecycle
from server.core.errors import Refused
from server.core.records import AgentRec
from server.core.tx import activity, agent_state
from server.core.views import conversation
from server.node import Node, caused_events
from server.stats import Figures, all_figures
from server.topics import SUPERVISORS, agent_topic, consumer_topic, watch_topic
from server.transport.actions import agent_action, supervisor_action
from server.wsprotocol import SEND_FRAMES, SEND_NOW, SendFrames, SendNow

T = TypeVar("T")
log = logging.getLogger("switchboard.session")
CLOSE_TIMEOUT_S = 2.0
WRITE_BATCH = 64
"""Frames a socket's writer puts in one transport write at most, when that many are waiting."""
HOLD_S = 1.0
"""How long a reply waits for the events its request caused to come back over the broker before the
session reads them from the store's log instead."""
STATS_INTERVAL_S = 0.5
MAX_WATCHES = 50
STORE_PATIENCE_S = 60.0
"""How long an agent socket waits out a store out of reach (a Redis restart) before giving up: to read
the events it missed from the log (the socket stays open meanwhile), and, once closed, to record that
it left (until it has, the agent counts as connected on this node, with no socket at all)."""


def goes_back(frame: Client | None, reply: ServerFrame) -> bool:
    """Whether a reply is sent: to a frame with an `id`, and errors and pongs always (`frame` is None for
    one that could not be decoded)."""
    return (frame is not None and frame.id is not None) or isinstance(reply, Error | Pong)


class _Close(Exception):
    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _Bucket:
    """A token bucket: `rate` frames a second on average, bursts of up to `burst`."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self.tokens = float(burst)
        self.at = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class _Drain:
    """Put in a session's outbox after `closing`: the writer closes the socket when it gets there."""


_DRAIN = _Drain()


class _Rendered:
    """Payloads already encoded and numbered (a direct write that found the socket's buffer full):
    the writer sends them as they are."""

    __slots__ = ("payloads",)

    def __init__(self, payloads: list[bytes | str]) -> None:
        self.payloads = payloads


class Session:
    role: Role = "agent"
    rate_limited = True
    """People's sockets are held to `server.rate_per_s`; a media server's ingest stream is not."""

    def __init__(self, websocket: WebSocket, node: Node) -> None:
        self.ws = websocket
        self.node = node
        self.server = node.dir.server
        self.codec: Codec = JSON
        self.claims: Claims | None = None
        self.subject = ""
        # Thousands of sockets sit idle for hours: an idle session keeps only its reading coroutine and
        # a few plain fields. The outbox is a list, written by a task that exists only while there is
        # something to write; `fail` cancels the reading coroutine instead of a task waiting on an event.
        self.outbox: list[ServerFrame | Delivery | _Drain | _Rendered] = []
        self.pending: list[Delivery] | None = []
        self.last_seq = 0
        self._queued_seq = 0  # the highest agent seq put in the outbox
        self._floor = 0  # no reply before this seq is queued (sign-in's own events)
        self._held: list[tuple[int, ServerFrame]] = []  # replies waiting for the events they caused
        self._hold_timer: asyncio.TimerHandle | None = None
        extensions = websocket.scope.get("extensions") or {}
        self._send_frames = cast(SendFrames | None, extensions.get(SEND_FRAMES))
        self._send_now: SendNow | None = None  # set once live
        self._subscriptions: dict[str, Unsubscribe] = {}
        self._writer: asyncio.Task[None] | None = None
        self._live = False
        self._reading: asyncio.Task[Any] | None = None
        self._closing = False
        self._failure: _Close | None = None

    @property
    def expires_at(self) -> float:
        return self.claims.exp if self.claims is not None else float("inf")

    # --- what each kind of socket decides --------------------------------------------------------

    def _accepts(self, claims: Claims) -> bool:
        """Whether the token's subject may use this socket (the role was checked already)."""
        raise NotImplementedError

    async def _welcome(self, hello: Hello) -> None:
        """Subscribe, send `welcome` (and what follows it), and go live."""
        raise NotImplementedError

    async def _act(self, frame: Client) -> ServerFrame:
        """Carry out a request frame; raise `Refused` to answer with an error."""
        raise NotImplementedError

    async def _on_close(self) -> None:
        """Record that the socket is gone."""

    def _codec(self, codec: Codec) -> Codec:
        """The codec for this socket's frames, in the negotiated wire format."""
        return codec

    def _url_credential(self) -> str | None:
        """A credential given with the handshake (browsers cannot send headers)."""
        return self.ws.query_params.get("token")

    # --- lifecycle -------------------------------------------------------------------------------

    async def serve(self) -> None:
        offered = list(self.ws.scope.get("subprotocols") or [])
        codec = choose(offered)
        await self.ws.accept(subprotocol=codec.subprotocol if codec and offered else None)
        crowded = len(self.node.sessions) >= self.server.max_connections
        self.node.sessions.add(self)
        try:
            if self.node.draining:
                raise _Close(CloseCode.DRAINING, "this node is draining; connect to another")
            if crowded:
                raise _Close(CloseCode.TRY_AGAIN_LATER, "this node is at its connection limit")
            if not self._origin_allowed():
                raise _Close(CloseCode.FORBIDDEN, "this page's origin may not open the socket")
            if codec is None:
                raise _Close(CloseCode.PROTOCOL_VIOLATION, "unsupported subprotocol")
            self.codec = self._codec(codec)
            url_token = self._url_credential()
            self._forget_headers()
            if url_token:
                self._authenticate(url_token)
            hello = await self._hello()
            if hello is None:
                return
            self._authenticate(hello.token or url_token)
            await self._welcome(hello)
            await self._until_done()
        except _Close as close:
            await self._close(close.code, close.reason)
        except WebSocketDisconnect:
            log.debug("%s %s left during the handshake", self.role, self.subject or "?")
        except Refused as exc:  # the store is out of reach while signing in
            log.warning("%s %s could not sign in: %s", self.role, self.subject, exc.message)
            await self._close(CloseCode.TRY_AGAIN_LATER, exc.message)
        finally:
            self.node.sessions.discard(self)
            await self._teardown()

    async def _until_done(self) -> None:
        """Read until the client leaves, or until the outbound side gives up on it (`fail` cancels
        this read; any other cancellation goes on up)."""
        if self._failure is not None:
            raise self._failure
        task = asyncio.current_task()
        assert task is not None
        self._reading = task
        try:
            await self._read()
        except asyncio.CancelledError:
            if self._failure is None or task.uncancel() > 0:
                raise
        finally:
            self._reading = None
        if self._failure is not None:
            raise self._failure

    def _origin_allowed(self) -> bool:
        """Browsers say which page opens a socket: the server's own pages, and the configured
        `allowed_origins`, may; other sites may not (cross-site WebSocket hijacking). Clients that send
        no Origin (not browsers) are not concerned."""
        origin = self.ws.headers.get("origin")
        if origin is None:
            return True
        return origin in self.server.allowed_origins or urlsplit(origin).netloc == self.ws.headers.get("host")

    def _forget_headers(self) -> None:
        """The handshake's headers are read (origin, credentials); an agent's socket lives all day, and
        ten thousand copies of a browser's headers are memory for nothing."""
        self.ws.scope["headers"] = []
        self.ws.__dict__.pop("_headers", None)  # Starlette's parsed copy

    def drain(self, retry_after_ms: int) -> None:
        """Tell the client this node is going away, then close with DRAINING once that is written."""
        self._enqueue(Closing(reason="draining", retry_after_ms=retry_after_ms))
        self._enqueue(_DRAIN)

    def fail(self, code: CloseCode, reason: str) -> None:
        """Give up on this client from code that cannot await: the session closes it and ends."""
        if self._failure is None:
            self._failure = _Close(code, reason)
            if self._reading is not None and self._reading is not asyncio.current_task():
                self._reading.cancel()

    async def _teardown(self) -> None:
        """Whatever happened, stop writing, unsubscribe, and record that this socket is gone."""
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        try:
            if self._writer is not None:
                self._writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._writer
            for unsubscribe in self._subscriptions.values():
                await unsubscribe()
            self._subscriptions.clear()
        finally:
            try:
                await self._on_close()
            except Exception:
                log.exception("could not record that %s %s left", self.role, self.subject)

    async def _close(self, code: CloseCode, reason: str) -> None:
        """Send the close frame; a client that does not read cannot hold the session open past a timeout."""
        if self._closing:
            return
        if code is not CloseCode.SLOW_CONSUMER:
            await self._flush()
        self._closing = True
        if self.ws.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError, OSError, TimeoutError, WebSocketDisconnect):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await self.ws.close(code=int(code), reason=reason[:120])

    async def _flush(self) -> None:
        """Let the writer send what is queued before the close (say the `rate_limited` errors that
        explain a 4429), within the close timeout; a client that does not read is not waited for."""
        writer = self._writer
        if writer is not None and not writer.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await asyncio.shield(writer)

    async def subscribe(self, topic: str) -> None:
        if topic not in self._subscriptions:
            self._subscriptions[topic] = await self.node.broker.subscribe(topic, self._on_delivery)

    async def unsubscribe(self, topic: str) -> None:
        unsubscribe = self._subscriptions.pop(topic, None)
        if unsubscribe is not None:
            await unsubscribe()

    def go_live(self) -> None:
        """Queue what arrived during the handshake, then start writing."""
        backlog, self.pending = self.pending or [], None
        self._live = True
        extensions = self.ws.scope.get("extensions") or {}
        self._send_now = cast(SendNow | None, extensions.get(SEND_NOW))
        for delivery in backlog:
            self._enqueue(delivery)
        self._wake_writer()

    # --- handshake -------------------------------------------------------------------------------

    def _authenticate(self, token: str | None) -> None:
        if not token:
            raise _Close(CloseCode.UNAUTHORIZED, "missing token")
        try:
            claims = verify(self.server.secret or "", token, self.node.clock())
        except AuthError as exc:
            raise _Close(CloseCode.UNAUTHORIZED, str(exc)) from None
        if claims.role != self.role:
            raise _Close(CloseCode.FORBIDDEN, f"a {claims.role} token cannot open the {self.role} socket")
        if not self._accepts(claims):
            raise _Close(CloseCode.UNAUTHORIZED, f"unknown {self.role} {claims.sub!r}")
        if self.claims is not None and claims.sub != self.subject:
            raise _Close(CloseCode.FORBIDDEN, "a token for someone else cannot be used on this socket")
        self.claims = claims
        self.subject = claims.sub
        self.node.expires(self, claims.exp)
        logs.bind(**{{"consumer": "engagement"}.get(self.role, self.role): claims.sub})

    async def _hello(self) -> Hello | None:
        try:
            async with asyncio.timeout(self.server.hello_timeout_s):
                payload = await self._receive()
        except TimeoutError:
            raise _Close(CloseCode.HELLO_TIMEOUT, "no hello in time") from None
        if payload is None:
            return None
        try:
            frame = self.codec.decode_client(payload)
        except FrameError as exc:
            await self._send(Error(re=exc.re, code=exc.code, message=exc.message))
            raise _Close(CloseCode.PROTOCOL_VIOLATION, "the first frame must be hello") from None
        if type(frame).__struct_config__.tag != "hello":
            message = f"The first frame must be hello, not {type(frame).__struct_config__.tag}"
            await self._send(Error(re=frame.id, code=ErrorCode.HELLO_REQUIRED, message=message))
            raise _Close(CloseCode.PROTOCOL_VIOLATION, "the first frame must be hello")
        return cast(Hello, frame)  # or the ingest socket's hello, which has the same fields

    # --- inbound ---------------------------------------------------------------------------------

    async def _receive(self) -> bytes | str | None:
        message = await self.ws.receive()
        if message["type"] == "websocket.disconnect":
            return None
        text, data = message.get("text"), message.get("bytes")
        payload: bytes | str = text if text is not None else (data or b"")
        limit = self.server.max_frame_bytes
        size = len(payload) if isinstance(payload, bytes) or len(payload) * 4 <= limit else len(payload.encode())
        if size > limit:
            raise _Close(CloseCode.MESSAGE_TOO_BIG, f"frame larger than {limit} bytes")
        if self.codec.binary and isinstance(payload, str):
            return payload.encode()
        return payload

    async def _read(self) -> None:
        bad = limited = 0
        bucket = _Bucket(self.server.rate_per_s, self.server.rate_burst, self.node.clock) if self.rate_limited else None
        while (payload := await self._receive()) is not None:
            try:
                frame = self.codec.decode_client(payload)
            except FrameError as exc:
                bad += 1
                if bad > self.server.max_bad_frames:
                    raise _Close(CloseCode.PROTOCOL_VIOLATION, "too many malformed frames") from None
                self._reply(Error(re=exc.re, code=exc.code, message=exc.message))
                continue
            bad = 0
            if bucket is not None and not bucket.take():
                limited += 1
                if limited > self.server.rate_burst:
                    raise _Close(CloseCode.RATE_LIMITED, "too many frames, too fast")
                message = f"More than {self.server.rate_per_s:g} frames a second; this one was dropped"
                self._reply(Error(re=frame.id, code=ErrorCode.RATE_LIMITED, message=message))
                continue
            limited = 0
            await self._answer(frame)

    async def _answer(self, frame: Client) -> None:
        """Handle one frame and queue its reply; the next frame is read once this returns."""
        if self.role == "agent":  # only agents' events are numbered for a reply to wait on
            with caused_events() as caused:
                reply = await self._handle(frame)
            after = caused.get(self.subject, 0)
        else:
            reply, after = await self._handle(frame), 0
        if self._failure is not None:
            # `fail` cancelled this read while the request ran, and the cancellation can be lost on its
            # way (asyncio.wait_for on Python 3.11, under redis-py, returns a result that came at the
            # same time instead): without this the session would live on, failed, saying nothing.
            raise self._failure
        if reply is not None and goes_back(frame, reply):
            self._reply(reply, after)

    async def _handle(self, frame: Client) -> ServerFrame | None:
        claims = self.claims
        if claims is not None and claims.exp <= self.node.clock():
            raise _Close(CloseCode.UNAUTHORIZED, "token expired")
        tag = cast(str, type(frame).__struct_config__.tag)  # every client frame is tagged with its type
        if tag == "ping":
            return Pong(re=frame.id, server_time=self.node.clock())
        if tag == "hello":
            return await self._refresh(frame)  # type: ignore[arg-type]
        try:
            reply = await self._act(frame)
        except Refused as exc:
            self.node.metrics.request(tag, exc.code)
            return Error(re=frame.id, code=exc.code, message=exc.message)
        except Exception:
            engagement = getattr(frame, "engagement", None)
            log.exception("%s %s failed on %s", self.role, self.subject, tag, extra={"engagement": engagement})
            self.node.metrics.request(tag, ErrorCode.INTERNAL)
            return Error(re=frame.id, code=ErrorCode.INTERNAL, message="internal error; it has been logged")
        self.node.metrics.request(tag, "ok")
        if isinstance(reply, Reply):
            reply.re = frame.id
        return reply

    async def _refresh(self, hello: Hello) -> ServerFrame:
        """A second `hello` with a fresh token extends the session without reconnecting; like any
        `hello` it is answered with `welcome`, here the socket's standing now (nothing is replayed:
        the events go on as they were)."""
        if not hello.token:
            return Error(re=hello.id, code=ErrorCode.INVALID_FIELD, message="A second hello must carry a fresh `token`")
        try:
            claims = verify(self.server.secret or "", hello.token, self.node.clock())
        except AuthError as exc:
            return Error(re=hello.id, code=ErrorCode.UNAUTHORIZED, message=str(exc))
        if claims.sub != self.subject or claims.role != self.role:
            return Error(re=hello.id, code=ErrorCode.FORBIDDEN, message="The new token is for someone else")
        self.claims = claims
        self.node.expires(self, claims.exp)
        return await self._standing(hello)

    async def _standing(self, hello: Hello) -> Welcome:
        """The `welcome` of a token refresh."""
        return Welcome(re=hello.id, agent=self.subject, role=self.role, status=None, server_time=self.node.clock())

    # --- outbound --------------------------------------------------------------------------------

    def _on_delivery(self, delivery: Delivery) -> None:
        if self.pending is not None:
            if len(self.pending) >= self.server.outbound_queue:
                self._overflow()
            else:
                self.pending.append(delivery)
            return
        self._enqueue(delivery)

    def _reply(self, reply: ServerFrame, after: int = 0) -> None:
        """Queue a reply behind the events its request caused (`after`: the last of their seqs) and
        behind the earlier replies still waiting for theirs, so replies keep their requests' order."""
        after = max(after, self._floor)
        if not self._held and after <= self._queued_seq:
            self._enqueue(reply)
            return
        if len(self._held) >= self.server.outbound_queue:
            self._overflow()
            return
        self._held.append((after, reply))
        if self._hold_timer is None:
            self._hold_timer = asyncio.get_running_loop().call_later(HOLD_S, self._stop_holding)

    def _release(self) -> None:
        """Queue the held replies whose events are now queued."""
        while self._held and self._held[0][0] <= self._queued_seq:
            self._enqueue(self._held.pop(0)[1])
        if not self._held and self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None

    def _stop_holding(self) -> None:
        """The broker did not bring the events back in time (at-most-once pub/sub): have the writer
        read them from the store's log, then send the replies."""
        self._hold_timer = None
        if not self._held:
            return
        held, self._held = self._held, []
        self._enqueue(Delivery.resync(""))
        self._queued_seq = max(self._queued_seq, held[-1][0])
        for _, reply in held:
            self._enqueue(reply)

    def _enqueue(self, item: ServerFrame | Delivery | _Drain | _Rendered) -> None:
        if self._closing or self._failure is not None:
            return
        if not (isinstance(item, Delivery) and self._wrote_now(item)):
            if len(self.outbox) >= self.server.outbound_queue:
                self._overflow()
                return
            self.outbox.append(item)
            self._wake_writer()
        if isinstance(item, Delivery) and item.frame is not None:
            seq = getattr(item.frame, "seq", 0)
            if seq > self._queued_seq:
                self._queued_seq = seq
                if self._held:
                    self._release()

    def _wrote_now(self, delivery: Delivery) -> bool:
        """Write an event at once, from the publisher's own call, when nothing is waiting before it: the
        usual case of a quiet socket hearing one event, which then costs no task and no turn of the
        loop. True when the event is taken care of (written, a repeat, or queued already rendered)."""
        send_now = self._send_now
        if send_now is None or self.outbox or self._writer is not None or not self._live:
            return False
        payloads = self._render_now(delivery)
        if payloads is None:
            return False
        if not payloads:
            return True
        try:
            written = send_now(payloads)
        except OSError:
            return True  # the socket is gone: the reader sees the disconnect and tears down
        if written:
            self.node.metrics.sent(len(payloads))
        else:  # its buffer is full: the writer waits for room
            self.outbox.append(_Rendered(payloads))
            self._wake_writer()
        return True

    def _render_now(self, delivery: Delivery) -> list[bytes | str] | None:
        """The payloads of a delivery when they need nothing from the store; None when they do."""
        if delivery.frame is None:
            return []
        return [self.codec.encode(self._stamp(delivery.frame))]  # type: ignore[arg-type]

    def _wake_writer(self) -> None:
        if self._live and self.outbox and (self._writer is None or self._writer.done()):
            self._writer = asyncio.create_task(self._write())

    def _overflow(self) -> None:
        log.warning("%s %s is not reading; disconnecting", self.role, self.subject)
        if self._failure is None:
            self.node.metrics.slow_consumers.inc()
        self.fail(CloseCode.SLOW_CONSUMER, "outbound queue full")

    async def _write(self) -> None:
        """Write what is in the outbox, in order, then end (the next `_enqueue` starts another). What
        has piled up goes out in batches of up to WRITE_BATCH frames, one transport write each."""
        try:
            while self.outbox and not self._closing:
                payloads: list[bytes | str] = []
                drained = False
                while self.outbox and len(payloads) < WRITE_BATCH:
                    item = self.outbox.pop(0)
                    if isinstance(item, _Drain):
                        drained = True
                        break
                    await self._render(item, payloads)
                await self._send_payloads(payloads)
                if drained:
                    raise _Close(CloseCode.DRAINING, "this node is draining; reconnect to another")
        except (RuntimeError, OSError, WebSocketDisconnect):
            return  # the socket is gone; the reader sees the disconnect and tears down
        except _Close as close:
            self.fail(close.code, close.reason)
        except Refused as exc:
            self.fail(CloseCode.TRY_AGAIN_LATER, exc.message)
        finally:
            if self._writer is asyncio.current_task():
                self._writer = None  # a quiet socket keeps no finished task

    def _stamp(self, event: Event) -> Event:
        """Number an event of this socket's own (agent events come numbered by the store)."""
        self.last_seq += 1
        return replace(event, seq=self.last_seq)

    async def _render(self, item: ServerFrame | Delivery | _Rendered, out: list[bytes | str]) -> None:
        """Append the payloads an outbox item becomes (none for an event this socket already sent)."""
        if isinstance(item, _Rendered):
            out += item.payloads
        elif isinstance(item, Delivery):
            await self._deliver(item, out)
        elif isinstance(item, Event):
            out.append(self.codec.encode(self._stamp(item)))
        else:
            out.append(self.codec.encode(item))

    async def _deliver(self, delivery: Delivery, out: list[bytes | str]) -> None:
        if delivery.frame is not None:
            out.append(self.codec.encode(self._stamp(delivery.frame)))  # type: ignore[arg-type]

    async def _send(self, frame: ServerFrame) -> None:
        await self._send_payloads([self.codec.encode(frame)])

    async def _send_payloads(self, payloads: list[bytes | str]) -> None:
        if not payloads:
            return
        send_frames = self._send_frames
        if send_frames is not None:
            await send_frames(payloads)
        else:  # another ASGI server: one message each
            for payload in payloads:
                if isinstance(payload, bytes):
                    await self.ws.send_bytes(payload)
                else:
                    await self.ws.send_text(payload)
        self.node.metrics.sent(len(payloads))


class AgentSession(Session):
    """An agent's desktop: resumable, numbered by the agent's `seq`, counted while it is open."""

    role: Role = "agent"

    def __init__(self, websocket: WebSocket, node: Node) -> None:
        super().__init__(websocket, node)
        self.signed_in = False
        self.signed_on = ""  # the node id the socket was counted under (a fenced node takes a new one)

    def _accepts(self, claims: Claims) -> bool:
        return claims.sub in self.node.dir.agents

    async def _welcome(self, hello: Hello) -> None:
        node, subject = self.node, self.subject
        await self.subscribe(agent_topic(subject))
        epoch = await node.store.epoch()
        head = await node.store.latest_seq(subject)
        replay: list[Event] | None = None
        if hello.resume_from is not None and hello.epoch in (None, epoch):
            replay = await node.store.replay(subject, hello.resume_from)
        resumed = replay is not None
        if hello.resume_from is not None:
            node.metrics.resumes.labels("resumed" if resumed else "fresh").inc()
        with caused_events() as caused:
            node_id = node.node_id
            signed = await node.run(lambda tx: lifecycle.sign_in(tx, subject, node_id, not resumed))
        self.signed_in, self.signed_on = True, node_id
        await self._send(self._welcome_frame(hello, signed, head, resumed, epoch))
        self.last_seq = head
        if replay:
            self.last_seq = hello.resume_from or 0
            for event in replay:
                if event.seq <= head:
                    await self._send(event)
                    self.last_seq = event.seq
            self.last_seq = max(self.last_seq, head)
        self._queued_seq = self.last_seq
        self._floor = caused.get(subject, 0)  # the sign-in's events come before any reply
        self.go_live()

    async def _standing(self, hello: Hello) -> Welcome:
        subject = self.subject
        now = await self.node.run(lambda tx: lifecycle.standing(tx, subject))
        return self._welcome_frame(hello, now, self._queued_seq, True, self.node.epoch)

    def _welcome_frame(self, hello: Hello, signed: lifecycle.SignIn, seq: int, resumed: bool, epoch: str) -> Welcome:
        """The agent's standing as `welcome` shows it, at sign-in and at a token refresh alike."""
        agent, node = signed.agent, self.node
        return Welcome(
            re=hello.id,
            agent=self.subject,
            name=node.dir.agents[self.subject].title,
            status=agent.status,
            reason=agent.reason,
            activity=activity(agent),
            next_status=agent.next.status if agent.next else None,
            next_reason=agent.next.reason if agent.next else None,
            engagements=signed.engagements,
            offers=signed.offers,
            seq=seq,
            resumed=resumed,
            epoch=epoch,
            server_time=node.clock(),
        )

    async def _act(self, frame: Client) -> ServerFrame:
        if not isinstance(frame, AGENT_ACTIONS):
            tag = type(frame).__struct_config__.tag
            raise Refused(ErrorCode.FORBIDDEN, f"`{tag}` is a supervisor frame")
        return await agent_action(self.node, self.subject, frame)  # type: ignore[arg-type]

    async def _on_close(self) -> None:
        """Record that the socket is gone, under the node id it was counted under, waiting out (bounded)
        a store out of reach: a close left unrecorded keeps the agent counted as connected on a live node,
        never in grace nor `connection_lost`, rung at an empty desk."""
        if not self.signed_in:
            return
        subject, node, node_id = self.subject, self.node, self.signed_on
        await self._patiently(lambda: node.run(lambda tx: lifecycle.disconnect(tx, subject, node_id)))

    async def _patiently(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """`attempt`, tried again with backoff while the store is out of reach, for `STORE_PATIENCE_S`."""
        deadline = self.node.clock() + STORE_PATIENCE_S
        delay = 0.05
        while True:
            try:
                return await attempt()
            except Refused as exc:
                if exc.code is not ErrorCode.UNAVAILABLE or self.node.clock() > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(2 * delay, 1.0)

    def _stamp(self, event: Event) -> Event:
        """An agent's seq numbers its logged events only: what the socket itself says (`closing`) has 0."""
        return event

    def _render_now(self, delivery: Delivery) -> list[bytes | str] | None:
        if delivery.frame is None:
            return None  # a resync: the writer reads the log
        seq = getattr(delivery.frame, "seq", 0)
        if seq and seq <= self.last_seq:
            return []
        if seq > self.last_seq + 1:
            return None  # a gap: the writer fills it from the log first
        if seq:
            self.last_seq = seq
        return [delivery.payload(self.codec)]

    async def _deliver(self, delivery: Delivery, out: list[bytes | str]) -> None:
        if delivery.frame is None:  # the broker may have missed events: catch up from the log
            await self._catch_up(None, out)
            return
        seq = getattr(delivery.frame, "seq", 0)
        if seq and seq <= self.last_seq:
            return
        if seq > self.last_seq + 1:
            await self._catch_up(seq, out)
        if seq:
            self.last_seq = seq
        out.append(delivery.payload(self.codec))

    async def _catch_up(self, before: int | None, out: list[bytes | str]) -> None:
        """Send the logged events after `last_seq` (and before `before`, which is about to be sent). A
        resync comes when the broker lost its connection, so the log may be out of reach for a moment
        too: the events wait in the outbox meanwhile, in order, and the socket stays open."""
        subject, after = self.subject, self.last_seq
        missing = await self._patiently(lambda: self.node.store.replay(subject, after))
        if missing is None:
            raise _Close(CloseCode.GOING_AWAY, "events were lost; reconnect with resume_from")
        for event in missing:
            if before is None or event.seq < before:
                out.append(self.codec.encode(event))
                self.last_seq = event.seq


class SupervisorSession(Session):
    """A supervisor's console: every agent's state live, queue figures a few times a second, and
    the engagements they watch (state and transcript)."""

    role: Role = "supervisor"

    def __init__(self, websocket: WebSocket, node: Node) -> None:
        super().__init__(websocket, node)
        self._stats: asyncio.Task[None] | None = None

    def _accepts(self, claims: Claims) -> bool:
        return claims.sub in self.node.dir.supervisors

    async def _welcome(self, hello: Hello) -> None:
        node = self.node
        await self.subscribe(SUPERVISORS)
        name = node.dir.supervisors[self.subject].name
        await self._send(
            Welcome(
                re=hello.id, agent=self.subject, name=name, role="supervisor", status=None, server_time=node.clock()
            )
        )
        ids = list(node.dir.agents)
        for agent_id, agent in zip(ids, await node.store.agents(ids), strict=True):
            # sent before going live, so a big center's snapshot does not count against the outbound queue
            await self._send(self._stamp(agent_state(node.dir, agent or AgentRec(id=agent_id))))
        self.go_live()
        self._stats = asyncio.create_task(self._queue_stats())

    async def _queue_stats(self) -> None:
        """Send each queue's figures when they change, at most every STATS_INTERVAL_S."""
        sent: dict[str, Figures] = {}
        while True:
            try:
                for queue, figures in (await all_figures(self.node.dir, self.node.store, self.node.clock())).items():
                    if sent.get(queue) != figures:
                        sent[queue] = figures
                        self._enqueue(
                            QueueStats(
                                queue=queue,
                                waiting=figures.waiting,
                                longest_wait_s=figures.longest_wait_s,
                                agents=figures.agents,
                                available=figures.available,
                            )
                        )
            except Refused as exc:
                log.warning("queue figures unavailable: %s", exc.message)
            await asyncio.sleep(STATS_INTERVAL_S)

    async def _act(self, frame: Client) -> ServerFrame:
        match frame:
            case Watch(engagement=eid):
                return await self._watch(eid)
            case Unwatch(engagement=eid):
                await self.unsubscribe(watch_topic(eid))
                return Ok(engagement=eid)
        if not isinstance(frame, SUPERVISOR_ACTIONS):
            tag = type(frame).__struct_config__.tag
            raise Refused(ErrorCode.FORBIDDEN, f"`{tag}` is an agent frame")
        return await supervisor_action(self.node, self.subject, frame)  # type: ignore[arg-type]

    async def _watch(self, engagement_id: str) -> ServerFrame:
        """Follow one engagement live: its snapshot and transcript now, then every change and fragment."""
        view = await self.node.engagement(engagement_id)
        if view is None:
            raise Refused(ErrorCode.NOT_FOUND, f"No engagement {engagement_id!r}")
        if len(self._subscriptions) > MAX_WATCHES:
            raise Refused(ErrorCode.TOO_LARGE, f"Watch at most {MAX_WATCHES} engagements at once")
        await self.subscribe(watch_topic(engagement_id))
        self._enqueue(EngagementEvent(engagement=view))
        fragments = await self.node.store.transcript(engagement_id)
        self._enqueue(Transcript(engagement=engagement_id, fragments=fragments))
        return Ok(engagement=engagement_id)

    async def _on_close(self) -> None:
        if self._stats is not None:
            self._stats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stats


class ConsumerSession(Session):
    """The consumer's side of a chat or email: their thread live, and their own lines in."""

    role: Role = "consumer"

    def _accepts(self, claims: Claims) -> bool:
        return claims.sub == self.ws.path_params.get("engagement")

    async def _welcome(self, hello: Hello) -> None:
        node = self.node
        await self.subscribe(consumer_topic(self.subject))
        eng = await node.store.engagement(self.subject)
        if eng is None:
            raise _Close(CloseCode.UNAUTHORIZED, "this conversation no longer exists")
        await self._send(
            Welcome(re=hello.id, agent=self.subject, role="consumer", status=None, server_time=node.clock())
        )
        self._enqueue(conversation(node.dir, eng))
        self.go_live()

    async def _act(self, frame: Client) -> ServerFrame:
        if not isinstance(frame, Send):
            tag = type(frame).__struct_config__.tag
            raise Refused(ErrorCode.FORBIDDEN, f"`{tag}` is not a consumer frame")
        if frame.engagement != self.subject:
            raise Refused(ErrorCode.NOT_YOURS, "You can only write in your own conversation")
        eid = self.subject
        message = await self.node.run(lambda tx: lifecycle.consumer_message(tx, eid, frame.text, frame.subject, None))
        return Ok(engagement=eid, message=message.id)


SESSIONS: dict[str, type[Session]] = {
    "agent": AgentSession,
    "supervisor": SupervisorSession,
    "consumer": ConsumerSession,
}


def endpoint(role: str) -> Callable[[WebSocket], Awaitable[None]]:
    kind = SESSIONS[role]

    async def handle(websocket: WebSocket) -> None:
        await kind(websocket, websocket.app.state.node).serve()

    return handle
