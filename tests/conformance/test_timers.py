"""The server's timers, waited on through the deadlines its frames carry (`expires_at`, `wrap_up_until`).

A test waits at most `--max-timer-wait` seconds on a timer; a server whose timers are all longer than
that has the test skipped, saying so.
"""

from __future__ import annotations

import pytest

from tests.conformance.harness import IDLE, Harness, actors, of
from tests.conformance.wire import Frame, Sock

SLACK_S = 3.0


def shortest(h: Harness, key: str, why: str, **wanted: object) -> Frame:
    candidates = [
        q
        for q in h.center.queues.values()
        if q["channel"] != "email" and q.get(key) is not None and h.center.able(q["id"])
        and all(q.get(k) == v for k, v in wanted.items())
    ]  # fmt: skip
    if not candidates:
        pytest.skip(f"{why}: no live queue with a {key}")
    queue = min(candidates, key=lambda q: float(q[key]))
    if queue[key] > h.target.max_timer_wait:
        pytest.skip(
            f"{why}: the shortest {key} is {queue[key]:g}s, over --max-timer-wait ({h.target.max_timer_wait:g}s)"
        )
    return queue


async def test_a_ring_nobody_answers_times_out_and_the_agent_goes_not_ready_missed(h: Harness) -> None:
    queue = shortest(h, "ring_timeout_s", "ring timeout", acceptance="manual")
    agent_id = h.center.able(queue["id"])[0]
    sock = await h.agent(agent_id, ready=True)
    eid = (await h.create(queue["id"]))["id"]
    ring = await sock.expect("ring", where=of(eid))
    cancelled = await sock.expect("ring_cancelled", offer=ring["offer"], timeout=queue["ring_timeout_s"] + SLACK_S)
    assert cancelled["reason"] == "timeout"
    missed = await sock.expect("status", where=lambda f: f["seq"] > cancelled["seq"])
    assert missed["status"] == "not_ready"
    assert missed["reason"] == "missed"  # the demo's (and the default) missed_reason
    record = await h.engagement(eid)
    assert record["state"] == "queued"  # waiting for the next agent; nobody else is ready
    assert actors(record)[-1] == "system"  # the ring's end is in the history, by the system
    await sock.refused({"type": "accept", "offer": ring["offer"]}, "not_found")


@pytest.mark.extension
async def test_a_missed_ring_is_an_expired_entry_at_its_deadline(h: Harness) -> None:
    queue = shortest(h, "ring_timeout_s", "ring timeout", acceptance="manual")
    agent_id = h.center.able(queue["id"])[0]
    sock = await h.agent(agent_id, ready=True)
    eid = (await h.create(queue["id"]))["id"]
    ring = await sock.expect("ring", where=of(eid))
    now = (await sock.ping())["server_time"]
    cancelled = await sock.expect("ring_cancelled", offer=ring["offer"], timeout=ring["expires_at"] - now + SLACK_S)
    assert cancelled["engagement"] == eid
    expired = [e for e in (await h.engagement(eid))["history"] if e["event"] == "expired"]
    assert expired and expired[0]["agent"] == agent_id and expired[0]["actor"] == "system"
    assert expired[0]["at"] >= ring["expires_at"] - 0.01


async def start(h: Harness, queue: Frame, agent_id: str) -> tuple[Sock, str]:
    """`agent_id` starts a conversation of `queue` (rung and accepting, or at once on an auto queue)."""
    if queue["acceptance"] == "manual":
        sock, ring = await h.call(agent_id, queue["id"])
        return sock, ring["engagement"]["id"]
    sock = await h.agent(agent_id, ready=True)
    eid = (await h.create(queue["id"]))["id"]
    await sock.expect("engagement", where=of(eid, "active"))
    return sock, eid


async def test_wrap_up_ends_by_itself_at_the_queues_limit(h: Harness) -> None:
    queue = shortest(h, "wrap_up_s", "wrap-up limit")
    agent_id = h.center.able(queue["id"])[0]
    sock, eid = await start(h, queue, agent_id)
    await sock.ok({"type": "end", "engagement": eid})
    await sock.expect("engagement", where=of(eid, "wrap_up"))
    closed = await sock.expect("engagement", where=of(eid, "closed"), timeout=queue["wrap_up_s"] + SLACK_S)
    assert closed["engagement"]["agent"] == agent_id
    assert actors(await h.engagement(eid))[-1] == "system"
    assert (await h.agent_info(agent_id))["activity"] in IDLE


@pytest.mark.extension
async def test_wrap_up_until_says_when_wrap_up_ends(h: Harness) -> None:
    queue = shortest(h, "wrap_up_s", "wrap-up limit")
    agent_id = h.center.able(queue["id"])[0]
    sock, eid = await start(h, queue, agent_id)
    await sock.ok({"type": "end", "engagement": eid})
    wrap = await sock.expect("engagement", where=of(eid, "wrap_up"))
    until = wrap["engagement"]["wrap_up_until"]
    now = (await sock.ping())["server_time"]
    assert until is not None and now <= until <= now + queue["wrap_up_s"] + 1
    await sock.expect("engagement", where=of(eid, "closed"), timeout=until - now + SLACK_S)
    last = (await h.engagement(eid))["history"][-1]
    assert (last["event"], last["actor"]) == ("closed", "system") and last["at"] >= until - 0.01
