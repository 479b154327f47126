"""The protocol on a raw socket, as any client author would speak it: no project code, only `websockets`.

`Sock` wraps one WebSocket: it encodes frames in the negotiated format (JSON text frames, or
MessagePack binary frames through msgspec used as a plain codec of dicts), keeps the frames it skipped
while waiting for another, and bounds every wait with a timeout. While reading it checks what holds
for every frame of the protocol, so that each test checks them too:

- a JSON socket gets text frames only, a MessagePack socket binary frames only;
- every frame is an object with a `type`;
- replies (`welcome`, `ok`, `error`, `pong`, `search_result`) carry `re` and, but for `welcome`, no `seq`;
  events carry `seq` and no `re`;
- on agent and supervisor sockets, event `seq`s follow `welcome.seq` one by one (or `resume_from` on a
  resumed hello), with no gap and no repeat (`closing`, outside the agent's log, has `seq: 0`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import jwt
import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin, Subprotocol

JSON = "switchboard.v1.json"
MSGPACK = "switchboard.v1.msgpack"
REPLIES = frozenset({"welcome", "ok", "error", "pong", "search_result"})

Frame = dict[str, Any]


class NoFrame(AssertionError):
    """The frame waited for did not come in time."""


class NotClosed(AssertionError):
    """The server did not close the socket in time."""


def mint(secret: str, subject: str, role: str = "agent", ttl_s: float = 600.0) -> str:
    """A token as the server expects it: HS256 JWT with `sub`, `role`, `iat` and `exp` (Unix seconds)."""
    now = int(time.time())
    return jwt.encode({"sub": subject, "role": role, "iat": now, "exp": int(now + ttl_s)}, secret, algorithm="HS256")


class Sock:
    """One WebSocket to the server. Frames not yet asked for stay in `buffer`; `log` has every frame read."""

    def __init__(self, ws: ClientConnection, *, check_seq: bool = False) -> None:
        self.ws = ws
        self.binary = ws.subprotocol == MSGPACK
        self.buffer: list[Frame] = []
        self.log: list[Frame] = []
        self.check_seq = check_seq
        self.last_seq: int | None = None
        self.welcome: Frame = {}
        self._resume_from: int | None = None
        self._ids = itertools.count(1)

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        subprotocols: Sequence[str] | None = (JSON,),
        origin: str | None = None,
        headers: dict[str, str] | None = None,
        check_seq: bool = False,
    ) -> Sock:
        ws = await connect(
            url,
            subprotocols=[Subprotocol(s) for s in subprotocols] if subprotocols else None,
            origin=Origin(origin) if origin else None,
            additional_headers=headers,
            max_size=64 * 1024 * 1024,
            max_queue=4096,
            open_timeout=10,
            close_timeout=2,
        )
        return cls(ws, check_seq=check_seq)

    # --- out -------------------------------------------------------------------------------------

    def encode(self, frame: Frame) -> str | bytes:
        return msgspec.msgpack.encode(frame) if self.binary else json.dumps(frame)

    async def send(self, frame: Frame | str | bytes) -> None:
        """Send a frame (a dict, in the socket's format) or a raw payload as is."""
        if isinstance(frame, dict) and frame.get("type") == "hello" and "resume_from" in frame:
            self._resume_from = frame["resume_from"]
        await self.ws.send(self.encode(frame) if isinstance(frame, dict) else frame)

    def next_id(self) -> str:
        return f"r{next(self._ids)}"

    # --- in --------------------------------------------------------------------------------------

    def _decode(self, payload: str | bytes) -> Frame:
        if self.binary:
            assert isinstance(payload, bytes), f"a text frame on a MessagePack socket: {payload!r:.200}"
            frame = msgspec.msgpack.decode(payload)
        else:
            assert isinstance(payload, str), f"a binary frame on a JSON socket: {payload!r:.200}"
            frame = json.loads(payload)
        assert isinstance(frame, dict) and isinstance(frame.get("type"), str), f"not a typed object: {frame!r:.300}"
        return frame

    def _check(self, frame: Frame) -> None:
        kind = frame["type"]
        if kind in REPLIES:
            assert "re" in frame, f"a reply without `re`: {frame!r:.300}"
            assert kind == "welcome" or "seq" not in frame, f"a reply with a `seq`: {frame!r:.300}"
        else:
            assert "re" not in frame, f"an event with `re`: {frame!r:.300}"
            assert isinstance(frame.get("seq"), int), f"an event without an integer `seq`: {frame!r:.300}"
        if kind == "welcome":
            self.welcome = frame
            resumed = frame.get("resumed") is True and self._resume_from is not None
            self.last_seq = self._resume_from if resumed else frame.get("seq", 0)
        elif self.check_seq and kind not in REPLIES and kind != "closing":
            assert self.last_seq is not None, f"an event before welcome: {frame!r:.300}"
            expected = self.last_seq + 1
            assert frame["seq"] == expected, f"seq {frame['seq']} where {expected} was due: {frame!r:.300}"
            self.last_seq = frame["seq"]

    async def _read(self, timeout: float) -> Frame:
        payload = await asyncio.wait_for(self.ws.recv(), timeout)
        frame = self._decode(payload)
        self.log.append(frame)
        self._check(frame)
        return frame

    async def next(self, timeout: float = 5.0) -> Frame:
        """The next frame: the oldest one kept, or a new one."""
        if self.buffer:
            return self.buffer.pop(0)
        return await self._read(timeout)

    async def first(self, match: Callable[[Frame], bool], timeout: float = 5.0, what: str = "a frame") -> Frame:
        """The first frame (kept or new) for which `match` holds; the others stay kept, in order."""
        for i, frame in enumerate(self.buffer):
            if match(frame):
                return self.buffer.pop(i)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            try:
                if left <= 0:
                    raise TimeoutError
                frame = await self._read(left)
            except TimeoutError:
                got = [f"{f['type']}" for f in self.buffer]
                raise NoFrame(f"no {what} within {timeout:g}s; kept meanwhile: {got}") from None
            if match(frame):
                return frame
            self.buffer.append(frame)

    async def expect(
        self, type: str, *, timeout: float = 5.0, where: Callable[[Frame], bool] | None = None, **fields: Any
    ) -> Frame:
        """The first frame of that `type` whose top-level `fields` are equal, and for which `where` holds."""

        def match(frame: Frame) -> bool:
            if frame["type"] != type or any(frame.get(k) != v for k, v in fields.items()):
                return False
            return where is None or bool(where(frame))

        described = f"`{type}`" + (f" with {fields}" if fields else "") + (" matching the condition" if where else "")
        return await self.first(match, timeout, described)

    async def request(self, frame: Frame, timeout: float = 5.0) -> Frame:
        """Send a frame with an `id` (one is added if missing) and return its one reply."""
        frame = {**frame, "id": frame.get("id", self.next_id())}
        await self.send(frame)
        return await self.first(lambda f: f.get("re") == frame["id"], timeout, f"reply to {frame.get('type')!r}")

    async def ok(self, frame: Frame, timeout: float = 5.0) -> Frame:
        reply = await self.request(frame, timeout)
        assert reply["type"] == "ok", f"{frame.get('type')} was refused: {reply}"
        return reply

    async def refused(self, frame: Frame, code: str, timeout: float = 5.0) -> Frame:
        reply = await self.request(frame, timeout)
        assert reply["type"] == "error", f"{frame} should have been refused with {code}, got {reply}"
        assert reply["code"] == code, f"{frame} should have been refused with {code}, got {reply}"
        assert isinstance(reply.get("message"), str) and reply["message"], reply
        return reply

    async def ping(self, timeout: float = 5.0) -> Frame:
        """A round trip: every event the server sent before answering it is read by then."""
        reply = await self.request({"type": "ping"}, timeout)
        assert reply["type"] == "pong", reply
        return reply

    async def quiet(self, type: str, within: float = 0.3, where: Callable[[Frame], bool] | None = None) -> None:
        """Assert that no such frame arrives (or is kept) within a short, bounded time, then a round trip."""
        try:
            frame = await self.expect(type, timeout=within, where=where)
        except NoFrame:
            await self.ping()
            for kept in self.buffer:
                assert kept["type"] != type or (where is not None and not where(kept)), f"unexpected {kept}"
            return
        raise AssertionError(f"unexpected {frame}")

    async def closed(self, timeout: float = 5.0) -> tuple[int | None, str]:
        """Read (and keep) frames until the server closes; its close code and reason."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    self.buffer.append(await self._read(timeout))
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            return (rcvd.code, rcvd.reason) if rcvd else (None, "")
        except TimeoutError:
            raise NotClosed(f"the server did not close the socket within {timeout:g}s") from None

    @property
    def is_open(self) -> bool:
        return self.ws.close_code is None

    async def close(self) -> None:
        await self.ws.close()
