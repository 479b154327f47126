"""Who may take an engagement, and whom each strategy picks, with the reasons written down.

The rules live here and in `ranking.py` only: who may take a queue's engagements, in which order
(`ranking.rank`). A decision reads the first few agents of the queue's ranking, however many members
it has; `choose` picks among them and returns a `Routing` record (strategy, the
rule in words, the best candidates weighed) that goes into the engagement's history, so "why did this
call go to Bob?" has an answer.
"""

from __future__ import annotations

from msgspec import Struct

from protocol.model import Candidate, Routing, Strategy
from server.config import QueueCfg
from server.core.ranking import Ranked
from server.core.records import EngagementRec, QueueRec
from server.core.tx import Tx

EXPLAINED = 10
"""How many candidates an offer's history lists: the best ones in the strategy's own order."""


class Choice(Struct, frozen=True):
    agents: list[str]
    routing: Routing
    rr_last: str | None


def choose(
    tx: Tx, queue: QueueCfg, qrec: QueueRec, engagement: EngagementRec, pool: list[Ranked], eligible: int
) -> Choice:
    """Apply the queue's strategy to `pool`: the first agents of its ranking, in order (non-empty, and
    longer than the engagement's `tried` unless everyone eligible is in it); `eligible` counts the whole
    ranking.

    Agents who already declined or missed this engagement are passed over while anyone else is
    eligible; when no one else is, they are offered it again. The explanation lists the best
    `EXPLAINED` candidates in the strategy's order and how many were eligible in all.
    """
    fresh = [a for a in pool if a.agent not in engagement.tried]
    retry = not fresh
    picks = fresh or pool
    skills = {a.agent: tx.dir.skills[a.agent][queue.id] for a in pool}
    ch = queue.channel

    def idle(a: Ranked) -> float:
        return max(0.0, tx.now - a.idle_since)

    rr_last = qrec.rr_last
    best = picks[0]
    match queue.strategy:
        case Strategy.RING_ALL:
            chosen = picks
            rule = f"ring all {len(chosen)} eligible agents; the first to accept takes it"
        case Strategy.MOST_SKILLED:
            chosen = [best]
            rule = (
                f"highest skill priority in the queue ({skills[best.agent]}), then least loaded "
                f"({best.load} on {ch}), then longest idle ({idle(best):.1f}s)"
            )
        case Strategy.ROUND_ROBIN:
            chosen = [best]
            rule = f"next in member order after {rr_last or 'the start'}"
            rr_last = best.agent
        case _:
            chosen = [best]
            rule = f"least loaded ({best.load} on {ch}), then longest idle ({idle(best):.1f}s)"
    if retry:
        rule += "; everyone eligible had already been offered it, so it is offered again"
    cfgs = tx.dir.agents
    routing = Routing(
        strategy=queue.strategy,
        rule=rule,
        chosen=tuple(a.agent for a in chosen),
        eligible=eligible,
        candidates=tuple(
            Candidate(
                agent=a.agent,
                idle_s=round(idle(a), 3),
                load=a.load,
                capacity=cfgs[a.agent].capacity.get(ch, 0),
                priority=skills[a.agent],
                tried=a.agent in engagement.tried,
            )
            for a in picks[:EXPLAINED]
        ),
    )
    return Choice([a.agent for a in chosen], routing, rr_last)
