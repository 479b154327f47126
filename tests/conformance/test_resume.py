"""Event numbering and resume: per-agent `seq` across sockets, `resume_from` replaying exactly what was
missed, a fresh snapshot when the gap is too old, and rings re-sent on a fresh sign-in."""

from __future__ import annotations

import pytest

from tests.conformance.harness import Harness, ids, of
from tests.conformance.wire import Frame, NoFrame, Sock


def events(sock: Sock) -> list[Frame]:
    return [f for f in sock.log if "seq" in f and f["type"] != "welcome"]


async def test_seq_is_per_agent_and_the_same_on_every_socket(h: Harness) -> None:
    agent_id = h.center.order[0]
    first = await h.agent(agent_id)
    second = await h.agent(agent_id)  # a second tab: it sees the same events with the same seq
    assert second.welcome["seq"] >= first.welcome["seq"]
    sup = await h.supervisor()
    for reason in ("one", "two", "three"):
        await sup.ok({"type": "set_agent_status", "agent": agent_id, "status": "not_ready", "reason": reason})
    await h.ready(first)
    last = await second.expect("status", status="ready")
    await first.expect("status", status="ready")
    mine = [(f["seq"], f["type"], f.get("reason")) for f in events(first) if f["seq"] > second.welcome["seq"]]
    theirs = [(f["seq"], f["type"], f.get("reason")) for f in events(second)]
    assert mine == theirs and theirs[-1][0] == last["seq"]
    assert [s for s, _, _ in theirs] == list(range(second.welcome["seq"] + 1, last["seq"] + 1))
    assert not [f for f in first.log if f["type"] in ("ok", "pong") and "seq" in f]  # replies carry no seq


async def test_resume_replays_the_missed_events_with_their_original_seq(h: Harness) -> None:
    agent_id = h.center.order[0]
    watcher = await h.agent(agent_id)  # stays connected, so the agent is signed in throughout
    tab = await h.agent(agent_id)
    await tab.ping()
    seen = tab.last_seq
    assert seen is not None
    await tab.close()
    sup = await h.supervisor()
    for reason in ("away-1", "away-2", "away-3"):
        await sup.ok({"type": "set_agent_status", "agent": agent_id, "status": "not_ready", "reason": reason})
    missed = await watcher.expect("status", reason="away-3")
    back = await h.agent(agent_id, resume_from=seen)  # `epoch` is optional (an extension)
    assert back.welcome["resumed"] is True
    assert back.welcome["seq"] >= missed["seq"]
    await back.ping()
    replayed = events(back)
    assert [f["seq"] for f in replayed][: missed["seq"] - seen] == list(range(seen + 1, missed["seq"] + 1))
    expected = [(f["seq"], f["type"], f.get("reason")) for f in events(watcher) if seen < f["seq"] <= missed["seq"]]
    assert [(f["seq"], f["type"], f.get("reason")) for f in replayed if f["seq"] <= missed["seq"]] == expected
    assert back.log[0]["type"] == "welcome"  # the replay follows welcome
    # then live events, numbered on
    await sup.ok({"type": "set_agent_status", "agent": agent_id, "status": "not_ready", "reason": "live"})
    live = await back.expect("status", reason="live")
    assert live["seq"] == (await watcher.expect("status", reason="live"))["seq"]


async def test_resume_from_the_latest_seq_replays_nothing(h: Harness) -> None:
    agent_id = h.center.order[1]
    tab = await h.agent(agent_id)
    seen = tab.welcome["seq"]
    back = await h.agent(agent_id, resume_from=seen)
    assert back.welcome["resumed"] is True
    await back.ping()
    assert not [f for f in events(back) if f["seq"] <= seen]


@pytest.mark.extension
async def test_resume_with_the_same_epoch(h: Harness) -> None:
    agent_id = h.center.order[1]
    tab = await h.agent(agent_id)
    back = await h.agent(agent_id, resume_from=tab.welcome["seq"], epoch=tab.welcome["epoch"])
    assert back.welcome["resumed"] is True and back.welcome["epoch"] == tab.welcome["epoch"]


@pytest.mark.extension
async def test_resume_with_another_epoch_is_a_fresh_snapshot(h: Harness) -> None:
    agent_id = h.center.order[1]
    tab = await h.agent(agent_id)
    await h.ready(tab)
    back = await h.agent(agent_id, resume_from=0, epoch=tab.welcome["epoch"] + "-another-store")
    assert back.welcome["resumed"] is False
    assert back.welcome["status"] == "ready"  # a snapshot of the agent as they are now
    assert back.welcome["seq"] >= (tab.last_seq or 0)


async def test_resume_from_a_gap_older_than_the_log_is_a_fresh_snapshot(h: Harness) -> None:
    agent_id = h.center.order[2]
    watcher = await h.agent(agent_id)
    start = watcher.welcome["seq"]
    sup = await h.supervisor()
    count = 60
    for i in range(count):  # more events than the suite's own server keeps (40)
        await sup.send({"type": "set_agent_status", "agent": agent_id, "status": "not_ready", "reason": f"r{i}"})
    last = await watcher.expect("status", reason=f"r{count - 1}", timeout=10)
    back = await h.agent(agent_id, resume_from=start)
    if back.welcome["resumed"]:
        await back.ping()
        replayed = [f["seq"] for f in events(back) if f["seq"] <= last["seq"]]
        assert replayed == list(range(start + 1, last["seq"] + 1))
        pytest.skip(f"the server keeps more than {count} events per agent: the gap is not too old here")
    assert back.welcome["status"] == "not_ready"
    assert (await h.agent_info(agent_id))["reason"] == f"r{count - 1}"
    assert back.welcome["seq"] >= last["seq"]
    await back.ping()
    assert not [f for f in events(back) if f["seq"] <= back.welcome["seq"]]  # nothing old is replayed


async def test_a_ring_still_running_is_sent_again_on_reconnecting(h: Harness) -> None:
    queue = h.center.find_queue("a manual voice queue", channel="voice", acceptance="manual")
    agent_id = h.center.able(queue["id"])[0]
    first = await h.agent(agent_id, ready=True)
    eid = (await h.create(queue["id"]))["id"]
    ring = await first.expect("ring", where=of(eid))
    await first.close()  # the desk's socket drops while the call rings, and it is back at once
    back = await h.agent(agent_id)
    again = await back.expect("ring", offer=ring["offer"])
    assert again["expires_at"] == ring["expires_at"]  # its original deadline
    assert again["engagement"]["id"] == eid and again["seq"] > back.welcome["seq"]
    await back.ok({"type": "accept", "offer": ring["offer"]})
    await back.expect("engagement", where=of(eid, "active"))


@pytest.mark.extension
async def test_a_fresh_sign_in_is_sent_the_rings_still_running(h: Harness) -> None:
    """A second tab: `welcome.offers` and `activity`, the ring sent again on every socket, not on a resume."""
    queue = h.center.find_queue("a manual voice queue", channel="voice", acceptance="manual")
    agent_id = h.center.able(queue["id"])[0]
    first = await h.agent(agent_id, ready=True)
    eid = (await h.create(queue["id"]))["id"]
    ring = await first.expect("ring", where=of(eid))
    fresh = await h.agent(agent_id)
    assert [(o["type"], o["offer"], o["expires_at"]) for o in fresh.welcome["offers"]] == [
        ("ring", ring["offer"], ring["expires_at"])
    ]
    assert fresh.welcome["offers"][0]["engagement"]["id"] == eid
    assert fresh.welcome["activity"] == "ringing"
    again = await fresh.expect("ring", offer=ring["offer"])
    assert again["expires_at"] == ring["expires_at"]  # its original deadline
    assert again["seq"] > fresh.welcome["seq"]
    resumed = await h.agent(agent_id, resume_from=fresh.last_seq)
    assert resumed.welcome["resumed"] is True and [o["offer"] for o in resumed.welcome["offers"]] == [ring["offer"]]
    await resumed.quiet("ring", where=lambda f: f["offer"] == ring["offer"])  # not repeated on a resume
    await resumed.ok({"type": "accept", "offer": ring["offer"]})
    await first.expect("engagement", where=of(eid, "active"))


async def test_a_fresh_sign_in_during_a_call_lists_it(h: Harness) -> None:
    queue = h.center.find_queue("a manual voice queue", channel="voice", acceptance="manual")
    sock, ring = await h.call(h.center.able(queue["id"])[0], queue["id"])
    eid = ring["engagement"]["id"]
    reload = await h.agent(sock.welcome["agent"])
    assert ids(reload.welcome["engagements"]) == [eid]
    await reload.ok({"type": "end", "engagement": eid})  # the reloaded page acts on it
    await reload.expect("engagement", where=of(eid, "wrap_up"))


@pytest.mark.extension
async def test_a_fresh_sign_in_during_a_call_gets_the_transcript_so_far(h: Harness) -> None:
    queue = h.center.find_queue(
        "a voice queue with transcription", channel="voice", acceptance="manual", transcription=True
    )
    sock, ring = await h.call(h.center.able(queue["id"])[0], queue["id"])
    eid = ring["engagement"]["id"]
    await h.api.post(f"/v1/engagements/{eid}/transcript", json={"fragments": [{"speaker": "consumer", "text": "Hi"}]})
    await sock.expect("transcript", engagement=eid)
    reload = await h.agent(sock.welcome["agent"])
    assert [e["id"] for e in reload.welcome["engagements"]] == [eid]
    assert reload.welcome["engagements"][0]["state"] == "active"
    so_far = await reload.expect("transcript", engagement=eid)
    assert [f["text"] for f in so_far["fragments"]] == ["Hi"]


async def test_back_within_the_grace_period_the_agent_is_as_before(h: Harness) -> None:
    agent_id = h.center.order[0]
    tab = await h.agent(agent_id, ready=True)
    await tab.close()
    await h.until_disconnected(agent_id)
    assert (await h.agent_info(agent_id))["status"] == "ready"  # kept during the grace period
    back = await h.agent(agent_id)
    assert back.welcome["status"] == "ready"


async def test_after_the_grace_period_rings_are_rescinded_and_the_agent_is_not_ready(h: Harness) -> None:
    live = [q for q in h.center.queues.values() if q["acceptance"] == "manual" and q["channel"] != "email"]
    queue = max((q for q in live if h.center.able(q["id"])), key=lambda q: q["ring_timeout_s"], default=None)
    if queue is None:
        pytest.skip("no manual queue with an agent")
    agent_id = h.center.able(queue["id"])[0]
    sup = await h.supervisor()
    tab = await h.agent(agent_id, ready=True)
    eid = (await h.create(queue["id"]))["id"]
    ring = await tab.expect("ring", where=of(eid))
    seen = tab.last_seq
    await tab.close()  # dropped with a ring running
    created_at = (await h.engagement(eid))["created_at"]
    wait = min(h.target.max_timer_wait, ring["expires_at"] - created_at - 1)
    try:
        lost = await sup.expect("agent_state", agent=agent_id, reason="connection_lost", timeout=wait)
    except NoFrame:
        pytest.skip(f"the grace period did not end within {wait:g}s (--max-timer-wait, or before the ring's deadline)")
    assert lost["status"] == "not_ready"
    info = await h.agent_info(agent_id)
    assert (info["status"], info["reason"]) == ("not_ready", "connection_lost")
    back = await h.agent(agent_id, resume_from=seen)
    assert back.welcome["resumed"] is True
    assert back.welcome["status"] == "not_ready"
    cancelled = await back.expect("ring_cancelled", offer=ring["offer"])
    assert cancelled["reason"] == "timeout"  # in their log, with its original seq
    assert cancelled["seq"] <= back.welcome["seq"]
    assert (await h.engagement(eid))["state"] == "queued"
