"""A server node: runs core commands as store transactions, publishes their events, fires timers.

This is the only place where the pure core meets time, ids, the store and the broker. Transport
code (sockets, HTTP) calls `Node.run` with a core function and gets its result, or `Refused`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

from server.bus.base import Broker, Delivery, agent_topic
from server.config import Directory
from server.core import lifecycle
from server.core.errors import Refused
from server.core.tx import Changes, IdSource, Snapshot, Tx
from server.store.base import Store

T = TypeVar("T")
log = logging.getLogger("switchboard.node")


def random_ids(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


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
    ) -> None:
        self.dir = directory
        self.store = store
        self.broker = broker
        self.clock = clock
        self.ids = ids
        self.node_id = uuid.uuid4().hex[:12]
        self._timer_poll_s = timer_poll_s
        self._wake = asyncio.Event()
        self._timer_task: asyncio.Task[None] | None = None

    async def run(self, command: Callable[[Tx], T]) -> T:
        """Run one core command as one transaction; publish its events; return its result."""
        now = self.clock()

        def decide(snapshot: Snapshot) -> tuple[T, Changes]:
            tx = Tx(snapshot, self.dir, now, self.ids)
            result = command(tx)
            return result, tx.changes()

        committed = await self.store.transact(decide)
        if committed.events:
            await self.broker.publish([Delivery(agent_topic(a), e) for a, e in committed.events])
        if committed.timers_armed:
            self._wake.set()
        return committed.result

    async def start(self) -> None:
        self._timer_task = asyncio.create_task(self._timers(), name="switchboard-timers")

    async def stop(self) -> None:
        if self._timer_task is not None:
            self._timer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer_task
            self._timer_task = None

    async def fire_due(self) -> int:
        """Fire every timer due now; returns how many fired."""
        fired = 0
        while keys := await self.store.claim_due(self.clock(), 100):
            for key in keys:
                fired += 1
                try:
                    await self.run(lambda tx, key=key: lifecycle.fire(tx, key))
                except Refused as exc:
                    log.error("timer %s refused: %s", key, exc.message)
        return fired

    async def _timers(self) -> None:
        while True:
            self._wake.clear()  # before reading due times, so a timer armed meanwhile wakes the wait below
            try:
                await self.fire_due()
                due = await self.store.next_due()
            except Exception:
                log.exception("timer loop failed; retrying")
                due = None
            delay = self._timer_poll_s if due is None else min(max(0.0, due - self.clock()), self._timer_poll_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
