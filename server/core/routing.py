"""Who may take an engagement, and whom each strategy picks, with the reasons written down.

`choose` is the only place routing rules live. It returns the agents to offer to and a `Routing`
record (strategy, the rule in words, every candidate weighed) that goes into the engagement's
history, so "why did this call go to Bob?" has an answer.
"""

from __future__ import annotations

import heapq

from msgspec import Struct

from protocol.model import AgentStatus, Candidate, Channel, Routing, Strategy
from server.config import QueueCfg, Room
from server.core.records import AgentRec, EngagementRec, QueueRec
from server.core.tx import Tx

EXPLAINED = 10
"""How many candidates an offer's history lists: the best ones in the strategy's own order."""


def has_room(room: Room, agent: AgentRec, channel: Channel) -> bool:
    """Capacity left on `channel` (`room`: the agent's, from `Directory.room`), and nothing held or
    ringing that blocks it. Every routing decision asks this of every member of the queue: one pass,
    no allocation, out at the first reason to say no."""
    if not agent.holds and not agent.offers:
        return room.capacity > 0
    used, capacity, blocked_by = 0, room.capacity, room.blocked_by
    for busy in (agent.holds, agent.offers):
        for item in busy.values():
            if item.channel is channel:
                used += 1
                if used >= capacity:
                    return False
            elif item.channel in blocked_by:
                return False
    return used < capacity


def available(agent: AgentRec) -> bool:
    """Signed in, ready, and not about to change status."""
    if agent.status is not AgentStatus.READY or not agent.sessions:
        return False
    return agent.next is None or agent.next.status is AgentStatus.READY


def candidates(tx: Tx, queue: QueueCfg) -> list[AgentRec]:
    """Members of the queue who could take one more of its engagements now, in member order."""
    rooms, ch, ready = tx.dir.room, queue.channel, AgentStatus.READY
    return [
        a
        for a in tx.agents(tx.dir.member_ids[queue.id])
        if a.status is ready
        and a.sessions
        and (a.next is None or a.next.status is ready)
        and has_room(rooms[a.id][ch], a, ch)
    ]


class Choice(Struct, frozen=True):
    agents: list[str]
    routing: Routing
    rr_last: str | None


def choose(tx: Tx, queue: QueueCfg, qrec: QueueRec, engagement: EngagementRec, pool: list[AgentRec]) -> Choice:
    """Apply the queue's strategy to the eligible `pool` (non-empty).

    Agents who already declined or missed this engagement are passed over while anyone else is
    eligible; when no one else is, they are offered it again. The explanation lists the best
    `EXPLAINED` candidates in the strategy's order and how many were eligible in all.
    """
    fresh = [a for a in pool if a.id not in engagement.tried]
    retry = not fresh
    picks = fresh or pool
    skills = {a.id: tx.dir.skills[a.id][queue.id] for a in pool}
    ch = queue.channel

    def idle(a: AgentRec) -> float:
        return max(0.0, tx.now - a.idle_since)

    def by_load_then_idle(a: AgentRec) -> tuple[int, float, str]:
        return (a.load(ch), a.idle_since, a.id)

    rr_last = qrec.rr_last
    match queue.strategy:
        case Strategy.RING_ALL:
            ranked = heapq.nsmallest(EXPLAINED, picks, key=by_load_then_idle)
            chosen = picks
            rule = f"ring all {len(chosen)} eligible agents; the first to accept takes it"
        case Strategy.MOST_SKILLED:
            ranked = heapq.nsmallest(EXPLAINED, picks, key=lambda a: (-skills[a.id], *by_load_then_idle(a)))
            best = ranked[0]
            chosen = [best]
            rule = (
                f"highest skill priority in the queue ({skills[best.id]}), then least loaded "
                f"({best.load(ch)} on {ch}), then longest idle ({idle(best):.1f}s)"
            )
        case Strategy.ROUND_ROBIN:
            order = tx.dir.member_ids[queue.id]
            start = order.index(rr_last) + 1 if rr_last in order else 0
            by_id = {a.id: a for a in picks}
            ranked = [by_id[i] for i in order[start:] + order[:start] if i in by_id][:EXPLAINED]
            chosen = ranked[:1]
            rule = f"next in member order after {rr_last or 'the start'}"
            rr_last = chosen[0].id
        case _:
            ranked = heapq.nsmallest(EXPLAINED, picks, key=by_load_then_idle)
            best = ranked[0]
            chosen = [best]
            rule = f"least loaded ({best.load(ch)} on {ch}), then longest idle ({idle(best):.1f}s)"
    if retry:
        rule += "; everyone eligible had already been offered it, so it is offered again"
    cfgs = tx.dir.agents
    routing = Routing(
        strategy=queue.strategy,
        rule=rule,
        chosen=tuple(a.id for a in chosen),
        eligible=len(pool),
        candidates=tuple(
            Candidate(
                agent=a.id,
                idle_s=round(idle(a), 3),
                load=a.load(ch),
                capacity=cfgs[a.id].capacity.get(ch, 0),
                priority=skills[a.id],
                tried=a.id in engagement.tried,
            )
            for a in ranked
        ),
    )
    return Choice([a.id for a in chosen], routing, rr_last)
