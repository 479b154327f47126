"""The chaos run's checkers, each shown a planted fault and seen to name it, and shown records that
agree and seen to pass. A checker never seen to fail proves nothing: every rule it claims has a test.

Records are built by hand, so each test plants exactly one fault in an otherwise consistent center.
"""

from __future__ import annotations

from msgspec.structs import replace

from loadtest.chaos import Arrival, Plan, Records, analyse
from loadtest.invariants import history_violations, violations, whereabouts
from loadtest.seen import Continuity, Resumes, Segment, Told, double_assignments, seq_continuity, told
from protocol.model import AgentStatus, Engagement, EngagementState, HistoryEntry
from server.config import Directory
from server.core.records import AgentRec, EngagementRec, Hold, Offer, OfferRef, QueueRec, WaitEntry
from tests.support import agent, make_config, voice_queue

S = EngagementState
T0 = 1000.0
AGENTS = ["ann", "ben", "cat", "dan", "eve"]
DIRECTORY = Directory(
    make_config(
        [
            voice_queue("voice", overflow={"after_s": 30, "queue": "vip"}),
            voice_queue("vip", strategy="ring_all"),
            {"id": "sales", "channel": "video", "strategy": "ring_all"},
            {"id": "chat", "channel": "chat", "acceptance": "auto"},
            {"id": "email", "channel": "email"},
        ],
        [agent(a, "voice", "vip", "sales", "chat", "email") for a in AGENTS],
    )
)


# --- violations: the final records ---------------------------------------------------------------


class Center:
    """Records that agree with each other, built a step at a time; a test then breaks one thing."""

    def __init__(self) -> None:
        self.agents = {a: AgentRec(id=a, status=AgentStatus.READY, sessions={"n1": 1}) for a in AGENTS}
        self.engagements: dict[str, EngagementRec] = {}
        self.queues = {q: QueueRec(id=q) for q in DIRECTORY.queues}

    def waiting(self, eid: str, queue: str = "voice") -> None:
        self._new(eid, queue, S.QUEUED)
        self.line(queue, *self.queues[queue].waiting, WaitEntry(eid, 0, T0))

    def ringing(self, eid: str, queue: str, *agents: str) -> None:
        offers = tuple(Offer(f"{eid}-o{n}", a, T0 + 20) for n, a in enumerate(agents, 1))
        eng = self._new(eid, queue, S.OFFERED, offers=offers)
        for offer in offers:
            ref = OfferRef(eid, eng.channel, offer.expires_at)
            self.agent(offer.agent, offers={**self.agents[offer.agent].offers, offer.id: ref})

    def held(self, eid: str, queue: str, by: str, state: S = S.ACTIVE) -> None:
        eng = self._new(eid, queue, state, agent=by)
        self.agent(by, holds={**self.agents[by].holds, eid: Hold(eng.channel, state)})

    def ended(self, eid: str, queue: str, state: S) -> None:
        self._new(eid, queue, state)

    def line(self, queue: str, *entries: WaitEntry) -> None:
        self.queues[queue] = replace(self.queues[queue], waiting=entries)

    def engagement(self, eid: str, **changes: object) -> None:
        self.engagements[eid] = replace(self.engagements[eid], **changes)

    def agent(self, agent_id: str, **changes: object) -> None:
        self.agents[agent_id] = replace(self.agents[agent_id], **changes)

    def violations(self) -> list[str]:
        return violations(DIRECTORY, self.agents.values(), self.engagements.values(), self.queues.values())

    def _new(self, eid: str, queue: str, state: S, **fields: object) -> EngagementRec:
        channel = DIRECTORY.queues[queue].channel
        eng = EngagementRec(id=eid, queue=queue, channel=channel, state=state, created_at=T0, **fields)  # type: ignore[arg-type]
        self.engagements[eid] = eng
        return eng


def busy_center() -> Center:
    """One of everything, all in agreement: waiting, ringing one agent, ringing all, held in each
    state, and finished."""
    c = Center()
    c.waiting("e1")
    c.ringing("e2", "voice", "ann")
    c.ringing("e3", "sales", "ben", "cat")
    c.held("e4", "chat", "dan")
    c.held("e5", "chat", "dan", S.WRAP_UP)
    c.held("e6", "email", "dan", S.ASSIGNED)
    c.held("e7", "email", "eve", S.OPEN)
    c.held("e8", "vip", "eve", S.WRAP_UP)
    c.ended("e9", "voice", S.CLOSED)
    c.ended("e10", "email", S.RESOLVED)
    c.ended("e11", "voice", S.ABANDONED)
    return c


def names(problems: list[str], fault: str) -> bool:
    """The checker named the planted fault (its report may say more about the same fault)."""
    return any(fault in p for p in problems)


def test_records_that_agree_pass():
    assert busy_center().violations() == []


def test_a_call_waiting_twice_in_line_is_caught():
    c = busy_center()
    c.line("voice", WaitEntry("e1", 0, T0), WaitEntry("e1", 0, T0 + 1))
    assert c.violations() == ["e1 waits 2 times in voice"]


def test_a_call_waiting_in_another_queues_line_is_caught():
    c = busy_center()
    c.line("voice")
    c.line("vip", WaitEntry("e1", 0, T0))
    problems = c.violations()
    assert names(problems, "e1 waits in vip but is queued in voice"), problems


def test_a_call_still_in_line_after_it_was_answered_is_caught():
    c = busy_center()
    c.line("vip", WaitEntry("e8", 0, T0))
    assert c.violations() == ["e8 waits in vip but is wrap_up in vip"]


def test_a_line_entry_for_a_missing_engagement_is_caught():
    c = busy_center()
    c.line("voice", WaitEntry("e1", 0, T0), WaitEntry("e99", 0, T0))
    assert c.violations() == ["e99 waits in voice but is missing"]


def test_a_waiting_call_in_no_line_is_lost():
    c = busy_center()
    c.line("voice")
    assert c.violations() == ["e1 (queued) is not in its queue's line: lost"]


def test_a_ringing_call_that_rings_no_one_is_lost():
    c = busy_center()
    c.engagement("e2", offers=())
    c.agent("ann", offers={})
    assert c.violations() == ["e2 (offered) has no offer"]


def test_two_agents_rung_at_once_in_a_one_at_a_time_queue_is_caught():
    c = busy_center()
    c.ringing("e2", "voice", "ann", "eve")
    problems = c.violations()
    assert names(problems, "e2 (offered) rings 2 agents in a one-at-a-time queue"), problems


def test_one_agent_rung_twice_for_one_call_is_caught():
    c = busy_center()
    c.ringing("e3", "sales", "ben", "ben")
    problems = c.violations()
    assert names(problems, "e3 (offered) rings one agent twice"), problems


def test_a_ring_its_agent_does_not_know_of_is_caught():
    c = busy_center()
    c.agent("ann", offers={})
    assert c.violations() == ["e2 (offered): ann does not know offer e2-o1"]


def test_a_ring_its_agent_has_for_another_call_is_caught():
    c = busy_center()
    c.agent("ann", offers={"e2-o1": OfferRef("e9", DIRECTORY.queues["voice"].channel, T0 + 20)})
    problems = c.violations()
    assert names(problems, "e2 (offered): ann does not know offer e2-o1"), problems


def test_an_answered_call_still_ringing_is_caught():
    c = busy_center()
    c.engagement("e8", offers=(Offer("e8-o2", "ann", T0 + 20),))
    problems = c.violations()
    assert names(problems, "e8 (wrap_up) still has offers"), problems


def test_a_held_call_its_agent_does_not_hold_is_lost():
    c = busy_center()
    c.agent("eve", holds={"e7": Hold(DIRECTORY.queues["email"].channel, S.OPEN)})
    problems = c.violations()
    assert problems == ["e8 (wrap_up): its agent eve does not hold it as wrap_up"]


def test_a_held_call_with_no_agent_is_lost():
    c = busy_center()
    c.engagement("e4", agent=None)
    problems = c.violations()
    assert names(problems, "e4 (active): its agent None does not hold it as active"), problems


def test_a_call_its_agent_holds_in_another_state_is_caught():
    c = busy_center()
    c.engagement("e4", state=S.WRAP_UP)
    problems = c.violations()
    assert names(problems, "e4 (wrap_up): its agent dan does not hold it as wrap_up"), problems


def test_a_waiting_call_with_an_agent_is_caught():
    c = busy_center()
    c.engagement("e1", agent="ann")
    assert c.violations() == ["e1 (queued) has an agent ann"]


def test_two_agents_on_one_call_is_caught():
    c = busy_center()
    c.agent("dan", holds={**c.agents["dan"].holds, "e7": Hold(DIRECTORY.queues["email"].channel, S.OPEN)})
    assert c.violations() == ["dan holds e7 as email open, but it is email open for eve"]


def test_an_agent_still_holding_a_finished_call_is_caught():
    c = busy_center()
    c.agent("eve", holds={**c.agents["eve"].holds, "e10": Hold(DIRECTORY.queues["email"].channel, S.OPEN)})
    assert c.violations() == ["eve holds e10 as email open, but it is email resolved for None"]


def test_an_agent_holding_a_missing_engagement_is_caught():
    c = busy_center()
    c.agent("eve", holds={**c.agents["eve"].holds, "e99": Hold(DIRECTORY.queues["email"].channel, S.OPEN)})
    assert c.violations() == ["eve holds e99 as email open, but it is missing"]


def test_an_agent_holding_a_call_on_the_wrong_channel_is_caught():
    c = busy_center()
    c.agent("eve", holds={**c.agents["eve"].holds, "e8": Hold(DIRECTORY.queues["email"].channel, S.WRAP_UP)})
    assert c.violations() == ["eve holds e8 as email wrap_up, but it is voice wrap_up for eve"]


def test_an_agent_with_a_ring_its_call_does_not_have_is_caught():
    c = busy_center()
    stale = OfferRef("e11", DIRECTORY.queues["voice"].channel, T0 + 20)
    c.agent("eve", offers={"e11-o1": stale})
    problems = c.violations()
    assert names(problems, "eve has offer e11-o1 that its engagement does not"), problems


def test_an_agent_rung_on_the_wrong_channel_is_caught():
    c = busy_center()
    c.agent("ann", offers={"e2-o1": OfferRef("e2", DIRECTORY.queues["email"].channel, T0 + 20)})
    assert c.violations() == ["ann has offer e2-o1 as email, but e2 is voice"]


def test_an_agent_over_capacity_is_caught():
    c = busy_center()
    c.held("e12", "email", "eve", S.OPEN)
    c.held("e13", "email", "eve", S.OPEN)
    c.held("e14", "email", "eve", S.OPEN)
    c.held("e15", "email", "eve", S.ASSIGNED)
    c.agent("eve", holds={k: v for k, v in c.agents["eve"].holds.items() if k != "e8"})
    c.ended("e8", "vip", S.CLOSED)
    assert c.violations() == []
    c.held("e16", "email", "eve", S.ASSIGNED)
    assert c.violations() == ["eve over capacity on email: 6"]


def test_a_ring_counts_against_capacity():
    c = busy_center()
    c.held("e12", "voice", "ann")
    assert names(c.violations(), "ann over capacity on voice: 2")


def test_blocking_channels_held_together_are_caught():
    c = busy_center()
    c.held("e12", "chat", "ann")
    problems = c.violations()
    assert sorted(problems) == [
        "ann holds chat with voice, which it blocks",
        "ann holds voice with chat, which it blocks",
    ]


# --- history_violations: what the histories say happened, over time ----------------------------------


def step(at: float, event: str, **fields: object) -> HistoryEntry:
    return HistoryEntry(at=T0 + at, event=event, actor="system", **fields)  # type: ignore[arg-type]


def lived(eid: str, queue: str, state: S, *history: HistoryEntry, by: str | None = None) -> EngagementRec:
    created = step(0, "created", state=S.QUEUED, queue=queue)
    channel = DIRECTORY.queues[queue].channel
    return EngagementRec(
        id=eid, queue=queue, channel=channel, state=state, agent=by, created_at=T0, history=(created, *history)
    )


def ring(at: float, offer: str, to: str) -> HistoryEntry:
    return step(at, "offered", state=S.OFFERED, agent=to, offer=offer)


def answer(at: float, event: str, offer: str, by: str) -> HistoryEntry:
    return step(at, event, agent=by, offer=offer)


def a_call(*, accepted_by: str = "cat", extra: tuple[HistoryEntry, ...] = ()) -> list[HistoryEntry]:
    """Rung to ann (declined), ben (rang out), cat (took it), talked, wrapped up."""
    return sorted(
        [
            ring(1, "e1-o1", "ann"),
            answer(2, "declined", "e1-o1", "ann"),
            step(2, "requeued", state=S.QUEUED, queue="voice"),
            ring(3, "e1-o2", "ben"),
            answer(5, "expired", "e1-o2", "ben"),
            step(5, "requeued", state=S.QUEUED, queue="voice"),
            ring(6, "e1-o3", "cat"),
            answer(7, "accepted", "e1-o3", accepted_by),
            step(10, "ended", state=S.WRAP_UP, agent=accepted_by),
            step(11, "closed", state=S.CLOSED, agent=accepted_by),
            *extra,
        ],
        key=lambda h: h.at,
    )


def a_day(**changed: EngagementRec) -> list[EngagementRec]:
    """A consistent day: a call rung to three in turn, a ring-all call, an auto-accepted chat, an email
    released and transferred, a call that overflowed to a ring-all queue and is still being talked, and
    a caller who hung up while ringing."""
    day = {
        "e1": lived("e1", "voice", S.CLOSED, *a_call(), by="cat"),
        "e2": lived(
            "e2",
            "vip",
            S.CLOSED,
            ring(12, "e2-o1", "ann"),
            ring(12, "e2-o2", "ben"),
            answer(13, "accepted", "e2-o1", "ann"),
            answer(13, "rescinded", "e2-o2", "ben"),
            step(15, "ended", state=S.WRAP_UP, agent="ann"),
            step(16, "closed", state=S.CLOSED, agent="ann"),
            by="ann",
        ),
        "e3": lived(
            "e3",
            "chat",
            S.CLOSED,
            step(1, "assigned", agent="dan"),
            step(1, "accepted", state=S.ACTIVE, agent="dan"),
            step(4, "ended", state=S.WRAP_UP, agent="dan"),
            step(5, "closed", state=S.CLOSED, agent="dan"),
            by="dan",
        ),
        "e4": lived(
            "e4",
            "email",
            S.RESOLVED,
            step(1, "assigned", state=S.ASSIGNED, agent="eve"),
            step(2, "opened", state=S.OPEN, agent="eve"),
            step(3, "released", agent="eve"),
            step(3, "assigned", state=S.ASSIGNED, agent="dan"),
            step(6, "transferred", agent="eve", former="dan"),
            step(6, "assigned", state=S.ASSIGNED, agent="eve"),
            step(8, "resolved", state=S.RESOLVED, agent="eve"),
            by="eve",
        ),
        "e5": lived(
            "e5",
            "voice",
            S.ACTIVE,
            step(30, "overflowed", state=S.QUEUED, queue="vip"),
            ring(30, "e5-o1", "ann"),
            ring(30, "e5-o2", "cat"),
            answer(31, "accepted", "e5-o2", "cat"),
            answer(31, "rescinded", "e5-o1", "ann"),
            by="cat",
        ),
        "e6": lived(
            "e6",
            "voice",
            S.ABANDONED,
            ring(20, "e6-o1", "ben"),
            answer(22, "rescinded", "e6-o1", "ben"),
            step(22, "abandoned", state=S.ABANDONED),
        ),
    }
    return list((day | changed).values())


def history_problems(**changed: EngagementRec) -> list[str]:
    return history_violations(DIRECTORY, a_day(**changed))


def test_histories_that_add_up_pass():
    assert history_problems() == []


def test_a_ring_made_twice_is_caught():
    twice = lived("e1", "voice", S.CLOSED, *a_call(extra=(ring(1.5, "e1-o1", "ann"),)), by="cat")
    problems = history_problems(e1=twice)
    assert names(problems, "e1: offer e1-o1 made 2 times, ended 1"), problems


def test_a_ring_ended_twice_by_a_timer_firing_twice_is_caught():
    twice = lived("e1", "voice", S.CLOSED, *a_call(extra=(answer(5.5, "expired", "e1-o2", "ben"),)), by="cat")
    problems = history_problems(e1=twice)
    assert names(problems, "e1: offer e1-o2 made 1 times, ended 2"), problems


def test_a_ring_answered_that_was_never_made_is_caught():
    ghost = lived("e1", "voice", S.CLOSED, *a_call(extra=(answer(8, "declined", "e1-o9", "eve"),)), by="cat")
    problems = history_problems(e1=ghost)
    assert names(problems, "e1: offer e1-o9 made 0 times, ended 1"), problems


def test_a_call_taken_by_two_agents_without_a_hand_over_is_caught():
    both = lived(
        "e2",
        "vip",
        S.CLOSED,
        ring(12, "e2-o1", "ann"),
        ring(12, "e2-o2", "ben"),
        answer(13, "accepted", "e2-o1", "ann"),
        answer(13, "accepted", "e2-o2", "ben"),
        step(15, "ended", state=S.WRAP_UP, agent="ann"),
        step(16, "closed", state=S.CLOSED, agent="ann"),
        by="ann",
    )
    problems = history_problems(e2=both)
    assert names(problems, "e2 was taken by ['ann', 'ben'] without a hand-over"), problems


def test_two_rings_at_once_in_a_one_at_a_time_queue_are_caught():
    early = [h if h.offer != "e1-o2" or h.event != "offered" else replace(h, at=T0 + 1.5) for h in a_call()]
    problems = history_problems(e1=lived("e1", "voice", S.CLOSED, *sorted(early, key=lambda h: h.at), by="cat"))
    assert names(problems, "e1 rang ['e1-o1', 'e1-o2'] at once"), problems


def test_two_rings_at_once_after_moving_to_a_one_at_a_time_queue_are_caught():
    moved = lived(
        "e2",
        "vip",
        S.CLOSED,
        step(11, "transferred", queue="voice"),
        ring(12, "e2-o1", "ann"),
        ring(12, "e2-o2", "ben"),
        answer(13, "accepted", "e2-o1", "ann"),
        answer(13, "rescinded", "e2-o2", "ben"),
        step(15, "ended", state=S.WRAP_UP, agent="ann"),
        step(16, "closed", state=S.CLOSED, agent="ann"),
        by="ann",
    )
    assert history_problems(e2=moved) == [f"e2 rang ['e2-o1', 'e2-o2'] at once at {T0 + 12}"]


def test_a_ring_answered_for_another_agent_than_it_rang_is_caught():
    taken = lived(
        "e5",
        "voice",
        S.ACTIVE,
        step(30, "overflowed", state=S.QUEUED, queue="vip"),
        ring(30, "e5-o1", "ann"),
        ring(30, "e5-o2", "cat"),
        answer(31, "accepted", "e5-o2", "ben"),
        answer(31, "rescinded", "e5-o1", "ann"),
        by="ben",
    )
    assert history_problems(e5=taken) == ["e5: offer e5-o2 rang cat but was accepted for ben"]


def test_an_agent_rung_beyond_capacity_is_caught():
    second = lived(
        "e7",
        "voice",
        S.ABANDONED,
        ring(1.5, "e7-o1", "ann"),
        answer(1.8, "rescinded", "e7-o1", "ann"),
        step(1.8, "abandoned", state=S.ABANDONED),
    )
    assert history_problems(e7=second) == [f"ann held 2 voice at {T0 + 1.5} (capacity 1)"]


def test_an_agent_finishing_a_call_it_never_took_is_caught():
    call = a_call()
    call[-1] = replace(call[-1], agent="ann")
    problems = history_problems(e1=lived("e1", "voice", S.CLOSED, *call, by="cat"))
    assert names(problems, f"ann released more voice than it held at {T0 + 11}"), problems


def test_an_agent_rung_for_a_call_while_on_a_chat_is_caught():
    blocked = lived(
        "e7",
        "voice",
        S.ABANDONED,
        ring(3, "e7-o1", "dan"),
        answer(3.5, "declined", "e7-o1", "dan"),
        step(3.5, "abandoned"),
    )
    assert history_problems(e7=blocked) == [f"dan was given voice at {T0 + 3} while it had chat, which blocks it"]


def test_a_call_held_by_another_agent_than_the_one_who_took_it_is_caught():
    day = {e.id: e for e in a_day()}
    assert history_problems(e5=replace(day["e5"], agent="ann")) == ["e5 was last taken by ['cat'] but is held by ann"]


def test_a_ring_the_history_ended_but_the_record_still_has_is_caught():
    day = {e.id: e for e in a_day()}
    still = replace(day["e6"], state=S.OFFERED, offers=(Offer("e6-o1", "ben", T0 + 40),))
    problems = history_problems(e6=still)
    assert names(problems, "e6: its history leaves [] ringing"), problems


def test_a_ring_the_history_left_running_but_the_record_dropped_is_caught():
    day = {e.id: e for e in a_day()}
    dropped = replace(day["e6"], history=day["e6"].history[:2], state=S.QUEUED)
    assert history_problems(e6=dropped) == ["e6: its history leaves ['e6-o1'] ringing, the record ()"]


# --- whereabouts: where each engagement a flow got a 201 for is now --------------------------------


def places(c: Center, *eids: str) -> dict[str, str]:
    return whereabouts(eids or list(c.engagements), c.engagements.values(), c.agents.values(), c.queues.values())


def test_every_engagement_is_found_where_the_records_agree_it_is():
    assert places(busy_center()) == {
        "e1": "waiting",
        "e2": "ringing",
        "e3": "ringing",
        "e4": "held",
        "e5": "held",
        "e6": "held",
        "e7": "held",
        "e8": "held",
        "e9": "closed",
        "e10": "resolved",
        "e11": "abandoned",
    }


def test_an_engagement_with_no_record_is_lost():
    assert places(busy_center(), "e1", "e99") == {"e1": "waiting", "e99": "lost"}


def test_a_waiting_call_in_no_line_is_nowhere():
    c = busy_center()
    c.line("voice")
    assert places(c, "e1") == {"e1": "lost"}


def test_a_call_waiting_twice_is_not_somewhere_the_records_agree():
    c = busy_center()
    c.line("voice", WaitEntry("e1", 0, T0), WaitEntry("e1", 0, T0 + 1))
    assert places(c, "e1") == {"e1": "lost"}


def test_a_ringing_call_that_rings_no_one_is_nowhere():
    c = busy_center()
    c.engagement("e2", offers=())
    assert places(c, "e2") == {"e2": "lost"}


def test_a_ring_all_call_one_of_whose_agents_does_not_know_the_ring_is_nowhere():
    c = busy_center()
    c.agent("cat", offers={})
    assert places(c, "e3") == {"e3": "lost"}


def test_a_ring_its_agent_has_for_another_call_is_nowhere():
    c = busy_center()
    c.agent("ann", offers={"e2-o1": OfferRef("e9", DIRECTORY.queues["voice"].channel, T0 + 20)})
    assert places(c, "e2") == {"e2": "lost"}


def test_a_held_call_its_agent_does_not_hold_is_nowhere():
    c = busy_center()
    c.agent("eve", holds={"e7": Hold(DIRECTORY.queues["email"].channel, S.OPEN)})
    assert places(c, "e8") == {"e8": "lost"}


def test_a_call_its_agent_holds_in_another_state_is_nowhere():
    c = busy_center()
    c.engagement("e4", state=S.WRAP_UP)
    assert places(c, "e4") == {"e4": "lost"}


def test_a_held_call_with_no_agent_is_nowhere():
    c = busy_center()
    c.engagement("e6", agent=None)
    assert places(c, "e6") == {"e6": "lost"}


# --- seq_continuity: each agent's events, socket after socket --------------------------------------


def socket(
    seqs: list[int], *, head: int = 0, resume_from: int | None = None, resumed: bool = False, at: float = 0
) -> Segment:
    return Segment(
        agent="ann",
        node=0,
        opened=T0 + at,
        resume_from=resume_from,
        resumed=resumed,
        head=head,
        seqs=seqs,
        closed=None,
        code=None,
        reason="",
    )


def continuity(*sockets: Segment) -> Continuity:
    return seq_continuity(sockets)[0]


def faults_of(c: Continuity) -> dict[str, int]:
    return {k: v for k in ("gaps", "duplicates", "backwards", "stale_resumes") if (v := c[k])}  # type: ignore[literal-required]


def test_events_in_order_across_resumes_pass():
    first = socket([4, 5, 6], head=3)
    resumed = socket([7, 8, 9, 10], head=8, resume_from=6, resumed=True, at=1)  # 7 and 8 replayed
    again = socket([11], head=10, resume_from=10, resumed=True, at=2)  # nothing missed
    c, resumes = seq_continuity([again, resumed, first])
    assert c == Continuity(events=8, gaps=0, duplicates=0, backwards=0, stale_resumes=0, problems=[])
    assert resumes == Resumes(first_sign_ins=1, resumed=2, fresh=0)


def test_a_seq_skipped_is_a_gap():
    c = continuity(socket([1, 2, 5]))
    assert faults_of(c) == {"gaps": 2} and c["problems"] == ["ann on node0: seq 5 after 2"]


def test_the_first_event_after_the_welcome_skipped_is_a_gap():
    assert faults_of(continuity(socket([5, 6], head=3))) == {"gaps": 1}


def test_a_seq_received_twice_is_a_duplicate():
    c = continuity(socket([1, 2, 2, 3]))
    assert faults_of(c) == {"duplicates": 1} and c["problems"] == ["ann on node0: seq 2 again (after 2)"]


def test_a_seq_lower_than_the_last_is_going_backwards():
    c = continuity(socket([1, 3, 2]))
    assert faults_of(c) == {"gaps": 1, "backwards": 1}
    assert c["problems"][-1] == "ann on node0: seq 2 after 3, going backwards"


def test_a_welcome_followed_by_events_it_already_counted_is_going_backwards():
    assert faults_of(continuity(socket([3, 4], head=4))) == {"backwards": 2}


def test_a_replay_that_misses_an_event_is_a_gap():
    c = continuity(socket([1, 2, 3]), socket([5, 6], head=6, resume_from=3, resumed=True, at=1))
    assert faults_of(c) == {"gaps": 1} and c["problems"] == ["ann on node0: seq 5 after 3"]


def test_a_replay_of_what_the_agent_already_had_is_a_duplicate():
    c = continuity(socket([1, 2, 3]), socket([3, 4], head=4, resume_from=3, resumed=True, at=1))
    assert faults_of(c) == {"duplicates": 1}


def test_live_events_without_the_replay_after_a_resume_are_a_gap():
    c = continuity(socket([1, 2]), socket([6, 7], head=5, resume_from=2, resumed=True, at=1))
    assert faults_of(c) == {"gaps": 3}


def test_a_resume_from_a_log_behind_the_agent_is_caught():
    c = continuity(socket([1, 2, 3, 4, 5]), socket([], head=3, resume_from=5, resumed=True, at=1))
    assert faults_of(c) == {"stale_resumes": 1}
    assert c["problems"] == ["ann on node0: resumed from 5 but the welcome's seq is 3"]


def test_a_fresh_start_after_the_server_lost_the_missed_events_is_accepted():
    lost_log = socket([2, 3], head=1, resume_from=9, resumed=False, at=1)  # a new epoch starts low again
    c, resumes = seq_continuity([socket([8, 9], head=7), lost_log])
    assert faults_of(c) == {} and c["events"] == 4
    assert resumes == Resumes(first_sign_ins=1, resumed=0, fresh=1)


def test_a_fresh_start_must_itself_be_continuous():
    c = continuity(socket([8, 9], head=7), socket([2, 4], head=1, resume_from=9, resumed=False, at=1))
    assert faults_of(c) == {"gaps": 1}


# --- double_assignments: what the agents were told they held -----------------------------------------


def mine(eid: str, at: float, seq: int = 0) -> Told:
    return Told(eid, T0 + at, seq, True)


def not_mine(eid: str, at: float, seq: int = 0) -> Told:
    return Told(eid, T0 + at, seq, False)


def desk(
    agent: str,
    *told: Told,
    welcome: tuple[Told, ...] = (),
    at: float = 0,
    resume_from: int | None = None,
    resumed: bool = False,
) -> Segment:
    """One socket of `agent`, welcomed at `at` (server time, relative to T0)."""
    return Segment(
        agent=agent,
        node=0,
        opened=T0 + at,
        resume_from=resume_from,
        resumed=resumed,
        head=0,
        seqs=[],
        closed=None,
        code=None,
        reason="",
        welcomed_at=T0 + at,
        welcome=list(welcome),
        told=list(told),
    )


def test_what_a_snapshot_tells_an_agent():
    channel = DIRECTORY.queues["voice"].channel
    history = [step(0, "created"), step(2, "offered", agent="ann"), step(3, "accepted", agent="ann")]
    active = Engagement(
        id="e1",
        queue="voice",
        queue_name="Voice",
        channel=channel,
        state=S.ACTIVE,
        agent="ann",
        history=history,
        created_at=T0,
    )
    assert told("ann", active, 7) == Told("e1", T0 + 3, 7, True)
    assert told("ben", active, 7) == Told("e1", T0 + 3, 7, False)
    ringing = replace(active, state=S.OFFERED, agent=None, history=history[:2])
    assert told("ann", ringing, 6) == Told("e1", T0 + 2, 6, False)
    for state in (S.WRAP_UP, S.ASSIGNED, S.OPEN):
        assert told("ann", replace(active, state=state), 8).mine
    closed = replace(active, state=S.CLOSED, history=[*history, step(9, "closed", agent="ann")])
    assert told("ann", closed, 9) == Told("e1", T0 + 9, 9, False)


def test_two_agents_told_they_hold_the_same_call_is_caught():
    ann = desk("ann", mine("e1", 10, seq=3), not_mine("e1", 20, seq=4))
    ben = desk("ben", mine("e1", 15, seq=7), not_mine("e1", 25, seq=8))
    assert double_assignments([ann, ben]) == [
        f"e1: ann (told at {T0 + 10:.3f}, seq 3) and ben (told at {T0 + 15:.3f}, seq 7) "
        f"both held it until {T0 + 20:.3f}"
    ]


def test_a_clean_hand_over_by_transfer_is_not_flagged():
    ann = desk("ann", mine("e1", 10), mine("e1", 12), not_mine("e1", 20))  # assigned, opened, transferred away
    ben = desk("ben", mine("e1", 20), mine("e1", 21), not_mine("e1", 30))  # assigned by that transfer, opened, resolved
    assert double_assignments([ann, ben]) == []


def test_a_call_passed_back_and_forth_is_not_flagged():
    ann = desk("ann", mine("e1", 10), not_mine("e1", 12), mine("e1", 14), not_mine("e1", 18))
    ben = desk("ben", mine("e1", 12), not_mine("e1", 14))
    assert double_assignments([ann, ben]) == []


def test_rings_of_a_ring_all_call_are_not_holds():
    ann = desk("ann", not_mine("e3", 10), mine("e3", 11), not_mine("e3", 20))
    ben = desk("ben", not_mine("e3", 10))  # rung too; its ring_cancelled carries no snapshot
    assert double_assignments([ann, ben]) == []


def test_an_agent_never_told_a_call_left_them_is_caught_when_it_goes_to_another():
    ann = desk("ann", mine("e1", 10))
    ben = desk("ben", mine("e1", 20))
    problems = double_assignments([ann, ben])
    assert len(problems) == 1 and problems[0].endswith("both held it to the end"), problems


def test_a_replay_after_the_welcome_still_ends_the_hold_when_it_ended():
    ann_before = desk("ann", mine("e1", 10))
    ann_back = desk("ann", not_mine("e1", 20), resume_from=1, resumed=True, at=30)  # the replay follows the welcome
    ben = desk("ben", mine("e1", 20))
    assert double_assignments([ann_back, ben, ann_before]) == []


def test_a_hand_over_an_agent_only_hears_of_from_its_next_welcome_is_caught():
    ann_before = desk("ann", mine("e1", 10))
    ann_back = desk("ann", resume_from=1, resumed=True, at=30)  # resumed, yet the hand-over never replayed
    ben = desk("ben", mine("e1", 20))
    problems = double_assignments([ann_before, ann_back, ben])
    assert len(problems) == 1 and problems[0].endswith(f"both held it until {T0 + 30:.3f}"), problems


def test_a_welcome_that_no_longer_lists_a_call_ends_the_hold():
    ann_before = desk("ann", mine("e1", 10))
    ann_back = desk("ann", resume_from=1, resumed=True, at=15)
    ben = desk("ben", mine("e1", 20))
    assert double_assignments([ann_before, ann_back, ben]) == []


def test_a_welcome_listing_a_call_another_agent_holds_is_caught():
    ann = desk("ann", welcome=(mine("e1", 25),), resume_from=1, resumed=True, at=30)
    ben = desk("ben", mine("e1", 20))
    problems = double_assignments([ann, ben])
    assert len(problems) == 1 and problems[0].startswith(f"e1: ben (told at {T0 + 20:.3f}"), problems


def test_a_fresh_start_does_not_blame_an_agent_for_what_it_could_not_hear():
    ann_before = desk("ann", mine("e1", 10), mine("e2", 12))  # e2 is the last ann heard of before the drop
    ann_fresh = desk("ann", welcome=(mine("e2", 12),), resume_from=5, resumed=False, at=40)  # events lost
    ben = desk("ben", mine("e1", 20))
    assert double_assignments([ann_before, ann_fresh, ben]) == []


def test_a_fresh_start_still_catches_a_call_given_away_while_the_agent_heard_it_was_theirs():
    ann_before = desk("ann", mine("e1", 10), mine("e2", 12))
    ann_fresh = desk("ann", welcome=(mine("e2", 12),), resume_from=5, resumed=False, at=40)
    ben = desk("ben", mine("e1", 11))
    problems = double_assignments([ann_before, ann_fresh, ben])
    assert len(problems) == 1 and problems[0].endswith(f"both held it until {T0 + 12:.3f}"), problems


# --- the chaos report: every checker's findings reach it ----------------------------------------------


def report_of(c: Center, arrivals: list[str], segments: list[Segment]) -> dict[str, object]:
    """What `python -m loadtest chaos` would report for these records and sockets, faults aside."""
    part = {
        "segments": segments,
        "offered": {},
        "errors": {},
        "answers": {},
        "failed_connects": 0,
        "requests": 0,
        "signed_in": len(AGENTS),
        "crashed": [],
        "cpu_s": 0.0,
    }
    posted = [Arrival(n, "voice", T0, answered=T0, eid=eid) for n, eid in enumerate(arrivals)]
    records = Records(list(c.engagements.values()), list(c.agents.values()), list(c.queues.values()))
    return analyse(Plan(), DIRECTORY, posted, [part], [], records, {})


def a_quiet_center() -> Center:
    """A call waiting and one abandoned, with no history to disagree with."""
    c = Center()
    c.waiting("e1")
    c.ended("e2", "voice", S.ABANDONED)
    return c


def test_a_clean_run_reports_nothing_wrong():
    report = report_of(a_quiet_center(), ["e1", "e2"], [desk("ann", mine("e3", 10), not_mine("e3", 20))])
    assert report["lost"] == report["invariant_violations"] == 0
    assert report["seq_gaps"] == report["double_assignments_seen_by_agents"] == 0


def test_the_chaos_report_counts_what_each_checker_caught():
    c = a_quiet_center()
    c.agent("eve", holds={"e9": Hold(DIRECTORY.queues["email"].channel, S.OPEN)})
    gap = Segment(**{**desk("ann"), "seqs": [1, 3]})  # type: ignore[typeddict-item]
    report = report_of(c, ["e1", "e99"], [gap, desk("ben", mine("e3", 10)), desk("cat", mine("e3", 12))])
    assert report["lost"] == 1 and report["lost_engagements"] == ["e99 (missing)"]
    assert report["invariant_violations"] == 1 and report["violations"] == [
        "eve holds e9 as email open, but it is missing"
    ]
    assert report["seq_gaps"] == 1
    assert report["double_assignments_seen_by_agents"] == 1
