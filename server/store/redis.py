"""The shared store: records, per-agent logs and timers in Redis, for any number of nodes.

A transaction reads records into a per-transaction cache (one atomic read per batch of misses), lets
the core decide on that snapshot, and commits with one generic Lua script (`lua/commit.lua`) that
checks the version of every record the decision relied on and applies everything, or refuses; on
refusal the decision is made again on fresh records. So the routing rules live only in Python, and
two nodes can never both win the same agent, offer or engagement.

Commits are grouped: every transaction of this node ready to commit in the same turn of the event
loop goes in one script call, each still checked and applied on its own, and the group's events go
out as one pub/sub message per node (`server/redis_layout.py`). Under load a commit then costs a
fraction of a round trip, on the node and in Redis alike.

Key layout (all under one hash tag, so a Redis Cluster keeps them in one slot): see docs/redis.md.
"""

from __future__ import annotations

import asyncio
import functools
import math
import random
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple, ParamSpec, TypeVar, cast

import msgspec
from msgspec.structs import replace
from redis.asyncio import Redis
from redis.exceptions import RedisError

from protocol.codes import ErrorCode
from protocol.frames import Event, Server
from protocol.model import Fragment
from server.core.errors import Refused
from server.core.ranking import RANK_WIDTH, ranked_agent
from server.core.records import AgentRec, EngagementRec, QueueRec, Receipt, TalkRec
from server.core.routing import EXPLAINED
from server.core.tx import Changes
from server.redis_layout import Keys, script
from server.redis_pipe import Pipe
from server.store.base import Committed, Decide, T
from server.topics import AGENT

MAX_ATTEMPTS = 64
BURIED_TTL_S = 7 * 24 * 3600  # a node written off and never seen again is forgotten after a week
_encode = msgspec.msgpack.Encoder().encode
_json = msgspec.json.Encoder().encode
_DECODERS: dict[str, msgspec.msgpack.Decoder[Any]] = {
    "a": msgspec.msgpack.Decoder(AgentRec),
    "e": msgspec.msgpack.Decoder(EngagementRec),
    "q": msgspec.msgpack.Decoder(QueueRec),
    "i": msgspec.msgpack.Decoder(Receipt),
    "t": msgspec.msgpack.Decoder(TalkRec),
}
RANKED_READ = 2
"""The records of a ranking's first agents read with it: whom a decision is likely to choose."""
GROUP_MAX = 128
"""Transactions in one commit call at most; more ready at once go in the next call, at the same time."""
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


def _ranking_request(key: str) -> tuple[str, str, int]:
    """`<ranking key>|<start>|<limit>` -> its parts (a queue id may hold `|`: the last two are the rest)."""
    rest, _, limit = key.rpartition("|")
    ranking, _, start = rest.rpartition("|")
    return ranking, start, int(limit)


class _Commit(NamedTuple):
    """One transaction waiting for its group's call: the versions it relied on, its writes, its
    changes, and where its outcome goes (its events' seqs, or None for a stale read)."""

    checks: list[tuple[str, int]]
    versions: dict[str, int]
    writes: dict[str, bytes]
    changes: Changes
    done: asyncio.Future[list[int] | dict[str, tuple[int, bytes | None]]]


class Missing(Exception):
    """Raised by the snapshot for records not fetched yet; the store fetches them and decides again."""

    def __init__(self, keys: list[str], along: list[str] | None = None) -> None:
        super().__init__(keys)
        self.keys = keys
        self.along = along or []
        """Keys worth reading in the same round trip, if there is one (a guess at what comes next)."""


class RedisStore:
    """See `Store`."""

    remote = True

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "sb",
        log_size: int = 1000,
        lease_s: float = 30.0,
        known_size: int = 20_000,
        known_for_s: float = 0.5,
        retention_s: float = 3 * 86400.0,
    ) -> None:
        self.redis = client
        self.retention_s = retention_s
        self.keys = Keys(prefix)
        self.log_size = log_size
        self.lease_s = lease_s
        self._pipe = Pipe(client)  # the calls every transaction makes: a lean connection of their own
        self._commit = script("commit.lua", with_routing=True)
        self._read = script("read.lua")
        self._claim = script("claim.lua")
        self._group: list[_Commit] = []  # ready to commit, in the call the next turn of the loop sends
        self._sending: set[asyncio.Future[None]] = set()
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
        how stale a choice can be. Transcripts are not kept (they can be long; their head's version
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
            snapshot = _Snapshot(self, cache, remembered)
            try:
                result, changes = decide(snapshot)
            except Missing as missing:
                queues = [k for k in missing.keys if k[kind_at] == "q" and k not in turns]
                if queues and await self._take_turns(turns, queues):
                    cache.clear()  # others went meanwhile
                    remembered.clear()
                await self._load(cache, missing.keys, remembered=remembered, along=missing.along)
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
            records = self._records(changes)
            writes = {key: _encode(record) for key, record in records.items()}
            if not (writes or changes.events or changes.arm or changes.disarm or changes.fragments):
                if remembered & snapshot.read:  # no commit will check them: decide again on fresh reads
                    self._forget(cache, remembered)
                    remembered.clear()
                    continue
                return Committed(result, notices=changes.notices)
            relied = snapshot.read
            if changes.rankings:
                relied = relied | {self.keys.ranking_version(q) for q in changes.rankings}
            versions = {k: cache[k][0] if k in cache else 0 for k in relied | writes.keys()}
            checks = list(versions.items())
            done = asyncio.get_running_loop().create_future()
            outcome = await self._apply(_Commit(checks, versions, writes, changes, done))
            if isinstance(outcome, list):
                seqs = outcome
                self._remember(cache, relied, records)
                events = [(a, replace(e, seq=s)) for (a, e), s in zip(changes.events, seqs, strict=True)]
                return Committed(
                    result,
                    events,
                    changes.notices,
                    bool(changes.arm),
                    published=True,  # the commit published them too: never one without the other
                    reports=changes.reports,
                )
            # Decide again with the records that changed as the commit found them; the others were
            # checked current then. What is not a record (rankings, transcripts) is read again if asked.
            self._refresh(cache, outcome)
            remembered -= outcome.keys()
            together = False
            if attempt > 2:
                await asyncio.sleep(random.uniform(0, 0.002 * attempt))
        raise Refused(ErrorCode.UNAVAILABLE, "the store is too contended right now; retry")

    def _refresh(self, cache: dict[str, tuple[int, Any]], stale: dict[str, tuple[int, bytes | None]]) -> None:
        """Put in a transaction's cache (and in what this node knows) the records a refused commit
        found changed, and drop what is read whole rather than versioned (rankings, transcripts)."""
        kind_at = len(self.keys.base) + 1
        for key in [k for k in cache if k[kind_at] == "x" or (k[kind_at] == "r" and "|" in k)]:
            del cache[key]
        fresh: list[tuple[str, int, Any]] = []
        for key, (version, blob) in stale.items():
            decoder = _DECODERS.get(key[kind_at])
            if decoder is None:  # a ranking's version: its entries are read again
                cache[key] = (version, None)
                continue
            record = decoder.decode(blob) if blob else None
            cache[key] = (version, record)
            fresh.append((key, version, record))
        self._know(fresh)

    def _forget(self, cache: dict[str, tuple[int, Any]], keys: Iterable[str]) -> None:
        """Drop records from the transaction and from what this node knows: they are read afresh."""
        for key in list(keys):
            cache.pop(key, None)
            self._known.pop(key, None)

    def _records(self, changes: Changes) -> dict[str, Any]:
        """Every record a transaction writes, by key."""
        keys = self.keys
        return {
            **{keys.agent(i): r for i, r in changes.agents.items()},
            **{keys.engagement(i): r for i, r in changes.engagements.items()},
            **{keys.queue(i): r for i, r in changes.queues.items()},
            **{keys.talk(i): r for i, r in changes.talks.items()},
            **{keys.receipt(k): r for k, r in changes.receipts.items()},
        }

    def _remember(self, cache: dict[str, tuple[int, Any]], read: set[str], written: dict[str, Any]) -> None:
        """After a commit: what it checked is current as of now, what it wrote is one version on
        (`read` holds no transcript: the snapshot does not count those as read)."""
        made = [
            (self.keys.talk(record.id), 0, None)  # a new engagement has no transcript head yet
            for key, record in written.items()
            if isinstance(record, EngagementRec) and key not in cache and self.keys.talk(record.id) not in written
        ]
        self._know(
            [(key, *cache[key]) for key in read if key in cache and key not in written]
            + [(key, (cache[key][0] if key in cache else 0) + 1, record) for key, record in written.items()]
            + made
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
        along: list[str] = [],  # noqa: B006 - read only
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
        wanted += [key for key in along if key not in cache and key not in wanted]
        kind_at = len(self.keys.base) + 1
        names, kinds = [], []
        for key in wanted:
            if key[kind_at] == "r":  # a ranking: `<ranking key>|<start>|<limit>` (see `_Snapshot.ranked`)
                ranking, start, limit = _ranking_request(key)
                names.append(ranking)
                agents = f"{self.keys.agent('')}\n{RANK_WIDTH + 1}\n{RANKED_READ}"
                kinds.append(f"r\n{self._ranking_version(ranking)}\n{start}\n{limit}\n{agents}")
            else:
                names.append(key)
                kinds.append(key[kind_at])
        rows = cast(list[list[Any]], await self._pipe.script(self._read, names, kinds))
        fetched: list[tuple[str, int, Any]] = []
        for key, name, row in zip(wanted, names, rows, strict=True):
            if key[kind_at] == "x":  # a transcript: its head's version covers it
                cache[key] = (0, [_fragment.decode(blob) for blob in row])
            elif key[kind_at] == "r":  # never remembered: it changes with every decision
                count, version, raw, rows = row
                entries = [e.decode() for e in raw]
                cache[key] = (0, entries)
                for entry, (have, blob) in zip(entries, rows, strict=False):  # the first agents, likely chosen
                    agent_key = self.keys.agent(ranked_agent(entry))
                    if agent_key not in cache:
                        agent = _DECODERS["a"].decode(blob) if blob else None
                        cache[agent_key] = (int(have or 0), agent)
                        fetched.append((agent_key, int(have or 0), agent))
                cache[name + "|#"] = (0, int(count))
                cache[self._ranking_version(name)] = (int(version), None)
            else:
                version, blob = int(row[0] or 0), row[1]
                record = _DECODERS[key[kind_at]].decode(blob) if blob else None
                cache[key] = (version, record)
                fetched.append((key, version, record))
        self._know(fetched)

    def _ranking_version(self, ranking: str) -> str:
        return self.keys.ranking_version(ranking[len(self.keys.ranking("")) :])

    async def _apply(self, commit: _Commit) -> list[int] | dict[str, tuple[int, bytes | None]]:
        """Commit with the others ready meanwhile: the seqs of its events, or None when a record it relied
        on changed (nothing of it was applied). One call is in flight at a time: what becomes ready while
        it is goes in the next, so the busier the node, the more each call carries, and a quiet node's
        commit goes at once (it waits at most for one call ahead of it). A commit refused gives the
        records that changed, as they are now."""
        if not self._group and not self._sending:
            asyncio.get_running_loop().call_soon(self._send_group)
        self._group.append(commit)
        return await commit.done

    def _send_group(self) -> None:
        group, self._group = self._group, []
        for start in range(0, len(group), GROUP_MAX):
            task = asyncio.ensure_future(self._send(group[start : start + GROUP_MAX]))
            self._sending.add(task)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Future[None]) -> None:
        self._sending.discard(task)
        if not self._sending and self._group:
            self._send_group()

    async def _send(self, group: list[_Commit]) -> None:
        """One script call for the group; each transaction's future gets its own outcome."""
        blobs: list[bytes] = []
        tokens: list[Any] = []
        for commit in group:
            self._plan(commit, blobs, tokens)
        keys = self.keys
        names = [
            *(keys.reports, keys.channels, keys.seq(""), keys.log(""), keys.where(""), keys.transcript(""), AGENT),
            *(keys.ranking(""), keys.ranked(""), keys.ranking_version("")),
        ]
        header = _encode([names, self.log_size, int(self.retention_s * 1000), len(blobs), len(group)])
        try:
            results = await self._pipe.script(self._commit, [keys.timers, keys.inflight], [header, *blobs, *tokens])
        except Exception as exc:  # each waiting transaction answers for it (Refused, or a Redis error)
            for commit in group:
                if not commit.done.done():
                    commit.done.set_exception(exc)
            return
        for commit, (ok, detail) in zip(group, cast(list[tuple[int, Any]], results), strict=True):
            if not commit.done.done():
                if ok == 1:
                    commit.done.set_result([int(s) for s in detail])
                else:
                    stale = {
                        detail[i].decode(): (int(detail[i + 1] or 0), detail[i + 2] or None)
                        for i in range(0, len(detail), 3)
                    }
                    commit.done.set_result(stale)

    def _plan(self, commit: _Commit, blobs: list[bytes], tokens: list[Any]) -> None:
        """One transaction's run of arguments in a group call (see lua/commit.lua)."""
        changes, keys = commit.changes, self.keys
        encoded: dict[int, int] = {}  # an event sent to an agent and to watchers is one blob

        def blob(data: bytes) -> int:
            blobs.append(data)
            return len(blobs) + 1  # ARGV[1] is the header

        def frame(event: Event) -> int:
            at = encoded.get(id(event))
            if at is None:
                at = encoded[id(event)] = blob(_encode(event))
            return at

        plan: list[Any] = [len(commit.checks)]
        for key, version in commit.checks:
            plan += (key, version)
        plan.append(len(commit.writes))
        for key, data in commit.writes.items():
            plan += (key, commit.versions.get(key, 0) + 1, blob(data))
        moves = [(q, a, entry or "") for q, ranks in changes.ranks.items() for a, entry in ranks.items()]
        plan.append(len(moves))
        for move in moves:
            plan += move
        plan.append(len(changes.arm))
        for timer, due in changes.arm.items():
            plan += (timer, repr(due))
        plan.append(len(changes.disarm))
        plan += sorted(changes.disarm)
        plan.append(len(changes.events))
        for agent, event in changes.events:
            plan += (agent, frame(event))
        fragments = [(eid, place, f) for eid, kept in changes.fragments.items() for place, f in kept]
        plan.append(len(fragments))
        for eid, place, fragment in fragments:
            plan += (eid, place, blob(_encode(fragment)))
        plan.append(len(changes.notices))
        for topic, event in changes.notices:
            plan += (topic, frame(event))
        expire: list[tuple[str, int]] = []
        for engagement_id, until in changes.retire.items():
            ttl = max(1, math.ceil(until - changes.now))
            for key in (keys.engagement(engagement_id), keys.talk(engagement_id), keys.transcript(engagement_id)):
                expire.append((key, ttl))
        for key, receipt in changes.receipts.items():
            expire.append((keys.receipt(key), max(1, math.ceil(receipt.expires_at - changes.now))))
        plan.append(len(expire))
        for key, ttl in expire:
            plan += (key, ttl)
        plan.append(len(changes.reports))
        plan += [blob(_json(view)) for view in changes.reports]
        tokens.append(len(plan))
        tokens += plan

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

    @_available
    async def talk(self, engagement_id: str) -> TalkRec | None:
        return await self._get(self.keys.talk(engagement_id))

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
        claimed = await self._pipe.script(
            self._claim, [self.keys.timers, self.keys.inflight], [repr(now), limit, repr(now + self.lease_s)]
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
        await self._pipe.close()
        await self.redis.aclose(close_connection_pool=True)


class _Snapshot:
    """Reads from the transaction's cache, or else from what the node knows (`RedisStore._known`),
    noting in `remembered` what came from there; any other miss raises `Missing` with what to fetch (see
    `Snapshot`). A queue is never taken from what the node knows: reading one takes its turn first."""

    def __init__(
        self, store: RedisStore, cache: dict[str, tuple[int, Any]], remembered: set[str] | None = None
    ) -> None:
        self._store = store
        self._cache = cache
        self._remembered = remembered
        self._since = time.monotonic() - store.known_for_s
        self.read: set[str] = set()

    def _recall(self, key: str) -> bool:
        """Take a record the node knows, young enough, into the transaction's cache."""
        if self._remembered is None:
            return False
        entry = self._store._known.get(key)
        if entry is None or entry[2] <= self._since:
            return False
        self._cache[key] = entry[0], entry[1]
        self._remembered.add(key)
        return True

    def _take(self, key: str, also: list[str] | None = None) -> Any:
        cache = self._cache
        if key not in cache and not self._recall(key):
            raise Missing([key, *(also or [])])
        if also:
            for other in also:
                if other not in cache:
                    self._recall(other)
        self.read.add(key)
        return cache[key][1]

    def agent(self, agent_id: str) -> AgentRec | None:
        return self._take(self._store.keys.agent(agent_id))

    def agents(self, agent_ids: list[str]) -> list[AgentRec | None]:
        keys = [self._store.keys.agent(a) for a in agent_ids]
        missing = [k for k in keys if k not in self._cache and not self._recall(k)]
        if missing:
            raise Missing(missing)
        return [self._take(k) for k in keys]

    def engagement(self, engagement_id: str) -> EngagementRec | None:
        # its transcript's head comes with it: an engagement's snapshot shows its line count
        return self._take(self._store.keys.engagement(engagement_id), [self._store.keys.talk(engagement_id)])

    def talk(self, engagement_id: str, relied: bool = True) -> TalkRec | None:
        key = self._store.keys.talk(engagement_id)
        if relied:
            return self._take(key)
        if key not in self._cache and not self._recall(key):
            raise Missing([key])
        return self._cache[key][1]

    def queue(self, queue_id: str) -> QueueRec | None:
        key = self._store.keys.queue(queue_id)
        if key not in self._cache:  # its turn is taken before it is read (`RedisStore._take_turns`)
            # with the start of its ranking, as a routing decision for a new engagement reads it
            raise Missing([key], along=[f"{self._store.keys.ranking(queue_id)}||{EXPLAINED + 1}"])
        self.read.add(key)
        return self._cache[key][1]

    def transcript(self, engagement_id: str) -> list[Fragment]:
        key = self._store.keys.transcript(engagement_id)
        if key not in self._cache:
            raise Missing([key])
        return list(self._cache[key][1])  # not in `read`: the head's version guards it (`Tx.talk`)

    def receipt(self, key: str) -> Receipt | None:
        return self._take(self._store.keys.receipt(key))

    def ranked(self, queue_id: str, start: str | None, limit: int | None) -> list[str]:
        key = f"{self._store.keys.ranking(queue_id)}|{start or ''}|{-1 if limit is None else limit}"
        if key not in self._cache:
            raise Missing([key])
        return list(self._cache[key][1])  # not in `read`: a decision relies on it through `Changes.rankings`

    def ranked_count(self, queue_id: str) -> int:
        ranking = self._store.keys.ranking(queue_id)
        if ranking + "|#" not in self._cache:
            raise Missing([f"{ranking}||0"])
        return int(self._cache[ranking + "|#"][1])


if TYPE_CHECKING:
    from server.core.tx import Snapshot
    from server.store.base import Store

    _store: Store = RedisStore(Redis())
    _snapshot: Snapshot = _Snapshot(RedisStore(Redis()), {})
