"""`/v1/ingest`: the streaming socket media servers push live transcript on, with the ingest API key.

The key comes as `Authorization: Bearer <key>`, `?token=<key>`, or in `hello {token}`. Each
`transcript {engagement, fragments}` is applied like `POST /v1/engagements/{id}/transcript` and
answered `ok` (with `id`) or `error`; the socket stays open across engagements.

One media server streams many calls over one socket. With a store across the network (Redis), the
frames that arrive while a batch is being applied make the next batch, applied as one transaction:
one round trip for all of them, however many calls they are for (each frame still succeeds or fails
on its own). Frames keep their order (one engagement's lines are applied in the order they came),
and every reply comes in its frame's order, a malformed frame's error and a `ping` included.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from dataclasses import dataclass

from starlette.websockets import WebSocket

from protocol.codec import INGEST_CODECS, Codec
from protocol.codes import CloseCode, ErrorCode
from protocol.frames import Client, Error, Hello, IngestTranscript, Ok, ServerFrame, Welcome
from protocol.model import Fragment
from server.auth import check_api_key
from server.core import lifecycle
from server.core.errors import Refused
from server.core.tx import Tx
from server.node import Node
from server.transport.session import Session, _Close, goes_back

IN_FLIGHT = 256
"""Transcript frames of one socket read and not yet answered; the socket is not read further meanwhile."""

log = logging.getLogger("switchboard.ingest")


@dataclass
class _Slot:
    """A frame's place in the line of replies: its reply once known."""

    frame: Client | None
    reply: ServerFrame | None = None
    known: bool = False


def apply_frames(tx: Tx, frames: list[IngestTranscript]) -> list[list[Fragment] | Refused]:
    """Each frame's fragments, in order, in one transaction; a frame refused (an unknown call, one
    without transcription) changes nothing and leaves the others be."""
    out: list[list[Fragment] | Refused] = []
    for frame in frames:
        try:
            out.append(lifecycle.add_fragments(tx, frame.engagement, frame.fragments))
        except Refused as refused:
            out.append(refused)
    return out


class IngestSession(Session):
    role = "ingest"  # type: ignore[assignment]
    rate_limited = False

    def __init__(self, websocket: WebSocket, node: Node) -> None:
        super().__init__(websocket, node)
        self._line: deque[_Slot] = deque()
        """Every frame read and not yet answered, in order: its reply is sent once those before it are."""
        self._waiting: list[tuple[IngestTranscript, _Slot]] = []
        """Transcript frames not yet applied: the next batch."""
        self._applying: asyncio.Task[None] | None = None

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
        finally:  # the client is gone; what it sent is applied all the same
            await self._settled()

    async def _answer(self, frame: Client) -> None:
        if not self.node.store.remote:  # nothing to wait on: the frame is applied as it comes
            await super()._answer(frame)
            return
        if not isinstance(frame, IngestTranscript):  # `ping`, `hello`: answered once the frames before are
            await self._settled()
            await super()._answer(frame)
            return
        slot = _Slot(frame)
        self._line.append(slot)
        self._waiting.append((frame, slot))
        if self._applying is None:
            self._applying = asyncio.ensure_future(self._apply())
        while len(self._line) >= IN_FLIGHT and self._applying is not None:
            await asyncio.wait([self._applying])

    async def _settled(self) -> None:
        """Until every frame read so far is applied and answered."""
        while self._applying is not None:
            await asyncio.wait([self._applying])

    async def _apply(self) -> None:
        """Apply what waits, batch after batch, until nothing does."""
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                frames = [frame for frame, _ in batch]
                try:
                    results = await self.node.run(functools.partial(apply_frames, frames=frames))
                except Refused as refused:  # the store is out of reach: every frame of the batch is refused
                    results = [refused for _ in batch]
                for (frame, slot), result in zip(batch, results, strict=True):
                    slot.reply, slot.known = self._outcome(frame, result), True
                self._release()
        except Exception:
            log.exception("ingest frames failed")
            self.fail(CloseCode.INTERNAL_ERROR, "internal error; it has been logged")
        finally:
            self._applying = None

    def _outcome(self, frame: IngestTranscript, result: list[Fragment] | Refused) -> ServerFrame:
        if isinstance(result, Refused):
            self.node.metrics.request("transcript", result.code)
            return Error(re=frame.id, code=result.code, message=result.message)
        self.node.metrics.request("transcript", "ok")
        return Ok(re=frame.id, engagement=frame.engagement, message=result[-1].id if result else None)

    def _release(self) -> None:
        """Send the replies at the head of the line that are known, in the order their frames came."""
        line = self._line
        while line and line[0].known:
            slot = line.popleft()
            if slot.reply is not None and goes_back(slot.frame, slot.reply):
                super()._reply(slot.reply)

    def _reply(self, reply: ServerFrame, after: int = 0) -> None:
        """A reply made at once (a malformed frame's error) waits behind the replies still being worked out."""
        if self._line:
            self._line.append(_Slot(None, reply, known=True))
        else:
            super()._reply(reply, after)

    async def _refresh(self, hello: Hello) -> ServerFrame:
        """The ingest socket's key does not expire: a second `hello` just gets its `welcome` again."""
        return await self._standing(hello)


async def ingest_endpoint(websocket: WebSocket) -> None:
    await IngestSession(websocket, websocket.app.state.node).serve()
