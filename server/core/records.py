"""The server's records: what the store keeps and the core reads and rewrites.

Records are frozen; the core makes changed copies (`msgspec.structs.replace`) and hands them to the
transaction, so a refused command leaves nothing half-written. Three kinds: one per agent, one per
engagement, one per queue (its waiting line). They are encoded with MessagePack by stores that
serialise, so every field has a default or is required from the start. They are plain values that
never refer back to themselves, so they are kept out of the garbage collector (`gc=False`): a node
holding thousands of them does not stall to scan them.
"""

from __future__ import annotations

from msgspec import Struct, field

from protocol.model import (
    AgentStatus,
    Channel,
    Consumer,
    EngagementState,
    HistoryEntry,
    Message,
    Profile,
    Scalar,
)


class WaitEntry(Struct, frozen=True, array_like=True, gc=False):
    """One engagement waiting in a queue. `since` survives declines, so time waiting keeps counting."""

    engagement: str
    priority: int
    since: float

    def order(self) -> tuple[int, float, str]:
        """Priority first (higher first), then time waiting (longer first)."""
        return (-self.priority, self.since, self.engagement)


class QueueRec(Struct, frozen=True, kw_only=True, gc=False):
    id: str
    waiting: tuple[WaitEntry, ...] = ()
    rr_last: str | None = None


class Hold(Struct, frozen=True, array_like=True, gc=False):
    """An engagement an agent holds: its channel and where it is in its lifecycle."""

    channel: Channel
    state: EngagementState


class OfferRef(Struct, frozen=True, array_like=True, gc=False):
    """A ring an agent has, from the agent's side."""

    engagement: str
    channel: Channel
    expires_at: float


class NextStatus(Struct, frozen=True, array_like=True, gc=False):
    status: AgentStatus
    reason: str | None


class StatusStep(Struct, frozen=True, array_like=True, gc=False):
    """One change of an agent's status, for their status history: when, who (`agent:<id>`,
    `supervisor:<id>` or `system`), to what, and whether it was `deferred` (asked for during a live
    engagement, so kept as the next status; the `system` step that applies it follows later).
    An array on the wire: routing reads every member's record, so the history must cost little."""

    at: float
    actor: str
    status: AgentStatus
    reason: str | None = None
    deferred: bool = False


class AgentRec(Struct, frozen=True, kw_only=True, gc=False):
    """An agent's live state. `sessions` counts open sockets per node (so a dead node's can be written off);
    `idle_since` feeds longest-idle routing; `history` keeps the latest status changes (bounded), since
    a supervisor's change of someone's status belongs to no engagement's history."""

    id: str
    status: AgentStatus = AgentStatus.OFFLINE
    reason: str | None = None
    next: NextStatus | None = None
    sessions: dict[str, int] = field(default_factory=dict)
    disconnected_at: float | None = None
    idle_since: float = 0.0
    holds: dict[str, Hold] = field(default_factory=dict)
    offers: dict[str, OfferRef] = field(default_factory=dict)
    history: tuple[StatusStep, ...] = ()

    @property
    def connected(self) -> bool:
        return bool(self.sessions)

    def load(self, channel: Channel) -> int:
        """Engagements held or ringing on `channel`: what counts against capacity."""
        if not self.holds and not self.offers:
            return 0  # the common case when routing weighs who is free
        return sum(1 for h in self.holds.values() if h.channel is channel) + sum(
            1 for o in self.offers.values() if o.channel is channel
        )

    def in_live_work(self) -> bool:
        """Holding a live engagement or its wrap-up: a status change waits for the end of it."""
        return any(h.channel.is_live for h in self.holds.values())


class Offer(Struct, frozen=True, array_like=True, gc=False):
    """A ring, from the engagement's side."""

    id: str
    agent: str
    expires_at: float


class Receipt(Struct, frozen=True, kw_only=True, gc=False):
    """A create made under an `Idempotency-Key`: the same key, until `expires_at`, gets the same
    engagement back; `digest` fingerprints the request, so another body under the key is refused."""

    key: str
    digest: str
    engagement: str
    expires_at: float


class EngagementRec(Struct, frozen=True, kw_only=True, gc=False):
    id: str
    queue: str
    channel: Channel
    state: EngagementState
    priority: int = 0
    consumer: Consumer = field(default_factory=Consumer)
    variables: dict[str, Scalar] = field(default_factory=dict)
    summary: str | None = None
    subject: str | None = None
    profile: Profile = field(default_factory=Profile)
    created_at: float
    agent: str | None = None
    offers: tuple[Offer, ...] = ()
    offer_count: int = 0
    tried: tuple[str, ...] = ()
    waiting_since: float | None = None
    queued_at: float | None = None
    notes: str = ""
    dispositions: tuple[str, ...] = ()
    messages: tuple[Message, ...] = ()
    thread_bytes: int = 0
    touched_at: float | None = None
    wrap_up_until: float | None = None
    ended_at: float | None = None
    history: tuple[HistoryEntry, ...] = ()


class TalkRec(Struct, frozen=True, kw_only=True, gc=False):
    """The head of an engagement's live transcript, apart from the engagement's record so that a line of
    transcript never rewrites it (the lines themselves are appended to a list of their own).

    `count` and `size` are the finals kept (partials are sent to the agent and watchers, never kept: the
    final replaces them); `made` numbers the fragment ids this server gave; `partials` maps each open
    partial's id to its speaker, in the order they were last written (an update moves one to the end),
    so a speaker's latest partial is their last entry: the one a recogniser that sends no ids is still
    revising when it sends the final. `recent` gives the place of the latest finals by id, so a final
    sent again (a media server retrying after a lost answer) replaces itself rather than repeating."""

    id: str
    count: int = 0
    size: int = 0
    made: int = 0
    partials: dict[str, str] = field(default_factory=dict)
    recent: dict[str, int] = field(default_factory=dict)
