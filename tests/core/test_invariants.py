"""Random command sequences through the core; the invariants of DESIGN.md hold after every step."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from loadtest.invariants import history_violations, violations
from protocol.model import AgentStatus, EngagementState
from server.core import lifecycle
from server.core.errors import Refused
from server.core.lifecycle import NewEngagement
from tests.support import World, agent, make_config, voice_queue

S = EngagementState
AGENTS = ["ann", "ben", "cat", "dov"]
QUEUES = ["calls", "vip", "chat", "video", "mail"]

CONFIG = make_config(
    [
        voice_queue(
            "calls",
            ring_timeout_s=8,
            wrap_up_s=20,
            overflow={"after_s": 40, "queue": "vip"},
            dispositions=[{"code": "ok"}],
            disposition_required=True,
        ),
        voice_queue("vip", strategy="ring_all", ring_timeout_s=6, wrap_up_s=15),
        {"id": "chat", "channel": "chat", "acceptance": "auto", "strategy": "most_skilled", "wrap_up_s": 10},
        {"id": "video", "channel": "video", "strategy": "round_robin", "ring_timeout_s": 5},
        {"id": "mail", "channel": "email", "dispositions": [{"code": "done"}]},
    ],
    [
        agent(
            "ann", "calls", "vip", {"id": "chat", "priority": 3}, "mail", capacity={"voice": 1, "chat": 2, "email": 2}
        ),
        agent("ben", "calls", "chat", "video"),
        agent("cat", "calls", "vip", "video", "mail"),
        agent("dov", "vip", {"id": "chat", "priority": 2}, "mail", capacity={"voice": 1, "chat": 3, "email": 1}),
    ],
    server={"grace_s": 10},
)


class TickingWorld(World):
    """Every command a millisecond after the last, so histories order causes before effects."""

    def do(self, command):  # type: ignore[no-untyped-def]
        self.now += 0.001
        return super().do(command)


class Center(RuleBasedStateMachine):
    """A contact center where consumers, agents and the clock act at random."""

    def __init__(self) -> None:
        super().__init__()
        self.w = TickingWorld(CONFIG)
        self.sessions = dict.fromkeys(AGENTS, 0)
        self.engagements: list[str] = []
        self.refused = 0

    def attempt(self, command: object) -> None:
        before = self.snapshot()
        try:
            self.w.do(command)  # type: ignore[arg-type]
        except Refused:
            self.refused += 1
            assert self.snapshot() == before, "a refused command changed state"

    def snapshot(self) -> tuple[object, ...]:
        store = self.w.store
        return (dict(store._agents), dict(store._engagements), dict(store._queues), dict(store._seqs))

    def held_by(self, agent_id: str, *states: S) -> list[str]:
        return [e for e, h in self.w.agent(agent_id).holds.items() if h.state in states]

    @rule(queue=st.sampled_from(QUEUES), priority=st.integers(0, 2))
    def consumer_arrives(self, queue: str, priority: int) -> None:
        eng = self.w.do(lambda tx: lifecycle.create(tx, NewEngagement(queue=queue, priority=priority)))
        self.engagements.append(eng.id)

    @rule(a=st.sampled_from(AGENTS), ready=st.booleans())
    def sign_in(self, a: str, ready: bool) -> None:
        self.w.do(lambda tx: lifecycle.sign_in(tx, a, "n1", True))
        self.sessions[a] += 1
        if ready:
            self.w.do(lambda tx: lifecycle.set_status(tx, a, AgentStatus.READY, None, f"agent:{a}"))

    @rule(a=st.sampled_from(AGENTS))
    def node_dies(self, a: str) -> None:
        """The node holding the agent's sockets is killed: they are written off at once."""
        if self.sessions[a]:
            self.w.do(lambda tx: lifecycle.node_lost(tx, a, "n1"))
            self.sessions[a] = 0

    @rule(a=st.sampled_from(AGENTS))
    def socket_drops(self, a: str) -> None:
        if self.sessions[a]:
            self.w.do(lambda tx: lifecycle.disconnect(tx, a, "n1"))
            self.sessions[a] -= 1

    @rule(a=st.sampled_from(AGENTS), ready=st.booleans(), reason=st.sampled_from([None, "lunch", "training"]))
    def set_status(self, a: str, ready: bool, reason: str | None) -> None:
        status = AgentStatus.READY if ready else AgentStatus.NOT_READY
        self.attempt(lambda tx: lifecycle.set_status(tx, a, status, reason, f"agent:{a}"))

    @rule(a=st.sampled_from(AGENTS), take=st.booleans(), i=st.integers(0, 3))
    def answer_ring(self, a: str, take: bool, i: int) -> None:
        offers = list(self.w.agent(a).offers)
        if not offers:
            return
        offer = offers[i % len(offers)]
        if take:
            self.attempt(lambda tx: lifecycle.accept(tx, a, offer))
        else:
            self.attempt(lambda tx: lifecycle.decline(tx, a, offer, None))

    @rule(a=st.sampled_from(AGENTS), i=st.integers(0, 5))
    def agent_ends(self, a: str, i: int) -> None:
        held = self.held_by(a, S.ACTIVE, S.ASSIGNED, S.OPEN)
        if held:
            eid = held[i % len(held)]
            if self.w.engagement(eid).queue == "mail":
                self.attempt(lambda tx: lifecycle.dispose(tx, a, eid, ["done"]))
            self.attempt(lambda tx: lifecycle.end(tx, a, eid))

    @rule(a=st.sampled_from(AGENTS), i=st.integers(0, 5), dispose=st.booleans())
    def agent_wraps_up(self, a: str, i: int, dispose: bool) -> None:
        held = self.held_by(a, S.WRAP_UP)
        if held:
            eid = held[i % len(held)]
            codes = {"calls": ["ok"], "mail": ["done"]}.get(self.w.engagement(eid).queue, [])
            if dispose and codes:
                self.attempt(lambda tx: lifecycle.dispose(tx, a, eid, codes))
            self.attempt(lambda tx: lifecycle.wrap_up_done(tx, eid, f"agent:{a}", agent_id=a))

    @rule(a=st.sampled_from(AGENTS), i=st.integers(0, 5))
    def agent_opens_email(self, a: str, i: int) -> None:
        held = self.held_by(a, S.ASSIGNED)
        if held:
            self.attempt(lambda tx: lifecycle.open_engagement(tx, a, held[i % len(held)]))

    @rule(a=st.sampled_from(AGENTS), to=st.sampled_from(AGENTS + QUEUES), i=st.integers(0, 5))
    def agent_transfers(self, a: str, to: str, i: int) -> None:
        held = self.held_by(a, S.ACTIVE, S.ASSIGNED, S.OPEN)
        if held:
            eid = held[i % len(held)]
            where = {"queue": to} if to in QUEUES else {"agent": to}
            self.attempt(lambda tx: lifecycle.transfer(tx, eid, f"agent:{a}", by=a, **where))

    @rule(a=st.sampled_from(AGENTS), i=st.integers(0, 5))
    def agent_releases(self, a: str, i: int) -> None:
        held = self.held_by(a, S.ACTIVE, S.ASSIGNED, S.OPEN)
        if held:
            self.attempt(lambda tx: lifecycle.release(tx, a, held[i % len(held)]))

    @rule(i=st.integers(0, 1000))
    def consumer_leaves(self, i: int) -> None:
        if self.engagements:
            eid = self.engagements[i % len(self.engagements)]
            self.attempt(lambda tx: lifecycle.consumer_end(tx, eid))

    @rule(i=st.integers(0, 1000))
    def supervisor_ends(self, i: int) -> None:
        if self.engagements:
            eid = self.engagements[i % len(self.engagements)]
            self.attempt(lambda tx: lifecycle.force_end(tx, eid, "supervisor:sue"))

    @rule(a=st.sampled_from(AGENTS), b=st.sampled_from(AGENTS), i=st.integers(0, 5))
    def someone_acts_on_anothers_engagement(self, a: str, b: str, i: int) -> None:
        held = self.held_by(b, S.ACTIVE, S.WRAP_UP, S.OPEN, S.ASSIGNED)
        if held and a != b:
            eid = held[i % len(held)]
            for command in (lifecycle.end, lambda tx, a, e: lifecycle.note(tx, a, e, "x")):
                before = self.snapshot()
                with pytest.raises(Refused) as refused:
                    self.w.do(lambda tx, c=command: c(tx, a, eid))
                assert refused.value.code == "not_yours", f"{a} acted on {b}'s engagement {eid}"
                assert self.snapshot() == before

    @rule(a=st.sampled_from(AGENTS), take=st.integers(0, 3))
    def agent_works(self, a: str, take: int) -> None:
        """The natural next step of the agent's work: answer a ring, end, wrap up, open an email."""
        me = self.w.agent(a)
        if me.offers:
            self.answer_ring(a, take > 0, take)
        elif held := self.held_by(a, S.WRAP_UP):
            self.agent_wraps_up(a, take, True)
        elif held := self.held_by(a, S.ACTIVE, S.OPEN):
            self.agent_ends(a, take)
        elif held := self.held_by(a, S.ASSIGNED):
            self.attempt(lambda tx: lifecycle.open_engagement(tx, a, held[0]))

    @rule(seconds=st.floats(0.5, 30.0))
    def time_passes(self, seconds: float) -> None:
        self.w.advance(seconds)

    @invariant()
    def invariants_hold(self) -> None:
        store = self.w.store
        problems = violations(self.w.dir, store._agents.values(), store._engagements.values(), store._queues.values())
        problems += history_violations(self.w.dir, store._engagements.values())
        assert not problems, problems

    @invariant()
    def no_engagement_record_is_lost(self) -> None:
        for eid in self.engagements:
            self.w.engagement(eid)  # raises if the record is gone

    @invariant()
    def seqs_are_gapless(self) -> None:
        for a in AGENTS:
            seqs = [seq for seq, _ in self.w.store._logs.get(a, ())]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else True


def test_a_long_random_day_keeps_every_invariant():
    """Thousands of steps with a realistic mix (few arrivals, much work), for several seeds."""
    multi_rings = 0
    for seed in range(4):
        rng = random.Random(seed)
        c = Center()
        for _ in range(1500):
            a = rng.choice(AGENTS)
            r = rng.random()
            if r < 0.04:
                c.consumer_arrives(rng.choice(QUEUES), rng.randint(0, 2))
            elif r < 0.08:
                c.sign_in(a, True)
            elif r < 0.095:
                c.socket_drops(a)
            elif r < 0.10:
                c.node_dies(a)
            elif r < 0.16:
                c.set_status(a, rng.random() < 0.75, rng.choice([None, "lunch"]))
            elif r < 0.70:
                c.agent_works(a, rng.randint(0, 3))
            elif r < 0.72:
                c.consumer_leaves(rng.randint(0, 1000))
            elif r < 0.725:
                c.supervisor_ends(rng.randint(0, 1000))
            elif r < 0.735:
                c.agent_transfers(a, rng.choice(AGENTS + QUEUES), rng.randint(0, 5))
            elif r < 0.74:
                c.agent_releases(a, rng.randint(0, 5))
            elif r < 0.76:
                c.someone_acts_on_anothers_engagement(a, rng.choice(AGENTS), rng.randint(0, 5))
            else:
                c.time_passes(rng.uniform(0.5, 12.0))
            multi_rings += sum(1 for e in c.w.store._engagements.values() if len(e.offers) > 1)
            c.invariants_hold()
            c.seqs_are_gapless()
        problems = history_violations(c.w.dir, c.w.store._engagements.values())
        assert not problems, problems[:5]
        states = {e.state for e in c.w.store._engagements.values()}
        assert {S.CLOSED, S.RESOLVED} <= states, f"seed {seed} never finished work: {states}"
    assert multi_rings > 0, "the run never exercised a ring-all race"


Center.TestCase.settings = settings(
    max_examples=150, stateful_step_count=80, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_center = Center.TestCase
