"""The shared store: records, per-agent logs and timers in Redis, for any number of nodes.

A transaction reads records into a per-transaction cache (one pipelined round trip per batch of
misses), lets the core decide on that snapshot, and commits with one generic Lua script
(`lua/commit.lua`) that checks the version of every record the decision read or wrote and applies
everything, or refuses; on refusal the decision is made again on fresh records. So the routing
rules live only in Python, and two nodes can never both win the same agent, offer or engagement.

Key layout (all under one hash tag, so a Redis Cluster keeps them in one slot): see
docs/redis.md.
"""

from __future__ import annotations

import asyncio
import functools
import math
import random
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

import msgspec
from msgspec.structs import replace
from redis.asyncio import Redis
from redis.exceptions import RedisError

from protocol.codes import ErrorCode
from protocol.frames import Event, Server
from protocol.model import Fragment
from server.core.errors import Refused
from server.core.records import AgentRec, EngagementRec, QueueRec, Receipt
from server.core.tx import Changes
from server.store.base import Committed, Decide, T
from server.topics import agent_topic

MAX_ATTEMPTS = 64
BURIED_TTL_S = 7 * 24 * 3600  # a node written off and never seen again is forgotten after a week
_encode = msgspec.msgpack.Encoder().encode
_json = msgspec.json.Encoder().encode
_DECODERS: dict[str, msgspec.msgpack.Decoder[Any]] = {
    "a": msgspec.msgpack.Decoder(AgentRec),
    "e": msgspec.msgpack.Decoder(EngagementRec),
    "q": msgspec.msgpack.Decoder(QueueRec),
    "i": msgspec.msgpack.Decoder(Receipt),
}
_events = msgspec.msgpack.Decoder(Server)
_fragment = msgspec.msgpack.Decoder(Fragment)


P = ParamSpec("P")
R = TypeVar("R")


def _available(method: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Turn a Redis outage into `Refused(UNAVAILABLE)`, which callers already answer properly."""

    @functools.wraps(method)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except (RedisError, OSError) as exc:
            if args and isinstance(args[0], RedisStore):
                args[0]._known.clear()  # a Redis that comes back may have lost what this node remembers
            raise Refused(ErrorCode.UNAVAILABLE, f"storage unreachable ({type(exc).__name__})") from exc

    return guarded


def _script(name: str) -> str:
    return resources.files("server.store").joinpath("lua", name).read_text()


class Missing(Exception):
    """Raised by the snapshot for records not fetched yet; the store fetches them and decides again."""

    def __init__(self, keys: list[str]) -> None:
        super().__init__(keys)
        self.keys = keys


class Keys:
    """Every key the store uses, under one hash tag (`sb:{sb}:...`)."""

    def __init__(self, prefix: str) -> None:
        self.base = f"{prefix}:{{{prefix}}}"
        self.timers = f"{self.base}:timers"
        self.inflight = f"{self.base}:timers:inflight"
        self.epoch = f"{self.base}:epoch"
        self.nodes = f"{self.base}:nodes"
        self.reports = f"{self.base}:reports"

    def agent(self, agent_id: str) -> str:
        return f"{self.base}:a:{agent_id}"

    def engagement(self, engagement_id: str) -> str:
        return f"{self.base}:e:{engagement_id}"

    def queue(self, queue_id: str) -> str:
        return f"{self.base}:q:{queue_id}"

    def receipt(self, key: str) -> str:
        return f"{self.base}:i:{key}"

    def transcript(self, engagement_id: str) -> str:
        return f"{self.base}:x:{engagement_id}"

    def transcript_index(self, engagement_id: str) -> str:
        return f"{self.base}:xi:{engagement_id}"

    def seq(self, agent_id: str) -> str:
        return f"{self.base}:seq:{agent_id}"

    def log(self, agent_id: str) -> str:
        return f"{self.base}:log:{agent_id}"

    def buried(self, node_id: str) -> str:
        return f"{self.base}:dead:{node_id}"

    def channel(self, topic: str) -> str:
        return f"{self.base}:ev:{topic}"


class RedisStore:
    """See `Store`. `queue_members` lets a read of a queue fetch its members in the same round trip."""

    remote = True

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "sb",
        log_size: int = 1000,
        lease_s: float = 30.0,
        queue_members: Mapping[str, list[str]] | None = None,
        publish: bool = False,
        known_size: int = 20_000,
        known_for_s: float = 0.5,
        retention_s: float = 3 * 86400.0,
    ) -> None:
        self.redis = client
        self.retention_s = retention_s
        self.publish = publish
        self.keys = Keys(prefix)
        self.log_size = log_size
        self.lease_s = lease_s
        self.queue_members = queue_members or {}
        self._commit = client.register_script(_script("commit.lua"))
        self._claim = client.register_script(_script("claim.lua"))
        self._read = client.register_script(_script("read.lua"))
        self._epoch: str | None = None
        self._turns: dict[str, asyncio.Lock] = {}
        """A turn per queue, held by a transaction from its first read of that queue to its end.
        Routing decisions read a whole queue's members and pick among them: side by side on one node
        they pick the same agent, all but one fail their commit, and retry on the same records, again
        and again. In turn, each decides on what the one before it committed; nodes still collide with
        each other, and the commit's check still settles that. A transaction that needs the turn of a
        second queue while holding one never waits for it holding the first (see `_take_turns`)."""
        self.known_size = known_size
        self.known_for_s = known_for_s
        self._known: OrderedDict[str, tuple[int, Any, float]] = OrderedDict()
        """Records as this node last read or wrote them, with their version and when: a transaction
        starts from those younger than `known_for_s` instead of fetching them again. Never trusted where
        it matters: the commit checks every version the decision relied on, a record another node
        changed meanwhile fails the check, and the decision is made again on records fetched afresh.
        The records a routing choice only weighed (`Changes.weighed`) are not checked: the age limit is
        how stale a choice can be. Transcripts are not kept (they can be long; the engagement's version
        guards them)."""

    # --- transactions ----------------------------------------------------------------------------

    @_available
    async def transact(self, decide: Decide[T]) -> Committed[T]:
        turns: list[str] = []  # the queues whose turn this transaction holds
        try:
            return await self._transact(decide, turns)
        finally:
            for key in turns:
                self._turns[key].release()

    async def _take_turns(self, turns: list[str], wanted: list[str]) -> bool:
        """Take the turns of the `wanted` queues. Waiting while holding none, or for turns that are
        free, is safe; otherwise every turn is let go and all are taken again in key order (no two
        transactions then wait for each other). Returns whether it had to let go (decide afresh)."""
        new = [k for k in dict.fromkeys(wanted) if k not in turns]
        locks = [self._turns.setdefault(k, asyncio.Lock()) for k in new]
        if all(not lock.locked() for lock in locks) or (not turns and len(new) == 1):
            for key, lock in zip(new, locks, strict=True):
                await lock.acquire()
                turns.append(key)
            return False
        for key in turns:
            self._turns[key].release()
        needed = sorted({*turns, *new})
        turns.clear()
        for key in needed:
            await self._turns[key].acquire()
            turns.append(key)
        return True

    async def _transact(self, decide: Decide[T], turns: list[str]) -> Committed[T]:
        kind_at = len(self.keys.base) + 1
        cache: dict[str, tuple[int, Any]] = {}
        together = False  # the cached records were read in one atomic step, so they belong together
        remembered: set[str] = set()  # records taken from `_known` rather than read for this transaction
        for attempt in range(MAX_ATTEMPTS):
            snapshot = _Snapshot(self, cache)
            try:
                result, changes = decide(snapshot)
            except Missing as missing:
                queues = [k for k in missing.keys if k[kind_at] == "q" and k not in turns]
                if queues and await self._take_turns(turns, queues):
                    cache.clear()  # others went meanwhile
                    remembered.clear()
                await self._load(cache, missing.keys, remembered=remembered)
                together = False
                continue
            except Exception:
                if together:
                    raise  # refused (or failed) on records that belong together: that is the answer
                # Records read in several round trips may not belong together (another node committed in
                # between: an agent still holding an offer its engagement no longer has). The commit's
                # version check catches that for a decision that writes; one that raises never gets
                # there. Read them all again in one atomic step and decide again.
                keys = list(cache)
                self._forget(cache, keys)
                remembered.clear()
                await self._load(cache, keys)
                together = True
                continue
            writes: dict[str, bytes] = {}
            for agent_id, agent in changes.agents.items():
                writes[self.keys.agent(agent_id)] = _encode(agent)
            for engagement_id, eng in changes.engagements.items():
                writes[self.keys.engagement(engagement_id)] = _encode(eng)
            for queue_id, queue in changes.queues.items():
                writes[self.keys.queue(queue_id)] = _encode(queue)
            for key, receipt in changes.receipts.items():
                writes[self.keys.receipt(key)] = _encode(receipt)
            if not (writes or changes.events or changes.arm or changes.disarm or changes.fragments):
                if remembered & snapshot.read:  # no commit will check them: decide again on fresh reads
                    self._forget(cache, remembered)
                    remembered.clear()
                    continue
                return Committed(result, notices=changes.notices)
            relied = snapshot.read
            if changes.weighed:
                weighed = {self.keys.agent(a) for a in changes.weighed}
                relied = snapshot.read - weighed
            seqs = await self._apply(cache, relied, writes, changes)
            if seqs is not None:
                self._remember(cache, relied, changes)
                events = [(a, replace(e, seq=s)) for (a, e), s in zip(changes.events, seqs, strict=True)]
                return Committed(
                    result,
                    events,
                    changes.notices,
                    bool(changes.arm),
                    published=self.publish,  # the commit published them too: one round trip, never one alone
                    reports=changes.reports,
                )
            # Decide again on fresh records, the weighed ones too: a choice made on stale ones (say, the
            # agent another node has just taken) would likely fail again.
            stale = list(snapshot.read | set(writes))
            self._forget(cache, stale)
            cache.clear()
            remembered.clear()
            await self._load(cache, stale)
            together = False
            if attempt > 2:
                await asyncio.sleep(random.uniform(0, 0.002 * attempt))
        raise Refused(ErrorCode.UNAVAILABLE, "the store is too contended right now; retry")

    def _forget(self, cache: dict[str, tuple[int, Any]], keys: Iterable[str]) -> None:
        """Drop records from the transaction and from what this node knows: they are read afresh."""
        for key in list(keys):
            cache.pop(key, None)
            self._known.pop(key, None)

    def _remember(self, cache: dict[str, tuple[int, Any]], read: set[str], changes: Changes) -> None:
        """After a commit: what it checked is current as of now, what it wrote is one version on
        (`read` holds no transcript: the snapshot does not count those as read)."""
        written = [
            *((self.keys.agent(i), r) for i, r in changes.agents.items()),
            *((self.keys.engagement(i), r) for i, r in changes.engagements.items()),
            *((self.keys.queue(i), r) for i, r in changes.queues.items()),
        ]
        self._know(
            [(key, *cache[key]) for key in read if key in cache]
            + [(key, (cache[key][0] if key in cache else 0) + 1, record) for key, record in written]
        )

    def _know(self, entries: list[tuple[str, int, Any]]) -> None:
        """Note records at these versions as of now, dropping the least recently noted past `known_size`."""
        known, now = self._known, time.monotonic()
        for key, version, record in entries:
            known[key] = (version, record, now)
            known.move_to_end(key)
        while len(known) > self.known_size:
            known.popitem(last=False)

    async def _load(
        self,
        cache: dict[str, tuple[int, Any]],
        keys: list[str],
        *,
        remembered: set[str] | None = None,
    ) -> None:
        """Fetch records into a transaction's cache in one atomic step (`read.lua`: one command, however
        many records), and remember them; with `remembered`, take those this node knows (see `_known`)
        and note which they were."""
        wanted = [k for k in dict.fromkeys(keys) if k not in cache]
        if remembered is not None:
            known = self._known
            since = time.monotonic() - self.known_for_s
            fetch = []
            for key in wanted:
                entry = known.get(key)
                if entry is not None and entry[2] > since:
                    cache[key] = entry[0], entry[1]
                    remembered.add(key)
                else:
                    fetch.append(key)
            wanted = fetch
        if not wanted:
            return
        kind_at = len(self.keys.base) + 1
        rows = cast(list[list[Any]], await self._read(keys=wanted, args=[key[kind_at] for key in wanted]))
        fetched: list[tuple[str, int, Any]] = []
        for key, row in zip(wanted, rows, strict=True):
            if key[kind_at] == "x":  # a transcript: its engagement's version covers it
                cache[key] = (0, [_fragment.decode(blob) for blob in row])
            else:
                version, blob = int(row[0] or 0), row[1]
                record = _DECODERS[key[kind_at]].decode(blob) if blob else None
                cache[key] = (version, record)
                fetched.append((key, version, record))
        self._know(fetched)

    async def _apply(
        self, cache: dict[str, tuple[int, Any]], read: set[str], writes: dict[str, bytes], changes: Changes
    ) -> list[int] | None:
        keys = [self.keys.timers, self.keys.inflight]
        index: dict[str, int] = {}

        def at(key: str) -> int:
            if key not in index:
                keys.append(key)
                index[key] = len(keys)  # Lua's KEYS is 1-based
            return index[key]

        blobs: list[bytes] = []

        def blob(data: bytes) -> int:
            blobs.append(data)
            return len(blobs) + 1  # ARGV[1] is the plan

        checks = [[at(k), cache[k][0] if k in cache else 0] for k in read | set(writes)]
        plan = [
            checks,
            [[at(k), blob(data)] for k, data in writes.items()],
            [[key, repr(due)] for key, due in changes.arm.items()],
            sorted(changes.disarm),
            [
                [at(self.keys.seq(a)), at(self.keys.log(a)), blob(_encode(e))]
                + ([self.keys.channel(agent_topic(a))] if self.publish else [])
                for a, e in changes.events
            ],
            self.log_size,
            [
                [at(self.keys.transcript(eid)), at(self.keys.transcript_index(eid)), f.id, blob(_encode(f))]
                for eid, fragments in changes.fragments.items()
                for f in fragments
            ],
            [[self.keys.channel(topic), blob(_encode(e))] for topic, e in changes.notices] if self.publish else [],
        ]
        expire: list[list[int]] = []
        for engagement_id, until in changes.retire.items():
            ttl = max(1, math.ceil(until - changes.now))
            for key in (
                self.keys.engagement(engagement_id),
                self.keys.transcript(engagement_id),
                self.keys.transcript_index(engagement_id),
            ):
                expire.append([at(key), ttl])
        for key, receipt in changes.receipts.items():
            expire.append([at(self.keys.receipt(key)), max(1, math.ceil(receipt.expires_at - changes.now))])
        plan.append(expire)
        reports = [blob(_json(view)) for view in changes.reports]
        plan.append([at(self.keys.reports), int(self.retention_s * 1000), reports] if reports else [])
        ok, detail = await self._commit(keys=keys, args=[_encode(plan), *blobs])
        return [int(s) for s in detail] if ok == 1 else None

    # --- reads -----------------------------------------------------------------------------------

    async def _get(self, key: str) -> Any:
        cache: dict[str, tuple[int, Any]] = {}
        await self._load(cache, [key])
        return cache[key][1]

    @_available
    async def agent(self, agent_id: str) -> AgentRec | None:
        return await self._get(self.keys.agent(agent_id))

    @_available
    async def agents(self, agent_ids: list[str]) -> list[AgentRec | None]:
        cache: dict[str, tuple[int, Any]] = {}
        keys = [self.keys.agent(a) for a in agent_ids]
        await self._load(cache, keys)
        return [cache[k][1] for k in keys]

    @_available
    async def engagement(self, engagement_id: str) -> EngagementRec | None:
        return await self._get(self.keys.engagement(engagement_id))

    @_available
    async def queue(self, queue_id: str) -> QueueRec | None:
        return await self._get(self.keys.queue(queue_id))

    # --- per-agent logs --------------------------------------------------------------------------

    @_available
    async def transcript(self, engagement_id: str) -> list[Fragment]:
        blobs = cast(list[bytes], await self.redis.lrange(self.keys.transcript(engagement_id), 0, -1))
        return [_fragment.decode(blob) for blob in blobs]

    @_available
    async def epoch(self) -> str:
        """The cluster's epoch, created by the first node to ask; a Redis that lost its data gets a new one."""
        await self.redis.set(self.keys.epoch, uuid.uuid4().hex[:12], nx=True)
        value = await self.redis.get(self.keys.epoch)
        epoch = value.decode() if isinstance(value, bytes) else str(value)
        if epoch != self._epoch:
            self._known.clear()  # versions start again in a Redis that lost its data: nothing known holds
        self._epoch = epoch
        return epoch

    @_available
    async def latest_seq(self, agent_id: str) -> int:
        return int(await self.redis.get(self.keys.seq(agent_id)) or 0)

    @_available
    async def replay(self, agent_id: str, after: int) -> list[Event] | None:
        latest = await self.latest_seq(agent_id)
        if after >= latest:
            return [] if after == latest else None
        entries = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            await self.redis.xrange(self.keys.log(agent_id), min=f"{after + 1}-0", max="+"),
        )
        events: list[Event] = []
        for entry_id, fields in entries:
            seq = int(entry_id.split(b"-")[0])
            events.append(replace(cast(Event, _events.decode(fields[b"e"])), seq=seq))
        if not events or events[0].seq != after + 1:
            return None
        return events

    # --- timers ----------------------------------------------------------------------------------

    @_available
    async def claim_due(self, now: float, limit: int) -> list[str]:
        claimed = await self._claim(
            keys=[self.keys.timers, self.keys.inflight], args=[repr(now), limit, repr(now + self.lease_s)]
        )
        return [c.decode() for c in claimed]

    @_available
    async def done(self, timer_keys: list[str]) -> None:
        if timer_keys:
            await self.redis.zrem(self.keys.inflight, *timer_keys)

    @_available
    async def next_due(self) -> float | None:
        first = await self.redis.zrange(self.keys.timers, 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    async def sweep(self, now: float) -> int:
        return 0  # Redis expires them: the commit that ends an engagement or keeps a receipt sets its TTL

    # --- nodes -----------------------------------------------------------------------------------

    @_available
    async def heartbeat(self, node_id: str, now: float) -> bool:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self.keys.nodes, {node_id: now})
            pipe.exists(self.keys.buried(node_id))
            _, buried = await pipe.execute()
        return not buried

    @_available
    async def dead_nodes(self, now: float, timeout_s: float) -> list[str]:
        dead = cast(list[bytes], await self.redis.zrangebyscore(self.keys.nodes, "-inf", now - timeout_s))
        return [d.decode() for d in dead]

    @_available
    async def forget_node(self, node_id: str) -> None:
        await self.redis.zrem(self.keys.nodes, node_id)

    @_available
    async def bury(self, node_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.keys.nodes, node_id)
            pipe.set(self.keys.buried(node_id), 1, ex=BURIED_TTL_S)
            await pipe.execute()

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        await self.redis.aclose(close_connection_pool=True)


class _Snapshot:
    """Reads from the transaction's cache; a miss raises `Missing` with what to fetch (see `Snapshot`)."""

    def __init__(self, store: RedisStore, cache: dict[str, tuple[int, Any]]) -> None:
        self._store = store
        self._cache = cache
        self.read: set[str] = set()

    def _take(self, key: str, also: list[str] | None = None) -> Any:
        if key not in self._cache:
            raise Missing([key, *(also or [])])
        self.read.add(key)
        return self._cache[key][1]

    def agent(self, agent_id: str) -> AgentRec | None:
        return self._take(self._store.keys.agent(agent_id))

    def agents(self, agent_ids: list[str]) -> list[AgentRec | None]:
        keys = [self._store.keys.agent(a) for a in agent_ids]
        missing = [k for k in keys if k not in self._cache]
        if missing:
            raise Missing(missing)
        return [self._take(k) for k in keys]

    def engagement(self, engagement_id: str) -> EngagementRec | None:
        return self._take(self._store.keys.engagement(engagement_id))

    def queue(self, queue_id: str) -> QueueRec | None:
        members = [self._store.keys.agent(a) for a in self._store.queue_members.get(queue_id, [])]
        return self._take(self._store.keys.queue(queue_id), members)

    def transcript(self, engagement_id: str) -> list[Fragment]:
        key = self._store.keys.transcript(engagement_id)
        if key not in self._cache:
            raise Missing([key])
        return list(self._cache[key][1])  # not in `read`: the engagement record's version guards it

    def receipt(self, key: str) -> Receipt | None:
        return self._take(self._store.keys.receipt(key))


if TYPE_CHECKING:
    from server.core.tx import Snapshot
    from server.store.base import Store

    _store: Store = RedisStore(Redis())
    _snapshot: Snapshot = _Snapshot(RedisStore(Redis()), {})
