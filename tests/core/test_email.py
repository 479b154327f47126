"""Email in the pure core: what the consumer's end of the conversation does to a thread."""

from __future__ import annotations

from protocol.frames import EngagementEvent
from protocol.model import AgentStatus, EngagementState
from server.core import lifecycle
from tests.support import World, agent, make_config

S = EngagementState


def mail_center() -> World:
    w = World(make_config([{"id": "mail", "channel": "email"}], [agent("ann", "mail")]))
    w.sign_in("ann")
    return w


def test_a_consumer_who_ends_an_assigned_email_leaves_it_with_its_agent_and_the_history_says_so():
    w = mail_center()
    eid = w.create("mail", subject="Invoice", body="Where is it?")
    w.events("ann")
    ended = w.do(lambda tx: lifecycle.consumer_end(tx, eid))
    assert (ended.state, ended.agent) == (S.ASSIGNED, "ann")
    last = ended.history[-1]
    assert (last.event, last.actor, last.state, last.agent) == ("consumer_ended", "consumer", S.ASSIGNED, "ann")
    (event,) = w.events("ann")
    assert isinstance(event, EngagementEvent) and event.engagement.history[-1].event == "consumer_ended"
    assert eid in w.agent("ann").holds

    again = w.do(lambda tx: lifecycle.consumer_end(tx, eid))  # a flow retrying its hang-up changes nothing
    assert again == w.engagement(eid) and len(again.history) == len(ended.history)
    assert w.events("ann") == []

    w.do(lambda tx: lifecycle.open_engagement(tx, "ann", eid))  # still the agent's to answer and resolve
    w.do(lambda tx: lifecycle.send(tx, "ann", eid, "Sent again, sorry.", None))
    w.do(lambda tx: lifecycle.end(tx, "ann", eid))
    assert w.engagement(eid).state is S.RESOLVED and w.agent("ann").holds == {}


def test_a_consumer_who_ends_an_email_still_waiting_abandons_it():
    w = mail_center()
    w.do(lambda tx: lifecycle.set_status(tx, "ann", AgentStatus.NOT_READY, "lunch", "agent:ann"))
    eid = w.create("mail", body="Hello?")
    assert w.engagement(eid).state is S.QUEUED
    w.do(lambda tx: lifecycle.consumer_end(tx, eid))
    eng = w.engagement(eid)
    assert eng.state is S.ABANDONED and eng.history[-1].actor == "consumer"
    assert w.queue("mail").waiting == ()
