"""Routing in the pure core: strategies, capacity and blocking, ring-all races, grace, overflow, email."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from protocol.frames import Ring, RingCancelled
from protocol.model import AgentStatus, CancelReason, Channel, EngagementState
from server.core import lifecycle
from server.core.errors import Refused
from server.core.lifecycle import NewEngagement
from server.core.tx import Changes, Tx
from tests.support import World, agent, make_config, run_sync, voice_queue

S = EngagementState
READY, NOT_READY = AgentStatus.READY, AgentStatus.NOT_READY


def offered_to(w: World, eid: str) -> list[str]:
    return [o.agent for o in w.engagement(eid).offers]


def finish(w: World, agent_id: str, eid: str) -> None:
    w.do(lambda tx: lifecycle.end(tx, agent_id, eid))
    w.do(lambda tx: lifecycle.wrap_up_done(tx, eid, f"agent:{agent_id}", agent_id=agent_id))


def test_round_robin_rotates_through_members_in_order():
    config = make_config(
        [voice_queue("q", strategy="round_robin", acceptance="auto")],
        [agent("ann", "q"), agent("ben", "q"), agent("cat", "q")],
    )
    w = World(config)
    w.sign_in("cat", "ben", "ann")  # sign-in order must not matter, member order does
    got = []
    for _ in range(4):
        eid = w.create()
        got.append(w.engagement(eid).agent)
        finish(w, got[-1], eid)
    assert got == ["ann", "ben", "cat", "ann"]


def test_most_skilled_picks_the_highest_priority_member():
    config = make_config(
        [voice_queue("q", strategy="most_skilled")],
        [agent("ann", {"id": "q", "priority": 1}), agent("ben", {"id": "q", "priority": 5}), agent("cat", "q")],
    )
    w = World(config)
    w.sign_in("ann", "ben", "cat")
    eid = w.create()
    assert offered_to(w, eid) == ["ben"]
    w.do(lambda tx: lifecycle.decline(tx, "ben", w.offer_of("ben"), None))
    assert offered_to(w, eid) == ["ann"]  # priority 1 each, ann idle longer


def test_ring_all_first_accept_wins_and_the_others_get_taken():
    config = make_config(
        [voice_queue("q", strategy="ring_all")],
        [agent("ann", "q"), agent("ben", "q"), agent("cat", "q")],
    )
    w = World(config)
    w.sign_in("ann", "ben", "cat")
    eid = w.create()
    assert sorted(offered_to(w, eid)) == ["ann", "ben", "cat"]
    offers = {a: w.offer_of(a) for a in ("ann", "ben", "cat")}
    assert all(isinstance(w.events(a)[-1], Ring) for a in offers)
    w.do(lambda tx: lifecycle.accept(tx, "ben", offers["ben"]))
    for loser in ("ann", "cat"):
        (cancel,) = w.events(loser)
        assert isinstance(cancel, RingCancelled)
        assert (cancel.offer, cancel.reason) == (offers[loser], CancelReason.TAKEN)
        assert w.agent(loser).offers == {}
        assert w.agent(loser).status is READY
    eng = w.engagement(eid)
    assert eng.agent == "ben" and eng.state is S.ACTIVE and eng.offers == ()
    # the late accept of a loser is refused: the offer is gone
    with pytest.raises(Refused):
        w.do(lambda tx: lifecycle.accept(tx, "ann", offers["ann"]))


def test_ring_all_keeps_ringing_the_rest_after_one_decline_and_requeues_after_all():
    config = make_config([voice_queue("q", strategy="ring_all")], [agent("ann", "q"), agent("ben", "q")])
    w = World(config)
    w.sign_in("ann", "ben")
    eid = w.create()
    w.do(lambda tx: lifecycle.decline(tx, "ann", w.offer_of("ann"), None))
    assert offered_to(w, eid) == ["ben"]
    w.do(lambda tx: lifecycle.decline(tx, "ben", w.offer_of("ben"), None))
    # both declined and both are still the only ones free: ring them all again
    assert sorted(offered_to(w, eid)) == ["ann", "ben"]
    assert w.engagement(eid).offer_count == 4


def test_capacity_per_channel_and_cross_channel_blocking():
    config = make_config(
        [
            voice_queue("voice"),
            {"id": "chat", "channel": "chat", "acceptance": "auto"},
            {"id": "mail", "channel": "email"},
        ],
        [agent("ann", "voice", "chat", "mail", capacity={"voice": 1, "chat": 2, "email": 1})],
    )
    w = World(config)
    w.sign_in("ann")
    c1, c2, c3 = w.create("chat"), w.create("chat"), w.create("chat")
    assert [w.engagement(c).state for c in (c1, c2, c3)] == [S.ACTIVE, S.ACTIVE, S.QUEUED]
    call = w.create("voice")
    assert w.engagement(call).state is S.QUEUED  # chats block voice
    mail = w.create("mail")
    assert w.engagement(mail).state is S.ASSIGNED  # email is neither blocked nor blocking
    assert w.engagement(w.create("mail")).state is S.QUEUED  # email capacity 1
    finish(w, "ann", c1)
    assert w.engagement(c3).state is S.ACTIVE  # the chat that waited takes the freed slot
    finish(w, "ann", c2)
    finish(w, "ann", c3)
    # all chats done: the call rings now, and while it rings no chat is offered
    assert w.engagement(call).state is S.OFFERED
    c4 = w.create("chat")
    assert w.engagement(c4).state is S.QUEUED
    load = w.agent("ann")
    assert load.load(Channel.VOICE) <= 1 and load.load(Channel.CHAT) <= 2


def test_disconnect_grace_resends_the_ring_with_its_original_deadline():
    config = make_config([voice_queue()], [agent("ann", "q"), agent("ben", "q")], server={"grace_s": 5})
    w = World(config)
    w.sign_in("ann", "ben")
    w.do(lambda tx: lifecycle.set_status(tx, "ben", NOT_READY, None, "agent:ben"))
    eid = w.create()
    ring = w.events("ann")[-1]
    assert isinstance(ring, Ring)
    w.do(lambda tx: lifecycle.disconnect(tx, "ann", "n1"))
    w.advance(3.0)
    signed = w.do(lambda tx: lifecycle.sign_in(tx, "ann", "n1", True))
    assert signed.agent.status is READY
    assert [o.offer for o in signed.offers] == [ring.offer]
    assert signed.offers[0].expires_at == ring.expires_at
    resent = w.events("ann")[-1]
    assert isinstance(resent, Ring) and resent.offer == ring.offer and resent.expires_at == ring.expires_at
    w.advance(10.0)  # the grace timer of the first drop must not fire now that she is back
    assert w.agent("ann").reason == "missed"  # the ring itself ran out, as rings do
    assert w.engagement(eid).state is S.QUEUED


def test_after_the_grace_the_agent_is_not_ready_connection_lost_and_the_ring_moves_on():
    config = make_config(
        [voice_queue(ring_timeout_s=30)], [agent("ann", "q"), agent("ben", "q")], server={"grace_s": 5}
    )
    w = World(config)
    w.sign_in("ann", "ben")
    eid = w.create()
    assert offered_to(w, eid) == ["ann"]
    w.do(lambda tx: lifecycle.disconnect(tx, "ann", "n1"))
    second = w.create()
    assert offered_to(w, second) == ["ben"]  # a disconnected agent gets no new rings
    w.do(lambda tx: lifecycle.accept(tx, "ben", w.offer_of("ben")))
    w.advance(5.0)
    ann = w.agent("ann")
    assert (ann.status, ann.reason) == (NOT_READY, "connection_lost")
    assert ann.offers == {}
    eng = w.engagement(eid)
    assert eng.state is S.QUEUED  # ben is busy: it waits rather than ringing an empty desk
    assert eng.history[-2].event == "rescinded" and eng.history[-2].reason == "connection_lost"
    # coming back later does not make her ready by itself
    w.do(lambda tx: lifecycle.sign_in(tx, "ann", "n1", True))
    assert w.agent("ann").status is NOT_READY


def test_an_engagement_being_handled_stays_with_a_disconnected_agent():
    config = make_config([voice_queue()], [agent("ann", "q")], server={"grace_s": 5})
    w = World(config)
    w.sign_in("ann")
    eid = w.create()
    w.do(lambda tx: lifecycle.accept(tx, "ann", w.offer_of("ann")))
    w.do(lambda tx: lifecycle.disconnect(tx, "ann", "n1"))
    w.advance(60.0)
    assert w.engagement(eid).state is S.ACTIVE and w.engagement(eid).agent == "ann"
    signed = w.do(lambda tx: lifecycle.sign_in(tx, "ann", "n1", True))
    assert [e.id for e in signed.engagements] == [eid]


def test_overflow_moves_a_waiting_engagement_to_the_other_queue():
    config = make_config(
        [voice_queue("main", overflow={"after_s": 60, "queue": "backup"}), voice_queue("backup")],
        [agent("ann", "main"), agent("ben", "backup")],
    )
    w = World(config)
    w.sign_in("ann", "ben")
    w.do(lambda tx: lifecycle.set_status(tx, "ann", NOT_READY, None, "agent:ann"))
    w.do(lambda tx: lifecycle.set_status(tx, "ben", NOT_READY, None, "agent:ben"))
    eid = w.create("main")
    w.advance(59.0)
    assert w.engagement(eid).queue == "main"
    w.advance(1.0)
    eng = w.engagement(eid)
    assert eng.queue == "backup" and eng.state is S.QUEUED
    assert eng.history[-1].event == "overflowed"
    assert [e.engagement for e in w.queue("backup").waiting] == [eid] and w.queue("main").waiting == ()
    w.do(lambda tx: lifecycle.set_status(tx, "ben", READY, None, "agent:ben"))
    assert offered_to(w, eid) == ["ben"]


def test_overflow_does_not_touch_an_engagement_that_is_ringing():
    config = make_config(
        [voice_queue("main", ring_timeout_s=100, overflow={"after_s": 10, "queue": "backup"}), voice_queue("backup")],
        [agent("ann", "main"), agent("ben", "backup")],
    )
    w = World(config)
    w.sign_in("ann", "ben")
    eid = w.create("main")
    w.advance(20.0)
    assert w.engagement(eid).queue == "main" and offered_to(w, eid) == ["ann"]


def test_email_is_assigned_into_the_open_list_opened_and_resolved():
    config = make_config(
        [{"id": "mail", "channel": "email", "dispositions": [{"code": "done"}], "disposition_required": True}],
        [agent("ann", "mail"), agent("ben", "mail")],
    )
    w = World(config)
    w.sign_in("ann", "ben")
    eid = w.create("mail", subject="Invoice", body="Where is my invoice?")
    eng = w.engagement(eid)
    assert eng.state is S.ASSIGNED and eng.agent == "ann"
    assert eng.messages[0].text == "Where is my invoice?" and eng.messages[0].direction == "in"
    assert "ring" not in w.tags("ann")
    # holding only emails, a status change applies at once
    ann = w.do(lambda tx: lifecycle.set_status(tx, "ann", NOT_READY, "lunch", "agent:ann"))
    assert ann.status is NOT_READY and ann.next is None
    w.do(lambda tx: lifecycle.open_engagement(tx, "ann", eid))
    assert w.engagement(eid).state is S.OPEN
    with pytest.raises(Refused):
        w.do(lambda tx: lifecycle.end(tx, "ann", eid))  # disposition required
    w.do(lambda tx: lifecycle.dispose(tx, "ann", eid, ["done"]))
    w.do(lambda tx: lifecycle.end(tx, "ann", eid))
    assert w.engagement(eid).state is S.RESOLVED
    assert w.agent("ann").holds == {}


def test_a_dead_nodes_sockets_are_written_off_and_the_grace_starts_then():
    config = make_config(
        [voice_queue(ring_timeout_s=60)], [agent("ann", "q"), agent("ben", "q")], server={"grace_s": 5}
    )
    w = World(config)
    w.sign_in("ann", "ben")  # on node n1
    w.do(lambda tx: lifecycle.sign_in(tx, "ann", "n2", False))  # a second tab, on another node
    eid = w.create()
    assert offered_to(w, eid) == ["ann"]
    w.do(lambda tx: lifecycle.node_lost(tx, "ann", "n1"))
    assert w.agent("ann").sessions == {"n2": 1}
    w.advance(10.0)
    assert w.agent("ann").status is READY  # still signed in through n2
    w.do(lambda tx: lifecycle.node_lost(tx, "ann", "n2"))
    w.do(lambda tx: lifecycle.node_lost(tx, "ann", "n2"))  # reaped twice by two nodes: no harm
    w.advance(5.0)
    assert (w.agent("ann").status, w.agent("ann").reason) == (NOT_READY, "connection_lost")
    assert offered_to(w, eid) == ["ben"]


def changes_of(w: World, command: Callable[[Tx], object]) -> Changes:
    """What a command hands its store to apply (the world applies it too)."""
    taken: list[Changes] = []

    def decide(snapshot: Any) -> tuple[None, Changes]:
        tx = Tx(snapshot, w.dir, w.now, w.ids)
        command(tx)
        taken.append(tx.changes())
        return None, taken[-1]

    run_sync(w.store.transact(decide))
    return taken[-1]


def create(tx: Tx) -> object:
    return lifecycle.create(tx, NewEngagement(queue="q"))


def test_a_choice_reads_only_whom_it_chose_but_no_one_free_and_offering_again_rely_on_the_whole_ranking():
    """A decision reads the first entries of the queue's ranking and the records of the agents it chose:
    the others it passed over need no checking (another node changing them leaves it sound). It relies
    on the whole ranking when the engagement found no one, or went back to an agent who passed, since
    an agent freed meanwhile would change that answer."""
    w = World(make_config([voice_queue("q")], [agent("ann", "q"), agent("ben", "q"), agent("cat", "q")]))
    w.sign_in("ann", "ben", "cat")
    first = changes_of(w, create)
    (eid,) = first.engagements
    assert offered_to(w, eid) == ["ann"] and set(first.agents) == {"ann"} and first.rankings == set()
    declined = changes_of(w, lambda tx: lifecycle.decline(tx, "ann", w.offer_of("ann"), None))
    assert offered_to(w, eid) == ["ben"] and set(declined.agents) == {"ann", "ben"} and declined.rankings == set()
    assert first.ranks == {"q": {"ann": None}}  # ann, rung, leaves the ranking until she is free again

    w = World(make_config([voice_queue("q")], [agent("ann", "q"), agent("ben", "q")]))
    w.sign_in("ann")
    eid = w.create()
    again = changes_of(w, lambda tx: lifecycle.decline(tx, "ann", w.offer_of("ann"), None))
    assert offered_to(w, eid) == ["ann"] and again.rankings == {"q"}  # ben is not ready: it relied on that
    w.do(lambda tx: lifecycle.set_status(tx, "ann", NOT_READY, None, "agent:ann"))
    waits = changes_of(w, create)
    (queued,) = waits.engagements
    assert w.engagement(queued).state is S.QUEUED and waits.rankings == {"q"}


def test_the_ranking_follows_every_change_of_an_agent_in_each_of_their_queues():
    """Who is first in a queue is read from its ranking, never from its members: every write of an agent
    must move them in it (status, sign-in, load, idle time), in every queue they belong to."""
    config = make_config(
        [voice_queue("calls"), {"id": "chat", "channel": "chat", "acceptance": "auto"}],
        [agent("ann", "calls", "chat"), agent("ben", "calls")],
    )
    w = World(config)

    def order(queue: str) -> list[str]:
        return [entry.agent for entry in w.do(lambda tx: tx.ranked(queue))]

    assert order("calls") == [] and order("chat") == []
    w.sign_in("ann", "ben")  # ann first, so idle longer
    assert order("calls") == ["ann", "ben"] and order("chat") == ["ann"]
    w.create("chat")  # ann takes a chat: loaded on chat, blocked for calls
    assert order("calls") == ["ben"] and order("chat") == ["ann"]
    w.do(lambda tx: lifecycle.set_status(tx, "ben", NOT_READY, "lunch", "agent:ben"))
    assert order("calls") == []
    w.do(lambda tx: lifecycle.disconnect(tx, "ann", "n1"))
    assert order("chat") == []
