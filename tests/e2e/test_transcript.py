"""Live transcript over real sockets: ingest (HTTP and streaming), delivery on accept, finals, search."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from clients.agent import AgentClient, RequestFailed
from protocol.frames import Transcript
from tests.e2e.conftest import AppFactory, handling_config
from tests.support import API_KEY, Running, serving, token


@pytest.fixture
async def desk(app_for: AppFactory) -> AsyncIterator[Running]:
    async with serving(app_for(handling_config())) as running:
        yield running


@pytest.fixture
async def api(desk: Running) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=desk.http, headers=headers, timeout=30) as client:
        yield client


async def say(api: httpx.AsyncClient, eid: str, *fragments: dict[str, object]) -> httpx.Response:
    return await api.post(f"/v1/engagements/{eid}/transcript", json={"fragments": list(fragments)})


async def test_what_was_said_before_the_accept_arrives_on_accept_then_the_rest_live(
    desk: Running, api: httpx.AsyncClient
):
    async with AgentClient.connect(desk.ws, token("ann")) as ann:
        await ann.set_status("ready")
        eid = (await api.post("/v1/engagements", json={"queue": "calls"})).json()["id"]
        ring = await ann.next_event("ring")
        said = await say(
            api,
            eid,
            {"speaker": "bot", "text": "Hello, what is your order number?"},
            {"speaker": "consumer", "text": "It is A-1042", "ts": 1795000000.5},
        )
        assert said.status_code == 202 and said.json()["accepted"] == 2
        assert not [e for e in ann.drain() if isinstance(e, Transcript)]  # ringing is not handling

        await ann.accept(ring.offer)
        so_far = await ann.next_event("transcript")
        assert [(f.speaker, f.text) for f in so_far.fragments] == [
            ("bot", "Hello, what is your order number?"),
            ("consumer", "It is A-1042"),
        ]
        assert so_far.fragments[1].ts == 1795000000.5

        # a partial, then its final with the same id: the desktop replaces it, never shows it twice
        await say(api, eid, {"id": "u7", "speaker": "consumer", "text": "I want a ref", "final": False})
        partial = await ann.next_event("transcript")
        await say(api, eid, {"id": "u7", "speaker": "consumer", "text": "I want a refund."})
        final = await ann.next_event("transcript")
        assert (partial.fragments[0].id, partial.fragments[0].final) == ("u7", False)
        done = final.fragments[0]
        assert (done.id, done.final, done.text) == ("u7", True, "I want a refund.")

        # without ids, a final replaces that speaker's latest partial
        await say(api, eid, {"speaker": "agent", "text": "Let me", "final": False})
        p2 = (await ann.next_event("transcript")).fragments[0]
        await say(api, eid, {"speaker": "agent", "text": "Let me check that for you."})
        f2 = (await ann.next_event("transcript")).fragments[0]
        assert f2.id == p2.id and f2.final

        record = (await api.get(f"/v1/engagements/{eid}")).json()
        assert record["transcript_count"] == 4
        hits = await ann.search(eid, "refund")
        assert [h.text for h in hits.hits] == ["I want a refund."]


async def test_a_media_server_streams_fragments_over_the_ingest_socket(desk: Running, api: httpx.AsyncClient):
    async with AgentClient.connect(desk.ws, token("ann")) as ann:
        await ann.set_status("ready")
        eid = (await api.post("/v1/engagements", json={"queue": "calls"})).json()["id"]
        await ann.accept((await ann.next_event("ring")).offer)
        async with connect(f"{desk.ws}/v1/ingest", additional_headers={"Authorization": f"Bearer {API_KEY}"}) as media:
            await media.send(json.dumps({"type": "hello", "id": "h"}))
            assert json.loads(await media.recv())["type"] == "welcome"
            for i in range(5):
                line = {"speaker": "consumer", "text": f"line {i}"}
                frame = {"type": "transcript", "id": i, "engagement": eid, "fragments": [line]}
                await media.send(json.dumps(frame))
                reply = json.loads(await media.recv())
                assert (reply["type"], reply["re"]) == ("ok", i)
            bad = {"type": "transcript", "id": "x", "engagement": "e-nope", "fragments": []}
            await media.send(json.dumps(bad))
            assert json.loads(await media.recv())["code"] == "not_found"
        lines = [(await ann.next_event("transcript")).fragments[0].text for _ in range(5)]
        assert lines == [f"line {i}" for i in range(5)]


async def test_one_ingest_socket_streams_two_calls_at_once_and_keeps_each_in_order(
    desk: Running, api: httpx.AsyncClient
):
    """A media server sends without waiting for answers: the calls are applied side by side, yet each
    call's lines reach its agent in the order spoken (a final after its partial stays final) and every
    answer comes back in the order of the frames, the malformed one's included."""
    async with AgentClient.connect(desk.ws, token("ann")) as ann, AgentClient.connect(desk.ws, token("ben")) as ben:
        calls = {}
        for agent in (ann, ben):
            await agent.set_status("ready")
            eid = (await api.post("/v1/engagements", json={"queue": "calls"})).json()["id"]
            await agent.accept((await agent.next_event("ring")).offer)
            calls[agent] = eid
        frames: list[str] = []
        for i in range(40):
            eid = calls[ann] if i % 2 == 0 else calls[ben]
            line = {"id": f"l{i // 4}", "speaker": "consumer", "text": f"line {i}", "final": i % 4 >= 2}
            frames.append(json.dumps({"type": "transcript", "id": i, "engagement": eid, "fragments": [line]}))
        frames.insert(21, "{not json")
        frames.append(json.dumps({"type": "ping", "id": "p"}))
        async with connect(f"{desk.ws}/v1/ingest", additional_headers={"Authorization": f"Bearer {API_KEY}"}) as media:
            await media.send(json.dumps({"type": "hello", "id": "h"}))
            assert json.loads(await media.recv())["type"] == "welcome"
            for frame in frames:
                await media.send(frame)
            replies = [json.loads(await media.recv()) for _ in frames]
        expected = [("ok", i) for i in range(21)] + [("error", None)] + [("ok", i) for i in range(21, 40)]
        assert [(r["type"], r.get("re")) for r in replies] == [*expected, ("pong", "p")]
        for agent, first in ((ann, 0), (ben, 1)):
            got = [(await agent.next_event("transcript")).fragments[0] for _ in range(20)]
            assert [f.text for f in got] == [f"line {i}" for i in range(first, 40, 2)]
            transcript = (await api.get(f"/v1/engagements/{calls[agent]}/transcript")).json()
            assert [(f["text"], f["final"]) for f in transcript["fragments"]] == [
                (f"line {i}", True) for i in range(first + 2, 40, 4)
            ]


async def test_the_ingest_socket_needs_the_key(desk: Running):
    async with connect(f"{desk.ws}/v1/ingest?token=wrong") as media:
        with pytest.raises(ConnectionClosed) as closed:
            await media.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_transcript_is_refused_where_transcription_is_off(desk: Running, api: httpx.AsyncClient):
    eid = (await api.post("/v1/engagements", json={"queue": "chat"})).json()["id"]
    r = await say(api, eid, {"speaker": "consumer", "text": "hi"})
    assert (r.status_code, r.json()["code"]) == (409, "not_enabled")
    bad = await api.post(f"/v1/engagements/{eid}/transcript", json={"fragments": [{"text": "no speaker"}]})
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_field")


async def test_search_folds_case_and_accents_needs_every_word_and_highlights(desk: Running, api: httpx.AsyncClient):
    async with AgentClient.connect(desk.ws, token("ann")) as ann, AgentClient.connect(desk.ws, token("ben")) as ben:
        await ann.set_status("ready")
        eid = (await api.post("/v1/engagements", json={"queue": "calls"})).json()["id"]
        await ann.accept((await ann.next_event("ring")).offer)
        await say(
            api,
            eid,
            {"speaker": "consumer", "text": "Le REMBOURSEMENT de la crème brûlée n'est pas arrivé"},
            {"speaker": "agent", "text": "Je vérifie le remboursement"},
            {"speaker": "consumer", "text": "Merci, Straße 12"},
        )
        result = await ann.search(eid, "remboursement CREME")
        assert [h.speaker for h in result.hits] == ["consumer"]
        hit = result.hits[0]
        assert [hit.text[a:b] for a, b in hit.spans] == ["REMBOURSEMENT", "crème"]
        assert [h.text for h in (await ann.search(eid, "remboursement")).hits] == [
            "Le REMBOURSEMENT de la crème brûlée n'est pas arrivé",
            "Je vérifie le remboursement",
        ]
        accents = (await ann.search(eid, "arrive brulee")).hits
        assert [accents[0].text[a:b] for a, b in accents[0].spans] == ["brûlée", "arrivé"]
        strasse = (await ann.search(eid, "strasse")).hits
        assert [strasse[0].text[a:b] for a, b in strasse[0].spans] == ["Straße"]
        assert (await ann.search(eid, "remboursement pizza")).hits == []
        with pytest.raises(RequestFailed) as refused:
            await ben.search(eid, "remboursement")
        assert refused.value.code == "not_yours"


async def test_a_transcript_of_ten_thousand_fragments_is_delivered_and_searched(desk: Running, api: httpx.AsyncClient):
    async with AgentClient.connect(desk.ws, token("ann")) as ann:
        await ann.set_status("ready")
        eid = (await api.post("/v1/engagements", json={"queue": "calls"})).json()["id"]
        ring = await ann.next_event("ring")
        for batch in range(10):
            fragments = [
                {"speaker": "agent" if i % 2 else "consumer", "text": f"Ligne {batch * 1000 + i}: le délai"}
                for i in range(1000)
            ]
            assert (await say(api, eid, *fragments)).status_code == 202
        await say(api, eid, {"speaker": "consumer", "text": "Numéro de suivi XK-99 introuvable"})
        await ann.accept(ring.offer)
        so_far = await ann.next_event("transcript", timeout=20)
        assert len(so_far.fragments) == 10_001
        result = await ann.search(eid, "numero SUIVI")  # how fast: loadtest/ and BENCHMARKS.md
        assert [h.text for h in result.hits] == ["Numéro de suivi XK-99 introuvable"]
        many = await ann.search(eid, "delai")
        assert len(many.hits) == 500  # capped


async def test_a_desktop_that_comes_back_without_resume_gets_the_transcript_so_far(
    desk: Running, api: httpx.AsyncClient
):
    async with AgentClient.connect(desk.ws, token("ann")) as ann:
        await ann.set_status("ready")
        eid = (await api.post("/v1/engagements", json={"queue": "calls"})).json()["id"]
        await ann.accept((await ann.next_event("ring")).offer)
        await say(api, eid, {"speaker": "consumer", "text": "Bonjour"}, {"speaker": "agent", "text": "Bonjour !"})
        await ann.next_event("transcript", where=lambda t: len(t.fragments) == 2)
    async with AgentClient.connect(desk.ws, token("ann")) as reloaded:  # a reloaded page: no resume_from
        so_far = await reloaded.next_event("transcript")
        assert [f.text for f in so_far.fragments] == ["Bonjour", "Bonjour !"]
    whole = await api.get(f"/v1/engagements/{eid}/transcript")
    assert [f["text"] for f in whole.json()["fragments"]] == ["Bonjour", "Bonjour !"]
