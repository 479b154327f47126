"""What the terminal desktop knows, apart from any widget: the engagements held, the rings, the status,
the server's clock; and the pure functions that turn them into rich Text for the widgets to show.

Keeping this apart from the widgets means an event can be applied at any time (even before the view of
its engagement is mounted): the model changes at once, and views render from it when they are ready.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from rich.text import Text

from protocol.frames import Hit, MessageEvent, Ring
from protocol.model import (
    Activity,
    AgentStatus,
    Channel,
    Engagement,
    EngagementState,
    Fragment,
    Message,
    Scalar,
)

NOT_READY_REASONS = ("break", "lunch", "training")
HELD_STATES = frozenset(
    {EngagementState.ACTIVE, EngagementState.WRAP_UP, EngagementState.ASSIGNED, EngagementState.OPEN}
)
HIT_STYLE = "bold black on yellow"
CHANNEL_ICONS = {Channel.VOICE: "☎", Channel.VIDEO: "▶", Channel.CHAT: "✎", Channel.EMAIL: "✉"}


def http_base(ws_url: str) -> str:
    """The HTTP API's base URL from the agent socket's URL: `ws://h:p[/v1/agent]` -> `http://h:p`."""
    parts = urlsplit(ws_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme or "http")
    path = parts.path.rstrip("/")
    if path.endswith("/v1/agent"):
        path = path[: -len("/v1/agent")]
    return urlunsplit((scheme, parts.netloc, path, "", ""))


class Clock:
    """The server's clock as seen from here (`welcome.server_time` gives the skew)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def sync(self, server_time: float) -> None:
        if server_time:
            self.offset = server_time - time.time()

    def now(self) -> float:
        return time.time() + self.offset


def seconds_left(until: float, now: float) -> int:
    return max(0, math.ceil(until - now))


def hhmmss(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def label(value: str | None) -> str:
    """`not_ready` -> `Not ready`."""
    return (value or "").replace("_", " ").capitalize()


def consumer_name(eng: Engagement) -> str:
    c, p = eng.consumer, eng.profile
    return p.name or c.name or p.phone or c.phone or p.email or c.email or "Unknown consumer"


@dataclass
class StatusInfo:
    status: AgentStatus | None = None
    reason: str | None = None
    next_status: AgentStatus | None = None
    next_reason: str | None = None


@dataclass
class Held:
    """An engagement the agent holds, with what the desktop gathered about it."""

    engagement: Engagement
    fragments: dict[str, Fragment] = field(default_factory=dict)
    messages: dict[str, Message] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    hits: dict[str, tuple[str, list[tuple[int, int]]]] = field(default_factory=dict)
    search_summary: str = ""
    saved_notes: str = ""
    notes_state: str = ""
    opening: bool = False

    def __post_init__(self) -> None:
        self.saved_notes = self.engagement.notes
        self.update(self.engagement)

    @property
    def id(self) -> str:
        return self.engagement.id

    @property
    def channel(self) -> Channel:
        return self.engagement.channel

    @property
    def state(self) -> EngagementState:
        return self.engagement.state

    @property
    def is_email(self) -> bool:
        return self.channel is Channel.EMAIL

    @property
    def has_thread(self) -> bool:
        return self.channel in (Channel.CHAT, Channel.EMAIL)

    def update(self, eng: Engagement) -> None:
        self.engagement = eng
        for message in eng.messages:
            self.messages[message.id] = message

    def add_message(self, event: MessageEvent) -> None:
        self.messages[event.id] = Message(
            id=event.id,
            direction=event.direction,
            sender=event.sender,
            text=event.text,
            subject=event.subject,
            ts=event.ts,
        )

    def add_fragments(self, fragments: list[Fragment]) -> None:
        for fragment in fragments:
            self.fragments[fragment.id] = fragment  # upsert: a final replaces its partial, in place

    def set_hits(self, hits: list[Hit], query: str) -> None:
        self.hits = {}
        for hit in hits:
            self.hits[hit.fragment] = (hit.text, [(int(a), int(b)) for a, b in hit.spans])
        if not query.strip():
            self.search_summary = ""
        elif hits:
            self.search_summary = f"{len(hits)} match{'es' if len(hits) != 1 else ''} for “{query}”"
        else:
            self.search_summary = f"No match for “{query}”"

    @property
    def unread(self) -> bool:
        if self.state is EngagementState.ASSIGNED:
            return True
        return any(m.direction == "in" and m.id not in self.seen for m in self.messages.values())

    def mark_seen(self) -> None:
        self.seen.update(m.id for m in self.messages.values() if m.direction == "in")


def activity(held: list[Held], ringing: bool) -> Activity:
    """The agent's activity, derived as the server derives it (status events only come on status changes)."""
    live = {h.state for h in held if h.channel.is_live}
    if EngagementState.WRAP_UP in live:
        return Activity.WRAP_UP
    if held:
        return Activity.BUSY
    if ringing:
        return Activity.RINGING
    return Activity.IDLE


# --- rendering -----------------------------------------------------------------------------------

STATUS_STYLES = {AgentStatus.READY: "bold green", AgentStatus.NOT_READY: "bold red", AgentStatus.OFFLINE: "dim"}


def status_text(info: StatusInfo, act: Activity) -> Text:
    out = Text()
    if info.status is None:
        return Text("Status unknown", style="dim")
    out.append(label(info.status), style=STATUS_STYLES.get(info.status, ""))
    if info.status is AgentStatus.NOT_READY and info.reason:
        out.append(f" ({info.reason})", style="red")
    out.append(" · ")
    out.append(label(act), style="bold" if act is not Activity.IDLE else "")
    if info.next_status is not None:
        out.append("  next: ", style="dim")
        nxt = label(info.next_status)
        if info.next_status is AgentStatus.NOT_READY and info.next_reason:
            nxt += f" ({info.next_reason})"
        out.append(nxt, style="bold yellow")
        out.append(" after wrap-up", style="dim")
    return out


CONNECTION_TEXT = {
    "connecting": ("◌ Connecting…", "yellow"),
    "connected": ("● Connected", "bold green"),
    "reconnecting": ("◌ Reconnecting…", "bold yellow"),
    "closed": ("✕ Disconnected", "bold red"),
    "offline": ("✕ Server unreachable, retrying…", "bold red"),
}


def connection_text(state: str, detail: str = "") -> Text:
    words, style = CONNECTION_TEXT.get(state, (state, ""))
    out = Text(words, style=style)
    if detail:
        out.append(f" {detail}", style="dim")
    return out


def _fields(out: Text, title: str, values: dict[str, Scalar]) -> None:
    if not values:
        return
    out.append(f"\n{title}\n", style="bold")
    width = max(len(k) for k in values)
    for key, value in values.items():
        out.append(f"  {key.ljust(width)}  ", style="dim")
        out.append(f"{value}\n")


def _line(out: Text, key: str, value: object) -> None:
    if value in (None, ""):
        return
    out.append(f"{key:<10}", style="dim")
    out.append(f"{value}\n")


def profile_text(eng: Engagement) -> Text:
    p, c = eng.profile, eng.consumer
    out = Text()
    out.append(f"{consumer_name(eng)}\n", style="bold")
    _line(out, "Phone", p.phone or c.phone)
    _line(out, "Email", p.email or c.email)
    _line(out, "Contact", p.contact)
    _line(out, "Customer", c.id)
    # the profile merges the address book with the flow's variables: show each once
    _fields(out, "Profile", {k: v for k, v in p.fields.items() if k not in eng.variables})
    _fields(out, "Variables", eng.variables)
    if eng.summary:
        out.append("\nBot summary\n", style="bold")
        out.append(f"  {eng.summary}\n")
    out.append("\n")
    _line(out, "Channel", label(eng.channel))
    _line(out, "Queue", eng.queue_name)
    _line(out, "Subject", eng.subject)
    _line(out, "Since", hhmmss(eng.created_at))
    return out


def ring_text(ring: Ring) -> Text:
    """The ring's details: who, what the flow collected, what the bot summarized, where from."""
    eng = ring.engagement
    out = Text()
    out.append(f"{CHANNEL_ICONS.get(eng.channel, '')} Incoming {eng.channel.value}", style="bold")
    out.append(f" · {eng.queue_name}\n\n")
    out.append(profile_text(eng))
    return out


def countdown_text(prefix: str, left: int, total: float) -> Text:
    width = 20
    filled = 0 if total <= 0 else round(width * min(1.0, left / total))
    style = "bold red" if left <= 5 else "bold yellow"
    out = Text(f"{prefix} {left} s ", style=style)
    out.append("█" * filled, style=style)
    out.append("░" * (width - filled), style="dim")
    return out


def head_text(held: Held, now: float) -> Text:
    eng = held.engagement
    out = Text()
    out.append(f"{CHANNEL_ICONS.get(eng.channel, '')} ", style="bold")
    out.append(eng.subject if held.is_email and eng.subject else consumer_name(eng), style="bold")
    if held.is_email:
        out.append(f" · {consumer_name(eng)}")
    out.append(f" · {eng.queue_name} · ")
    state_style = {EngagementState.WRAP_UP: "bold yellow", EngagementState.ACTIVE: "bold green"}
    out.append(label(eng.state), style=state_style.get(eng.state, "bold"))
    if eng.state is EngagementState.WRAP_UP and eng.wrap_up_until is not None:
        left = seconds_left(eng.wrap_up_until, now)
        out.append(f" · {left} s left", style="bold red" if left <= 10 else "yellow")
    return out


def dispositions_text(eng: Engagement, labels: dict[str, str]) -> Text:
    out = Text("Disposition: ", style="dim")
    if eng.dispositions:
        out.append(", ".join(labels.get(c, c) for c in eng.dispositions), style="bold")
    else:
        out.append("none (p to pick)", style="italic")
    return out


def history_text(eng: Engagement, last: int = 12) -> Text:
    out = Text("History\n", style="bold")
    for entry in eng.history[-last:]:
        out.append(f"  {hhmmss(entry.at)} ", style="dim")
        out.append(entry.event)
        bits = [b for b in (entry.agent and f"agent {entry.agent}", entry.queue and f"queue {entry.queue}") if b]
        if entry.reason:
            bits.append(entry.reason)
        if entry.codes:
            bits.append(", ".join(entry.codes))
        out.append(f" by {entry.actor}", style="dim")
        if bits:
            out.append(f" ({'; '.join(bits)})", style="dim")
        out.append("\n")
    return out


def transcript_text(held: Held) -> Text:
    """Every fragment once, in order; partials in italics; search hits highlighted."""
    out = Text()
    if not held.fragments:
        missing = held.engagement.transcript_count
        out.append(
            f"{missing} earlier line(s) are not available on this desktop." if missing else "No transcript yet.",
            style="dim italic",
        )
        return out
    for i, fragment in enumerate(held.fragments.values()):
        if i:
            out.append("\n")
        out.append(f"{hhmmss(fragment.ts)} ", style="dim")
        out.append(f"{fragment.speaker}: ", style="bold cyan" if fragment.speaker == "agent" else "bold magenta")
        start = len(out)
        out.append(fragment.text, style="" if fragment.final else "italic")
        hit = held.hits.get(fragment.id)
        if hit is not None and hit[0] == fragment.text:
            for a, b in hit[1]:
                out.stylize(HIT_STYLE, start + a, start + b)
        if not fragment.final:
            out.append(" …", style="dim")
    return out


def thread_text(held: Held) -> Text:
    out = Text()
    if not held.messages:
        return Text("No messages yet.", style="dim italic")
    for i, message in enumerate(sorted(held.messages.values(), key=lambda m: m.ts)):
        if i:
            out.append("\n\n")
        inbound = message.direction == "in"
        out.append(f"{hhmmss(message.ts)} ", style="dim")
        out.append(f"{'←' if inbound else '→'} {message.sender}", style="bold magenta" if inbound else "bold cyan")
        if message.subject:
            out.append(f"  {message.subject}", style="italic")
        out.append("\n")
        out.append(message.text)
    return out


def list_entry(held: Held, current: bool) -> Text:
    eng = held.engagement
    out = Text()
    out.append("● " if held.unread and not current else "  ", style="bold yellow")
    out.append(f"{CHANNEL_ICONS.get(eng.channel, '')} ")
    title = eng.subject if held.is_email and eng.subject else consumer_name(eng)
    out.append(title, style="bold" if held.unread and not current else "")
    out.append(f" · {label(eng.state)}", style="dim")
    return out
