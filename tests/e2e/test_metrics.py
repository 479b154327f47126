"""`/metrics`: a ring's life, the sockets and the queues, in Prometheus text."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from clients.agent import AgentClient
from tests.support import Running, token


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def test_metrics_show_a_rings_life(live: Running, api: httpx.AsyncClient):
    async with AgentClient.connect(live.ws, token("ann")) as ann, AgentClient.connect(live.ws, token("ben")) as ben:
        await ann.set_status("ready")
        await ben.set_status("ready")
        await api.post("/v1/engagements", json={"queue": "calls"})
        first = await ann.next_event("ring")
        await ann.decline(first.offer)
        await ben.accept((await ben.next_event("ring")).offer)
        await ann.set_status("not_ready", "lunch")
        await ben.set_status("not_ready", "lunch")  # deferred: ben is on the call
        await api.post("/v1/engagements", json={"queue": "calls"})  # nobody free: it waits
        text = (await api.get("/metrics")).text
    m = samples(text)
    assert m[("switchboard_rings_total", (("outcome", "offered"),))] == 2
    assert m[("switchboard_rings_total", (("outcome", "declined"),))] == 1
    assert m[("switchboard_rings_total", (("outcome", "accepted"),))] == 1
    assert m[("switchboard_ring_latency_seconds_count", ())] == 1  # the first ring only; a re-ring is not latency
    assert m[("switchboard_connections", (("role", "agent"),))] == 2
    assert m[("switchboard_queue_waiting", (("queue", "calls"),))] == 1
    assert m[("switchboard_requests_total", (("frame", "accept"), ("result", "ok")))] == 1
    assert m[("switchboard_events_published_total", (("kind", "agent"),))] > 0
    assert m[("switchboard_events_delivered_total", ())] > 0
