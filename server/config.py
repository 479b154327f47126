"""Configuration: the contact center's queues, agents, supervisors and address book, read from TOML.

Decoding is strict (unknown keys are errors) and every error names the key that is wrong, as
`queues[1].channel: Expected ...`, because a routing server that starts on a half-understood config
silently routes calls wrong. `Directory` is the validated config with the lookups the core needs.
"""

from __future__ import annotations

import ipaddress
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal, NamedTuple, cast

import msgspec
from msgspec import Struct, field

from protocol.model import Acceptance, Channel, Scalar, Strategy


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key."""


class Cfg(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Base of config tables: strict and immutable."""


class DispositionCfg(Cfg, kw_only=True, frozen=True):
    code: str
    label: str = ""


class OverflowCfg(Cfg, kw_only=True, frozen=True):
    after_s: float
    queue: str


class QueueCfg(Cfg, kw_only=True, frozen=True):
    id: str
    name: str = ""
    channel: Channel
    acceptance: Acceptance = Acceptance.MANUAL
    strategy: Strategy = Strategy.LONGEST_IDLE
    ring_timeout_s: float = 20.0
    wrap_up_s: float | None = 60.0
    dispositions: list[DispositionCfg] = field(default_factory=list)
    disposition_required: bool = False
    transcription: bool = False
    overflow: OverflowCfg | None = None
    inactivity_close_s: float | None = None
    max_waiting: int | None = None
    webhook_url: str | None = None
    service_level_threshold_s: float = 20.0
    service_level_target: float = 0.8

    @property
    def title(self) -> str:
        return self.name or self.id

    def disposition_codes(self) -> frozenset[str]:
        return frozenset(d.code for d in self.dispositions)


class MembershipCfg(Cfg, kw_only=True, frozen=True):
    id: str
    priority: int = 1


DEFAULT_CAPACITY: dict[Channel, int] = {Channel.VOICE: 1, Channel.VIDEO: 1, Channel.CHAT: 3, Channel.EMAIL: 5}
DEFAULT_BLOCKS: dict[Channel, list[Channel]] = {
    Channel.VOICE: [Channel.VIDEO, Channel.CHAT],
    Channel.VIDEO: [Channel.VOICE, Channel.CHAT],
    Channel.CHAT: [Channel.VOICE, Channel.VIDEO],
    Channel.EMAIL: [],
}


class AgentCfg(Cfg, kw_only=True, frozen=True):
    """An agent. `blocks[X]` lists the channels not offered while the agent holds or rings an X engagement."""

    id: str
    name: str = ""
    queues: list[str | MembershipCfg] = field(default_factory=list)
    capacity: dict[Channel, int] = field(default_factory=lambda: dict(DEFAULT_CAPACITY))
    blocks: dict[Channel, list[Channel]] = field(default_factory=lambda: dict(DEFAULT_BLOCKS))

    @property
    def title(self) -> str:
        return self.name or self.id

    def memberships(self) -> list[MembershipCfg]:
        return [MembershipCfg(id=m) if isinstance(m, str) else m for m in self.queues]


class SupervisorCfg(Cfg, kw_only=True, frozen=True):
    id: str
    name: str = ""


class ContactCfg(Cfg, kw_only=True, frozen=True):
    id: str
    name: str | None = None
    phone: str | None = None
    email: str | None = None
    fields: dict[str, Scalar] = field(default_factory=dict)


class ServerCfg(Cfg, kw_only=True, frozen=True):
    secret: str | None = None
    api_keys: list[str] = field(default_factory=list)
    token_ttl_s: float = 12 * 3600.0
    consumer_token_ttl_s: float = 24 * 3600.0
    grace_s: float = 15.0
    hello_timeout_s: float = 10.0
    missed_status: Literal["not_ready", "ready"] = "not_ready"
    missed_reason: str = "missed"
    max_frame_bytes: int = 1 << 20
    max_body_bytes: int = 1 << 20
    event_log_size: int = 1000
    outbound_queue: int = 1000
    webhook_secret: str | None = None
    heartbeat_s: float = 1.0
    node_timeout_s: float = 5.0
    allowed_origins: list[str] = field(default_factory=list)
    rate_per_s: float = 50.0
    rate_burst: int = 100
    max_bad_frames: int = 20
    max_connections: int = 20_000
    drain_retry_after_ms: int = 1000
    metrics_need_key: bool = False
    retention_s: float = 3 * 86400.0


class LimitsCfg(Cfg, kw_only=True, frozen=True):
    """What one engagement may hold. Far above what a real conversation reaches (a two-hour call is
    about 2,000 fragments and 100 KiB of text), low enough that one party cannot grow a node's memory
    or Redis without bound. Past one: `limit_reached`, nothing stored, the engagement goes on."""

    notes_bytes: int = 64 * 1024
    message_bytes: int = 64 * 1024
    thread_messages: int = 5_000
    thread_bytes: int = 1 << 20
    fragment_bytes: int = 64 * 1024
    transcript_fragments: int = 20_000
    transcript_bytes: int = 4 << 20
    search_query_chars: int = 512


class ReportingCfg(Cfg, kw_only=True, frozen=True):
    """Where closed engagements go before retention removes them (docs/configuration.md)."""

    file: str | None = None


class Config(Cfg, kw_only=True, frozen=True):
    server: ServerCfg = field(default_factory=ServerCfg)
    limits: LimitsCfg = field(default_factory=LimitsCfg)
    reporting: ReportingCfg = field(default_factory=ReportingCfg)
    queues: list[QueueCfg] = field(default_factory=list)
    agents: list[AgentCfg] = field(default_factory=list)
    supervisors: list[SupervisorCfg] = field(default_factory=list)
    address_book: list[ContactCfg] = field(default_factory=list)


@dataclass(frozen=True)
class Member:
    agent: str
    priority: int


class Directory:
    """A validated `Config` with the lookups routing needs; built once, read everywhere, never changed."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.server = config.server
        self.limits = config.limits
        self.queues: dict[str, QueueCfg] = {q.id: q for q in config.queues}
        self.agents: dict[str, AgentCfg] = {a.id: a for a in config.agents}
        self.supervisors: dict[str, SupervisorCfg] = {s.id: s for s in config.supervisors}
        self.members: dict[str, list[Member]] = {q.id: [] for q in config.queues}
        self.room: dict[str, dict[Channel, Room]] = {a.id: _rooms(a) for a in config.agents}
        self.skills: dict[str, dict[str, int]] = {}
        for agent in config.agents:
            self.skills[agent.id] = {}
            for m in agent.memberships():
                self.members[m.id].append(Member(agent.id, m.priority))
                self.skills[agent.id][m.id] = m.priority
        self.member_ids: dict[str, list[str]] = {q: [m.agent for m in ms] for q, ms in self.members.items()}
        self.position: dict[str, dict[str, int]] = {
            q: {a: i for i, a in enumerate(ids)} for q, ids in self.member_ids.items()
        }
        self.contacts_by_id = {c.id: c for c in config.address_book}
        self.contacts_by_phone = {_digits(c.phone): c for c in config.address_book if c.phone}
        self.contacts_by_email = {c.email.lower(): c for c in config.address_book if c.email}

    def queue(self, queue_id: str) -> QueueCfg:
        return self.queues[queue_id]

    def agent_queues(self, agent_id: str) -> list[str]:
        return list(self.skills.get(agent_id, {}))

    def lookup_contact(self, id: str | None, phone: str | None, email: str | None) -> ContactCfg | None:
        """Find the consumer in the address book by id, then phone (digits only), then email (any case)."""
        if id and id in self.contacts_by_id:
            return self.contacts_by_id[id]
        if phone and _digits(phone) in self.contacts_by_phone:
            return self.contacts_by_phone[_digits(phone)]
        if email and email.lower() in self.contacts_by_email:
            return self.contacts_by_email[email.lower()]
        return None


class Room(NamedTuple):
    """What one agent may take on one channel: how many at once, and the channels whose engagements
    (held or ringing) block it. Worked out once, because routing asks it of every member every time."""

    capacity: int
    blocked_by: frozenset[Channel]


def _rooms(agent: AgentCfg) -> dict[Channel, Room]:
    return {
        ch: Room(agent.capacity.get(ch, 0), frozenset(b for b, blocked in agent.blocks.items() if ch in blocked))
        for ch in Channel
    }


def _digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())


def _path(msgspec_path: str) -> str:
    return msgspec_path.removeprefix("$").removeprefix(".")


def decode(data: bytes | str, source: str = "config") -> Config:
    """Decode TOML text into a `Config`, or raise `ConfigError` naming the bad key."""
    try:
        raw = tomllib.loads(data.decode() if isinstance(data, bytes) else data)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return from_mapping(raw, source)


def from_mapping(raw: Mapping[str, object], source: str = "config") -> Config:
    server = raw.get("server")
    if isinstance(server, Mapping) and "demo_signin" in server:
        raise ConfigError(
            f"{source}: server.demo_signin: no longer a setting; the demo sign-in list is served only by "
            "`switchboard demo` or `switchboard serve --demo`"
        )
    try:
        config = msgspec.convert(raw, Config)
    except msgspec.ValidationError as exc:
        text = str(exc)
        where = ""
        if " - at `" in text:
            text, _, at = text.rpartition(" - at `")
            where = _path(at.rstrip("`")) + ": "
        raise ConfigError(f"{source}: {where}{text}") from None
    validate(config, source)
    return config


def validate(config: Config, source: str = "config") -> None:
    """The checks a schema cannot express: unique ids, references that resolve, sane numbers."""
    problems: list[str] = []
    queue_ids: set[str] = set()
    for i, q in enumerate(config.queues):
        at = f"queues[{i}]"
        if not q.id:
            problems.append(f"{at}.id: must not be empty")
        if q.id in queue_ids:
            problems.append(f"{at}.id: duplicate queue id {q.id!r}")
        queue_ids.add(q.id)
        if q.ring_timeout_s <= 0:
            problems.append(f"{at}.ring_timeout_s: must be > 0, got {q.ring_timeout_s}")
        if q.wrap_up_s is not None and q.wrap_up_s <= 0:
            problems.append(f"{at}.wrap_up_s: must be > 0 (leave it out for no limit), got {q.wrap_up_s}")
        if q.disposition_required and not q.dispositions:
            problems.append(f"{at}.disposition_required: the queue has no dispositions to choose from")
        codes = [d.code for d in q.dispositions]
        if len(set(codes)) != len(codes):
            problems.append(f"{at}.dispositions: duplicate codes in {codes}")
        if q.inactivity_close_s is not None and q.inactivity_close_s <= 0:
            problems.append(f"{at}.inactivity_close_s: must be > 0, got {q.inactivity_close_s}")
        if q.webhook_url is not None and not q.webhook_url.startswith(("http://", "https://")):
            problems.append(f"{at}.webhook_url: must be an http(s) URL, got {q.webhook_url!r}")
        if q.max_waiting is not None and q.max_waiting < 1:
            problems.append(f"{at}.max_waiting: must be >= 1, got {q.max_waiting}")
        if not (math.isfinite(q.service_level_threshold_s) and q.service_level_threshold_s >= 0):
            problems.append(f"{at}.service_level_threshold_s: must be >= 0 seconds, got {q.service_level_threshold_s}")
        if not 0 < q.service_level_target < 1:
            problems.append(
                f"{at}.service_level_target: must be between 0 and 1 (0.8 for 80%), got {q.service_level_target}"
            )
    by_id = {q.id: q for q in config.queues}
    for i, q in enumerate(config.queues):
        if q.overflow is None:
            continue
        at = f"queues[{i}].overflow"
        target = by_id.get(q.overflow.queue)
        if target is None:
            problems.append(f"{at}.queue: unknown queue {q.overflow.queue!r}")
        elif target.id == q.id:
            problems.append(f"{at}.queue: a queue cannot overflow into itself")
        elif target.channel is not q.channel:
            problems.append(f"{at}.queue: {target.id!r} serves {target.channel}, not {q.channel}")
        if q.overflow.after_s <= 0:
            problems.append(f"{at}.after_s: must be > 0, got {q.overflow.after_s}")
    people: set[str] = set()
    for i, a in enumerate(config.agents):
        at = f"agents[{i}]"
        if not a.id:
            problems.append(f"{at}.id: must not be empty")
        if a.id in people:
            problems.append(f"{at}.id: duplicate agent id {a.id!r}")
        people.add(a.id)
        seen: set[str] = set()
        for j, m in enumerate(a.memberships()):
            if not 0 <= m.priority < 1_000_000:
                problems.append(f"{at}.queues[{j}].priority: must be from 0 to 999999, got {m.priority}")
            if m.id not in by_id:
                problems.append(f"{at}.queues[{j}]: unknown queue {m.id!r}")
            if m.id in seen:
                problems.append(f"{at}.queues[{j}]: queue {m.id!r} listed twice")
            seen.add(m.id)
        for channel, n in a.capacity.items():
            if n < 0:
                problems.append(f"{at}.capacity.{channel}: must be >= 0, got {n}")
    for i, s in enumerate(config.supervisors):
        if s.id in people:
            problems.append(f"supervisors[{i}].id: {s.id!r} is already an agent or supervisor id")
        people.add(s.id)
    contacts: set[str] = set()
    for i, c in enumerate(config.address_book):
        if c.id in contacts:
            problems.append(f"address_book[{i}].id: duplicate contact id {c.id!r}")
        contacts.add(c.id)
    if config.server.max_frame_bytes < 1024:
        problems.append(f"server.max_frame_bytes: must be >= 1024, got {config.server.max_frame_bytes}")
    if config.server.event_log_size < 1:
        problems.append(f"server.event_log_size: must be >= 1, got {config.server.event_log_size}")
    if config.server.outbound_queue < 8:
        problems.append(f"server.outbound_queue: must be >= 8, got {config.server.outbound_queue}")
    if config.server.node_timeout_s <= 2 * config.server.heartbeat_s:
        problems.append("server.node_timeout_s: must be more than twice server.heartbeat_s")
    if config.server.rate_per_s <= 0 or config.server.rate_burst < 1:
        problems.append("server.rate_per_s and server.rate_burst: must be > 0")
    if config.server.max_connections < 1:
        problems.append(f"server.max_connections: must be >= 1, got {config.server.max_connections}")
    for i, origin in enumerate(config.server.allowed_origins):
        if not origin.startswith(("http://", "https://")) or origin.endswith("/"):
            problems.append(f"server.allowed_origins[{i}]: expected scheme://host[:port], got {origin!r}")
    if config.server.grace_s < 0:
        problems.append(f"server.grace_s: must be >= 0, got {config.server.grace_s}")
    if config.server.retention_s < 60:
        problems.append(f"server.retention_s: must be >= 60, got {config.server.retention_s}")
    for name in LimitsCfg.__struct_fields__:
        if getattr(config.limits, name) < 1:
            problems.append(f"limits.{name}: must be >= 1, got {getattr(config.limits, name)}")
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))


def _demo_server() -> Mapping[str, object]:
    raw = tomllib.loads(resources.files("server").joinpath("demo.toml").read_text())
    server = raw["server"]
    assert isinstance(server, dict)
    return server


def demo_credentials(config: Config) -> list[tuple[str, str]]:
    """The credentials that are still the built-in demo's, public in this project's source (what, and
    how to replace it): a server others can reach with one of them can be signed into, or fed, by
    anyone who read the source."""
    demo = _demo_server()
    weak = []
    if config.server.secret == demo["secret"]:
        weak.append(("token secret", "set SWITCHBOARD_SECRET, or server.secret in --config"))
    if set(config.server.api_keys) & set(cast(list[str], demo["api_keys"])):
        weak.append(("API key", "set SWITCHBOARD_API_KEY, or server.api_keys in --config"))
    return weak


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach `host` (a name other than localhost counts as reachable)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure(config: Config, host: str, demo: bool) -> tuple[list[str], str | None]:
    """Why listening on `host` is refused, or what to warn about there: the demo's sign-in list (a
    token for every agent) and its built-in credentials are for this machine only."""
    weak = demo_credentials(config)
    if is_loopback(host):
        if not weak:
            return [], None
        names = " and ".join(what for what, _ in weak)
        return [], f"the built-in demo {names} in use: fine on this machine, never on one others can reach"
    problems = [
        f"refusing to listen on {host}, reachable from other machines, with the built-in demo {what}: {how}"
        for what, how in weak
    ]
    if demo:
        problems.append(
            f"refusing to listen on {host}, reachable from other machines, with demo sign-in, which hands a "
            "token for every agent and supervisor to anyone who asks: listen on 127.0.0.1"
        )
    return problems, None


def load(path: str | Path | None) -> Config:
    """The config at `path`, or the built-in demo when `path` is None; environment overrides applied."""
    if path is None:
        config = decode(resources.files("server").joinpath("demo.toml").read_bytes(), "demo.toml")
    else:
        p = Path(path)
        try:
            text = p.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
        config = decode(text, str(p))
    return with_environment(config, os.environ)


def with_environment(config: Config, env: Mapping[str, str]) -> Config:
    """Apply SWITCHBOARD_SECRET and SWITCHBOARD_API_KEY, so that `serve` and `token` agree."""
    server = config.server
    if env.get("SWITCHBOARD_SECRET"):
        server = msgspec.structs.replace(server, secret=env["SWITCHBOARD_SECRET"])
    if env.get("SWITCHBOARD_API_KEY"):
        server = msgspec.structs.replace(server, api_keys=[env["SWITCHBOARD_API_KEY"]])
    if not server.secret:
        raise ConfigError("server.secret: missing; set it in the config or in SWITCHBOARD_SECRET")
    if len(server.secret) < 32:
        raise ConfigError("server.secret: must be at least 32 characters (HS256 key)")
    if not server.api_keys:
        raise ConfigError("server.api_keys: missing; set it in the config or in SWITCHBOARD_API_KEY")
    return msgspec.structs.replace(config, server=server)
