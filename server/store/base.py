"""The `Store` contract, written once; every implementation says "see Store" and passes one suite.

tests/test_store_contract.py runs the same tests against every implementation, which is what keeps
MemoryStore (the embedded default) and any other store behaving alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from msgspec import Struct, field

from protocol.frames import Event
from protocol.model import Engagement, Fragment
from server.core.records import AgentRec, EngagementRec, QueueRec, TalkRec
from server.core.tx import Changes, Snapshot

T = TypeVar("T")

Decide = Callable[[Snapshot], tuple[T, Changes]]
"""Reads a snapshot and returns a result and the changes to apply. Pure: may be called again on retry."""


class Committed(Struct, Generic[T]):
    """What a transaction did: its result, its agent events with the `seq` each was given, in order,
    and its notices for other topics (to publish as they are). `published`: the store already
    published events and notices with the commit itself (a store that is also the broker's transport).
    `reports`: the engagements it ended, for the node's reporting file (a shared store may also have
    kept them itself, in the same commit: Redis's reporting stream)."""

    result: T
    events: list[tuple[str, Event]] = field(default_factory=list)
    notices: list[tuple[str, Event]] = field(default_factory=list)
    timers_armed: bool = False
    published: bool = False
    reports: list[Engagement] = field(default_factory=list)


class Store(Protocol):
    """Records, per-agent event logs and timers, with atomic transactions.

    Guarantees every implementation keeps:
    - `transact` is atomic and isolated: `decide` sees one consistent snapshot, and its changes
      (records, events, timers) are applied all together or not at all. If `decide` raises, nothing
      is applied and the exception propagates. An implementation may call `decide` more than once
      (on a conflict); only the last call's changes are applied.
    - Transcript fragments are upserted by id with the transaction: a new id is appended, a known id
      replaced in place. The head (`TalkRec`) is written with them; reading it in a transaction makes
      the transcript read in that transaction the whole of it as of the commit.
    - Events to one agent get consecutive `seq` numbers (starting at 1) in commit order, and are
      kept in that agent's log, of which at least the last `log_size` events can be replayed.
    - A timer armed by a committed transaction is returned by `claim_due` once, at or after its due
      time, unless disarmed or re-armed first (re-arming replaces the due time); it comes back only
      if its claimer never confirmed it (`done`) and its lease ran out.
    - An engagement that ends (`Changes.retire`) is kept until its retirement time, then forgotten
      with its transcript; an idempotency receipt until its `expires_at`. Either may linger a little
      past that (the core ignores an expired receipt), never less.
    - Failures to reach the backing service raise `Refused(UNAVAILABLE)`, never a driver exception.
    """

    remote: bool
    """True when a transaction waits on the network: callers with independent work gain by running
    transactions side by side (the ingest socket does), where an in-process store gains nothing."""

    async def transact(self, decide: Decide[T]) -> Committed[T]: ...

    async def agent(self, agent_id: str) -> AgentRec | None: ...

    async def agents(self, agent_ids: list[str]) -> list[AgentRec | None]: ...

    async def engagement(self, engagement_id: str) -> EngagementRec | None: ...

    async def queue(self, queue_id: str) -> QueueRec | None: ...

    async def transcript(self, engagement_id: str) -> list[Fragment]:
        """The engagement's kept transcript (its finals), in order of arrival; a final sent again with
        the same id replaces the first where it stands."""
        ...

    async def talk(self, engagement_id: str) -> TalkRec | None:
        """The head of the engagement's transcript (how many fragments are kept), None before any."""
        ...

    async def epoch(self) -> str:
        """Names this store's seq numbering: when it changes (a fresh in-memory store), old seqs mean nothing."""
        ...

    async def latest_seq(self, agent_id: str) -> int:
        """The seq of the agent's last event, 0 if none."""
        ...

    async def replay(self, agent_id: str, after: int) -> list[Event] | None:
        """Events with seq > `after`, in order; None when some of them are no longer kept."""
        ...

    async def claim_due(self, now: float, limit: int) -> list[str]:
        """Claim up to `limit` timers due at `now`; each is returned to one caller only, unless that caller
        does not confirm it with `done` within its lease (it died while firing), when it is due again."""
        ...

    async def done(self, timer_keys: list[str]) -> None:
        """Confirm that claimed timers were fired."""
        ...

    async def next_due(self) -> float | None:
        """The earliest due time of any armed timer, None when there are none."""
        ...

    async def sweep(self, now: float) -> int:
        """Forget the engagements and receipts whose time is up at `now`, where the backing service does
        not expire them by itself; returns how many were forgotten."""
        ...

    async def heartbeat(self, node_id: str, now: float) -> bool:
        """Record that `node_id` is alive at `now`. False when the others wrote it off (`bury`) meanwhile:
        its sockets were counted as gone, and it must not go on serving them."""
        ...

    async def dead_nodes(self, now: float, timeout_s: float) -> list[str]:
        """Nodes whose last heartbeat is older than `timeout_s`."""
        ...

    async def forget_node(self, node_id: str) -> None:
        """Drop a node that stops cleanly from the registry."""
        ...

    async def bury(self, node_id: str) -> None:
        """Drop a node presumed dead from the registry, and remember it was written off (see `heartbeat`)."""
        ...

    async def ping(self) -> bool:
        """True when the store can serve transactions now (for /readyz)."""
        ...

    async def close(self) -> None: ...
