"""`switchboard simulate`: replay a traffic trace through the real core on a virtual clock, on proposed
settings, and compare the figures with the recorded ones and with Erlang C.

The simulator owns no routing rule: every arrival, accept, hang-up, wrap-up and timer is a call to a
`lifecycle` function inside a `Tx`, exactly as a node makes it, so the simulated center routes the
way the real one would on the same configuration. Only the clock and the people are simulated:
time jumps from one event to the next, and each agent signs in and goes ready at time 0, accepts a
ring after `accept_s` (at once by default), talks for the engagement's `handle_s`, wraps up for its
`wrap_up_s` and is ready again; a consumer with a `patience_s` who is still waiting by then leaves.

The records live in `VirtualStore`, a few dicts and a timer heap applied one transaction at a time:
nothing else runs, so there is nothing to isolate from, and nobody listens to the agents' events,
so they are not sequenced or logged (MemoryStore doing so added 10-30% to a simulated day; see
BENCHMARKS.md). Figures come from `server.kpis` over the simulated histories, like the live ones.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import msgspec
from msgspec import Struct, field
from msgspec.structs import replace

from protocol.codes import ErrorCode
from protocol.model import Acceptance, AgentStatus, Channel, EngagementState, Fragment, Strategy
from server.config import AgentCfg, Config, Directory, QueueCfg, validate
from server.core import lifecycle
from server.core.errors import Refused
from server.core.lifecycle import NewEngagement
from server.core.records import AgentRec, EngagementRec, QueueRec, Receipt, TalkRec
from server.core.tx import Changes, Tx
from server.kpis import INTERVAL_S, AgentStats, Ledger, QueueStats
from server.queueing import agents_for_service_level, erlang_c, erlang_c_asa, erlang_c_service_level, fifo_reneging
from server.store.rankings import Rankings
from server.trace import TraceLine

T = TypeVar("T")
S = EngagementState
NODE = "sim"
WAITING = (S.QUEUED, S.OFFERED)


class SimulationError(Exception):
    """The simulation cannot run as asked (an unknown queue, a queue nobody serves); the message says why."""


# --- the store ------------------------------------------------------------------------------------


class VirtualStore:
    """Records and timers for one simulation (see the module docstring); also the core's `Snapshot`."""

    def __init__(self) -> None:
        self.agent_recs: dict[str, AgentRec] = {}
        self.engagement_recs: dict[str, EngagementRec] = {}
        self.queue_recs: dict[str, QueueRec] = {}
        self.rankings = Rankings()
        self._timers: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def agent(self, agent_id: str) -> AgentRec | None:
        return self.agent_recs.get(agent_id)

    def agents(self, agent_ids: list[str]) -> list[AgentRec | None]:
        return list(map(self.agent_recs.get, agent_ids))

    def engagement(self, engagement_id: str) -> EngagementRec | None:
        return self.engagement_recs.get(engagement_id)

    def queue(self, queue_id: str) -> QueueRec | None:
        return self.queue_recs.get(queue_id)

    def transcript(self, engagement_id: str) -> list[Fragment]:
        return []

    def talk(self, engagement_id: str, relied: bool = True) -> TalkRec | None:
        return None  # a replay carries no transcript

    def ranked(self, queue_id: str, start: str | None, limit: int | None) -> list[str]:
        return self.rankings.ranked(queue_id, start, limit)

    def ranked_count(self, queue_id: str) -> int:
        return self.rankings.count(queue_id)

    def receipt(self, key: str) -> Receipt | None:
        return None  # nor idempotency keys

    def apply(self, changes: Changes) -> None:
        self.agent_recs.update(changes.agents)
        self.engagement_recs.update(changes.engagements)
        self.queue_recs.update(changes.queues)
        if changes.ranks:
            self.rankings.apply(changes.ranks)
        for key in changes.disarm:
            self._timers.pop(key, None)
        for key, due in changes.arm.items():
            self._timers[key] = due
            heapq.heappush(self._heap, (due, key))

    def next_due(self) -> float | None:
        heap, timers = self._heap, self._timers
        while heap and timers.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def claim_due(self, now: float) -> list[str]:
        claimed = []
        while (due := self.next_due()) is not None and due <= now:
            _, key = heapq.heappop(self._heap)
            del self._timers[key]
            claimed.append(key)
        return claimed


# --- the run --------------------------------------------------------------------------------------

_ARRIVE, _ACCEPT, _END, _DONE, _PATIENCE = range(5)


class Run(Struct, kw_only=True):
    """What a simulation leaves: the records, when it ended, and what the core refused."""

    engagements: dict[str, EngagementRec]
    agents: dict[str, AgentRec]
    ids: list[str | None]
    """The engagement id of each trace line (None: its creation was refused, say by `max_waiting`)."""
    end: float
    transactions: int
    refused: dict[str, int] = field(default_factory=dict)


class Simulation:
    """One replay of `lines` through the core configured by `directory` (see the module docstring)."""

    def __init__(self, directory: Directory, lines: Sequence[TraceLine], accept_s: float = 0.0) -> None:
        self.dir = directory
        self.lines = lines
        self.accept_s = accept_s
        self.store = VirtualStore()
        self.now = 0.0
        self.transactions = 0
        counter = itertools.count(1)
        self._ids: Callable[[str], str] = lambda prefix: f"{prefix}{next(counter):08d}"
        self._events: list[tuple[float, int, int, object]] = []
        self._order = itertools.count()
        self._line_of: dict[str, int] = {}
        self._started: set[str] = set()
        self._rung: set[str] = set()
        self._created: list[str | None] = [None] * len(lines)
        self._refused: dict[str, int] = {}

    def _at(self, when: float, kind: int, payload: object) -> None:
        heapq.heappush(self._events, (when, next(self._order), kind, payload))

    def _do(self, command: Callable[[Tx], T]) -> T:
        tx = Tx(self.store, self.dir, self.now, self._ids)
        result = command(tx)
        changes = tx.changes()
        self.store.apply(changes)
        self.transactions += 1
        self._observe(changes)
        return result

    def _observe(self, changes: Changes) -> None:
        """What the simulated people see of a transaction: a ring for them, an engagement started on them."""
        for eng in changes.engagements.values():
            if eng.agent is not None and eng.state in (S.ACTIVE, S.ASSIGNED) and eng.id not in self._started:
                self._started.add(eng.id)
                line = self.lines[self._line_of[eng.id]]
                self._at(self.now + line.handle_s, _END, (eng.agent, eng.id))
                if eng.channel.is_live:
                    self._at(self.now + (line.handle_s + (line.wrap_up_s or 0.0)), _DONE, (eng.agent, eng.id))
        for agent in changes.agents.values():
            for offer in agent.offers:
                if offer not in self._rung:
                    self._rung.add(offer)
                    self._at(self.now + self.accept_s, _ACCEPT, (agent.id, offer))

    def _try(self, command: Callable[[Tx], object]) -> None:
        """A simulated person's action that the world may have overtaken (a ring taken by another, a
        wrap-up the queue's limit ended): refused and forgotten, as a desktop would."""
        with contextlib.suppress(Refused):
            self._do(command)

    def run(self) -> Run:
        for agent_id in self.dir.agents:
            self._do(functools.partial(lifecycle.sign_in, agent_id=agent_id, node=NODE, fresh=False))
            ready = functools.partial(lifecycle.set_status, agent_id=agent_id, status=AgentStatus.READY, reason=None)
            self._do(functools.partial(ready, actor=f"agent:{agent_id}"))
        for i in sorted(range(len(self.lines)), key=lambda i: self.lines[i].arrival_s):
            self._at(self.lines[i].arrival_s, _ARRIVE, i)
        events, store = self._events, self.store
        while True:
            due = store.next_due()
            if events and (due is None or events[0][0] < due):
                self.now, _, kind, payload = heapq.heappop(events)
                self._handle(kind, payload)
            elif due is not None:
                self.now = due
                for key in store.claim_due(due):
                    self._try(functools.partial(lifecycle.fire, key=key))
            else:
                break
        return Run(
            engagements=store.engagement_recs,
            agents=store.agent_recs,
            ids=self._created,
            end=self.now,
            transactions=self.transactions,
            refused=self._refused,
        )

    def _handle(self, kind: int, payload: object) -> None:
        if kind == _ARRIVE:
            assert isinstance(payload, int)
            self._arrive(payload)
            return
        if kind == _PATIENCE:
            assert isinstance(payload, str)
            eng = self.store.engagement(payload)
            if eng is not None and eng.state in WAITING:
                self._do(lambda tx: lifecycle.consumer_end(tx, payload))
            return
        assert isinstance(payload, tuple)
        agent_id, ref = payload
        if kind == _ACCEPT:
            self._try(lambda tx: lifecycle.accept(tx, agent_id, ref))
        elif kind == _END:
            self._try(lambda tx: self._end(tx, agent_id, ref))
        else:
            self._try(lambda tx: self._wrap_up_done(tx, agent_id, ref))

    def _arrive(self, i: int) -> None:
        line = self.lines[i]
        spec = NewEngagement(queue=line.queue, priority=line.priority)

        def create(tx: Tx) -> EngagementRec:
            eng = lifecycle.create(tx, spec, actor="simulate")
            self._line_of[eng.id] = i  # before the agent it starts on is told (`_observe`)
            return eng

        try:
            eng = self._do(create)
        except Refused as exc:
            if exc.code is not ErrorCode.QUEUE_FULL:
                raise
            self._refused[line.queue] = self._refused.get(line.queue, 0) + 1
            return
        self._created[i] = eng.id
        if line.patience_s is not None:
            self._at(self.now + line.patience_s, _PATIENCE, eng.id)

    def _end(self, tx: Tx, agent_id: str, engagement_id: str) -> None:
        self._dispose_if_required(tx, agent_id, engagement_id)
        lifecycle.end(tx, agent_id, engagement_id)

    def _wrap_up_done(self, tx: Tx, agent_id: str, engagement_id: str) -> None:
        self._dispose_if_required(tx, agent_id, engagement_id)
        lifecycle.wrap_up_done(tx, engagement_id, f"agent:{agent_id}", agent_id)

    def _dispose_if_required(self, tx: Tx, agent_id: str, engagement_id: str) -> None:
        eng = tx.engagement(engagement_id)
        queue = self.dir.queues[eng.queue] if eng else None
        if eng and queue and queue.disposition_required and not eng.dispositions:
            lifecycle.dispose(tx, agent_id, engagement_id, [queue.dispositions[0].code])


# --- the center simulated -------------------------------------------------------------------------


def trace_center(lines: Sequence[TraceLine]) -> Config:
    """The center a trace implies when no configuration is given: one voice queue per queue named,
    auto acceptance, longest-idle routing, no wrap-up limit (each line's own wrap-up applies), no agents."""
    names = dict.fromkeys(line.queue for line in lines)
    queues = [
        QueueCfg(
            id=q, channel=Channel.VOICE, acceptance=Acceptance.AUTO, strategy=Strategy.LONGEST_IDLE, wrap_up_s=None
        )
        for q in names
    ]
    return Config(queues=queues)


def staffed(config: Config, staffing: dict[str, int]) -> Config:
    """`config` with each queue in `staffing` served by that many generated agents of its own (`<queue>-1`...),
    and by none of the configured ones (who keep their other queues)."""
    known = {q.id for q in config.queues}
    for queue in staffing:
        if queue not in known:
            raise SimulationError(f"--agents: no queue {queue!r} (queues: {', '.join(sorted(known))})")
    agents = []
    for a in config.agents:
        kept = [m for m in a.queues if (m if isinstance(m, str) else m.id) not in staffing]
        agents.append(a if len(kept) == len(a.queues) else replace(a, queues=kept))
    for queue, n in staffing.items():
        agents += [AgentCfg(id=f"{queue}-{i}", queues=[queue]) for i in range(1, n + 1)]
    planned = replace(config, agents=agents)
    validate(planned, "simulated center")
    return planned


def check(directory: Directory, lines: Sequence[TraceLine], accept_s: float) -> None:
    """Refuse a simulation that cannot mean anything: a queue in the trace that nobody serves and that
    overflows nowhere (its engagements would wait forever), or agents slower to accept than a ring lasts."""
    for queue in dict.fromkeys(line.queue for line in lines):
        cfg = directory.queues[queue]
        if not directory.member_ids[queue] and cfg.overflow is None:
            raise SimulationError(
                f"queue {queue!r} has no agents: give --agents {queue}=N, or --target-service-level to find N"
            )
    for cfg in directory.queues.values():
        manual = cfg.acceptance is Acceptance.MANUAL and cfg.channel is not Channel.EMAIL
        if manual and directory.member_ids[cfg.id] and accept_s >= cfg.ring_timeout_s:
            raise SimulationError(
                f"--accept-s {accept_s:g} is not shorter than queue {cfg.id!r}'s ring_timeout_s "
                f"({cfg.ring_timeout_s:g}): every ring would be missed"
            )


# --- the report -----------------------------------------------------------------------------------


class ErlangC(Struct, kw_only=True):
    """Erlang C's predictions for a queue's offered load: `servers` counts what the queue's agents can
    hold at once on its channel (an email agent holding five is five servers)."""

    servers: int
    arrival_rate_per_s: float | None
    mean_handle_s: float
    offered_load_erlangs: float | None
    p_wait: float | None
    asa_s: float | None
    service_level: float | None
    agents_for_target: int | None


class QueueReport(Struct, kw_only=True):
    queue: str
    agents: int
    simulated: QueueStats
    simulated_p_wait: float | None
    recorded: QueueStats | None
    erlang_c: ErlangC | None
    refused: int = 0
    intervals: list[QueueStats] = field(default_factory=list)


class Staffing(Struct, kw_only=True):
    """The smallest number of agents whose simulated service level meets the target (None: not met even
    with one agent per engagement), the levels at that number and one below, and Erlang C's answer."""

    queue: str
    target: float
    threshold_s: float
    agents: int | None
    service_level: float | None
    service_level_one_less: float | None
    erlang_c_agents: int | None
    simulations: int


class Report(Struct, kw_only=True):
    trace: str
    engagements: int
    duration_s: float
    wall_s: float
    transactions: int
    queues: list[QueueReport]
    agents: list[AgentStats]
    staffing: list[Staffing] | None = None


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _load(lines: Sequence[TraceLine]) -> tuple[float | None, float]:
    """Arrival rate (per second, from the first arrival to the last) and mean occupation per engagement."""
    arrivals = sorted(line.arrival_s for line in lines)
    span = arrivals[-1] - arrivals[0] if arrivals else 0.0
    rate = (len(arrivals) - 1) / span if span > 0 else None
    handle = math.fsum(line.handle_s + (line.wrap_up_s or 0.0) for line in lines) / len(lines) if lines else 0.0
    return rate, handle


def erlang(cfg: QueueCfg, servers: int, lines: Sequence[TraceLine], target: float | None = None) -> ErlangC | None:
    rate, handle = _load(lines)
    if rate is None:
        return None
    load = rate * handle
    threshold = cfg.service_level_threshold_s
    needed = agents_for_service_level(load, handle, threshold, target or cfg.service_level_target)
    per_agent = AgentCfg(id="-").capacity.get(cfg.channel, 1) or 1
    return ErlangC(
        servers=servers,
        arrival_rate_per_s=rate,
        mean_handle_s=handle,
        offered_load_erlangs=load,
        p_wait=erlang_c(servers, load) if servers else None,
        asa_s=_finite(erlang_c_asa(servers, load, handle)) if servers else None,
        service_level=erlang_c_service_level(servers, load, handle, threshold) if servers else None,
        agents_for_target=math.ceil(needed / per_agent),
    )


def recorded(cfg: QueueCfg, lines: Sequence[TraceLine], start: float, end: float) -> QueueStats | None:
    """The figures of what really happened, from the lines that say so (`outcome`, `wait_s`)."""
    told = [line for line in lines if line.outcome is not None and line.wait_s is not None]
    if not told:
        return None
    answered = [line for line in told if line.outcome == "answered"]
    waits = [line.wait_s or 0.0 for line in answered]
    abandoned = len(told) - len(answered)
    threshold = cfg.service_level_threshold_s
    return QueueStats(
        queue=cfg.id,
        window_s=end - start,
        start=start,
        end=end,
        offered=len(told),
        answered=len(answered),
        abandoned=abandoned,
        service_level=sum(1 for w in waits if w <= threshold) / len(told),
        service_level_threshold_s=threshold,
        asa_s=math.fsum(waits) / len(waits) if waits else None,
        aht_s=math.fsum(x.handle_s + (x.wrap_up_s or 0.0) for x in answered) / len(answered) if answered else None,
        abandonment_rate=abandoned / len(told),
        longest_wait_s=None,
        occupancy=None,
        handled=len(answered),
        max_wait_s=max((line.wait_s or 0.0 for line in told), default=None),
    )


def _p_wait(ledger: Ledger, queue: str) -> float | None:
    """The share of engagements whose wait in the queue ended after some waiting: Erlang C's P(wait > 0)."""
    ended = [w for outcome, w in ledger.waits(queue).values() if outcome is not None and w is not None]
    return sum(1 for w in ended if w > 0) / len(ended) if ended else None


def simulate(
    config: Config, lines: Sequence[TraceLine], accept_s: float = 0.0, *, source: str = "", intervals: bool = True
) -> Report:
    """Run the trace on `config` and report every queue's figures beside the recorded ones and Erlang C's."""
    directory = Directory(config)
    check(directory, lines, accept_s)
    started = time.perf_counter()
    run = Simulation(directory, lines, accept_s).run()
    wall = time.perf_counter() - started
    end = math.nextafter(run.end, math.inf)  # windows are [start, end): the last event is in
    ledger = Ledger(run.engagements.values(), run.agents.values(), end)
    by_queue: dict[str, list[TraceLine]] = {}
    for line in lines:
        by_queue.setdefault(line.queue, []).append(line)
    shown = [q for q in directory.queues if q in by_queue or ledger.visits.get(q)]
    reports = []
    for queue in shown:
        cfg = directory.queues[queue]
        members = directory.member_ids[queue]
        threshold = cfg.service_level_threshold_s
        mine = by_queue.get(queue, [])
        servers = sum(directory.room[a][cfg.channel].capacity for a in members)
        count = math.ceil(end / INTERVAL_S)
        reports.append(
            QueueReport(
                queue=queue,
                agents=len(members),
                simulated=ledger.queue_stats(queue, 0.0, end, threshold, members),
                simulated_p_wait=_p_wait(ledger, queue),
                recorded=recorded(cfg, mine, 0.0, end),
                erlang_c=erlang(cfg, servers, mine),
                refused=run.refused.get(queue, 0),
                intervals=ledger.queue_intervals(queue, 0.0, threshold, members, count=count) if intervals else [],
            )
        )
    return Report(
        trace=source,
        engagements=len(lines),
        duration_s=run.end,
        wall_s=wall,
        transactions=run.transactions,
        queues=reports,
        agents=[ledger.agent_stats(a, 0.0, end) for a in directory.agents],
    )


# --- how many agents ------------------------------------------------------------------------------


def _service_level(config: Config, lines: Sequence[TraceLine], queue: str, agents: int, accept_s: float) -> float:
    alone = replace(
        config,
        queues=[replace(q, overflow=None) for q in config.queues if q.id == queue],
        agents=[AgentCfg(id=f"{queue}-{i}", queues=[queue]) for i in range(1, agents + 1)],
    )
    directory = Directory(alone)
    run = Simulation(directory, lines, accept_s).run()
    end = math.nextafter(run.end, math.inf)
    ledger = Ledger(run.engagements.values(), run.agents.values(), end)
    cfg = directory.queues[queue]
    level = ledger.queue_stats(queue, 0.0, end, cfg.service_level_threshold_s).service_level
    return 1.0 if level is None else level


def _ideal_agents(cfg: QueueCfg, lines: Sequence[TraceLine], target: float, accept_s: float, ceiling: int) -> int:
    """The smallest number of agents meeting `target` in an ideal FIFO queue with impatient callers fed
    the same trace (a ring accepted after `accept_s` adds to the wait and to the agent's time, a
    wrap-up stops at the queue's limit, an agent holds as many as their capacity allows)."""
    manual = cfg.acceptance is Acceptance.MANUAL and cfg.channel is not Channel.EMAIL
    ring = accept_s if manual else 0.0
    limit = cfg.wrap_up_s if cfg.wrap_up_s is not None else math.inf
    wraps = cfg.channel.is_live
    arrivals = [line.arrival_s for line in lines]
    services = [ring + line.handle_s + (min(line.wrap_up_s or 0.0, limit) if wraps else 0.0) for line in lines]
    patience = [None if line.patience_s is None else line.patience_s - ring for line in lines]
    per_agent = AgentCfg(id="-").capacity.get(cfg.channel, 1) or 1
    threshold = cfg.service_level_threshold_s - ring

    def meets(n: int) -> bool:
        waits = fifo_reneging(arrivals, services, patience, n * per_agent)
        return sum(1 for w in waits if w is not None and w <= threshold) >= target * len(waits)

    lo, hi = 0, ceiling
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if meets(mid):
            hi = mid
        else:
            lo = mid
    return hi


def staff(config: Config, lines: Sequence[TraceLine], queue: str, target: float, accept_s: float = 0.0) -> Staffing:
    """The smallest number of dedicated agents whose simulated service level on the queue's own traffic
    reaches `target`: the core meets it with that many, and misses it with one less.

    Each simulation of a day takes seconds, so the search starts where an ideal FIFO queue with
    impatient callers (`_ideal_agents`, milliseconds per try) says the target is met; on an
    auto-accept longest-idle queue the core is that queue, and two simulations confirm it. Where the
    core routes otherwise (priorities, ring timeouts), the search gallops from there, then bisects. It
    assumes, as queueing theory shows for FIFO service, that one more agent never makes the service
    level worse. Overflow is left out: each queue is searched on its own traffic with its own agents."""
    cfg = next(q for q in config.queues if q.id == queue)
    levels: dict[int, float] = {}

    def meets(n: int) -> bool:
        if n <= 0:
            return False
        if n not in levels:
            levels[n] = _service_level(config, lines, queue, n, accept_s)
        return levels[n] >= target

    estimate = erlang(cfg, 0, lines, target)
    ceiling = len(lines)  # one agent per engagement: no one ever waits
    guess = _ideal_agents(cfg, lines, target, accept_s, ceiling)
    step = 1
    if meets(guess):
        hi, lo = guess, guess - 1
        while meets(lo):
            hi, lo, step = lo, max(0, lo - step), step * 2
    else:
        lo, hi = guess, min(ceiling, guess + 1)
        while not meets(hi):
            if hi >= ceiling:
                return Staffing(
                    queue=queue,
                    target=target,
                    threshold_s=cfg.service_level_threshold_s,
                    agents=None,
                    service_level=levels.get(hi),
                    service_level_one_less=None,
                    erlang_c_agents=estimate.agents_for_target if estimate else None,
                    simulations=len(levels),
                )
            step *= 2
            lo, hi = hi, min(ceiling, hi + step)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if meets(mid):
            hi = mid
        else:
            lo = mid
    return Staffing(
        queue=queue,
        target=target,
        threshold_s=cfg.service_level_threshold_s,
        agents=hi,
        service_level=levels[hi],
        service_level_one_less=levels.get(hi - 1),
        erlang_c_agents=estimate.agents_for_target if estimate else None,
        simulations=len(levels),
    )


# --- text -----------------------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _secs(x: float | None) -> str:
    return "-" if x is None else f"{x:,.1f} s"


def _count(x: int | None) -> str:
    return "-" if x is None else f"{x:,}"


def render(report: Report) -> str:
    """The report as the text tables `switchboard simulate` prints."""
    out = [
        f"{report.engagements:,} engagements, {report.duration_s / 3600:.2f} h of simulated time, "
        f"simulated in {report.wall_s:.2f} s ({report.transactions:,} transactions)"
    ]
    for q in report.queues:
        sim, rec, erl = q.simulated, q.recorded, q.erlang_c
        load = f", {erl.offered_load_erlangs:,.1f} erlangs offered" if erl and erl.offered_load_erlangs else ""
        agents = f"{q.agents} agent{'' if q.agents == 1 else 's'}"
        refused = f", {q.refused} refused (queue full)" if q.refused else ""
        out += ["", f"queue {q.queue}: {agents}{load}{refused}"]
        rows: list[tuple[str, str, str, str]] = [
            ("", "simulated", "recorded", "Erlang C"),
            ("offered", _count(sim.offered), _count(rec.offered if rec else None), ""),
            ("answered", _count(sim.answered), _count(rec.answered if rec else None), ""),
            ("abandoned", _count(sim.abandoned), _count(rec.abandoned if rec else None), ""),
            (
                f"service level ({sim.service_level_threshold_s:g} s)",
                _pct(sim.service_level),
                _pct(rec.service_level if rec else None),
                _pct(erl.service_level if erl else None),
            ),
            ("waited at all", _pct(q.simulated_p_wait), "", _pct(erl.p_wait if erl else None)),
            ("ASA", _secs(sim.asa_s), _secs(rec.asa_s if rec else None), _secs(erl.asa_s if erl else None)),
            ("AHT", _secs(sim.aht_s), _secs(rec.aht_s if rec else None), _secs(erl.mean_handle_s if erl else None)),
            ("abandonment rate", _pct(sim.abandonment_rate), _pct(rec.abandonment_rate if rec else None), ""),
            ("longest wait", _secs(sim.max_wait_s), _secs(rec.max_wait_s if rec else None), ""),
            ("occupancy", _pct(sim.occupancy), "", ""),
        ]
        out += [f"  {a:<24}{b:>14}{c:>14}{d:>14}" for a, b, c, d in rows]
    if report.staffing:
        out += [
            "",
            "agents for the target service level",
            f"  {'queue':<24}{'target':>14}{'simulated':>14}{'Erlang C':>14}",
        ]
        for s in report.staffing:
            target = f"{100 * s.target:g}/{s.threshold_s:g}"
            found = _count(s.agents) if s.agents is not None else "not reached"
            out.append(f"  {s.queue:<24}{target:>14}{found:>14}{_count(s.erlang_c_agents):>14}")
            if s.agents is not None:
                levels = f"service level {_pct(s.service_level)}, {_pct(s.service_level_one_less)} with one less"
                out.append(f"  {'':<24}{levels:>42}")
    return "\n".join(out) + "\n"


def encode_report(report: Report) -> bytes:
    return msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n"


if TYPE_CHECKING:
    from server.core.tx import Snapshot

    _snapshot: Snapshot = VirtualStore()
