"""One WebSocket: handshake, `hello`/`welcome`, resume, requests in, events out through a bounded queue.

The session turns frames into core commands (`Node.run`) and core outcomes into frames. It owns no
routing rule. Outbound traffic goes through one bounded queue drained by one writer task, so a slow
client costs a bounded amount of memory and is disconnected (`SLOW_CONSUMER`) when the queue fills.

Ordering: events carry the agent's `seq`; the writer sends them in `seq` order, drops any it already
sent, and fills a gap from the store's log, so a client never sees a hole or a repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Literal

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from protocol.codec import JSON, Codec, FrameError, choose
from protocol.codes import CloseCode, ErrorCode
from protocol.frames import (
    AGENT_ACTIONS,
    SUPERVISOR_ACTIONS,
    Client,
    Error,
    Event,
    Hello,
    Ok,
    Ping,
    Pong,
    ServerFrame,
    Welcome,
)
from server.auth import AuthError, Claims, Role, verify
from server.bus.base import Delivery, Unsubscribe, agent_topic
from server.core import lifecycle
from server.core.errors import Refused
from server.node import Node
from server.transport.actions import agent_action, supervisor_action

log = logging.getLogger("switchboard.session")
CLOSE_TIMEOUT_S = 2.0


class _Close(Exception):
    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Session:
    def __init__(self, websocket: WebSocket, node: Node, role: Role) -> None:
        self.ws = websocket
        self.node = node
        self.server = node.dir.server
        self.role = role
        self.codec: Codec = JSON
        self.claims: Claims | None = None
        self.subject = ""
        self.outbox: asyncio.Queue[ServerFrame | Delivery] = asyncio.Queue(maxsize=self.server.outbound_queue)
        self.pending: list[Delivery] | None = []
        self.last_seq = 0
        self.signed_in = False
        self._unsubscribe: Unsubscribe | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._failed = asyncio.Event()
        self._failure: _Close | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    async def serve(self) -> None:
        offered = list(self.ws.scope.get("subprotocols") or [])
        codec = choose(offered)
        await self.ws.accept(subprotocol=codec.subprotocol if codec and offered else None)
        self.node.sessions.add(self)
        try:
            if codec is None:
                raise _Close(CloseCode.PROTOCOL_VIOLATION, "unsupported subprotocol")
            self.codec = codec
            url_token = self.ws.query_params.get("token")
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
        """Read until the client leaves, or until the outbound side gives up on it (`fail`)."""
        reader = asyncio.create_task(self._read())
        failed = asyncio.create_task(self._failed.wait())
        try:
            await asyncio.wait({reader, failed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            failed.cancel()
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
        if reader.done() and not reader.cancelled():
            reader.result()
        if self._failure is not None:
            raise self._failure

    def fail(self, code: CloseCode, reason: str) -> None:
        """Give up on this client from code that cannot await: the session closes it and ends."""
        if self._failure is None:
            self._failure = _Close(code, reason)
            self._failed.set()

    async def _teardown(self) -> None:
        """Whatever happened, stop writing, unsubscribe, and record that this socket is gone."""
        try:
            if self._writer is not None:
                self._writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._writer
            if self._unsubscribe is not None:
                await self._unsubscribe()
        finally:
            if self.signed_in and self.role == "agent":
                subject = self.subject
                try:
                    await self.node.run(lambda tx: lifecycle.disconnect(tx, subject, self.node.node_id))
                except Exception:
                    log.exception("could not record the disconnect of agent %s", subject)

    async def _close(self, code: CloseCode, reason: str) -> None:
        """Send the close frame; a client that does not read cannot hold the session open past a timeout."""
        if self._closing:
            return
        self._closing = True
        if self.ws.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError, OSError, TimeoutError, WebSocketDisconnect):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await self.ws.close(code=int(code), reason=reason[:120])

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
        known = self.node.dir.agents if self.role == "agent" else self.node.dir.supervisors
        if claims.sub not in known:
            raise _Close(CloseCode.UNAUTHORIZED, f"unknown {self.role} {claims.sub!r}")
        if self.claims is not None and claims.sub != self.subject:
            raise _Close(CloseCode.FORBIDDEN, "a token for someone else cannot be used on this socket")
        self.claims = claims
        self.subject = claims.sub

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
        if not isinstance(frame, Hello):
            message = f"The first frame must be hello, not {type(frame).__struct_config__.tag}"
            await self._send(Error(re=frame.id, code=ErrorCode.HELLO_REQUIRED, message=message))
            raise _Close(CloseCode.PROTOCOL_VIOLATION, "the first frame must be hello")
        return frame

    async def _welcome(self, hello: Hello) -> None:
        node, subject = self.node, self.subject
        if self.role == "supervisor":
            name = node.dir.supervisors[subject].name
            await self._send(
                Welcome(re=hello.id, agent=subject, name=name, role="supervisor", status=None, server_time=node.clock())
            )
            self.pending = None
            self._writer = asyncio.create_task(self._write())
            return
        self._unsubscribe = await node.broker.subscribe(agent_topic(subject), self._on_delivery)
        epoch = await node.store.epoch()
        head = await node.store.latest_seq(subject)
        replay: list[Event] | None = None
        if hello.resume_from is not None and hello.epoch in (None, epoch):
            replay = await node.store.replay(subject, hello.resume_from)
        resumed = replay is not None
        signed = await node.run(lambda tx: lifecycle.sign_in(tx, subject, node.node_id, not resumed))
        self.signed_in = True
        agent = signed.agent
        await self._send(
            Welcome(
                re=hello.id,
                agent=subject,
                name=node.dir.agents[subject].title,
                status=agent.status,
                reason=agent.reason,
                engagements=signed.engagements,
                offers=signed.offers,
                seq=head,
                resumed=resumed,
                epoch=epoch,
                server_time=node.clock(),
            )
        )
        self.last_seq = head
        if replay:
            self.last_seq = hello.resume_from or 0
            for event in replay:
                if event.seq <= head:
                    await self._send(event)
                    self.last_seq = event.seq
            self.last_seq = max(self.last_seq, head)
        backlog, self.pending = self.pending or [], None
        for delivery in backlog:
            self._enqueue(delivery)
        self._writer = asyncio.create_task(self._write())

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
        while (payload := await self._receive()) is not None:
            try:
                frame = self.codec.decode_client(payload)
            except FrameError as exc:
                self._enqueue(Error(re=exc.re, code=exc.code, message=exc.message))
                continue
            reply = await self._handle(frame)
            if reply is not None and (frame.id is not None or isinstance(reply, Error | Pong)):
                self._enqueue(reply)

    async def _handle(self, frame: Client) -> ServerFrame | None:
        claims = self.claims
        if claims is not None and claims.exp <= self.node.clock():
            raise _Close(CloseCode.UNAUTHORIZED, "token expired")
        if isinstance(frame, Ping):
            return Pong(re=frame.id, server_time=self.node.clock())
        if isinstance(frame, Hello):
            return self._refresh(frame)
        allowed, other = (AGENT_ACTIONS, "supervisor") if self.role == "agent" else (SUPERVISOR_ACTIONS, "agent")
        if not isinstance(frame, allowed):
            tag = type(frame).__struct_config__.tag
            return Error(re=frame.id, code=ErrorCode.FORBIDDEN, message=f"`{tag}` is a {other} frame")
        act: Callable[[Node, str, Client], Awaitable[ServerFrame]]
        act = agent_action if self.role == "agent" else supervisor_action
        try:
            reply = await act(self.node, self.subject, frame)
        except Refused as exc:
            return Error(re=frame.id, code=exc.code, message=exc.message)
        except Exception:
            log.exception("%s %s failed on %s", self.role, self.subject, type(frame).__name__)
            return Error(re=frame.id, code=ErrorCode.INTERNAL, message="internal error; it has been logged")
        if isinstance(reply, Ok | Error):
            reply.re = frame.id
        return reply

    def _refresh(self, hello: Hello) -> ServerFrame:
        """A second `hello` with a fresh token extends the session without reconnecting."""
        if not hello.token:
            return Error(re=hello.id, code=ErrorCode.INVALID_FIELD, message="A second hello must carry a fresh `token`")
        try:
            claims = verify(self.server.secret or "", hello.token, self.node.clock())
        except AuthError as exc:
            return Error(re=hello.id, code=ErrorCode.UNAUTHORIZED, message=str(exc))
        if claims.sub != self.subject or claims.role != self.role:
            return Error(re=hello.id, code=ErrorCode.FORBIDDEN, message="The new token is for someone else")
        self.claims = claims
        return Ok(re=hello.id)

    # --- outbound --------------------------------------------------------------------------------

    def _on_delivery(self, delivery: Delivery) -> None:
        if self.pending is not None:
            if len(self.pending) >= self.outbox.maxsize:
                self._overflow()
            else:
                self.pending.append(delivery)
            return
        self._enqueue(delivery)

    def _enqueue(self, item: ServerFrame | Delivery) -> None:
        if self._closing or self._failure is not None:
            return
        try:
            self.outbox.put_nowait(item)
        except asyncio.QueueFull:
            self._overflow()

    def _overflow(self) -> None:
        log.warning("%s %s is not reading; disconnecting", self.role, self.subject)
        self.fail(CloseCode.SLOW_CONSUMER, "outbound queue full")

    async def _write(self) -> None:
        try:
            while True:
                item = await self.outbox.get()
                if isinstance(item, Delivery):
                    await self._deliver(item)
                else:
                    await self._send(item)
        except (RuntimeError, OSError, WebSocketDisconnect):
            return  # the socket is gone; the reader sees the disconnect and tears down
        except _Close as close:
            self.fail(close.code, close.reason)
        except Refused as exc:
            self.fail(CloseCode.TRY_AGAIN_LATER, exc.message)

    async def _deliver(self, delivery: Delivery) -> None:
        if delivery.frame is None:  # the broker may have missed events: catch up from the log
            await self._catch_up(None)
            return
        seq = getattr(delivery.frame, "seq", 0)
        if seq and seq <= self.last_seq:
            return
        if seq > self.last_seq + 1:
            await self._catch_up(seq)
        if seq:
            self.last_seq = seq
        await self._send_payload(delivery.payload(self.codec))

    async def _catch_up(self, before: int | None) -> None:
        """Send the logged events after `last_seq` (and before `before`, which is about to be sent)."""
        if self.role != "agent":
            return
        missing = await self.node.store.replay(self.subject, self.last_seq)
        if missing is None:
            raise _Close(CloseCode.GOING_AWAY, "events were lost; reconnect with resume_from")
        for event in missing:
            if before is None or event.seq < before:
                await self._send(event)
                self.last_seq = event.seq

    async def _send(self, frame: ServerFrame) -> None:
        await self._send_payload(self.codec.encode(frame))

    async def _send_payload(self, payload: bytes | str) -> None:
        if isinstance(payload, bytes):
            await self.ws.send_bytes(payload)
        else:
            await self.ws.send_text(payload)


SocketRole = Literal["agent", "supervisor"]


def endpoint(role: SocketRole) -> Callable[[WebSocket], Awaitable[None]]:
    async def handle(websocket: WebSocket) -> None:
        await Session(websocket, websocket.app.state.node, role).serve()

    return handle
