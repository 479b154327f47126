"""The invariants of DESIGN.md, checked over a full set of records (any store, any number of nodes).

In loadtest/ (not tests/) because the chaos scenario checks them too, and loadtest never imports tests.

- an engagement is offered to or handled by at most one agent at a time (ring-all excepted for offers);
- an agent never exceeds capacity, and never holds channels that block each other;
- no engagement is lost: each is final, or waiting in exactly one queue, or offered, or held;
- agents' and engagements' views of each other agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from protocol.model import Channel, EngagementState, Strategy
from server.config import Directory
from server.core.records import AgentRec, EngagementRec, Offer, QueueRec

S = EngagementState
HELD = (S.ACTIVE, S.WRAP_UP, S.ASSIGNED, S.OPEN)


def violations(
    directory: Directory,
    agents: Iterable[AgentRec],
    engagements: Iterable[EngagementRec],
    queues: Iterable[QueueRec],
) -> list[str]:
    agents_by_id = {a.id: a for a in agents}
    engs = {e.id: e for e in engagements}
    problems: list[str] = []
    waiting = Counter((q.id, w.engagement) for q in queues for w in q.waiting)
    for (qid, eid), n in waiting.items():
        if n != 1:
            problems.append(f"{eid} waits {n} times in {qid}")
        eng = engs.get(eid)
        if eng is None or eng.state is not S.QUEUED or eng.queue != qid:
            problems.append(f"{eid} waits in {qid} but is {f'{eng.state} in {eng.queue}' if eng else 'missing'}")
    for eng in engs.values():
        where = f"{eng.id} ({eng.state})"
        if eng.state is S.QUEUED and not waiting[(eng.queue, eng.id)]:
            problems.append(f"{where} is not in its queue's line: lost")
        if eng.state is S.OFFERED:
            if not eng.offers:
                problems.append(f"{where} has no offer")
            if len(eng.offers) > 1 and directory.queues[eng.queue].strategy is not Strategy.RING_ALL:
                problems.append(f"{where} rings {len(eng.offers)} agents in a one-at-a-time queue")
            if len({o.agent for o in eng.offers}) != len(eng.offers):
                problems.append(f"{where} rings one agent twice")
            for offer in eng.offers:
                if not _rung(agents_by_id, offer, eng.id):
                    problems.append(f"{where}: {offer.agent} does not know offer {offer.id}")
        elif eng.offers:
            problems.append(f"{where} still has offers {eng.offers}")
        if eng.state in HELD:
            holder = agents_by_id.get(eng.agent or "")
            hold = holder.holds.get(eng.id) if holder else None
            if hold is None or hold.state is not eng.state:
                problems.append(f"{where}: its agent {eng.agent} does not hold it as {eng.state}")
        if eng.state in (S.QUEUED, S.OFFERED) and eng.agent is not None:
            problems.append(f"{where} has an agent {eng.agent}")
    for agent in agents_by_id.values():
        cfg = directory.agents[agent.id]
        for eid, hold in agent.holds.items():
            eng = engs.get(eid)
            if eng is None or eng.agent != agent.id or (eng.state, eng.channel) != (hold.state, hold.channel):
                state = f"{eng.channel} {eng.state} for {eng.agent}" if eng else "missing"
                problems.append(f"{agent.id} holds {eid} as {hold.channel} {hold.state}, but it is {state}")
        for oid, ref in agent.offers.items():
            eng = engs.get(ref.engagement)
            if eng is None or not any(o.id == oid and o.agent == agent.id for o in eng.offers):
                problems.append(f"{agent.id} has offer {oid} that its engagement does not")
            elif eng.channel is not ref.channel:
                problems.append(f"{agent.id} has offer {oid} as {ref.channel}, but {eng.id} is {eng.channel}")
        busy = _busy(agent)
        for channel in busy:
            if agent.load(channel) > cfg.capacity.get(channel, 0):
                problems.append(f"{agent.id} over capacity on {channel}: {agent.load(channel)}")
        for channel in busy:
            blocked = set(cfg.blocks.get(channel, ())) & (busy - {channel})
            if blocked:
                problems.append(f"{agent.id} holds {channel} with {', '.join(sorted(blocked))}, which it blocks")
    return problems


def whereabouts(
    engagement_ids: Iterable[str],
    engagements: Iterable[EngagementRec],
    agents: Iterable[AgentRec],
    queues: Iterable[QueueRec],
) -> dict[str, str]:
    """Where each engagement is: its final state, or `waiting` / `ringing` / `held` where the other
    records agree, or `lost` (missing, or nowhere anyone would ever find it again): what a flow that got
    a 201 for it would be told, so no engagement a consumer was promised ever silently disappears."""
    engs = {e.id: e for e in engagements}
    agents_by_id = {a.id: a for a in agents}
    waiting = Counter((q.id, w.engagement) for q in queues for w in q.waiting)

    def place(eng: EngagementRec) -> str:
        if eng.state.is_final:
            return eng.state.value
        if eng.state is S.QUEUED and waiting[(eng.queue, eng.id)] == 1:
            return "waiting"
        if eng.state is S.OFFERED and eng.offers and all(_rung(agents_by_id, o, eng.id) for o in eng.offers):
            return "ringing"
        holder = agents_by_id.get(eng.agent or "")
        hold = holder.holds.get(eng.id) if holder else None
        if eng.state in HELD and hold is not None and hold.state is eng.state:
            return "held"
        return "lost"

    return {eid: place(engs[eid]) if eid in engs else "lost" for eid in engagement_ids}


def _rung(agents: dict[str, AgentRec], offer: Offer, engagement_id: str) -> bool:
    ref = agents[offer.agent].offers.get(offer.id) if offer.agent in agents else None
    return ref is not None and ref.engagement == engagement_id


def _busy(agent: AgentRec) -> set[Channel]:
    return {h.channel for h in agent.holds.values()} | {o.channel for o in agent.offers.values()}


ACQUIRE = {"offered", "assigned"}
RELEASE = {"declined", "expired", "rescinded"}
FINISH = {"closed", "resolved"}
HANDOVER = {"transferred", "released"}


def history_violations(directory: Directory, engagements: Iterable[EngagementRec]) -> list[str]:
    """What the histories say happened, checked over time, since the final records only show the end:
    one agent per engagement between hand-overs, one ring at a time (but in ring-all queues), each
    ring made once and ended once (a timer fired twice would end it twice), for the agent it rang, the
    last taker the one holding it, and no agent over capacity, or given a channel that what it held or
    rang blocks, at any moment."""
    problems: list[str] = []
    moves: list[tuple[float, int, str, Channel]] = []  # (at, +1/-1, agent, channel)
    ring_all = {q.id for q in directory.queues.values() if q.strategy is Strategy.RING_ALL}
    for eng in engagements:
        taking = "assigned" if eng.channel is Channel.EMAIL else "accepted"
        offered: Counter[str | None] = Counter(h.offer for h in eng.history if h.event == "offered")
        ended: Counter[str | None] = Counter(
            h.offer for h in eng.history if h.offer and h.event in RELEASE | {"accepted"}
        )
        for offer_id in offered | ended:
            if offered[offer_id] != 1 or ended[offer_id] > 1:
                problems.append(f"{eng.id}: offer {offer_id} made {offered[offer_id]} times, ended {ended[offer_id]}")
        queue = eng.history[0].queue if eng.history else eng.queue
        takers: list[str] = []  # who took it since the last hand-over
        outstanding: dict[str, str | None] = {}  # ringing: offer -> the agent it rings
        for h in eng.history:
            if h.event in ("overflowed", "transferred") and h.queue:
                queue = h.queue
            if h.event in HANDOVER:
                takers = []
            elif h.event == taking and h.agent:
                takers.append(h.agent)
                if len(takers) > 1:
                    problems.append(f"{eng.id} was taken by {takers} without a hand-over")
            if h.event == "offered" and h.offer:
                outstanding[h.offer] = h.agent
                if len(outstanding) > 1 and queue not in ring_all:
                    problems.append(f"{eng.id} rang {sorted(outstanding)} at once at {h.at}")
            elif h.offer and h.event in RELEASE | {"accepted"} and h.offer in outstanding:
                rang = outstanding.pop(h.offer)
                if h.agent != rang:
                    problems.append(f"{eng.id}: offer {h.offer} rang {rang} but was {h.event} for {h.agent}")
            if h.event in ACQUIRE and h.agent:
                moves.append((h.at, +1, h.agent, eng.channel))
            elif h.event in RELEASE | FINISH | {"released"} and h.agent:
                moves.append((h.at, -1, h.agent, eng.channel))
            elif h.event == "transferred" and h.former:
                moves.append((h.at, -1, h.former, eng.channel))
        if eng.state in HELD and takers[-1:] != [eng.agent]:
            problems.append(f"{eng.id} was last taken by {takers[-1:]} but is held by {eng.agent}")
        if set(outstanding) != {o.id for o in eng.offers}:
            problems.append(f"{eng.id}: its history leaves {sorted(outstanding)} ringing, the record {eng.offers}")
    load: Counter[tuple[str, Channel]] = Counter()
    for at, delta, agent_id, channel in sorted(moves, key=lambda m: (m[0], m[1])):
        held = load[(agent_id, channel)] = load[(agent_id, channel)] + delta
        cfg = directory.agents[agent_id]
        capacity = cfg.capacity.get(channel, 0)
        if held > capacity:
            problems.append(f"{agent_id} held {held} {channel} at {at} (capacity {capacity})")
        if held < 0:
            problems.append(f"{agent_id} released more {channel} than it held at {at}")
        blockers = sorted(c for c, blocked in cfg.blocks.items() if channel in blocked and load[(agent_id, c)] > 0)
        if delta > 0 and blockers:
            problems.append(
                f"{agent_id} was given {channel} at {at} while it had {', '.join(blockers)}, which blocks it"
            )
    return problems
