"""Encoders and decoders for both wire formats, built once at import.

JSON travels in text frames (`switchboard.v1.json`, the default), MessagePack in binary frames
(`switchboard.v1.msgpack`). Decoding a client frame either returns a typed frame or raises
`FrameError` carrying the error code, a message that names the problem, and the request `id` when it
could be recovered, so that even a rejected request gets its one reply.
"""

from __future__ import annotations

from typing import Any

import msgspec

from protocol.codes import ErrorCode
from protocol.frames import Client, Ingest, RequestId, Server, ServerFrame

SUBPROTOCOL_JSON = "switchboard.v1.json"
SUBPROTOCOL_MSGPACK = "switchboard.v1.msgpack"
SUBPROTOCOLS = (SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK)


class FrameError(Exception):
    """A client frame that cannot be accepted: becomes an `error` frame, never a closed socket."""

    def __init__(self, code: ErrorCode, message: str, re: RequestId = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.re = re


class _Envelope(msgspec.Struct):
    """The two fields worth recovering from a frame that failed to decode."""

    id: Any = None
    type: Any = None


class Codec:
    """One wire format: how frames become payloads and back."""

    def __init__(self, subprotocol: str, binary: bool, encoder: Any, client: Any, server: Any, envelope: Any) -> None:
        self.subprotocol = subprotocol
        self.binary = binary
        self._encode = encoder.encode
        self._client = client
        self._server = server
        self._envelope = envelope

    def encode(self, frame: ServerFrame | msgspec.Struct) -> bytes | str:
        data = self._encode(frame)
        return data if self.binary else data.decode()

    def for_ingest(self) -> Codec:
        """The same wire format, decoding media-server frames (`/v1/ingest`) instead of client frames."""
        decoder = (msgspec.msgpack.Decoder if self.binary else msgspec.json.Decoder)(Ingest)
        return Codec(self.subprotocol, self.binary, _ENCODERS[self.binary], decoder, self._server, self._envelope)

    def decode_client(self, payload: bytes | str) -> Client:
        try:
            return self._client.decode(payload)
        except msgspec.ValidationError as exc:
            raise self._explain(payload, exc) from None
        except msgspec.DecodeError as exc:
            raise FrameError(ErrorCode.BAD_FRAME, f"Malformed frame: {exc}") from None

    def decode_server(self, payload: bytes | str) -> Server:
        return self._server.decode(payload)

    def _explain(self, payload: bytes | str, exc: msgspec.ValidationError) -> FrameError:
        try:
            envelope = self._envelope.decode(payload)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return FrameError(ErrorCode.BAD_FRAME, f"A frame must be an object with a `type`: {exc}")
        re = envelope.id if isinstance(envelope.id, (str, int)) and not isinstance(envelope.id, bool) else None
        text = str(exc)
        if envelope.type is None:
            return FrameError(ErrorCode.INVALID_FIELD, "Object missing required field `type`", re)
        if text.endswith("`$.type`"):
            return FrameError(ErrorCode.UNKNOWN_TYPE, f"Unknown frame type {envelope.type!r}", re)
        return FrameError(ErrorCode.INVALID_FIELD, f"Invalid `{envelope.type}` frame: {text}", re)


_ENCODERS = {False: msgspec.json.Encoder(), True: msgspec.msgpack.Encoder()}
JSON = Codec(
    SUBPROTOCOL_JSON,
    False,
    _ENCODERS[False],
    msgspec.json.Decoder(Client),
    msgspec.json.Decoder(Server),
    msgspec.json.Decoder(_Envelope),
)
MSGPACK = Codec(
    SUBPROTOCOL_MSGPACK,
    True,
    _ENCODERS[True],
    msgspec.msgpack.Decoder(Client),
    msgspec.msgpack.Decoder(Server),
    msgspec.msgpack.Decoder(_Envelope),
)
CODECS = {codec.subprotocol: codec for codec in (JSON, MSGPACK)}


def choose(offered: list[str]) -> Codec | None:
    """Pick the codec for a handshake: the client's first supported choice; JSON when it offered none."""
    if not offered:
        return JSON
    for name in offered:
        if name in CODECS:
            return CODECS[name]
    return None


INGEST_CODECS = {codec.subprotocol: codec.for_ingest() for codec in (JSON, MSGPACK)}
