"""The HTTP API: engagements (create, read, transcript, messages, end), queues, agents, health, metrics,
and errors as JSON with a `code`."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.conformance.harness import IDLE, Harness

# DESIGN.md's engagement object; this implementation adds queue_name, subject, ended_at and wrap_up_until
ENGAGEMENT_FIELDS = {
    "id", "queue", "channel", "state", "priority", "consumer", "variables", "summary", "profile", "agent",
    "notes", "dispositions", "messages", "transcript_count", "history", "created_at",
}  # fmt: skip
ENGAGEMENT_EXTENSIONS = {"queue_name", "subject", "ended_at", "wrap_up_until"}
QUEUE_FIELDS = {
    "id", "name", "channel", "acceptance", "strategy", "ring_timeout_s", "wrap_up_s", "dispositions",
    "disposition_required", "transcription", "stats",
}  # fmt: skip
QUEUE_EXTENSIONS = {"overflow_queue", "overflow_after_s"}
AGENT_FIELDS = {"id", "name", "queues", "capacity", "status", "reason", "activity"}
AGENT_EXTENSIONS = {"next_status", "next_reason", "connected", "engagements", "offers"}


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code, body
    assert isinstance(body.get("message"), str)


async def test_create_and_read_an_engagement(h: Harness) -> None:
    queue = h.center.find_queue("a manual voice queue", channel="voice", acceptance="manual")
    created = await h.create(
        queue["id"],
        consumer={"id": "cust-9", "name": "Ana", "phone": "+1 555 0100"},
        variables={"vip": True},
        priority=2,
    )
    assert set(created) >= ENGAGEMENT_FIELDS
    assert created["state"] == "queued"  # nobody is ready
    record = await h.engagement(created["id"])
    assert set(record) >= ENGAGEMENT_FIELDS and "consumer_token" not in record
    assert (record["id"], record["queue"], record["channel"]) == (created["id"], queue["id"], "voice")
    assert record["consumer"]["name"] == "Ana" and record["variables"] == {"vip": True} and record["priority"] == 2
    entry = record["history"][0]
    assert entry["actor"] == "api" and isinstance(entry["event"], str) and isinstance(entry["at"], float)
    url = f"{h.target.http}/v1/engagements/{created['id']}"
    async with httpx.AsyncClient(timeout=10) as anonymous:
        assert_error(await anonymous.get(url), 401, "unauthorized")
    assert_error(await h.api.get("/v1/engagements/e-no-such-engagement"), 404, "not_found")


@pytest.mark.extension
async def test_engagement_extensions_over_http(h: Harness) -> None:
    """The consumer token, the engagement's extra fields, `created` in the history, token reads, and
    `GET /v1/engagements/{id}/transcript`."""
    queue = h.center.find_queue("a manual voice queue", channel="voice", acceptance="manual")
    created = await h.create(queue["id"], subject="About my order")
    assert isinstance(created["consumer_token"], str) and created["consumer_token"]
    assert set(created) >= ENGAGEMENT_EXTENSIONS
    record = await h.engagement(created["id"])
    assert set(record) >= ENGAGEMENT_EXTENSIONS and record["queue_name"] == queue["name"]
    assert record["subject"] == "About my order" and record["ended_at"] is None and record["wrap_up_until"] is None
    assert record["history"][0]["event"] == "created"
    # engagement reads take the API key or any valid token
    url = f"{h.target.http}/v1/engagements/{created['id']}"
    async with httpx.AsyncClient(timeout=10) as anonymous:
        token = h.target.token(h.center.order[0])
        with_token = await anonymous.get(url, headers={"Authorization": f"Bearer {token}"})
        assert with_token.status_code == 200 and with_token.json()["id"] == created["id"]
        transcript = await anonymous.get(f"{url}/transcript", headers={"Authorization": f"Bearer {token}"})
        assert transcript.status_code == 200 and transcript.json() == {"engagement": created["id"], "fragments": []}
        assert_error(await anonymous.get(f"{url}/transcript"), 401, "unauthorized")


async def test_creating_needs_the_api_key_and_a_valid_body(h: Harness) -> None:
    queue = h.center.find_queue("any queue with an agent")
    async with httpx.AsyncClient(base_url=h.target.http, timeout=10) as anonymous:
        assert_error(await anonymous.post("/v1/engagements", json={"queue": queue["id"]}), 401, "unauthorized")
        wrong = {"Authorization": "Bearer not-the-key"}
        assert_error(
            await anonymous.post("/v1/engagements", json={"queue": queue["id"]}, headers=wrong), 401, "unauthorized"
        )
    assert_error(await h.api.post("/v1/engagements", json={"queue": "no-such-queue"}), 422, "unknown_queue")
    assert_error(
        await h.api.post("/v1/engagements", json={"queue": queue["id"], "colour": "blue"}), 400, "invalid_field"
    )
    assert_error(await h.api.post("/v1/engagements", json={"priority": 1}), 400, "invalid_field")
    assert_error(
        await h.api.post("/v1/engagements", json={"queue": queue["id"], "priority": "high"}), 400, "invalid_field"
    )
    bad_json = await h.api.post("/v1/engagements", content=b"{not json", headers={"content-type": "application/json"})
    assert_error(bad_json, 400, "invalid_body")
    waiting = (await h.api.get(f"/v1/queues/{queue['id']}")).json()["stats"]["waiting"]
    assert waiting == 0  # none of these created anything (and every earlier test ended what it created)


@pytest.mark.extension
async def test_variables_are_scalars_and_bodies_are_bounded(h: Harness) -> None:
    queue = h.center.find_queue("any queue with an agent")
    nested = {"queue": queue["id"], "variables": {"cart": {"items": 3}}}
    assert_error(await h.api.post("/v1/engagements", json=nested), 400, "invalid_field")  # scalars only
    huge = b'{"queue": "' + queue["id"].encode() + b'", "summary": "' + b"x" * (2 << 20) + b'"}'
    assert_error(
        await h.api.post("/v1/engagements", content=huge, headers={"content-type": "application/json"}),
        413,
        "too_large",
    )
    assert (await h.api.get(f"/v1/queues/{queue['id']}")).json()["stats"]["waiting"] == 0


async def test_transcript_and_messages_over_http(h: Harness) -> None:
    voice = h.center.find_queue("a voice queue with transcription", channel="voice", transcription=True)
    chat = h.center.find_queue("a chat queue without transcription", channel="chat", transcription=False)
    call = (await h.create(voice["id"]))["id"]
    fragments = [{"id": "x1", "speaker": "consumer", "text": "Hello", "final": False, "ts": 1700000000.5}]
    posted = await h.api.post(f"/v1/engagements/{call}/transcript", json={"fragments": fragments})
    assert posted.status_code == 202, posted.text
    final = await h.api.post(
        f"/v1/engagements/{call}/transcript", json={"fragments": [{"speaker": "consumer", "text": "Hello there"}]}
    )
    assert final.status_code == 202, final.text
    assert (await h.engagement(call))["transcript_count"] == 1  # without an id, a final replaces the partial
    bad = await h.api.post(f"/v1/engagements/{call}/transcript", json={"fragments": [{"text": "no speaker"}]})
    assert_error(bad, 400, "invalid_field")
    assert_error(await h.api.post("/v1/engagements/e-nope/transcript", json={"fragments": []}), 404, "not_found")

    thread = (await h.create(chat["id"]))["id"]
    no_transcript = await h.api.post(
        f"/v1/engagements/{thread}/transcript", json={"fragments": [{"speaker": "a", "text": "b"}]}
    )
    assert_error(no_transcript, 409, "not_enabled")
    said = await h.api.post(f"/v1/engagements/{thread}/messages", json={"text": "Anyone there?"})
    assert said.status_code == 202, said.text
    assert [m["text"] for m in (await h.engagement(thread))["messages"]] == ["Anyone there?"]
    assert_error(await h.api.post(f"/v1/engagements/{thread}/messages", json={}), 400, "invalid_field")

    ended = await h.api.post(f"/v1/engagements/{call}/end")
    assert ended.status_code == 200, ended.text
    assert (await h.engagement(call))["state"] == "abandoned"  # the consumer left while waiting
    late = await h.api.post(f"/v1/engagements/{call}/transcript", json={"fragments": [{"speaker": "a", "text": "b"}]})
    assert_error(late, 409, "invalid_state")
    assert_error(await h.api.post("/v1/engagements/e-nope/end"), 404, "not_found")


@pytest.mark.extension
async def test_transcript_and_messages_extensions_over_http(h: Harness) -> None:
    """The bodies of the 202s, `GET .../transcript`, a message's id, direction and `sender`, and `/end`
    answering with the engagement (again when it is already over)."""
    voice = h.center.find_queue("a voice queue with transcription", channel="voice", transcription=True)
    chat = h.center.find_queue("a chat queue without transcription", channel="chat", transcription=False)
    call = (await h.create(voice["id"]))["id"]
    fragments = [{"id": "x1", "speaker": "consumer", "text": "Hello", "final": False, "ts": 1700000000.5}]
    posted = await h.api.post(f"/v1/engagements/{call}/transcript", json={"fragments": fragments})
    assert posted.status_code == 202 and posted.json() == {"accepted": 1, "fragments": ["x1"]}
    final = await h.api.post(
        f"/v1/engagements/{call}/transcript", json={"fragments": [{"speaker": "consumer", "text": "Hello there"}]}
    )
    assert final.json()["fragments"] == ["x1"]  # without an id, a final replaces that speaker's latest partial
    whole = (await h.api.get(f"/v1/engagements/{call}/transcript")).json()["fragments"]
    assert [(f["id"], f["text"], f["final"]) for f in whole] == [("x1", "Hello there", True)]
    assert_error(await h.api.get("/v1/engagements/e-nope/transcript"), 404, "not_found")

    thread = (await h.create(chat["id"]))["id"]
    said = await h.api.post(
        f"/v1/engagements/{thread}/messages", json={"text": "Anyone there?", "sender": "Web visitor"}
    )
    assert said.status_code == 202 and isinstance(said.json()["id"], str)
    messages = (await h.engagement(thread))["messages"]
    assert [(m["id"], m["direction"], m["sender"], m["text"]) for m in messages] == [
        (said.json()["id"], "in", "Web visitor", "Anyone there?")
    ]

    ended = await h.api.post(f"/v1/engagements/{call}/end")
    assert ended.status_code == 200 and ended.json()["state"] == "abandoned"
    again = await h.api.post(f"/v1/engagements/{call}/end")  # a flow may retry its hang-up
    assert again.status_code == 200 and again.json()["state"] == "abandoned"


async def test_queues_and_agents_are_json_arrays_for_any_credential_and_none_without(h: Harness) -> None:
    supervisor = {"Authorization": f"Bearer {h.target.token(h.target.supervisor, 'supervisor')}"}
    agent = {"Authorization": f"Bearer {h.target.token(h.center.order[0])}"}
    async with httpx.AsyncClient(base_url=h.target.http, timeout=10) as anonymous:
        for path in ("/v1/queues", "/v1/agents", f"/v1/queues/{next(iter(h.center.queues))}"):
            assert_error(await anonymous.get(path), 401, "unauthorized")
            assert_error(await anonymous.get(path, headers={"Authorization": "Bearer nonsense"}), 401, "unauthorized")
            for credential in (supervisor, agent):
                assert (await anonymous.get(path, headers=credential)).status_code == 200, (path, credential)
    queues = (await h.api.get("/v1/queues")).json()
    agents = (await h.api.get("/v1/agents")).json()
    assert isinstance(queues, list) and isinstance(agents, list) and queues and agents
    for q in queues:
        assert set(q) >= QUEUE_FIELDS, q
        assert q["channel"] in ("voice", "video", "chat", "email") and q["acceptance"] in ("manual", "auto")
        assert q["strategy"] in ("longest_idle", "round_robin", "most_skilled", "ring_all")
        assert all({"code", "label"} <= set(d) for d in q["dispositions"])
        assert {"waiting", "longest_wait_s", "agents"} <= set(q["stats"])
        assert isinstance(q["stats"]["agents"], dict)
        assert all(isinstance(n, int) for n in q["stats"]["agents"].values())
        one = await h.api.get(f"/v1/queues/{q['id']}")
        assert one.status_code == 200 and one.json()["id"] == q["id"]
    assert_error(await h.api.get("/v1/queues/no-such-queue"), 404, "not_found")
    for a in agents:
        assert set(a) >= AGENT_FIELDS, a
        assert all({"id", "priority"} <= set(m) for m in a["queues"])
        assert all(isinstance(n, int) for n in a["capacity"].values())
        assert a["status"] in ("offline", "ready", "not_ready")
        assert a["activity"] in ("ringing", "busy", "wrap_up", *IDLE)


@pytest.mark.extension
async def test_queue_and_agent_extensions(h: Harness) -> None:
    """Queues' overflow, `stats.available` and counts for every status; agents' next status, `connected`,
    `engagements`, `offers` and `activity: idle`; `GET /v1/agents/{id}`."""
    for q in (await h.api.get("/v1/queues")).json():
        assert set(q) >= QUEUE_EXTENSIONS and isinstance(q["stats"]["available"], int)
        assert {"offline", "ready", "not_ready"} <= set(q["stats"]["agents"])
    for a in (await h.api.get("/v1/agents")).json():
        assert set(a) >= AGENT_EXTENSIONS
        assert isinstance(a["connected"], bool) and isinstance(a["engagements"], list)
        assert isinstance(a["offers"], list) and a["activity"] in ("idle", "ringing", "busy", "wrap_up")
        one = await h.api.get(f"/v1/agents/{a['id']}")
        assert one.status_code == 200 and one.json()["id"] == a["id"]
    assert_error(await h.api.get("/v1/agents/nobody-by-that-name"), 404, "not_found")
    async with httpx.AsyncClient(base_url=h.target.http, timeout=10) as anonymous:
        assert_error(await anonymous.get(f"/v1/agents/{h.center.order[0]}"), 401, "unauthorized")


async def test_queue_stats_count_waiting_engagements(h: Harness) -> None:
    queue = h.center.find_queue("a manual voice queue", channel="voice", acceptance="manual")
    before = (await h.api.get(f"/v1/queues/{queue['id']}")).json()["stats"]["waiting"]
    await h.create(queue["id"])
    await h.create(queue["id"])
    stats = (await h.api.get(f"/v1/queues/{queue['id']}")).json()["stats"]
    assert stats["waiting"] == before + 2 and stats["longest_wait_s"] >= 0


async def test_health_readiness_and_metrics(h: Harness) -> None:
    async with httpx.AsyncClient(base_url=h.target.http, timeout=10) as anonymous:
        assert (await anonymous.get("/healthz")).status_code == 200
        assert (await anonymous.get("/readyz")).status_code == 200
        metrics = await anonymous.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")  # Prometheus text


@pytest.mark.extension
async def test_health_bodies_and_metric_names(h: Harness) -> None:
    async with httpx.AsyncClient(base_url=h.target.http, timeout=10) as anonymous:
        assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
        assert (await anonymous.get("/readyz")).json() == {"status": "ready"}
        metrics = await anonymous.get("/metrics")
    for name in (
        "switchboard_rings_total", "switchboard_ring_latency_seconds", "switchboard_connections",
        "switchboard_queue_waiting", "switchboard_queue_longest_wait_seconds", "switchboard_events_published_total",
        "switchboard_events_delivered_total", "switchboard_requests_total", "switchboard_resumes_total",
        "switchboard_slow_consumer_disconnects_total", "switchboard_store_errors_total",
    ):  # fmt: skip
        assert f"# TYPE {name}" in metrics.text or f"\n{name}" in metrics.text, name


async def test_unknown_paths_and_wrong_methods_are_json_errors(h: Harness) -> None:
    async with httpx.AsyncClient(base_url=h.target.http, timeout=10) as anonymous:
        assert_error(await anonymous.get("/v1/no-such-thing"), 404, "not_found")
        assert_error(await anonymous.delete("/v1/queues"), 405, "method_not_allowed")


@pytest.mark.extension
async def test_a_full_queue_refuses_new_engagements(h: Harness) -> None:
    """`max_waiting` (not in DESIGN.md, nor in `GET /v1/queues`): probe each queue with up to three engagements."""
    for queue in h.center.queues.values():
        for _ in range(3):
            response = await h.api.post("/v1/engagements", json={"queue": queue["id"]})
            if response.status_code == 201:
                h.engagements.append(response.json()["id"])
                continue
            assert_error(response, 429, "queue_full")
            return
    pytest.skip("no queue refuses a third waiting engagement (no small `max_waiting` configured)")


async def test_a_create_retried_with_the_same_idempotency_key_gets_the_same_engagement(h: Harness) -> None:
    queue = h.center.find_queue("a manual voice queue", channel="voice", acceptance="manual")
    key = {"Idempotency-Key": f"conformance-{uuid.uuid4().hex}"}
    body = {"queue": queue["id"], "variables": {"attempt": 1}}
    first = await h.api.post("/v1/engagements", json=body, headers=key)
    assert first.status_code == 201, first.text
    h.engagements.append(first.json()["id"])
    again = await h.api.post("/v1/engagements", json=body, headers=key)
    assert again.status_code in (200, 201) and again.json()["id"] == first.json()["id"]
    other = await h.api.post("/v1/engagements", json={**body, "variables": {"attempt": 2}}, headers=key)
    assert other.status_code in (409, 422) and isinstance(other.json()["code"], str)
