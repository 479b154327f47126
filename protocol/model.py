"""The domain objects as they travel on the wire: engagements, consumers, history, transcript.

These are views, not the server's records: the server projects its records into them, and clients
decode them. They are lenient (unknown fields ignored) so that a v1 client keeps working when the
server adds a field with a default, as docs/protocol.md promises. Times are seconds since the Unix
epoch (floats).
"""

from __future__ import annotations

import enum

from msgspec import Struct, field

Scalar = str | int | float | bool | None


class Channel(enum.StrEnum):
    VOICE = "voice"
    VIDEO = "video"
    CHAT = "chat"
    EMAIL = "email"

    @property
    def is_live(self) -> bool:
        return self is not Channel.EMAIL


class Acceptance(enum.StrEnum):
    MANUAL = "manual"
    AUTO = "auto"


class Strategy(enum.StrEnum):
    LONGEST_IDLE = "longest_idle"
    ROUND_ROBIN = "round_robin"
    MOST_SKILLED = "most_skilled"
    RING_ALL = "ring_all"


class AgentStatus(enum.StrEnum):
    OFFLINE = "offline"
    READY = "ready"
    NOT_READY = "not_ready"


class Activity(enum.StrEnum):
    IDLE = "idle"
    RINGING = "ringing"
    BUSY = "busy"
    WRAP_UP = "wrap_up"


class EngagementState(enum.StrEnum):
    QUEUED = "queued"
    OFFERED = "offered"
    ACTIVE = "active"
    WRAP_UP = "wrap_up"
    CLOSED = "closed"
    ASSIGNED = "assigned"
    OPEN = "open"
    RESOLVED = "resolved"
    ABANDONED = "abandoned"

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({EngagementState.CLOSED, EngagementState.RESOLVED, EngagementState.ABANDONED})


class CancelReason(enum.StrEnum):
    DECLINED = "declined"
    TIMEOUT = "timeout"
    ABANDONED = "abandoned"
    TAKEN = "taken"


class View(Struct, kw_only=True, omit_defaults=False, gc=False):
    """Base of wire views: keyword-only so that fields can be added with defaults in any order.

    Views, like every frame, are plain data that never refer back to themselves: `gc=False` keeps them
    out of the garbage collector, whose full collections would otherwise stall a busy node."""


class Consumer(View, kw_only=True):
    id: str | None = None
    name: str | None = None
    phone: str | None = None
    email: str | None = None


class Profile(View, kw_only=True):
    """What is known about the consumer: the address-book entry (if any) merged with the flow's data."""

    contact: str | None = None
    name: str | None = None
    phone: str | None = None
    email: str | None = None
    fields: dict[str, Scalar] = field(default_factory=dict)


class Candidate(View, kw_only=True):
    """One agent the router looked at for an offer, with the figures it compared."""

    agent: str
    idle_s: float
    load: int
    capacity: int
    priority: int
    tried: bool


class Routing(View, kw_only=True):
    """Why an offer went to whom: the strategy, the rule in words, how many agents were eligible, and
    the best candidates weighed (up to ten, in the strategy's order)."""

    strategy: Strategy
    rule: str
    chosen: tuple[str, ...]
    eligible: int = 0
    candidates: tuple[Candidate, ...]


class HistoryEntry(Struct, kw_only=True, omit_defaults=True, gc=False):
    """One transition of an engagement: when, who did it (`actor`), and what changed. `agent` is the
    agent the step concerns; `former` the agent who held it before (on transfers)."""

    at: float
    event: str
    actor: str
    state: EngagementState | None = None
    agent: str | None = None
    former: str | None = None
    offer: str | None = None
    queue: str | None = None
    reason: str | None = None
    codes: tuple[str, ...] | None = None
    routing: Routing | None = None


class Message(View, kw_only=True):
    """A chat line or an email in an engagement's thread. `direction` is `in` (consumer) or `out` (agent)."""

    id: str
    direction: str
    sender: str
    text: str
    subject: str | None = None
    ts: float


class Fragment(View, kw_only=True):
    """A piece of live transcript. A `final` fragment replaces the partial with the same `id`."""

    id: str
    speaker: str
    text: str
    final: bool = True
    ts: float


class Engagement(View, kw_only=True):
    """An engagement's full snapshot, as sent in `ring`, `engagement`, `welcome` and over HTTP."""

    id: str
    queue: str
    queue_name: str
    channel: Channel
    state: EngagementState
    priority: int = 0
    consumer: Consumer = field(default_factory=Consumer)
    variables: dict[str, Scalar] = field(default_factory=dict)
    summary: str | None = None
    subject: str | None = None
    profile: Profile = field(default_factory=Profile)
    agent: str | None = None
    notes: str = ""
    dispositions: list[str] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    transcript_count: int = 0
    history: list[HistoryEntry] = field(default_factory=list)
    created_at: float
    ended_at: float | None = None
    wrap_up_until: float | None = None
