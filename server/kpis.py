"""Contact-center figures (KPIs) per queue and per agent, computed exactly from recorded histories.

Pure: no I/O and no clock. The caller passes the engagements (anything with an `id` and a `history`
of `HistoryEntry`: the store's records, or engagements read over HTTP), the agents' records (for their
status history), and `now`, the moment the histories are known up to. `Ledger` reads them once into
facts with times (a visit of an engagement to a queue, a wait, a handling); every window or
15-minute interval is then a cheap selection of facts by the time of the event that defines them.

docs/analytics.md gives every definition in words; in short, per queue and engagement:
- it is *offered* to a queue once, when it first enters that queue's waiting line (created there,
  overflowed or transferred into it); a release back into the same queue is not a new offer;
- it is *answered* there once, when an agent first takes it in that queue (a live engagement
  accepted, auto-accepted included; an email assigned); its wait is from entering the line to then;
- it is *abandoned* there when the consumer leaves while it waits there, if no agent took it there;
- otherwise its wait there ends when it *moves on* (overflows or is transferred to another queue
  while waiting, or a supervisor withdraws it);
- its *handling* in a queue is the time agents held it there: live from accepted to wrap-up done
  (closed), email from assigned to resolved, summed over every agent who held it there (a release
  or a transfer to a colleague splits it), counted once, when the engagement leaves the queue's
  agents for good (closed, resolved, or moved to another queue).
"""

from __future__ import annotations

import bisect
import enum
import math
from collections.abc import Iterable, Sequence
from typing import Protocol

from msgspec import Struct, field

from protocol.model import AgentStatus, EngagementState, HistoryEntry
from server.core.records import AgentRec

INTERVAL_S = 15 * 60.0
"""The length of the intervals of the day that wallboards and reports use."""
CONNECTION_LOST = "connection_lost"
"""The not-ready reason of an agent whose desktop went away: not counted as signed in."""


class Recorded(Protocol):
    """An engagement as the figures read it: its id and its history of transitions, oldest first."""

    @property
    def id(self) -> str: ...

    @property
    def history(self) -> Sequence[HistoryEntry]: ...


class Outcome(enum.StrEnum):
    """How an engagement's wait in a queue ended."""

    ANSWERED = "answered"
    ABANDONED = "abandoned"
    MOVED = "moved"
    """Overflowed or transferred to another queue while waiting, or withdrawn by a supervisor."""


class Visit(Struct, kw_only=True, gc=False):
    """One engagement in one queue: when it was offered there, how its wait there ended, and its
    handling there. `wait_s` is the wait that ended in `outcome` (from the moment it last joined
    the line). `handled_at` is set once its handling there is over, `handle_s` sums it."""

    engagement: str
    queue: str
    entered_at: float
    outcome: Outcome | None = None
    outcome_at: float | None = None
    wait_s: float | None = None
    handled_at: float | None = None
    handle_s: float = 0.0


class Spell(Struct, frozen=True, array_like=True, gc=False):
    """A stretch of time, open (`end` None) when it was still going on at `now`."""

    start: float
    end: float | None


class Handling(Struct, frozen=True, array_like=True, gc=False):
    """An agent held an engagement of a queue from `start` to `end` (None: still holds it)."""

    engagement: str
    agent: str
    queue: str
    start: float
    end: float | None


class StatusSpell(Struct, frozen=True, array_like=True, gc=False):
    status: AgentStatus
    reason: str | None
    start: float
    end: float | None


class QueueStats(Struct, kw_only=True):
    """A queue's figures over `[start, end)`. Ratios and means are None when nothing was there to
    count (no engagement finished waiting, none answered, no agent signed in)."""

    queue: str
    window_s: float
    start: float
    end: float
    offered: int
    answered: int
    abandoned: int
    service_level: float | None
    service_level_threshold_s: float
    asa_s: float | None
    aht_s: float | None
    abandonment_rate: float | None
    longest_wait_s: float | None
    occupancy: float | None
    handled: int = 0
    max_wait_s: float | None = None


class AgentStats(Struct, kw_only=True):
    """An agent's figures over `[start, end)`: engagements handled and their mean handling time, time
    signed in and handling, and time per status (`status_s`; `not_ready_s` splits not ready by reason)."""

    agent: str
    window_s: float
    start: float
    end: float
    handled: int
    aht_s: float | None
    occupancy: float | None
    signed_in_s: float
    handling_s: float
    status_s: dict[str, float] = field(default_factory=dict)
    not_ready_s: dict[str, float] = field(default_factory=dict)


# --- reading histories ----------------------------------------------------------------------------


class _Reading:
    """One engagement's history, walked in order."""

    def __init__(self, engagement: str) -> None:
        self.engagement = engagement
        self.queue: str | None = None
        self.waiting = False
        self.wait_start = 0.0
        self.final = False
        self.visits: dict[str, Visit] = {}
        self.spells: list[tuple[str, float, float | None]] = []
        self.holding: dict[str, tuple[float, str]] = {}
        self.handlings: list[Handling] = []

    def enter(self, queue: str, at: float) -> None:
        self.end_wait(None, at)
        self.queue = queue
        if queue not in self.visits:
            self.visits[queue] = Visit(engagement=self.engagement, queue=queue, entered_at=at)
        self.waiting = True
        self.wait_start = at
        self.spells.append((queue, at, None))

    def end_wait(self, outcome: Outcome | None, at: float) -> None:
        """The wait in the current queue (if any) ends at `at`, the way `outcome` says (None: it goes on
        elsewhere or again). An outcome is kept unless a later one says more: answered stays answered."""
        if not self.waiting or self.queue is None:
            return
        self.waiting = False
        queue, start, _ = self.spells[-1]
        self.spells[-1] = (queue, start, at)
        self.settle(outcome or Outcome.MOVED, at)

    def settle(self, outcome: Outcome, at: float) -> None:
        assert self.queue is not None
        visit = self.visits[self.queue]
        if visit.outcome is Outcome.ANSWERED or (visit.outcome is Outcome.ABANDONED and outcome is Outcome.MOVED):
            return
        visit.outcome, visit.outcome_at, visit.wait_s = outcome, at, at - self.wait_start

    def answer(self, agent: str, at: float) -> None:
        if self.queue is None:
            return
        if self.waiting:
            self.end_wait(Outcome.ANSWERED, at)
        else:  # rung straight from another agent (a transfer): answered there only if never before
            self.settle(Outcome.ANSWERED, at)
        self.holding[agent] = (at, self.queue)

    def let_go(self, agent: str | None, at: float) -> bool:
        """The agent (None: whoever holds it) stops holding it; False when no one did."""
        agents = [agent] if agent in self.holding else list(self.holding) if agent is None else []
        for who in agents:
            start, queue = self.holding.pop(who)
            self.handlings.append(Handling(self.engagement, who, queue, start, at))
        return bool(agents)

    def read(self, history: Sequence[HistoryEntry], now: float) -> None:
        for h in history:
            if h.at > now:
                break
            match h.event:
                case "created" | "overflowed" if h.queue is not None:
                    self.enter(h.queue, h.at)
                case "transferred":
                    if h.former is not None:
                        self.let_go(h.former, h.at)
                    if h.queue is not None:
                        self.enter(h.queue, h.at)
                case "released":
                    self.let_go(h.agent, h.at)
                    if self.queue is not None:
                        self.enter(self.queue, h.at)
                case "accepted" if h.agent is not None:
                    self.answer(h.agent, h.at)
                case "assigned" if h.agent is not None and h.state is EngagementState.ASSIGNED:
                    self.answer(h.agent, h.at)
                case "closed" | "resolved":
                    if not self.let_go(h.agent, h.at):
                        self.end_wait(Outcome.MOVED, h.at)  # withdrawn while waiting
                    self.final = True
                case "abandoned":
                    self.end_wait(Outcome.ABANDONED, h.at)
                    self.let_go(None, h.at)
                    self.final = True

    def close(self) -> None:
        """Open handlings stay open; a queue's handling is over once the engagement left its agents."""
        for agent, (start, queue) in self.holding.items():
            self.handlings.append(Handling(self.engagement, agent, queue, start, None))
        open_in = {queue for _, queue in self.holding.values()}
        for queue, visit in self.visits.items():
            spans = [(x.start, x.end) for x in self.handlings if x.queue == queue and x.end is not None]
            if spans and queue not in open_in and (self.final or self.queue != queue):
                visit.handled_at = max(end for _, end in spans)
                visit.handle_s = math.fsum(end - start for start, end in spans)


def _status_spells(agent: AgentRec, now: float) -> list[StatusSpell]:
    """The agent's statuses as spells; deferred steps were only asked for (the applied step follows)."""
    steps = [s for s in agent.history if not s.deferred and s.at <= now]
    spells: list[StatusSpell] = []
    for i, step in enumerate(steps):
        end = steps[i + 1].at if i + 1 < len(steps) else None
        spells.append(StatusSpell(step.status, step.reason, step.at, end))
    return spells


def _merge(spells: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for start, end in sorted(spells):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


class _Spans:
    """Disjoint spans of time, sorted, with their starts for bisection."""

    def __init__(self, merged: list[tuple[float, float]]) -> None:
        self.merged = merged
        self.starts = [s for s, _ in merged]

    def within(self, lo: float, hi: float) -> float:
        """How much of [lo, hi) they cover."""
        total = 0.0
        i = max(0, bisect.bisect_right(self.starts, lo) - 1)
        while i < len(self.merged) and self.merged[i][0] < hi:
            s, e = self.merged[i]
            total += max(0.0, min(e, hi) - max(s, lo))
            i += 1
        return total


_NOBODY = _Spans([])


class _QueueFacts:
    """One queue's facts sorted by the time that attributes them, for selection by window."""

    def __init__(self, visits: list[Visit], spells: list[Spell]) -> None:
        self.offered = sorted(v.entered_at for v in visits)
        ended = [(v.outcome_at, v.outcome, v.wait_s) for v in visits]
        self.ended = sorted(
            ((at, outcome, wait) for at, outcome, wait in ended if at is not None and outcome and wait is not None),
            key=lambda x: x[0],
        )
        self.ended_at = [x[0] for x in self.ended]
        handled = sorted((v.handled_at, v.handle_s) for v in visits if v.handled_at is not None)
        self.handled_at = [x[0] for x in handled]
        self.handled = handled
        closed = sorted((s.start, s.end) for s in spells if s.end is not None)
        self.spell_starts = [s for s, _ in closed]
        self.spell_ends = [e for _, e in closed]
        self.longest_closed = max((e - s for s, e in closed), default=0.0)
        self.open_starts = sorted(s.start for s in spells if s.end is None)


class Ledger:
    """The facts in a set of histories, known up to `now`. Build it once, ask it for any window."""

    def __init__(self, engagements: Iterable[Recorded], agents: Iterable[AgentRec], now: float) -> None:
        self.now = now
        self.visits: dict[str, list[Visit]] = {}
        self.handlings: dict[str, list[Handling]] = {}
        spells: dict[str, list[Spell]] = {}
        for eng in engagements:
            reading = _Reading(eng.id)
            reading.read(eng.history, now)
            reading.close()
            for queue, visit in reading.visits.items():
                self.visits.setdefault(queue, []).append(visit)
            for queue, start, end in reading.spells:
                spells.setdefault(queue, []).append(Spell(start, end))
            for handling in reading.handlings:
                self.handlings.setdefault(handling.agent, []).append(handling)
        self.statuses = {a.id: _status_spells(a, now) for a in agents}
        self._queues = {q: _QueueFacts(self.visits.get(q, []), spells.get(q, [])) for q in {*self.visits, *spells}}
        self._busy: dict[str, _Spans] = {}
        self._present: dict[str, _Spans] = {}
        for agent in {*self.handlings, *self.statuses}:
            busy = _merge((h.start, now if h.end is None else h.end) for h in self.handlings.get(agent, []))
            signed_in = [
                (s.start, now if s.end is None else s.end)
                for s in self.statuses.get(agent, [])
                if s.status is not AgentStatus.OFFLINE and s.reason != CONNECTION_LOST
            ]
            self._busy[agent] = _Spans(busy)
            self._present[agent] = _Spans(_merge([*signed_in, *busy]))

    # --- queues ---------------------------------------------------------------------------------

    def queue_stats(
        self, queue: str, start: float, end: float, threshold_s: float, members: Sequence[str] = ()
    ) -> QueueStats:
        """The queue's figures over `[start, end)`; `members` are its agents (for occupancy)."""
        facts = self._queues.get(queue) or _QueueFacts([], [])
        offered = bisect.bisect_left(facts.offered, end) - bisect.bisect_left(facts.offered, start)
        ended = facts.ended[bisect.bisect_left(facts.ended_at, start) : bisect.bisect_left(facts.ended_at, end)]
        waits = [w for _, outcome, w in ended if outcome is Outcome.ANSWERED]
        abandoned = sum(1 for _, outcome, _ in ended if outcome is Outcome.ABANDONED)
        in_time = sum(1 for w in waits if w <= threshold_s)
        handled = facts.handled[bisect.bisect_left(facts.handled_at, start) : bisect.bisect_left(facts.handled_at, end)]
        return QueueStats(
            queue=queue,
            window_s=end - start,
            start=start,
            end=end,
            offered=offered,
            answered=len(waits),
            abandoned=abandoned,
            service_level=in_time / len(ended) if ended else None,
            service_level_threshold_s=threshold_s,
            asa_s=math.fsum(waits) / len(waits) if waits else None,
            aht_s=math.fsum(h for _, h in handled) / len(handled) if handled else None,
            abandonment_rate=abandoned / len(ended) if ended else None,
            longest_wait_s=self.longest_wait(queue, end),
            occupancy=self._occupancy(members, start, end),
            handled=len(handled),
            max_wait_s=max((w for _, _, w in ended), default=None),
        )

    def queue_intervals(
        self,
        queue: str,
        day_start: float,
        threshold_s: float,
        members: Sequence[str] = (),
        *,
        length_s: float = INTERVAL_S,
        count: int = round(24 * 3600 / INTERVAL_S),
    ) -> list[QueueStats]:
        """The queue's figures in consecutive intervals from `day_start` (the caller's midnight)."""
        return [
            self.queue_stats(queue, day_start + i * length_s, day_start + (i + 1) * length_s, threshold_s, members)
            for i in range(count)
        ]

    def longest_wait(self, queue: str, at: float) -> float | None:
        """How long the longest wait in the queue going on at `at` has lasted (0 when no one waits);
        None for a moment the histories do not reach yet."""
        if at > self.now:
            return None
        facts = self._queues.get(queue)
        if facts is None:
            return 0.0
        longest = 0.0
        if facts.open_starts and facts.open_starts[0] < at:  # sorted: the first is the oldest
            longest = at - facts.open_starts[0]
        hi = bisect.bisect_left(facts.spell_starts, at)
        lo = bisect.bisect_left(facts.spell_starts, at - facts.longest_closed)
        for i in range(lo, hi):
            if facts.spell_ends[i] > at:
                longest = max(longest, at - facts.spell_starts[i])
                break  # sorted by start: the first still going is the longest
        return longest

    def waits(self, queue: str) -> dict[str, tuple[Outcome | None, float | None]]:
        """Every engagement's outcome in the queue and the wait that ended in it, by engagement id."""
        return {v.engagement: (v.outcome, v.wait_s) for v in self.visits.get(queue, [])}

    def _occupancy(self, agents: Sequence[str], start: float, end: float) -> float | None:
        busy = present = 0.0
        for agent in agents:
            busy += self._busy.get(agent, _NOBODY).within(start, end)
            present += self._present.get(agent, _NOBODY).within(start, end)
        return busy / present if present > 0 else None

    # --- agents ---------------------------------------------------------------------------------

    def agent_stats(self, agent: str, start: float, end: float) -> AgentStats:
        """The agent's figures over `[start, end)`. An engagement counts once for an agent, when they
        last stopped holding it (a release and a second take are one engagement)."""
        last: dict[str, float] = {}
        spent: dict[str, float] = {}
        still: set[str] = set()
        for h in self.handlings.get(agent, []):
            if h.end is None:
                still.add(h.engagement)
                continue
            last[h.engagement] = max(last.get(h.engagement, h.end), h.end)
            spent[h.engagement] = spent.get(h.engagement, 0.0) + (h.end - h.start)
        done = [e for e, at in last.items() if e not in still and start <= at < end]
        status_s: dict[str, float] = {}
        not_ready_s: dict[str, float] = {}
        known = 0.0
        for s in self.statuses.get(agent, []):
            t = max(0.0, min(self.now if s.end is None else s.end, end) - max(s.start, start))
            if t <= 0:
                continue
            known += t
            status_s[s.status.value] = status_s.get(s.status.value, 0.0) + t
            if s.status is AgentStatus.NOT_READY:
                reason = s.reason or "none"
                not_ready_s[reason] = not_ready_s.get(reason, 0.0) + t
        before = max(0.0, min(end, self.now) - start - known)
        if before > 0:
            status_s[AgentStatus.OFFLINE.value] = status_s.get(AgentStatus.OFFLINE.value, 0.0) + before
        handling = self._busy.get(agent, _NOBODY).within(start, end)
        present = self._present.get(agent, _NOBODY).within(start, end)
        return AgentStats(
            agent=agent,
            window_s=end - start,
            start=start,
            end=end,
            handled=len(done),
            aht_s=math.fsum(spent[e] for e in done) / len(done) if done else None,
            occupancy=handling / present if present > 0 else None,
            signed_in_s=present,
            handling_s=handling,
            status_s=status_s,
            not_ready_s=not_ready_s,
        )
