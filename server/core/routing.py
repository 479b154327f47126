"""Who may take an engagement, and whom each strategy picks, with the reasons written down.

`choose` is the only place routing rules live. It returns the agents to offer to and a `Routing`
record (strategy, the rule in words, every candidate weighed) that goes into the engagement's
history, so "why did this call go to Bob?" has an answer.
"""

from __future__ import annotations

import heapq

from msgspec import Struct

from protocol.model import AgentStatus, Candidate, Channel, Routing, Strategy
from server.config import AgentCfg, QueueCfg
from server.core.records import AgentRec, EngagementRec, QueueRec
from server.core.tx import Tx

EXPLAINED = 10
"""How many candidates an offer's history lists: the best ones in the strategy's own order."""


def has_room(cfg: AgentCfg, agent: AgentRec, channel: Channel) -> bool:
    """Capacity left on `channel`, and nothing held or ringing that blocks it.

    Every routing decision asks this of every member of the queue, so it is one pass, no allocation.
    """
    capacity = cfg.capacity.get(channel, 0)
    if not agent.holds and not agent.offers:
        return capacity > 0
    busy = [h.channel for h in agent.holds.values()] + [o.channel for o in agent.offers.values()]
    if any(channel in cfg.blocks.get(b, ()) for b in busy):
        return False
    return busy.count(channel) < capacity


def available(agent: AgentRec) -> bool:
    """Signed in, ready, and not about to change status."""
    if not agent.connected or agent.status is not AgentStatus.READY:
        return False
    return agent.next is None or agent.next.status is AgentStatus.READY


def candidates(tx: Tx, queue: QueueCfg) -> list[AgentRec]:
    """Members of the queue who could take one more of its engagements now, in member order."""
    members = tx.agents([m.agent for m in tx.dir.members[queue.id]])
    return [a for a in members if available(a) and has_room(tx.dir.agents[a.id], a, queue.channel)]


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
    skills = {m.agent: m.priority for m in tx.dir.members[queue.id]}
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
            order = [m.agent for m in tx.dir.members[queue.id]]
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
        chosen=[a.id for a in chosen],
        eligible=len(pool),
        candidates=[
            Candidate(
                agent=a.id,
                idle_s=round(idle(a), 3),
                load=a.load(ch),
                capacity=cfgs[a.id].capacity.get(ch, 0),
                priority=skills[a.id],
                tried=a.id in engagement.tried,
            )
            for a in ranked
        ],
    )
    return Choice([a.id for a in chosen], routing, rr_last)
