"""The embedded store: records in dicts, logs in ring buffers, timers in a heap. One node, one process.

A transaction runs to the end without awaiting anything, so under the event loop it is atomic and
isolated by construction: no other coroutine runs between its read and its write.
"""

from __future__ import annotations

import heapq
import uuid
from collections import deque
from typing import TYPE_CHECKING, cast

import msgspec
from msgspec.structs import replace

from protocol.frames import Event, Server
from protocol.model import Fragment
from server.core.records import AgentRec, EngagementRec, QueueRec, Receipt, TalkRec
from server.store.base import Committed, Decide, T
from server.store.rankings import Rankings


class MemoryStore:
    """See `Store`."""

    remote = False

    def __init__(self, log_size: int = 1000) -> None:
        self.log_size = log_size
        self._epoch = uuid.uuid4().hex[:12]
        self._agents: dict[str, AgentRec] = {}
        self._engagements: dict[str, EngagementRec] = {}
        self._queues: dict[str, QueueRec] = {}
        self._logs: dict[str, deque[tuple[int, bytes]]] = {}  # encoded: no objects for the GC to scan
        self._encode = msgspec.msgpack.Encoder().encode
        self._decode = msgspec.msgpack.Decoder(Server).decode
        self._seqs: dict[str, int] = {}
        self._timers: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._nodes: dict[str, float] = {}
        self._buried: set[str] = set()
        self._transcripts: dict[str, list[Fragment]] = {}
        self._talks: dict[str, TalkRec] = {}
        self._rankings = Rankings()
        self._receipts: dict[str, Receipt] = {}
        self._retiring: list[tuple[float, str]] = []  # (when, engagement id), a heap
        self._lapsing: list[tuple[float, str]] = []  # (when, receipt key), a heap

    async def transact(self, decide: Decide[T]) -> Committed[T]:
        result, changes = decide(_Snapshot(self))
        self._agents.update(changes.agents)
        self._engagements.update(changes.engagements)
        self._queues.update(changes.queues)
        self._talks.update(changes.talks)
        if changes.ranks:
            self._rankings.apply(changes.ranks)
        for key, receipt in changes.receipts.items():
            self._receipts[key] = receipt
            heapq.heappush(self._lapsing, (receipt.expires_at, key))
        for engagement_id, until in changes.retire.items():
            heapq.heappush(self._retiring, (until, engagement_id))
        for engagement_id, fragments in changes.fragments.items():
            transcript = self._transcripts.setdefault(engagement_id, [])
            for place, fragment in fragments:
                if place < 0:
                    transcript.append(fragment)
                else:
                    transcript[place] = fragment
        events: list[tuple[str, Event]] = []
        for agent_id, event in changes.events:
            seq = self._seqs.get(agent_id, 0) + 1
            self._seqs[agent_id] = seq
            stamped = replace(event, seq=seq)
            log = self._logs.get(agent_id)
            if log is None:
                log = self._logs[agent_id] = deque(maxlen=self.log_size)
            log.append((seq, self._encode(stamped)))
            events.append((agent_id, stamped))
        for key in changes.disarm:
            self._timers.pop(key, None)
        for key, due in changes.arm.items():
            self._timers[key] = due
            heapq.heappush(self._heap, (due, key))
        return Committed(result, events, changes.notices, bool(changes.arm), reports=changes.reports)

    async def agent(self, agent_id: str) -> AgentRec | None:
        return self._agents.get(agent_id)

    async def agents(self, agent_ids: list[str]) -> list[AgentRec | None]:
        return [self._agents.get(a) for a in agent_ids]

    async def engagement(self, engagement_id: str) -> EngagementRec | None:
        return self._engagements.get(engagement_id)

    async def queue(self, queue_id: str) -> QueueRec | None:
        return self._queues.get(queue_id)

    async def transcript(self, engagement_id: str) -> list[Fragment]:
        return list(self._transcripts.get(engagement_id, ()))

    async def talk(self, engagement_id: str) -> TalkRec | None:
        return self._talks.get(engagement_id)

    async def epoch(self) -> str:
        return self._epoch

    async def latest_seq(self, agent_id: str) -> int:
        return self._seqs.get(agent_id, 0)

    async def replay(self, agent_id: str, after: int) -> list[Event] | None:
        latest = self._seqs.get(agent_id, 0)
        if after >= latest:
            return [] if after == latest else None
        log = self._logs.get(agent_id, deque())
        if not log or log[0][0] > after + 1:
            return None
        return [cast(Event, self._decode(raw)) for seq, raw in log if seq > after]

    async def claim_due(self, now: float, limit: int) -> list[str]:
        claimed: list[str] = []
        while self._heap and self._heap[0][0] <= now and len(claimed) < limit:
            due, key = heapq.heappop(self._heap)
            if self._timers.get(key) == due:
                del self._timers[key]
                claimed.append(key)
        return claimed

    async def done(self, timer_keys: list[str]) -> None:
        return None  # claiming removed them: a process that dies takes its timers with it anyway

    async def next_due(self) -> float | None:
        while self._heap and self._timers.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    async def sweep(self, now: float) -> int:
        gone = 0
        while self._retiring and self._retiring[0][0] <= now:
            _, engagement_id = heapq.heappop(self._retiring)
            eng = self._engagements.get(engagement_id)
            if eng is not None and eng.state.is_final:
                del self._engagements[engagement_id]
                self._transcripts.pop(engagement_id, None)
                self._talks.pop(engagement_id, None)
                gone += 1
        while self._lapsing and self._lapsing[0][0] <= now:
            _, key = heapq.heappop(self._lapsing)
            receipt = self._receipts.get(key)
            if receipt is not None and receipt.expires_at <= now:
                del self._receipts[key]
                gone += 1
        return gone

    async def heartbeat(self, node_id: str, now: float) -> bool:
        self._nodes[node_id] = now
        return node_id not in self._buried

    async def dead_nodes(self, now: float, timeout_s: float) -> list[str]:
        return [n for n, seen in self._nodes.items() if seen < now - timeout_s]

    async def forget_node(self, node_id: str) -> None:
        self._nodes.pop(node_id, None)

    async def bury(self, node_id: str) -> None:
        self._nodes.pop(node_id, None)
        self._buried.add(node_id)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None


class _Snapshot:
    """Reads straight from the store's dicts (see `Snapshot`): records are immutable, nothing leaks."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def agent(self, agent_id: str) -> AgentRec | None:
        return self._store._agents.get(agent_id)

    def agents(self, agent_ids: list[str]) -> list[AgentRec | None]:
        return [self._store._agents.get(a) for a in agent_ids]

    def engagement(self, engagement_id: str) -> EngagementRec | None:
        return self._store._engagements.get(engagement_id)

    def queue(self, queue_id: str) -> QueueRec | None:
        return self._store._queues.get(queue_id)

    def transcript(self, engagement_id: str) -> list[Fragment]:
        return list(self._store._transcripts.get(engagement_id, ()))

    def talk(self, engagement_id: str, relied: bool = True) -> TalkRec | None:
        return self._store._talks.get(engagement_id)

    def ranked(self, queue_id: str, start: str | None, limit: int | None) -> list[str]:
        return self._store._rankings.ranked(queue_id, start, limit)

    def ranked_count(self, queue_id: str) -> int:
        return self._store._rankings.count(queue_id)

    def receipt(self, key: str) -> Receipt | None:
        return self._store._receipts.get(key)


if TYPE_CHECKING:
    from server.core.tx import Snapshot
    from server.store.base import Store

    _store: Store = MemoryStore()
    _snapshot: Snapshot = _Snapshot(MemoryStore())
