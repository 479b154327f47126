"""The HTTP API's bodies, both ways: what flows send (strict) and what the server answers.

Request bodies forbid unknown fields, so `{"queue": "x", "varibles": {}}` is a 400 naming
`varibles`, not an engagement silently missing its variables.
"""

from __future__ import annotations

from msgspec import Struct, field

from protocol.frames import FragmentIn
from protocol.model import Acceptance, Activity, AgentStatus, Channel, Engagement, Fragment, Scalar, Strategy


class Strict(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Base of request bodies."""


class ConsumerIn(Strict, kw_only=True, frozen=True):
    id: str | None = None
    name: str | None = None
    phone: str | None = None
    email: str | None = None


class CreateEngagement(Strict, kw_only=True, frozen=True):
    queue: str
    consumer: ConsumerIn | None = None
    variables: dict[str, Scalar] = field(default_factory=dict)
    summary: str | None = None
    priority: int = 0
    subject: str | None = None
    body: str | None = None


class TranscriptBatch(Strict, kw_only=True, frozen=True):
    fragments: list[FragmentIn]


class MessageIn(Strict, kw_only=True, frozen=True):
    """A consumer's chat line or email. `sender` defaults to the consumer's name or email."""

    text: str
    subject: str | None = None
    sender: str | None = None


class CreatedEngagement(Engagement, kw_only=True):
    """The answer to a create: the engagement, and the token its consumer's socket signs in with."""

    consumer_token: str


class ErrorBody(Struct, kw_only=True):
    code: str
    message: str


class DispositionInfo(Struct, kw_only=True):
    code: str
    label: str


class QueueStats(Struct, kw_only=True):
    waiting: int
    longest_wait_s: float
    agents: dict[str, int]
    available: int


class QueueInfo(Struct, kw_only=True):
    id: str
    name: str
    channel: Channel
    acceptance: Acceptance
    strategy: Strategy
    ring_timeout_s: float
    wrap_up_s: float | None
    dispositions: list[DispositionInfo]
    disposition_required: bool
    transcription: bool
    overflow_queue: str | None = None
    overflow_after_s: float | None = None
    stats: QueueStats


class MembershipInfo(Struct, kw_only=True):
    id: str
    priority: int


class AgentInfo(Struct, kw_only=True):
    id: str
    name: str
    queues: list[MembershipInfo]
    capacity: dict[str, int]
    status: AgentStatus
    reason: str | None = None
    activity: Activity
    next_status: AgentStatus | None = None
    next_reason: str | None = None
    connected: bool = False
    engagements: list[str] = field(default_factory=list)
    offers: list[str] = field(default_factory=list)


class StatusChange(Struct, kw_only=True):
    """One change of an agent's status: when, who made it (`agent:<id>`, `supervisor:<id>` or `system`),
    to what, and whether it was `deferred`: asked for during a live engagement or its wrap-up, so kept
    as the next status; a `system` change applies it when the last wrap-up ends."""

    at: float
    actor: str
    status: AgentStatus
    reason: str | None = None
    deferred: bool = False


class AgentDetail(AgentInfo, kw_only=True):
    """One agent, as `GET /v1/agents/{id}` shows it: the listing's fields and the agent's latest status
    changes, oldest first (the listing leaves them out to stay small). A status history is personal
    data: `null` for a reader who may not see it (another agent)."""

    history: list[StatusChange] | None = None


class TranscriptAccepted(Struct, kw_only=True):
    accepted: int
    fragments: list[str]


class MessageAccepted(Struct, kw_only=True):
    id: str


class TranscriptView(Struct, kw_only=True):
    engagement: str
    fragments: list[Fragment]


class Person(Struct, kw_only=True):
    id: str
    name: str
    role: str
    token: str


class DemoPeople(Struct, kw_only=True):
    enabled: bool
    agents: list[Person] = field(default_factory=list)
    supervisors: list[Person] = field(default_factory=list)


class Health(Struct, kw_only=True):
    status: str
