"""`/v1/ingest`: the media servers' transcript stream, authenticated with the API key.

An extension: DESIGN.md's contract has media servers post transcript over HTTP only."""

from __future__ import annotations

import pytest

from tests.conformance.harness import Harness
from tests.conformance.wire import MSGPACK, Sock

pytestmark = pytest.mark.extension


async def ingest(h: Harness, how: str) -> Sock:
    key = h.target.api_key
    if how == "hello":
        sock = await h.connect("/v1/ingest")
        welcome = await sock.request({"type": "hello", "token": key})
    elif how == "header":
        sock = await h.connect("/v1/ingest", headers={"Authorization": f"Bearer {key}"})
        welcome = await sock.request({"type": "hello"})
    else:
        sock = await h.connect("/v1/ingest", query=f"token={key}")
        welcome = await sock.request({"type": "hello"})
    assert welcome["type"] == "welcome" and welcome["role"] == "ingest", welcome
    return sock


@pytest.mark.parametrize("how", ["hello", "header", "query"])
async def test_the_ingest_socket_takes_the_api_key_three_ways(h: Harness, how: str) -> None:
    sock = await ingest(h, how)
    await sock.ping()


async def test_a_wrong_ingest_key_is_closed_with_4401(h: Harness) -> None:
    sock = await h.connect("/v1/ingest")
    await sock.send({"type": "hello", "token": "not-the-key"})
    assert (await sock.closed())[0] == 4401
    sock = await h.connect("/v1/ingest")
    await sock.send({"type": "hello", "token": h.target.token(h.center.order[0])})  # an agent token is no key
    assert (await sock.closed())[0] == 4401


async def test_streamed_transcript_reaches_the_agent_on_the_call(h: Harness) -> None:
    queue = h.center.find_queue(
        "a voice queue with transcription", channel="voice", acceptance="manual", transcription=True
    )
    agent, ring = await h.call(h.center.able(queue["id"])[0], queue["id"])
    eid = ring["engagement"]["id"]
    sock = await ingest(h, "hello")
    partial = {"id": "s-1", "speaker": "consumer", "text": "my order num", "final": False}
    reply = await sock.ok({"type": "transcript", "engagement": eid, "fragments": [partial]})
    assert reply["engagement"] == eid
    got = await agent.expect("transcript", engagement=eid)
    assert [(f["id"], f["text"], f["final"]) for f in got["fragments"]] == [("s-1", "my order num", False)]
    await sock.ok(
        {
            "type": "transcript",
            "engagement": eid,
            "fragments": [{**partial, "text": "my order number is 42", "final": True}],
        }
    )
    got = await agent.expect("transcript", engagement=eid)
    assert [(f["id"], f["final"]) for f in got["fragments"]] == [("s-1", True)]
    await sock.refused(
        {"type": "transcript", "engagement": "e-no-such-engagement", "fragments": [partial]}, "not_found"
    )
    await sock.refused(
        {"type": "transcript", "engagement": eid, "fragments": [{"text": "no speaker"}]}, "invalid_field"
    )
    await sock.refused({"type": "accept", "offer": ring["offer"]}, "unknown_type")
    whole = (await h.api.get(f"/v1/engagements/{eid}/transcript")).json()["fragments"]
    assert [(f["id"], f["text"]) for f in whole] == [("s-1", "my order number is 42")]


async def test_the_ingest_socket_speaks_msgpack_too(h: Harness) -> None:
    sock = await h.connect("/v1/ingest", subprotocols=(MSGPACK,))
    assert sock.binary
    welcome = await sock.request({"type": "hello", "token": h.target.api_key})
    assert welcome["role"] == "ingest"
    await sock.ping()
