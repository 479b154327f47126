"""`/v1/ingest`: the streaming socket media servers push live transcript on, with the ingest API key.

The key comes as `Authorization: Bearer <key>`, `?token=<key>`, or in `hello {token}`. Each
`transcript {engagement, fragments}` is applied like `POST /v1/engagements/{id}/transcript` and
answered `ok` (with `id`) or `error`; the socket stays open across engagements.
"""

from __future__ import annotations

from starlette.websockets import WebSocket

from protocol.codec import INGEST_CODECS, Codec
from protocol.codes import CloseCode, ErrorCode
from protocol.frames import Client, Hello, IngestTranscript, Ok, ServerFrame, Welcome
from server.auth import check_api_key
from server.core import lifecycle
from server.core.errors import Refused
from server.transport.session import Session, _Close


class IngestSession(Session):
    role = "ingest"  # type: ignore[assignment]
    rate_limited = False

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

    async def _refresh(self, hello: Hello) -> ServerFrame:
        """The ingest socket's key does not expire: a second `hello` just gets its `welcome` again."""
        return await self._standing(hello)


async def ingest_endpoint(websocket: WebSocket) -> None:
    await IngestSession(websocket, websocket.app.state.node).serve()
