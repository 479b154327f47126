"""The wire protocol: every frame round-trips in both formats, and decoding errors say what is wrong."""

from __future__ import annotations

import typing

import pytest

from protocol.codec import JSON, MSGPACK, Codec, FrameError, choose
from protocol.codes import CLOSE_HELP, ERROR_HELP, CloseCode, ErrorCode
from protocol.frames import Client, Hello, Ping, Ring, Server, SetStatus, Transfer
from protocol.model import Channel, Engagement, EngagementState
from protocol.schema import json_schema

CLIENT_TYPES = typing.get_args(Client)
SERVER_TYPES = typing.get_args(Server)


def tag(cls: type) -> str:
    return cls.__struct_config__.tag  # type: ignore[attr-defined]


@pytest.mark.parametrize("codec", [JSON, MSGPACK], ids=["json", "msgpack"])
def test_every_client_frame_round_trips(codec: Codec):
    samples = {
        "hello": Hello(id=1, token="t", resume_from=4),
        "set_status": SetStatus(id="a", status="not_ready", reason="lunch"),
        "transfer": Transfer(id=2, engagement="e", queue="q"),
        "ping": Ping(),
    }
    for frame in samples.values():
        assert codec.decode_client(codec.encode(frame)) == frame


def test_the_contract_frame_types_are_all_there():
    client = {tag(c) for c in CLIENT_TYPES}
    assert client == {
        "hello", "set_status", "accept", "decline", "note", "disposition", "search", "send", "end",
        "wrap_up_done", "open", "transfer", "release", "ping",
        "watch", "unwatch", "set_agent_status", "force_wrap_up_done", "force_end", "force_transfer",
    }  # fmt: skip
    server = {tag(s) for s in SERVER_TYPES}
    assert server == {
        "welcome", "ok", "error", "pong", "search_result", "ring", "ring_cancelled", "engagement",
        "transcript", "message", "status", "closing", "queue_stats", "agent_state", "conversation",
    }  # fmt: skip


@pytest.mark.parametrize("codec", [JSON, MSGPACK], ids=["json", "msgpack"])
def test_server_frames_round_trip(codec: Codec):
    eng = Engagement(
        id="e", queue="q", queue_name="Q", channel=Channel.CHAT, state=EngagementState.OFFERED, created_at=1.5
    )
    ring = Ring(seq=3, offer="e-o1", engagement=eng, expires_at=20.0, timeout_s=18.5)
    assert codec.decode_server(codec.encode(ring)) == ring


@pytest.mark.parametrize(
    ("payload", "code", "re", "mentions"),
    [
        ('{"type": "hello"', ErrorCode.BAD_FRAME, None, "malformed"),
        ("42", ErrorCode.BAD_FRAME, None, "object"),
        ('{"id": 3}', ErrorCode.INVALID_FIELD, 3, "type"),
        ('{"type": "fly", "id": "x"}', ErrorCode.UNKNOWN_TYPE, "x", "fly"),
        ('{"type": "accept", "id": 9}', ErrorCode.INVALID_FIELD, 9, "offer"),
        ('{"type": "accept", "id": 9, "offer": []}', ErrorCode.INVALID_FIELD, 9, "$.offer"),
        ('{"type": "set_status", "status": "asleep"}', ErrorCode.INVALID_FIELD, None, "$.status"),
        ('{"type": "ping", "id": true}', ErrorCode.INVALID_FIELD, None, "$.id"),
        ('{"type": "ping", "extra": 1}', ErrorCode.INVALID_FIELD, None, "extra"),
    ],
)
def test_decoding_errors_name_the_problem_and_keep_the_request_id(payload, code, re, mentions):
    with pytest.raises(FrameError) as caught:
        JSON.decode_client(payload)
    assert caught.value.code == code
    assert caught.value.re == re
    assert mentions.lower() in caught.value.message.lower()


def test_msgpack_garbage_is_a_bad_frame():
    with pytest.raises(FrameError) as caught:
        MSGPACK.decode_client(b"\xc1\xff\x00")
    assert caught.value.code == ErrorCode.BAD_FRAME


def test_subprotocol_choice_follows_the_clients_preference():
    assert choose([]) is JSON
    assert choose(["switchboard.v1.msgpack", "switchboard.v1.json"]) is MSGPACK
    assert choose(["other", "switchboard.v1.json"]) is JSON
    assert choose(["other"]) is None


def test_every_code_says_what_to_do():
    assert set(ERROR_HELP) == set(ErrorCode)
    assert set(CLOSE_HELP) == set(CloseCode)
    assert all(4000 <= c < 5000 or c < 1100 for c in CloseCode)


def test_the_schema_describes_both_directions_with_a_discriminator():
    schema = json_schema()
    defs = schema["$defs"]
    for cls in (*CLIENT_TYPES, *SERVER_TYPES):
        assert cls.__name__ in defs, cls
    client = defs["ClientFrame"]
    assert client["discriminator"]["propertyName"] == "type"
    assert set(client["discriminator"]["mapping"]) == {tag(c) for c in CLIENT_TYPES}
    assert defs["Accept"]["additionalProperties"] is False
    assert defs["Accept"]["required"] == ["type", "offer"]
