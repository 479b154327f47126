"""`/v1/ingest`: the streaming socket media servers push live transcript on, with the ingest API key.

The key comes as `Authorization: Bearer <key>`, `?token=<key>`, or in `hello {token}`. Each
`transcript {engagement, fragments}` is applied like `POST /v1/engagements/{id}/transcript` and
answered `ok` (with `id`) or `error`; the socket stays open across engagements.

One media server streams many calls over one socket, so with a store across the network (Redis)
frames for different engagements are applied side by side (up to `IN_FLIGHT` at once): one at a time
would cap the socket at one fragment per round trip. Frames for one engagement are applied in the order they came,
and every reply still comes in its frame's order.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from starlette.websockets import WebSocket

from protocol.codec import INGEST_CODECS, Codec
from protocol.codes import CloseCode, ErrorCode
from protocol.frames import Client, Hello, IngestTranscript, Ok, ServerFrame, Welcome
from server.auth import check_api_key
from server.core import lifecycle
from server.core.errors import Refused
from server.node import Node
from server.transport.session import Session, _Close, goes_back

IN_FLIGHT = 64
"""Transcript frames of one socket being applied at once; the socket is not read further meanwhile."""

log = logging.getLogger("switchboard.ingest")


class IngestSession(Session):
    role = "ingest"  # type: ignore[assignment]
    rate_limited = False

    def __init__(self, websocket: WebSocket, node: Node) -> None:
        super().__init__(websocket, node)
        self._answers: deque[tuple[Client | None, asyncio.Task[ServerFrame | None] | ServerFrame]] = deque()
        """Frames in the order they came, each with its reply or the task working it out."""
        self._latest: dict[str, asyncio.Task[ServerFrame | None]] = {}
        """The last frame taken for each engagement: the next one for it waits for that one."""

    def _codec(self, codec: Codec) -> Codec:
        return INGEST_CODECS[codec.subprotocol]

    def _url_credential(self) -> str | None:
        header = self.ws.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() == "bearer" and key:
            return key.strip()
        return self.ws.query_params.get("token")

    def _authenticate(self, token: str | None) -> None:
        if not token or not check_api_key(f"Bearer {token}", self.server.api_keys):
            raise _Close(CloseCode.UNAUTHORIZED, "missing or wrong ingest key")
        self.subject = "ingest"

    async def _welcome(self, hello: Hello) -> None:
        await self._send(
            Welcome(re=hello.id, agent="ingest", role="ingest", status=None, server_time=self.node.clock())
        )
        self.go_live()

    async def _act(self, frame: Client) -> ServerFrame:
        if not isinstance(frame, IngestTranscript):
            raise Refused(ErrorCode.FORBIDDEN, "Only `transcript` and `ping` frames are taken here")
        eid, fragments = frame.engagement, frame.fragments
        added = await self.node.run(lambda tx: lifecycle.add_fragments(tx, eid, fragments))
        return Ok(engagement=eid, message=added[-1].id if added else None)

    async def _read(self) -> None:
        try:
            await super()._read()
            while self._answers:  # the client is gone; what it sent is applied all the same
                await self._oldest()
        finally:
            for _, work in self._answers:
                if isinstance(work, asyncio.Task):
                    work.cancel()

    async def _answer(self, frame: Client) -> None:
        if not self.node.store.remote:  # nothing to wait on: side by side would only add tasks
            await super()._answer(frame)
            return
        if not isinstance(frame, IngestTranscript):  # `ping`, `hello`: answered once the frames before are
            while self._answers:
                await self._oldest()
            await super()._answer(frame)
            return
        while len(self._answers) >= IN_FLIGHT:
            await self._oldest()
        eid = frame.engagement
        work = asyncio.ensure_future(self._in_turn(frame, self._latest.get(eid)))
        self._latest[eid] = work
        self._answers.append((frame, work))
        work.add_done_callback(lambda done: self._done(eid, done))

    async def _in_turn(self, frame: Client, before: asyncio.Task[ServerFrame | None] | None) -> ServerFrame | None:
        if before is not None and not before.done():
            await asyncio.wait([before])
        return await self._handle(frame)

    async def _oldest(self) -> None:
        work = self._answers[0][1]
        if isinstance(work, asyncio.Task):
            await asyncio.wait([work])
        self._release_answers()

    def _done(self, eid: str, work: asyncio.Task[ServerFrame | None]) -> None:
        if self._latest.get(eid) is work:
            del self._latest[eid]
        self._release_answers()

    def _release_answers(self) -> None:
        """Send the replies at the head of the line whose work is done, in the order their frames came."""
        answers = self._answers
        while answers:
            frame, work = answers[0]
            if isinstance(work, asyncio.Task):
                if not work.done():
                    return
                if work.cancelled():
                    answers.popleft()
                    continue
                if (exc := work.exception()) is not None:
                    answers.popleft()
                    log.error("ingest frame failed", exc_info=exc)
                    self.fail(CloseCode.INTERNAL_ERROR, "internal error; it has been logged")
                    continue
                reply = work.result()
            else:
                reply = work
            answers.popleft()
            if reply is not None and goes_back(frame, reply):
                super()._reply(reply)

    def _reply(self, reply: ServerFrame, after: int = 0) -> None:
        """A reply made at once (a malformed frame's error) waits behind the replies still being worked out."""
        if self._answers:
            self._answers.append((None, reply))
        else:
            super()._reply(reply, after)

    async def _refresh(self, hello: Hello) -> ServerFrame:
        """The ingest socket's key does not expire: a second `hello` just gets its `welcome` again."""
        return await self._standing(hello)


async def ingest_endpoint(websocket: WebSocket) -> None:
    await IngestSession(websocket, websocket.app.state.node).serve()
