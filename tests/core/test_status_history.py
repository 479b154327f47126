"""An agent's status history in the pure core: every status change, whoever made it, bounded."""

from __future__ import annotations

from protocol.model import AgentStatus
from server.core import lifecycle
from server.core.lifecycle import STATUS_HISTORY
from tests.support import World, agent, make_config, voice_queue

READY, NOT_READY = AgentStatus.READY, AgentStatus.NOT_READY


def steps(w: World, agent_id: str) -> list[tuple[str, str, str | None, bool]]:
    return [(s.actor, s.status.value, s.reason, s.deferred) for s in w.agent(agent_id).history]


def test_every_status_change_is_in_the_agents_history_with_its_actor():
    config = make_config(
        [voice_queue("q", ring_timeout_s=10, wrap_up_s=30)], [agent("ann", "q")], server={"grace_s": 5}
    )
    w = World(config)
    w.sign_in("ann")  # signs in (not ready), then asks for ready
    assert steps(w, "ann") == [("agent:ann", "not_ready", None, False), ("agent:ann", "ready", None, False)]

    eid = w.create()
    w.advance(10.0)  # the ring times out: the system puts her not ready
    assert steps(w, "ann")[-1] == ("system", "not_ready", "missed", False)

    w.now += 1
    w.do(lambda tx: lifecycle.set_status(tx, "ann", READY, None, "supervisor:sue"))
    assert steps(w, "ann")[-1] == ("supervisor:sue", "ready", None, False)
    assert w.agent("ann").history[-1].at == w.now

    # the call rings her again; asked for during it, a status is the next one, applied when wrap-up ends
    w.do(lambda tx: lifecycle.accept(tx, "ann", w.offer_of("ann")))
    w.do(lambda tx: lifecycle.set_status(tx, "ann", NOT_READY, "lunch", "agent:ann"))
    assert steps(w, "ann")[-1] == ("agent:ann", "not_ready", "lunch", True)
    assert w.agent("ann").status is READY
    w.do(lambda tx: lifecycle.end(tx, "ann", eid))
    w.do(lambda tx: lifecycle.wrap_up_done(tx, eid, "agent:ann", agent_id="ann"))
    assert steps(w, "ann")[-1] == ("system", "not_ready", "lunch", False)

    w.do(lambda tx: lifecycle.set_status(tx, "ann", NOT_READY, "coaching", "supervisor:sue"))
    assert steps(w, "ann")[-1] == ("supervisor:sue", "not_ready", "coaching", False)

    w.do(lambda tx: lifecycle.disconnect(tx, "ann", "n1"))
    w.advance(5.0)  # after the grace
    assert steps(w, "ann")[-1] == ("system", "not_ready", "connection_lost", False)
    w.do(lambda tx: lifecycle.sign_in(tx, "ann", "n1", True))  # coming back is no change of status
    assert steps(w, "ann")[-1] == ("system", "not_ready", "connection_lost", False)


def test_a_missed_ring_during_live_work_is_a_deferred_change():
    config = make_config(
        [{"id": "chat", "channel": "chat", "acceptance": "manual", "ring_timeout_s": 10}],
        [agent("ann", "chat", capacity={"chat": 2})],
    )
    w = World(config)
    w.sign_in("ann")
    w.create("chat")
    w.do(lambda tx: lifecycle.accept(tx, "ann", w.offer_of("ann")))
    w.create("chat")
    w.advance(10.0)
    assert steps(w, "ann")[-1] == ("system", "not_ready", "missed", True)
    assert w.agent("ann").status is READY and w.agent("ann").next is not None


def test_the_history_keeps_only_the_latest_changes():
    w = World(make_config([voice_queue("q")], [agent("ann", "q")]))
    w.sign_in("ann", ready=False)
    for i in range(STATUS_HISTORY + 10):
        w.do(lambda tx, i=i: lifecycle.set_status(tx, "ann", NOT_READY, f"r{i}", "agent:ann"))
    history = w.agent("ann").history
    assert len(history) == STATUS_HISTORY
    assert history[-1].reason == f"r{STATUS_HISTORY + 9}" and history[0].reason == "r10"
