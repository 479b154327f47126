"""Every WebSocket frame of protocol v1, as one tagged union per direction (`type` is the tag).

Client frames are frozen and strict (`forbid_unknown_fields`): a typo in a field name is an error the
client hears about, not a field silently ignored. Server frames are lenient so that clients keep
working when a later v1 server adds a field (always with a default).

Replies carry `re` (the request's `id`) and no `seq`; events carry the agent's `seq` and no `re`.
"""

from __future__ import annotations

import typing
from typing import Literal

from msgspec import Struct, field

from protocol.model import (
    Activity,
    AgentStatus,
    CancelReason,
    Channel,
    Engagement,
    EngagementState,
    Fragment,
    Message,
)

RequestId = str | int | None


class ClientFrame(Struct, tag_field="type", frozen=True, forbid_unknown_fields=True, kw_only=True, gc=False):
    """Base of what clients send. `id` is optional; a frame with `id` gets exactly one reply."""

    id: RequestId = None


class Hello(ClientFrame, tag="hello", kw_only=True, frozen=True):
    token: str | None = None
    resume_from: int | None = None
    epoch: str | None = None


class SetStatus(ClientFrame, tag="set_status", kw_only=True, frozen=True):
    status: Literal["ready", "not_ready"]
    reason: str | None = None


class Accept(ClientFrame, tag="accept", kw_only=True, frozen=True):
    offer: str


class Decline(ClientFrame, tag="decline", kw_only=True, frozen=True):
    offer: str
    reason: str | None = None


class Note(ClientFrame, tag="note", kw_only=True, frozen=True):
    engagement: str
    text: str


class Disposition(ClientFrame, tag="disposition", kw_only=True, frozen=True):
    engagement: str
    codes: list[str]


class Search(ClientFrame, tag="search", kw_only=True, frozen=True):
    engagement: str
    query: str


class Send(ClientFrame, tag="send", kw_only=True, frozen=True):
    engagement: str
    text: str
    subject: str | None = None


class End(ClientFrame, tag="end", kw_only=True, frozen=True):
    engagement: str


class WrapUpDone(ClientFrame, tag="wrap_up_done", kw_only=True, frozen=True):
    engagement: str


class Open(ClientFrame, tag="open", kw_only=True, frozen=True):
    engagement: str


class Transfer(ClientFrame, tag="transfer", kw_only=True, frozen=True):
    engagement: str
    queue: str | None = None
    agent: str | None = None


class Release(ClientFrame, tag="release", kw_only=True, frozen=True):
    engagement: str


class Ping(ClientFrame, tag="ping", kw_only=True, frozen=True):
    pass


class Watch(ClientFrame, tag="watch", kw_only=True, frozen=True):
    engagement: str


class Unwatch(ClientFrame, tag="unwatch", kw_only=True, frozen=True):
    engagement: str


class SetAgentStatus(ClientFrame, tag="set_agent_status", kw_only=True, frozen=True):
    agent: str
    status: Literal["ready", "not_ready"]
    reason: str | None = None


class ForceWrapUpDone(ClientFrame, tag="force_wrap_up_done", kw_only=True, frozen=True):
    engagement: str


class ForceEnd(ClientFrame, tag="force_end", kw_only=True, frozen=True):
    engagement: str


class ForceTransfer(ClientFrame, tag="force_transfer", kw_only=True, frozen=True):
    engagement: str
    queue: str | None = None
    agent: str | None = None


AgentAction = (
    SetStatus | Accept | Decline | Note | Disposition | Search | Send | End | WrapUpDone | Open | Transfer | Release
)
SupervisorAction = Watch | Unwatch | SetAgentStatus | ForceWrapUpDone | ForceEnd | ForceTransfer

Client = (
    Hello
    | SetStatus
    | Accept
    | Decline
    | Note
    | Disposition
    | Search
    | Send
    | End
    | WrapUpDone
    | Open
    | Transfer
    | Release
    | Ping
    | Watch
    | Unwatch
    | SetAgentStatus
    | ForceWrapUpDone
    | ForceEnd
    | ForceTransfer
)

AGENT_ACTIONS: tuple[type[ClientFrame], ...] = typing.get_args(AgentAction)
SUPERVISOR_ACTIONS: tuple[type[ClientFrame], ...] = typing.get_args(SupervisorAction)


class ServerFrame(Struct, tag_field="type", kw_only=True, gc=False):
    """Base of what the server sends."""


class Reply(ServerFrame):
    re: RequestId = None


class Event(ServerFrame):
    seq: int = 0


class Welcome(Reply, tag="welcome", kw_only=True):
    """First frame after `hello`. `seq` is the agent's latest event seq; `offers` are the rings still running."""

    agent: str
    name: str = ""
    role: Literal["agent", "supervisor", "consumer", "ingest"] = "agent"
    status: AgentStatus | None
    reason: str | None = None
    activity: Activity | None = None
    next_status: AgentStatus | None = None
    next_reason: str | None = None
    engagements: list[Engagement] = field(default_factory=list)
    offers: list[Ring] = field(default_factory=list)
    seq: int = 0
    resumed: bool = False
    epoch: str = ""
    server_time: float = 0.0


class Ok(Reply, tag="ok", kw_only=True):
    """Success. Carries what the client would otherwise have to look up: the engagement, the status."""

    engagement: str | None = None
    offer: str | None = None
    message: str | None = None
    status: AgentStatus | None = None
    reason: str | None = None
    deferred: bool = False


class Error(Reply, tag="error", kw_only=True):
    code: str
    message: str


class Pong(Reply, tag="pong", kw_only=True):
    server_time: float = 0.0


class Hit(Struct, kw_only=True, gc=False):
    fragment: str
    speaker: str
    ts: float
    text: str
    spans: list[tuple[int, int]]


class SearchResult(Reply, tag="search_result", kw_only=True):
    engagement: str = ""
    query: str = ""
    hits: list[Hit] = field(default_factory=list)


class Ring(Event, tag="ring", kw_only=True):
    offer: str
    engagement: Engagement
    expires_at: float
    timeout_s: float = 0.0


class RingCancelled(Event, tag="ring_cancelled", kw_only=True):
    offer: str
    reason: CancelReason
    engagement: str = ""


class EngagementEvent(Event, tag="engagement", kw_only=True):
    engagement: Engagement


class Transcript(Event, tag="transcript", kw_only=True):
    engagement: str
    fragments: list[Fragment]


class MessageEvent(Event, tag="message", kw_only=True):
    engagement: str
    id: str
    direction: str
    sender: str
    text: str
    subject: str | None = None
    ts: float


class StatusEvent(Event, tag="status", kw_only=True):
    status: AgentStatus
    reason: str | None = None
    activity: Activity = Activity.IDLE
    next_status: AgentStatus | None = None
    next_reason: str | None = None


class Closing(Event, tag="closing", kw_only=True):
    reason: str
    retry_after_ms: int


class Conversation(Event, tag="conversation", kw_only=True):
    """For the consumer's socket: where their conversation stands, and its thread so far."""

    engagement: str
    state: EngagementState
    channel: Channel
    agent_name: str | None = None
    messages: list[Message] = field(default_factory=list)


class QueueStats(Event, tag="queue_stats", kw_only=True):
    queue: str
    waiting: int
    longest_wait_s: float
    agents: dict[str, int]
    available: int = 0


class AgentState(Event, tag="agent_state", kw_only=True):
    agent: str
    name: str = ""
    status: AgentStatus
    reason: str | None = None
    activity: Activity = Activity.IDLE
    engagements: list[str] = field(default_factory=list)


Server = (
    Welcome
    | Ok
    | Error
    | Pong
    | SearchResult
    | Ring
    | RingCancelled
    | EngagementEvent
    | Transcript
    | MessageEvent
    | StatusEvent
    | Closing
    | QueueStats
    | AgentState
    | Conversation
)


class FragmentIn(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, gc=False):
    """A transcript fragment as a media server sends it; the server assigns ids to those without."""

    id: str | None = None
    speaker: str
    text: str
    final: bool = True
    ts: float | None = None


class IngestFrame(Struct, tag_field="type", frozen=True, forbid_unknown_fields=True, kw_only=True, gc=False):
    """Base of what media servers send on `/v1/ingest`."""

    id: RequestId = None


class IngestHello(IngestFrame, tag="hello", kw_only=True, frozen=True):
    token: str | None = None


class IngestTranscript(IngestFrame, tag="transcript", kw_only=True, frozen=True):
    engagement: str
    fragments: list[FragmentIn]


class IngestPing(IngestFrame, tag="ping", kw_only=True, frozen=True):
    pass


Ingest = IngestHello | IngestTranscript | IngestPing
