"""Fuzzing with hypothesis: garbage and almost-valid frames and bodies get typed errors, never a crash,
and what is refused changes nothing."""

from __future__ import annotations

import asyncio
import json
import typing
from typing import Any

import httpx
import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect

from protocol.codec import JSON, MSGPACK, FrameError
from protocol.codes import ErrorCode
from protocol.frames import Client
from server.app import create_app
from tests.e2e.conftest import Raw, handling_config
from tests.support import API_KEY, serving, token

TAGS = sorted(c.__struct_config__.tag for c in typing.get_args(Client))  # type: ignore[attr-defined]
FIELDS = ["id", "offer", "engagement", "status", "reason", "text", "codes", "query", "queue", "agent", "token",
          "resume_from", "epoch", "subject", "zzz"]  # fmt: skip
CODES = {c.value for c in ErrorCode}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), st.text(max_size=30)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
valid_ish = st.fixed_dictionaries(
    {"type": st.sampled_from([*TAGS, "nope", ""])},
    optional={f: values for f in FIELDS},
)
garbage = st.one_of(st.binary(max_size=64), st.text(max_size=64), values.map(json.dumps))


def decodes_or_refuses(decode: typing.Callable[[Any], Any], payload: bytes | str) -> None:
    """The decoder's whole promise: a client frame, or a FrameError with a known code and a message."""
    try:
        frame = decode(payload)
    except FrameError as exc:
        refused = exc
    else:
        assert isinstance(frame, typing.get_args(Client))
        return
    assert refused.code in CODES
    assert refused.message


@settings(max_examples=400, deadline=None)
@given(st.one_of(valid_ish.map(json.dumps), garbage))
def test_the_json_decoder_returns_a_frame_or_a_typed_error(payload: bytes | str):
    decodes_or_refuses(JSON.decode_client, payload)


@settings(max_examples=400, deadline=None)
@given(st.one_of(valid_ish.map(msgspec.msgpack.encode), st.binary(max_size=64)))
def test_the_msgpack_decoder_returns_a_frame_or_a_typed_error(payload: bytes):
    decodes_or_refuses(MSGPACK.decode_client, payload)


async def _socket_session(payloads: list[str | bytes]) -> None:
    """One agent, one call ringing then held, and a stream of fuzz: every reply is a typed frame, a
    refused frame changes nothing, and the node is fine at the end."""
    config = handling_config()
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with serving(create_app(config)) as live, httpx.AsyncClient(base_url=live.http, headers=headers) as api:
        raw = Raw(await connect(f"{live.ws}/v1/agent"))
        await raw.request({"type": "hello", "id": "h", "token": token("ann")})
        await raw.request({"type": "set_status", "id": "r", "status": "ready"})
        eid = (await api.post("/v1/engagements", json={"queue": "calls"})).json()["id"]

        async def state() -> tuple[Any, Any]:
            agents = (await api.get("/v1/agents")).json()
            return (await api.get(f"/v1/engagements/{eid}")).json(), next(a for a in agents if a["id"] == "ann")

        for payload in payloads:
            if isinstance(payload, str):
                payload = payload.replace("ENG", eid)
            before = await state()
            await raw.ws.send(payload)
            await raw.send({"type": "ping", "id": "sentinel"})  # everything before it is answered by then
            replies = []
            while (reply := await raw.recv()).get("re") != "sentinel":
                replies.append(reply)
            errors = [r for r in replies if r["type"] == "error"]
            for error in errors:
                assert error["code"] in CODES and error["message"]
            if errors and not [r for r in replies if r["type"] in ("ok", "search_result", "pong", "welcome")]:
                assert await state() == before, f"refused {payload!r} but the state changed"
        assert (await raw.request({"type": "ping", "id": "end"}))["type"] == "pong"
        assert (await api.get("/healthz")).status_code == 200
        await raw.ws.close()


frames_for_socket = st.lists(
    st.one_of(
        valid_ish.map(lambda d: json.dumps({**d, **({"engagement": "ENG"} if "engagement" in d else {})})),
        st.text(max_size=40),
        st.binary(max_size=40),
    ),
    min_size=20,
    max_size=40,
)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames_for_socket)
def test_a_live_socket_survives_fuzz_with_typed_errors_and_unchanged_state(payloads: list[str | bytes]):
    asyncio.run(_socket_session(payloads))


bodies = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "queue": st.sampled_from(["calls", "chat", "mail", "nope"]) | values,
            "consumer": values,
            "variables": values,
            "priority": values,
            "summary": values,
            "fragments": st.lists(st.fixed_dictionaries({}, optional={"speaker": values, "text": values}), max_size=3),
            "text": values,
            "zzz": values,
        },
    ).map(json.dumps),
    st.text(max_size=60),
)


async def _http_session(calls: list[tuple[str, str]]) -> None:
    config = handling_config()
    headers = {"Authorization": f"Bearer {API_KEY}", "content-type": "application/json"}
    async with serving(create_app(config)) as live, httpx.AsyncClient(base_url=live.http, headers=headers) as api:
        eid = (await api.post("/v1/engagements", json={"queue": "chat"})).json()["id"]
        for path, body in calls:
            url = {"create": "/v1/engagements", "transcript": f"/v1/engagements/{eid}/transcript"}.get(
                path, f"/v1/engagements/{eid}/messages"
            )
            before = ((await api.get("/v1/queues")).json(), (await api.get(f"/v1/engagements/{eid}")).json())
            response = await api.post(url, content=body)
            assert response.status_code < 500, (url, body, response.text)
            if response.status_code >= 400:
                assert response.json()["code"] in CODES
                after = ((await api.get("/v1/queues")).json(), (await api.get(f"/v1/engagements/{eid}")).json())
                assert after[1] == before[1], f"refused {body!r} but the engagement changed"
                assert [q["stats"]["waiting"] for q in after[0]] == [q["stats"]["waiting"] for q in before[0]]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["create", "transcript", "messages"]), bodies), min_size=20, max_size=40))
def test_http_ingest_bodies_get_4xx_with_a_code_and_change_nothing(calls: list[tuple[str, str]]):
    asyncio.run(_http_session(calls))
