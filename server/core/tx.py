"""The transaction the core works in: a snapshot to read, buffered writes, outgoing events and timers.

A store lends the core a `Snapshot` (consistent reads of records), the core reads and writes through
a `Tx`, and the store then applies `Tx.changes()` as one atomic step, or throws it away. The core
never sees how records are kept; the store never sees routing rules.

Events to an agent are collected in order; the store gives them the agent's next `seq` numbers at
commit, so event order and state order are the same thing. A `status` event is derived here, at the
end, for every agent whose status, reason or next status changed, so no command can forget one, and
an `agent_state` notice for supervisors for every agent the transaction touched.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Protocol

from msgspec import Struct, field

from protocol.frames import AgentState, EngagementEvent, Event, StatusEvent
from protocol.model import Activity, AgentStatus, Channel, Engagement, Fragment, HistoryEntry
from server.config import Directory
from server.core.ranking import Ranked, rank, ranked, ranked_agent
from server.core.records import AgentRec, EngagementRec, QueueRec, Receipt, TalkRec
from server.core.views import conversation, engagement_view
from server.topics import SUPERVISORS, consumer_topic, watch_topic

IdSource = Callable[[str], str]
"""Makes a fresh id with the given prefix (`e` for engagements). Injected, so the core stays deterministic."""


class Snapshot(Protocol):
    """Consistent reads of records, lent by a store for one transaction. Returns None for no record."""

    def agent(self, agent_id: str) -> AgentRec | None: ...

    def agents(self, agent_ids: list[str]) -> list[AgentRec | None]:
        """Several agents at once: one round trip for a store that has to fetch them."""
        ...

    def engagement(self, engagement_id: str) -> EngagementRec | None: ...

    def queue(self, queue_id: str) -> QueueRec | None: ...

    def talk(self, engagement_id: str, relied: bool = True) -> TalkRec | None:
        """The head of the engagement's transcript. `relied=False` for a read that only shows its
        figures (an engagement's snapshot): no commit needs to check it."""
        ...

    def transcript(self, engagement_id: str) -> list[Fragment]:
        """The engagement's kept transcript fragments, in order (consistent with its head's version)."""
        ...

    def receipt(self, key: str) -> Receipt | None:
        """The create made under this idempotency key, if one is still kept."""
        ...

    def ranked(self, queue_id: str, start: str | None, limit: int | None) -> list[str]:
        """The first `limit` entries (all with None) of the queue's ranking from `start` on (a prefix
        of an entry, inclusive), in order (see `ranking.rank`)."""
        ...

    def ranked_count(self, queue_id: str) -> int:
        """How many entries the queue's ranking has: the agents who could take one of its engagements."""
        ...


class Changes(Struct, kw_only=True):
    """Everything a transaction wants applied, atomically. Timers are keyed: arming a key replaces it.

    `events` go to agents, with their `seq`, into their logs; `notices` go to other topics (consumers,
    supervisors, watchers) as they are, unlogged. `fragments` are the transcript lines to keep, each
    with its place (finals only: partials are sent, not kept): -1 for the end of the transcript, or
    the place of the one it replaces; `talks` are the transcripts' heads.

    `retire` names the engagements that ended (closed, resolved, abandoned) with the time they are
    to be forgotten (`server.retention_s` on); `reports` are their final snapshots, for reporting, and
    `now` is the transaction's time (a store that keeps time-to-live counts from it). `receipts` are
    idempotency receipts to keep until their `expires_at`.

    `ranks` are the ranking entries that change, queue by queue: an agent's new entry, or None to take
    them out (see `ranking.rank`). `rankings` names the queues whose whole ranking the decision relied
    on (no one free; only agents who passed on it free): another agent becoming free must make it fail.

    """

    agents: dict[str, AgentRec] = field(default_factory=dict)
    engagements: dict[str, EngagementRec] = field(default_factory=dict)
    queues: dict[str, QueueRec] = field(default_factory=dict)
    talks: dict[str, TalkRec] = field(default_factory=dict)
    events: list[tuple[str, Event]] = field(default_factory=list)
    notices: list[tuple[str, Event]] = field(default_factory=list)
    fragments: dict[str, list[tuple[int, Fragment]]] = field(default_factory=dict)
    arm: dict[str, float] = field(default_factory=dict)
    disarm: set[str] = field(default_factory=set)
    ranks: dict[str, dict[str, str | None]] = field(default_factory=dict)
    rankings: set[str] = field(default_factory=set)
    retire: dict[str, float] = field(default_factory=dict)
    reports: list[Engagement] = field(default_factory=list)
    receipts: dict[str, Receipt] = field(default_factory=dict)
    now: float = 0.0


def activity(agent: AgentRec) -> Activity:
    """What the agent is doing, derived from what they hold: wrap-up beats busy beats ringing."""
    states = {h.state.value for h in agent.holds.values() if h.channel.is_live}
    if "wrap_up" in states:
        return Activity.WRAP_UP
    if states or agent.holds:
        return Activity.BUSY
    if agent.offers:
        return Activity.RINGING
    return Activity.IDLE


def status_event(agent: AgentRec) -> StatusEvent:
    return StatusEvent(
        status=agent.status,
        reason=agent.reason,
        activity=activity(agent),
        next_status=agent.next.status if agent.next else None,
        next_reason=agent.next.reason if agent.next else None,
    )


def agent_state(directory: Directory, agent: AgentRec) -> AgentState:
    """What supervisors see of an agent."""
    cfg = directory.agents.get(agent.id)
    return AgentState(
        agent=agent.id,
        name=cfg.title if cfg else agent.id,
        status=agent.status,
        reason=agent.reason,
        activity=activity(agent),
        engagements=list(agent.holds),
    )


def engagement_notices(
    directory: Directory, before: EngagementRec | None, after: EngagementRec, view: Callable[[], Engagement]
) -> list[tuple[str, Event]]:
    """Who else hears of a change to an engagement: supervisors watching it (its snapshot, on any change
    of state, holder, queue, rings, dispositions or thread), and its consumer (on a change of state or
    holder, for chat and email)."""
    out: list[tuple[str, Event]] = []

    def seen(rec: EngagementRec | None) -> tuple[object, ...]:
        if rec is None:
            return ()
        return (rec.state, rec.agent, rec.queue, rec.offers, rec.dispositions, len(rec.messages), len(rec.history))

    if seen(before) != seen(after):
        out.append((watch_topic(after.id), EngagementEvent(engagement=view())))
    consumer_side = (before.state, before.agent) if before else ()
    if after.channel in (Channel.CHAT, Channel.EMAIL) and consumer_side != (after.state, after.agent):
        out.append((consumer_topic(after.id), conversation(directory, after)))
    return out


class Tx:
    """One unit of work for the core. Reads see this transaction's own writes."""

    def __init__(self, snapshot: Snapshot, directory: Directory, now: float, ids: IdSource) -> None:
        self.snapshot = snapshot
        self.dir = directory
        self.now = now
        self.ids = ids
        self._agents: dict[str, AgentRec] = {}
        self._engagements: dict[str, EngagementRec] = {}
        self._queues: dict[str, QueueRec] = {}
        self._events: list[tuple[str, Event]] = []
        self._notices: list[tuple[str, Event]] = []
        self._fragments: dict[str, list[tuple[int, Fragment]]] = {}
        self._arm: dict[str, float] = {}
        self._disarm: set[str] = set()
        self._status_before: dict[str, tuple[AgentStatus, str | None, object]] = {}
        self._engagement_before: dict[str, EngagementRec | None] = {}
        self._queue_before: dict[str, QueueRec] = {}
        self._receipts: dict[str, Receipt] = {}
        self._talks: dict[str, TalkRec] = {}
        self._agent_before: dict[str, AgentRec] = {}
        self._rankings: set[str] = set()

    def agent(self, agent_id: str) -> AgentRec:
        if agent_id in self._agents:
            return self._agents[agent_id]
        return self.snapshot.agent(agent_id) or AgentRec(id=agent_id)

    def agents(self, agent_ids: list[str]) -> list[AgentRec]:
        """Several agents at once (routing reads a whole queue): one batch read of those not written yet."""
        written = self._agents
        if not written:
            return [rec or AgentRec(id=a) for a, rec in zip(agent_ids, self.snapshot.agents(agent_ids), strict=True)]
        unread = [a for a in agent_ids if a not in written]
        fetched = iter(self.snapshot.agents(unread) if unread else ())
        out: list[AgentRec] = []
        for agent_id in agent_ids:
            rec = written[agent_id] if agent_id in written else next(fetched)
            out.append(rec if rec is not None else AgentRec(id=agent_id))
        return out

    def engagement(self, engagement_id: str) -> EngagementRec | None:
        if engagement_id in self._engagements:
            return self._engagements[engagement_id]
        return self.snapshot.engagement(engagement_id)

    def queue(self, queue_id: str) -> QueueRec:
        if queue_id in self._queues:
            return self._queues[queue_id]
        return self.snapshot.queue(queue_id) or QueueRec(id=queue_id)

    def put_agent(self, agent: AgentRec) -> None:
        if agent.id not in self._agent_before:
            before = self.agent(agent.id)
            self._agent_before[agent.id] = before
            self._status_before[agent.id] = (before.status, before.reason, before.next)
        self._agents[agent.id] = agent

    def ranked(self, queue_id: str, start: str | None = None, limit: int | None = None) -> list[Ranked]:
        """The agents first in the queue's ranking (from `start` on), in order, with this transaction's
        own writes taken into account."""
        queue = self.dir.queues[queue_id]
        position = self.dir.position[queue_id]
        mine = {a: rank(self.dir, queue, rec) for a, rec in self._agents.items() if a in position}
        fetched = self.snapshot.ranked(queue_id, start, None if limit is None else limit + len(mine))
        entries = [e for e in fetched if ranked_agent(e) not in mine]
        entries += [e for e in mine.values() if e is not None and (start is None or e >= start)]
        entries.sort()
        return [ranked(e) for e in entries[:limit]]

    def ranked_count(self, queue_id: str) -> int:
        queue = self.dir.queues[queue_id]
        count = self.snapshot.ranked_count(queue_id)
        for agent_id, rec in self._agents.items():
            if agent_id in self.dir.position[queue_id]:
                was = rank(self.dir, queue, self._agent_before[agent_id]) is not None
                count += (rank(self.dir, queue, rec) is not None) - was
        return count

    def relied_on_ranking(self, queue_id: str) -> None:
        """The decision depends on the queue's ranking as read (see `Changes.rankings`)."""
        self._rankings.add(queue_id)

    def put_engagement(self, engagement: EngagementRec, *, new: bool = False) -> None:
        """Write an engagement; `new` for one this transaction creates (there is nothing to read before)."""
        if engagement.id not in self._engagement_before:
            self._engagement_before[engagement.id] = None if new else self.engagement(engagement.id)
        self._engagements[engagement.id] = engagement

    def put_queue(self, queue: QueueRec) -> None:
        if queue.id not in self._queue_before:
            self._queue_before[queue.id] = self.queue(queue.id)
        self._queues[queue.id] = queue

    def transcript(self, engagement_id: str) -> list[Fragment]:
        """Kept fragments with this transaction's own applied, each at its place."""
        stored = self.snapshot.transcript(engagement_id)
        pending = self._fragments.get(engagement_id, [])
        if not pending:
            return stored
        merged = list(stored)
        for place, fragment in pending:
            if place < 0:
                merged.append(fragment)
            else:
                merged[place] = fragment
        return merged

    def talk(self, engagement_id: str) -> TalkRec:
        """The head of the engagement's transcript, relied on: a fragment kept meanwhile makes the
        commit fail, so whatever this transaction reads of the transcript is the whole of it."""
        if engagement_id in self._talks:
            return self._talks[engagement_id]
        if self._made(engagement_id):
            return TalkRec(id=engagement_id)
        return self.snapshot.talk(engagement_id) or TalkRec(id=engagement_id)

    def _made(self, engagement_id: str) -> bool:
        """Whether this transaction made the engagement (there is nothing of it to read yet)."""
        return engagement_id in self._engagement_before and self._engagement_before[engagement_id] is None

    def put_talk(self, talk: TalkRec) -> None:
        self._talks[talk.id] = talk

    def view(self, eng: EngagementRec) -> Engagement:
        """The engagement as clients see it (its transcript's figures read only to be shown; one made by
        this transaction has none to read)."""
        talk = self._talks.get(eng.id)
        if talk is None and not self._made(eng.id):
            talk = self.snapshot.talk(eng.id, relied=False)
        return engagement_view(self.dir, eng, talk.count if talk else 0)

    def receipt(self, key: str) -> Receipt | None:
        """The idempotency receipt under `key`, None once it expired (a store may keep it a little longer)."""
        rec = self._receipts.get(key) or self.snapshot.receipt(key)
        return rec if rec is not None and rec.expires_at > self.now else None

    def put_receipt(self, receipt: Receipt) -> None:
        self._receipts[receipt.key] = receipt

    def put_fragments(self, engagement_id: str, fragments: list[tuple[int, Fragment]]) -> None:
        """Keep these fragments, each at its place: the transcript's end (-1), or one it replaces."""
        self._fragments.setdefault(engagement_id, []).extend(fragments)

    def notify(self, topic: str, event: Event) -> None:
        """Publish an event to a topic that is not an agent's (no seq, no log)."""
        self._notices.append((topic, event))

    def emit(self, agent_id: str, event: Event) -> None:
        """Queue an event for an agent; it gets the agent's next `seq` when the transaction commits."""
        self._events.append((agent_id, event))

    def arm(self, key: str, due: float) -> None:
        self._disarm.discard(key)
        self._arm[key] = due

    def disarm(self, key: str) -> None:
        self._arm.pop(key, None)
        self._disarm.add(key)

    def transitions(self) -> list[tuple[EngagementRec, HistoryEntry]]:
        """The history entries this transaction appended (histories only grow), for the node's log."""
        steps: list[tuple[EngagementRec, HistoryEntry]] = []
        for engagement_id, before in self._engagement_before.items():
            after = self._engagements[engagement_id]
            steps += [(after, entry) for entry in after.history[len(before.history) if before else 0 :]]
        return steps

    def _ranks(self) -> dict[str, dict[str, str | None]]:
        """The ranking entries the agents written move to (only those that change)."""
        ranks: dict[str, dict[str, str | None]] = {}
        for agent_id, after in self._agents.items():
            before = self._agent_before[agent_id]
            for queue_id in self.dir.skills.get(agent_id, ()):
                queue = self.dir.queues[queue_id]
                entry = rank(self.dir, queue, after)
                if entry != rank(self.dir, queue, before):
                    ranks.setdefault(queue_id, {})[agent_id] = entry
        return ranks

    def changes(self) -> Changes:
        """What to apply; the transaction is over once they are taken (they share its dicts)."""
        events = list(self._events)
        notices = list(self._notices)
        for agent_id, (status, reason, nxt) in self._status_before.items():
            agent = self._agents[agent_id]
            if (agent.status, agent.reason, agent.next) != (status, reason, nxt):
                events.append((agent_id, status_event(agent)))
        for agent in self._agents.values():
            notices.append((SUPERVISORS, agent_state(self.dir, agent)))
        retire: dict[str, float] = {}
        reports: list[Engagement] = []
        for engagement_id, before in self._engagement_before.items():
            after = self._engagements[engagement_id]
            notices += engagement_notices(self.dir, before, after, functools.partial(self.view, after))
            if after.state.is_final and (before is None or not before.state.is_final):
                retire[engagement_id] = self.now + self.dir.server.retention_s
                reports.append(self.view(after))
        # An engagement placed as soon as it is queued leaves its queue as it was: not writing it spares
        # every other transaction on that queue a conflict.
        queues = {q: r for q, r in self._queues.items() if r != self._queue_before[q]}
        return Changes(
            agents=self._agents,
            engagements=self._engagements,
            queues=queues,
            talks=self._talks,
            events=events,
            notices=notices,
            fragments=self._fragments,
            arm=self._arm,
            disarm=self._disarm,
            ranks=self._ranks(),
            rankings=self._rankings,
            retire=retire,
            reports=reports,
            receipts=self._receipts,
            now=self.now,
        )
