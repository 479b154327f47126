"""A server node: runs core commands as store transactions, publishes their events, fires timers,
keeps its heartbeat, and writes off the sockets of nodes that died.

This is the only place where the pure core meets time, ids, the store and the broker. Transport
code (sockets, HTTP) calls `Node.run` with a core function and gets its result, or `Refused`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import heapq
import itertools
import logging
import time
import uuid
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from protocol.codes import CloseCode, ErrorCode
from protocol.model import Engagement
from server.bus.base import Broker, Delivery
from server.config import Directory
from server.core import lifecycle
from server.core.errors import Refused
from server.core.tx import Changes, IdSource, Snapshot, Tx
from server.core.views import engagement_view
from server.metrics import Metrics
from server.reporting import ReportFile
from server.search import Searcher
from server.store.base import Store
from server.topics import agent_topic
from server.webhooks import Webhooks

T = TypeVar("T")
log = logging.getLogger("switchboard.node")
lifecycle_log = logging.getLogger("switchboard.lifecycle")


_caused: contextvars.ContextVar[dict[str, int] | None] = contextvars.ContextVar("switchboard_caused", default=None)


class caused_events:
    """Collect, for the commands run inside, the last `seq` each agent's events were given.

    A socket answers a request only once the events the request caused are in its outbox (with a
    shared broker they come back over pub/sub, possibly after the command returned), so that a client
    always sees the consequences of a request before its `ok`. (A class rather than a generator
    context manager: it wraps every request an agent makes.)
    """

    __slots__ = ("_token", "caused")

    def __enter__(self) -> dict[str, int]:
        self.caused: dict[str, int] = {}
        self._token = _caused.set(self.caused)
        return self.caused

    def __exit__(self, *exc: object) -> None:
        _caused.reset(self._token)


def random_ids(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def _log_transitions(tx: Tx) -> None:
    """One line per engagement transition, with its ids, so a log search follows an engagement's life."""
    for eng, step in tx.transitions():
        agent = step.agent or eng.agent
        lifecycle_log.info(
            "engagement %s %s%s%s",
            eng.id,
            step.event,
            f" agent {agent}" if agent else "",
            f" ({step.reason})" if step.reason else "",
            extra={
                "engagement": eng.id,
                "queue": step.queue or eng.queue,
                "agent": agent,
                "offer": step.offer,
                "event": step.event,
                "actor": step.actor,
            },
        )


class Closable(Protocol):
    """A socket session the node can close (on a store reset, or when draining)."""

    @property
    def role(self) -> str: ...

    @property
    def expires_at(self) -> float:
        """When the credential the socket signed in with (or refreshed to) runs out."""
        ...

    def fail(self, code: CloseCode, reason: str) -> None: ...

    def drain(self, retry_after_ms: int) -> None: ...


class Node:
    def __init__(
        self,
        directory: Directory,
        store: Store,
        broker: Broker,
        *,
        clock: Callable[[], float] = time.time,
        ids: IdSource = random_ids,
        timer_poll_s: float = 1.0,
        node_id: str | None = None,
    ) -> None:
        self.dir = directory
        self.store = store
        self.broker = broker
        self.clock = clock
        self.ids = ids
        self.node_id = node_id or uuid.uuid4().hex[:12]
        self.epoch = ""
        self.sessions: set[Closable] = set()
        self.draining = False
        self.searcher = Searcher()
        self.metrics = Metrics()
        self.webhooks = Webhooks(directory.server.webhook_secret)
        report_path = directory.config.reporting.file
        self.reports = ReportFile(report_path) if report_path else None
        self._timer_poll_s = timer_poll_s
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._expiries: list[tuple[float, int, weakref.ref[Closable]]] = []  # a heap
        self._expiry_wake = asyncio.Event()
        self._order = itertools.count()
        self._last_beat: float | None = None  # the last heartbeat the store took; None after one failed
        self._steady_since = 0.0  # since when this node has been beating without a break

    async def run(self, command: Callable[[Tx], T]) -> T:
        """Run one core command as one transaction; publish its events; return its result.

        Each attempt reads the clock afresh, so a decision that waited on another transaction's
        commit is never stamped earlier than it.
        """

        last: list[Tx] = []

        def decide(snapshot: Snapshot) -> tuple[T, Changes]:
            tx = Tx(snapshot, self.dir, self.clock(), self.ids)
            result = command(tx)
            last[:] = [tx]  # the store may decide again on a conflict: only the last one counts
            return result, tx.changes()

        try:
            committed = await self.store.transact(decide)
        except Refused as exc:
            if exc.code is ErrorCode.UNAVAILABLE:
                self.metrics.store_errors.inc()
            raise
        if last and lifecycle_log.isEnabledFor(logging.INFO):
            _log_transitions(last[0])
        self.metrics.committed(committed.events, committed.notices)
        if committed.reports and self.reports is not None:
            self.reports.write(committed.reports)
        caused = _caused.get()
        if caused is not None:
            for agent_id, event in committed.events:
                caused[agent_id] = event.seq
        deliveries = [Delivery(agent_topic(a), e) for a, e in committed.events]
        deliveries += [Delivery(topic, e) for topic, e in committed.notices]
        if deliveries and not committed.published:
            await self.broker.publish(deliveries)
        if committed.timers_armed and not self.store.remote:  # a shared store's timers are polled for
            self._wake.set()
        return committed.result

    async def engagement(self, engagement_id: str) -> Engagement | None:
        """An engagement as clients see it, read outside any transaction (its transcript's head gives
        how many lines it has)."""
        eng = await self.store.engagement(engagement_id)
        if eng is None:
            return None
        talk = await self.store.talk(engagement_id)
        return engagement_view(self.dir, eng, talk.count if talk else 0)

    async def start(self) -> None:
        self.broker.on_failure(lambda operation: self.metrics.broker_errors.labels(operation).inc())
        await self.broker.start()
        self.epoch = await self.store.epoch()
        self.broker.on_resync(lambda: self._spawn(self._check_epoch()))
        await self.store.heartbeat(self.node_id, self.clock())
        self._tasks = [
            asyncio.create_task(self._timers(), name="switchboard-timers"),
            asyncio.create_task(self._liveness(), name="switchboard-liveness"),
            asyncio.create_task(self._expire_tokens(), name="switchboard-token-expiry"),
        ]

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Going away on purpose (SIGTERM): refuse new sockets, tell every client `closing` so it moves to
        another node (with `resume_from`, losing nothing), and wait for them to go. Timers and state are
        in the store: with Redis, the other nodes carry on with them."""
        self.draining = True
        for session in list(self.sessions):
            session.drain(self.dir.server.drain_retry_after_ms)
        deadline = self.clock() + timeout_s
        while self.sessions and self.clock() < deadline:  # noqa: ASYNC110 - sessions leave one by one, no event
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._stopping = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = []
        await self.webhooks.close()
        if self.reports is not None:
            self.reports.close()
        with contextlib.suppress(Refused):
            await self.store.forget_node(self.node_id)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    # --- timers ----------------------------------------------------------------------------------

    async def fire_due(self) -> int:
        """Fire every timer due now; returns how many fired."""
        fired = 0
        while keys := await self.store.claim_due(self.clock(), 100):
            for key in keys:
                fired += 1
                try:
                    await self.run(functools.partial(lifecycle.fire, key=key))
                except Refused as exc:
                    log.error("timer %s refused: %s", key, exc.message)
            await self.store.done(keys)
        return fired

    async def _timers(self) -> None:
        while not self._stopping:
            self._wake.clear()  # before reading due times, so a timer armed meanwhile wakes the wait below
            try:
                await self.fire_due()
                await self.store.sweep(self.clock())
                # a shared store's timers are armed by every node: polling finds them, asking when the
                # next is due would cost each poll a second round trip for a wait it cannot shorten
                due = None if self.store.remote else await self.store.next_due()
            except Refused as exc:
                log.warning("timers paused: %s", exc.message)
                due = None
            delay = self._timer_poll_s if due is None else min(max(0.0, due - self.clock()), self._timer_poll_s)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):  # not wait_for: on 3.11 it can swallow a cancellation
                    await self._wake.wait()

    # --- credentials that run out -----------------------------------------------------------------

    def expires(self, session: Closable, at: float) -> None:
        """Close `session` with 4401 at `at` unless by then it refreshed its token (a later `expires`)."""
        first = self._expiries[0][0] if self._expiries else None
        heapq.heappush(self._expiries, (at, next(self._order), weakref.ref(session)))
        if first is None or at < first:
            self._expiry_wake.set()

    async def _expire_tokens(self) -> None:
        """One task for every socket's token: looks again at least every second, so a clock that jumps
        (an injected one in tests, a corrected one in production) is noticed soon after."""
        while not self._stopping:
            self._expiry_wake.clear()
            now = self.clock()
            while self._expiries and self._expiries[0][0] <= now:
                _, _, ref = heapq.heappop(self._expiries)
                session = ref()
                if session is not None and session in self.sessions and session.expires_at <= now:
                    session.fail(CloseCode.UNAUTHORIZED, "token expired")
            delay = min(self._expiries[0][0] - now, 1.0) if self._expiries else 1.0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(delay, 0.0)):
                    await self._expiry_wake.wait()

    # --- liveness --------------------------------------------------------------------------------

    async def _liveness(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.dir.server.heartbeat_s)
            try:
                await self.beat()
            except Refused as exc:
                log.warning("heartbeat failed: %s", exc.message)

    async def beat(self) -> None:
        """Beat once, then write off the nodes that fell silent, but only once this node has itself been
        beating without a break for a whole node timeout. While the store was out of reach (a Redis
        restart) or this node stood still (paused), every node's beats stopped alike: the others'
        silence over that time says nothing about them, and writing them off would fence every live
        node and close every socket in the cluster."""
        server = self.dir.server
        try:
            alive = await self.store.heartbeat(self.node_id, self.clock())
        except Refused:
            self._last_beat = None  # a break in this node's beating
            raise
        if not alive:
            await self._fenced()
        now = self.clock()
        if self._last_beat is None or now - self._last_beat > max(2 * server.heartbeat_s, server.node_timeout_s / 2):
            self._steady_since = now
        self._last_beat = now
        if now - self._steady_since < server.node_timeout_s:
            return
        for dead in await self.store.dead_nodes(now, server.node_timeout_s):
            if dead != self.node_id:
                await self.write_off(dead)

    async def _fenced(self) -> None:
        """The other nodes wrote this one off (it stopped beating: paused, partitioned): the sockets it
        holds count for nothing any more. Close them, so their clients come back and count again, and
        carry on under a new node id. Under the old one the others' write-off stays (so this node
        would be fenced again at every beat) and the old sockets' late disconnects land (their counts
        were written off already): neither may touch the sockets this node serves from now on."""
        old, self.node_id = self.node_id, uuid.uuid4().hex[:12]
        log.warning(
            "this node was presumed dead; closing %d sockets; it goes on as node %s", len(self.sessions), self.node_id
        )
        for session in list(self.sessions):
            session.fail(CloseCode.GOING_AWAY, "this node was presumed dead; reconnect")
        await self.broker.join(self.node_id)
        await self.store.forget_node(old)
        await self.store.heartbeat(self.node_id, self.clock())

    async def write_off(self, dead: str) -> None:
        """A node stopped beating: its agents' sockets are gone, as if each had dropped."""
        ids = list(self.dir.agents)
        for agent in await self.store.agents(ids):
            if agent is not None and dead in agent.sessions:
                await self.run(functools.partial(lifecycle.node_lost, agent_id=agent.id, node=dead))
        await self.store.bury(dead)
        log.warning("node %s stopped beating; its sockets were written off", dead)

    async def _check_epoch(self) -> None:
        """After a reconnect: if the store lost its data (a new epoch), every client must start afresh."""
        try:
            epoch = await self.store.epoch()
        except Refused:
            return
        if epoch != self.epoch:
            log.warning(
                "the store was reset (epoch %s -> %s); closing %d sockets", self.epoch, epoch, len(self.sessions)
            )
            self.epoch = epoch
            await self.store.heartbeat(self.node_id, self.clock())
            for session in list(self.sessions):
                session.fail(CloseCode.GOING_AWAY, "store reset; reconnect")
