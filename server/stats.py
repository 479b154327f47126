"""Live figures of queues, computed from records: what `GET /v1/queues` and supervisors' `queue_stats` show."""

from __future__ import annotations

from msgspec import Struct

from protocol.model import AgentStatus
from server.config import Directory
from server.core.ranking import available, has_room
from server.core.records import AgentRec, QueueRec
from server.store.base import Store


class Figures(Struct, frozen=True):
    waiting: int
    longest_wait_s: float
    agents: dict[str, int]
    available: int


def figures(
    directory: Directory, queue_id: str, qrec: QueueRec | None, agents: dict[str, AgentRec], now: float
) -> Figures:
    """Waiting count, longest wait, the queue's members by status, and how many could take one now."""
    queue = directory.queues[queue_id]
    waiting = qrec.waiting if qrec else ()
    counts = {s.value: 0 for s in AgentStatus}
    free = 0
    for member in directory.members[queue_id]:
        rec = agents.get(member.agent) or AgentRec(id=member.agent)
        counts[rec.status.value] += 1
        if available(rec) and has_room(directory.room[member.agent][queue.channel], rec, queue.channel):
            free += 1
    longest = round(max((now - w.since for w in waiting), default=0.0), 3)
    return Figures(waiting=len(waiting), longest_wait_s=longest, agents=counts, available=free)


async def all_figures(directory: Directory, store: Store, now: float) -> dict[str, Figures]:
    """Every queue's figures, from one read of every agent and queue record."""
    agents = {a.id: a for a in await store.agents(list(directory.agents)) if a is not None}
    return {q: figures(directory, q, await store.queue(q), agents, now) for q in directory.queues}
