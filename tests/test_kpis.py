"""Queue and agent figures from histories the core really writes, on a hand-moved clock, with the
answers worked out by hand (docs/analytics.md has the definitions these follow)."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.model import AgentStatus, Channel, EngagementState, HistoryEntry
from server.core import lifecycle
from server.core.records import EngagementRec
from server.kpis import Ledger, Outcome
from tests.support import World, agent, make_config, voice_queue

S = EngagementState
DAY = 86_400.0 * 20_000  # some midnight


def center(*queues: dict[str, Any], agents: list[dict[str, Any]]) -> World:
    w = World(make_config(list(queues), agents), now=DAY)
    w.sign_in(*(a["id"] for a in agents))  # one second apart, from DAY
    return w


def at(w: World, t: float) -> World:
    w.now = DAY + t
    return w


def accept(w: World, who: str) -> str:
    return w.do(lambda tx: lifecycle.accept(tx, who, w.offer_of(who))).id


def finish(w: World, who: str, eid: str, ended: float, done: float) -> None:
    at(w, ended).do(lambda tx: lifecycle.end(tx, who, eid))
    at(w, done).do(lambda tx: lifecycle.wrap_up_done(tx, eid, f"agent:{who}", who))


def ledger(w: World, now: float) -> Ledger:
    engagements = list(w.store._engagements.values())
    return Ledger(engagements, [w.agent(a) for a in w.dir.agents], DAY + now)


def stats(w: World, queue: str, start: float, end: float, now: float | None = None) -> Any:
    members = w.dir.member_ids[queue]
    return ledger(w, end if now is None else now).queue_stats(queue, DAY + start, DAY + end, 20.0, members)


def test_answered_abandoned_service_level_asa_aht_and_occupancy_of_a_busy_hour():
    w = center(voice_queue(ring_timeout_s=60), agents=[agent("ann", "q"), agent("bob", "q")])
    e1 = at(w, 100).create()  # rings ann (idle longest)
    assert accept(at(w, 103), "ann") == e1  # waited 3 s
    e2 = at(w, 104).create()  # rings bob
    w.do(lambda tx: lifecycle.decline(tx, "bob", w.offer_of("bob")))  # no one else: rung again
    assert accept(at(w, 130), "bob") == e2  # waited 26 s: late
    e3 = at(w, 131).create()  # no one free
    at(w, 140).do(lambda tx: lifecycle.consumer_end(tx, e3))  # left after 9 s
    finish(w, "bob", e2, 150, 160)  # handled 30 s
    finish(w, "ann", e1, 163, 173)  # handled 70 s

    hour = stats(w, "q", 100, 200)
    assert (hour.offered, hour.answered, hour.abandoned, hour.handled) == (3, 2, 1, 2)
    assert hour.service_level == pytest.approx(1 / 3)  # e1 only, of the three whose wait ended
    assert hour.abandonment_rate == pytest.approx(1 / 3)
    assert hour.asa_s == pytest.approx((3 + 26) / 2)
    assert hour.aht_s == pytest.approx((70 + 30) / 2)
    assert hour.longest_wait_s == 0.0 and hour.max_wait_s == pytest.approx(26)
    assert hour.occupancy == pytest.approx((70 + 30) / (100 + 100))  # both signed in all along
    assert hour.window_s == pytest.approx(100) and hour.service_level_threshold_s == 20.0

    start = stats(w, "q", 100, 120)  # e2 still waiting at the end of this window; e1 not done yet
    assert (start.offered, start.answered, start.abandoned, start.handled) == (2, 1, 0, 0)
    assert start.service_level == 1.0 and start.aht_s is None
    assert start.longest_wait_s == pytest.approx(120 - 104)
    assert stats(w, "q", 135, 136).longest_wait_s == pytest.approx(136 - 131)

    quiet = stats(w, "q", 0, 50)
    assert (quiet.offered, quiet.service_level, quiet.asa_s, quiet.abandonment_rate) == (0, None, None, None)
    assert quiet.occupancy == 0.0


def test_what_is_not_known_yet_is_not_counted():
    w = center(voice_queue(ring_timeout_s=60), agents=[agent("ann", "q")])
    at(w, 100).create()
    accept(at(w, 130), "ann")
    then = stats(w, "q", 100, 125, now=125)  # the histories as they stood at 125: still waiting
    assert (then.offered, then.answered, then.longest_wait_s) == (1, 0, pytest.approx(25))
    assert stats(w, "q", 100, 140, now=125).longest_wait_s is None  # 140 is in the future


def test_a_release_counts_once_and_its_two_handlings_add_up():
    w = center(voice_queue(ring_timeout_s=60), agents=[agent("ann", "q"), agent("bob", "q")])
    eid = at(w, 100).create()
    accept(at(w, 102), "ann")
    at(w, 110).do(lambda tx: lifecycle.release(tx, "ann", eid))  # back in line, rung to bob first
    accept(at(w, 115), "bob")
    finish(w, "bob", eid, 130, 140)

    s = stats(w, "q", 0, 200)
    assert (s.offered, s.answered, s.abandoned, s.handled) == (1, 1, 0, 1)
    assert s.asa_s == pytest.approx(2) and s.service_level == 1.0
    assert s.aht_s == pytest.approx((110 - 102) + (140 - 115))
    book = ledger(w, 200)
    ann, bob = book.agent_stats("ann", DAY, DAY + 200), book.agent_stats("bob", DAY, DAY + 200)
    assert (ann.handled, ann.aht_s, bob.handled, bob.aht_s) == (1, pytest.approx(8), 1, pytest.approx(25))


def test_a_consumer_who_leaves_after_a_release_was_answered_not_abandoned():
    w = center(voice_queue(ring_timeout_s=60), agents=[agent("ann", "q")])
    eid = at(w, 100).create()
    accept(at(w, 101), "ann")
    at(w, 110).do(lambda tx: lifecycle.set_status(tx, "ann", AgentStatus.NOT_READY, "lunch", "agent:ann"))
    w.do(lambda tx: lifecycle.release(tx, "ann", eid))
    at(w, 120).do(lambda tx: lifecycle.consumer_end(tx, eid))
    assert w.engagement(eid).state is S.ABANDONED

    s = stats(w, "q", 0, 200)
    assert (s.offered, s.answered, s.abandoned, s.handled) == (1, 1, 0, 1)
    assert s.aht_s == pytest.approx(9) and s.abandonment_rate == 0.0


def test_a_transfer_to_another_queue_is_offered_and_answered_once_in_each():
    w = center(
        voice_queue("q", ring_timeout_s=60),
        voice_queue("vip", ring_timeout_s=60),
        agents=[agent("ann", "q"), agent("cat", "vip"), agent("dan", "vip")],
    )
    at(w, 50).do(lambda tx: lifecycle.set_status(tx, "cat", AgentStatus.NOT_READY, "break", "agent:cat"))
    at(w, 51).do(lambda tx: lifecycle.set_status(tx, "dan", AgentStatus.NOT_READY, "break", "agent:dan"))
    eid = at(w, 100).create("q")
    accept(at(w, 104), "ann")
    at(w, 120).do(lambda tx: lifecycle.transfer(tx, eid, "agent:ann", by="ann", queue="vip"))
    at(w, 150).do(lambda tx: lifecycle.set_status(tx, "cat", AgentStatus.READY, None, "agent:cat"))
    accept(at(w, 151), "cat")
    finish(w, "cat", eid, 171, 181)

    q, vip = stats(w, "q", 0, 200), stats(w, "vip", 0, 200)
    assert (q.offered, q.answered, q.handled, q.asa_s, q.aht_s) == (1, 1, 1, pytest.approx(4), pytest.approx(16))
    assert (vip.offered, vip.answered, vip.handled) == (1, 1, 1)
    assert vip.asa_s == pytest.approx(31) and vip.service_level == 0.0  # waited from the transfer: 31 s > 20
    assert vip.aht_s == pytest.approx(30)
    assert stats(w, "vip", 0, 140).longest_wait_s == pytest.approx(20)
    book = ledger(w, 200)
    dan = book.agent_stats("dan", DAY, DAY + 200)
    assert dan.status_s == {"offline": pytest.approx(2), "ready": pytest.approx(49), "not_ready": pytest.approx(149)}
    assert dan.not_ready_s == {"break": pytest.approx(149)} and dan.occupancy == 0.0 and dan.handled == 0


def test_an_overflow_is_offered_in_both_queues_and_answered_in_the_second_only():
    w = center(
        voice_queue("q", ring_timeout_s=60, overflow={"after_s": 30, "queue": "spill"}),
        voice_queue("spill", ring_timeout_s=60),
        agents=[agent("ann", "q"), agent("cat", "spill")],
    )
    at(w, 50).do(lambda tx: lifecycle.set_status(tx, "ann", AgentStatus.NOT_READY, "meeting", "agent:ann"))
    at(w, 60).do(lambda tx: lifecycle.set_status(tx, "cat", AgentStatus.NOT_READY, "meeting", "agent:cat"))
    eid = at(w, 100).create("q")
    assert w.advance(30) == [f"overflow|{eid}"] and w.engagement(eid).queue == "spill"
    at(w, 135).do(lambda tx: lifecycle.set_status(tx, "cat", AgentStatus.READY, None, "agent:cat"))
    accept(at(w, 136), "cat")
    finish(w, "cat", eid, 150, 150)

    q, spill = stats(w, "q", 0, 200), stats(w, "spill", 0, 200)
    assert (q.offered, q.answered, q.abandoned, q.handled) == (1, 0, 0, 0)
    assert (q.service_level, q.abandonment_rate, q.max_wait_s) == (0.0, 0.0, pytest.approx(30))
    assert (spill.offered, spill.answered, spill.asa_s, spill.aht_s) == (1, 1, pytest.approx(6), pytest.approx(14))
    assert ledger(w, 200).waits("q") == {eid: (Outcome.MOVED, pytest.approx(30))}


def test_email_is_answered_when_assigned_and_handled_until_resolved():
    w = center({"id": "mail", "channel": "email"}, agents=[agent("ann", "mail")])
    eid = at(w, 100).create("mail", subject="Refund", body="Where is it?")
    assert w.engagement(eid).state is S.ASSIGNED
    at(w, 400).do(lambda tx: lifecycle.open_engagement(tx, "ann", eid))
    at(w, 1000).do(lambda tx: lifecycle.end(tx, "ann", eid))
    s = stats(w, "mail", 0, 2000)
    assert (s.offered, s.answered, s.asa_s, s.handled, s.aht_s) == (1, 1, 0.0, 1, pytest.approx(900))


def test_auto_acceptance_is_answered_at_once_and_wrap_up_counts_in_handling():
    w = center(voice_queue(acceptance="auto"), agents=[agent("ann", "q")])
    eid = at(w, 100).create()
    assert w.engagement(eid).state is S.ACTIVE
    finish(w, "ann", eid, 160, 175)
    s = stats(w, "q", 0, 200)
    assert (s.answered, s.asa_s, s.aht_s, s.service_level) == (1, 0.0, pytest.approx(75), 1.0)


def test_figures_fall_in_the_interval_of_the_event_that_defines_them():
    w = center(voice_queue(ring_timeout_s=60), agents=[agent("ann", "q")])
    eid = at(w, 890).create()  # offered in the first interval...
    accept(at(w, 910), "ann")  # ...answered in the second, after 20 s: just in time
    finish(w, "ann", eid, 1700, 1810)  # handled in the third
    intervals = ledger(w, 3 * 900).queue_intervals("q", DAY, 20.0, ["ann"], count=3)
    assert [(i.offered, i.answered, i.handled) for i in intervals] == [(1, 0, 0), (0, 1, 0), (0, 0, 1)]
    assert [i.start - DAY for i in intervals] == [0, 900, 1800] and intervals[1].service_level == 1.0
    assert intervals[0].longest_wait_s == pytest.approx(10)  # waiting at the end of the first
    assert intervals[2].aht_s == pytest.approx(900)
    assert intervals[1].occupancy == pytest.approx(890 / 900)  # ann took it 10 s into it
    assert len(ledger(w, 900).queue_intervals("q", DAY, 20.0)) == 96  # a day by default


def test_withdrawn_by_a_supervisor_while_waiting_is_neither_answered_nor_abandoned():
    history = (
        HistoryEntry(at=10.0, event="created", actor="api", state=S.QUEUED, queue="q"),
        HistoryEntry(at=25.0, event="closed", actor="supervisor:sue", state=S.CLOSED),
    )
    rec = EngagementRec(id="e1", queue="q", channel=Channel.VOICE, state=S.CLOSED, created_at=10.0, history=history)
    s = Ledger([rec], [], now=100.0).queue_stats("q", 0.0, 100.0, 20.0)
    assert (s.offered, s.answered, s.abandoned, s.service_level, s.max_wait_s) == (1, 0, 0, 0.0, 15.0)
    assert s.occupancy is None  # no agents


def test_a_lost_connection_is_not_signed_in_time():
    w = center(voice_queue(), agents=[agent("ann", "q")])
    at(w, 100).do(lambda tx: lifecycle.disconnect(tx, "ann", "n1"))
    w.advance(w.dir.server.grace_s)
    s = ledger(w, 200).agent_stats("ann", DAY, DAY + 200)
    grace_end = 100 + w.dir.server.grace_s
    assert s.signed_in_s == pytest.approx(grace_end) and s.not_ready_s["connection_lost"] == pytest.approx(
        200 - grace_end
    )
