"""The HTTP API: ingest with its API key, read views, and errors that are JSON with a `code`."""

from __future__ import annotations

import httpx

from clients.agent import AgentClient
from server.auth import verify
from tests.support import SECRET, Running, token


async def test_ingest_needs_the_api_key(live: Running):
    async with httpx.AsyncClient(base_url=live.http) as anonymous:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dGVzdC1rZXk="}):
            r = await anonymous.post("/v1/engagements", json={"queue": "calls"}, headers=headers)
            assert r.status_code == 401
            assert r.json()["code"] == "unauthorized"


async def test_bad_bodies_are_4xx_with_a_code_naming_the_problem(live: Running, api: httpx.AsyncClient):
    cases = [
        (b"{nope", 400, "invalid_body", "JSON"),
        (b"", 400, "invalid_body", "JSON object"),
        (b'{"queue": "calls", "varibles": {}}', 400, "invalid_field", "varibles"),
        (b'{"queue": 7}', 400, "invalid_field", "$.queue"),
        (b'{"consumer": {}}', 400, "invalid_field", "queue"),
        (b'{"queue": "calls", "priority": "high"}', 400, "invalid_field", "$.priority"),
        (b'{"queue": "calls", "variables": {"x": [1]}}', 400, "invalid_field", "variables"),
        (b'{"queue": "nowhere"}', 422, "unknown_queue", "nowhere"),
    ]
    for body, status, code, mentioned in cases:
        r = await api.post("/v1/engagements", content=body, headers={"content-type": "application/json"})
        assert (r.status_code, r.json()["code"]) == (status, code), (body, r.text)
        assert mentioned in r.json()["message"], (body, r.text)
    queues = (await api.get("/v1/queues")).json()
    assert all(q["stats"]["waiting"] == 0 for q in queues)  # nothing was created by any of them


async def test_a_body_over_the_limit_is_413(live: Running, api: httpx.AsyncClient):
    r = await api.post("/v1/engagements", json={"queue": "calls", "summary": "x" * (2 << 20)})
    assert r.status_code == 413 and r.json()["code"] == "too_large"


async def test_engagement_reads_need_a_key_or_a_token(live: Running, api: httpx.AsyncClient):
    eid = (await api.post("/v1/engagements", json={"queue": "calls"})).json()["id"]
    consumer = (await api.post("/v1/engagements", json={"queue": "calls"})).json()["consumer_token"]
    async with httpx.AsyncClient(base_url=live.http) as other:
        assert (await other.get(f"/v1/engagements/{eid}")).status_code == 401
        as_agent = await other.get(f"/v1/engagements/{eid}", headers={"Authorization": f"Bearer {token('ann')}"})
        assert as_agent.status_code == 200 and as_agent.json()["id"] == eid
        for path in (f"/v1/engagements/{eid}", f"/v1/engagements/{eid}/transcript"):  # notes, profile, history
            as_consumer = await other.get(path, headers={"Authorization": f"Bearer {consumer}"})
            assert (as_consumer.status_code, as_consumer.json()["code"]) == (403, "forbidden")
    missing = await api.get("/v1/engagements/e-missing")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    end_missing = await api.post("/v1/engagements/e-missing/end")
    assert (end_missing.status_code, end_missing.json()["code"]) == (404, "not_found")


async def test_engagement_object_has_the_contract_fields(live: Running, api: httpx.AsyncClient):
    created = await api.post(
        "/v1/engagements",
        json={"queue": "calls", "consumer": {"id": "c-1"}, "variables": {"lang": "fr"}, "priority": 3},
    )
    body = created.json()
    for field in (
        "id", "queue", "channel", "state", "priority", "consumer", "variables", "summary", "profile", "agent",
        "notes", "dispositions", "messages", "transcript_count", "history", "created_at",
    ):  # fmt: skip
        assert field in body, field
    assert body["priority"] == 3 and body["state"] == "queued" and body["channel"] == "voice"
    assert body["profile"]["name"] == "Jeanne Dupont" and body["profile"]["fields"] == {"tier": "gold", "lang": "fr"}
    fetched = (await api.get(f"/v1/engagements/{body['id']}")).json()
    token = body.pop("consumer_token")  # only the create answer carries it, for the consumer's socket
    assert verify(SECRET, token).sub == body["id"]
    assert fetched == body


async def test_queues_and_agents_show_config_and_live_state(live: Running, api: httpx.AsyncClient):
    async with AgentClient.connect(live.ws, token("ann")) as ann:
        await ann.set_status("ready")
        await ann.set_status("not_ready", "training")
        await api.post("/v1/engagements", json={"queue": "calls"})
        await api.post("/v1/engagements", json={"queue": "calls", "priority": 1})
        queues = (await api.get("/v1/queues")).json()
        assert isinstance(queues, list) and [q["id"] for q in queues] == ["calls", "chat", "quick"]
        calls = queues[0]
        expected = {
            "id", "name", "channel", "acceptance", "strategy", "ring_timeout_s", "wrap_up_s", "dispositions",
            "disposition_required", "transcription", "stats",
        }  # fmt: skip
        assert expected <= set(calls)
        assert calls["name"] == "Calls" and calls["acceptance"] == "manual" and calls["strategy"] == "longest_idle"
        assert calls["dispositions"] == [
            {"code": "resolved", "label": "Resolved"},
            {"code": "callback", "label": "Call back"},
        ]
        assert calls["disposition_required"] is True and calls["transcription"] is True
        assert calls["stats"]["waiting"] == 2
        assert calls["stats"]["longest_wait_s"] >= 0
        assert calls["stats"]["agents"] == {"offline": 2, "ready": 0, "not_ready": 1}
        one = (await api.get("/v1/queues/calls")).json()
        assert one["stats"]["waiting"] == 2
        assert (await api.get("/v1/queues/nope")).status_code == 404

        agents = (await api.get("/v1/agents")).json()
        assert [a["id"] for a in agents] == ["ann", "ben", "cat"]
        a = agents[0]
        assert {"id", "name", "queues", "capacity", "status", "reason", "activity"} <= set(a)
        assert a["queues"] == [
            {"id": "calls", "priority": 1},
            {"id": "chat", "priority": 1},
            {"id": "quick", "priority": 1},
        ]
        assert a["capacity"] == {"voice": 1, "video": 1, "chat": 3, "email": 5}
        assert (a["status"], a["reason"], a["activity"], a["connected"]) == ("not_ready", "training", "idle", True)
        assert agents[1]["status"] == "offline"


async def test_health_readiness_and_unknown_paths(live: Running):
    async with httpx.AsyncClient(base_url=live.http) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).json() == {"status": "ready"}
        lost = await client.get("/v1/nothing-here")
        assert (lost.status_code, lost.json()["code"]) == (404, "not_found")
        wrong = await client.delete("/v1/queues")
        assert (wrong.status_code, wrong.json()["code"]) == (405, "method_not_allowed")
