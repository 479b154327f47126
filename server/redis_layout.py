"""Where a contact center lives in Redis: every key, every pub/sub channel, and how events are framed
on them. The store (`server/store/redis.py`) and the broker (`server/bus/redis.py`) both speak through
this module, and the Lua scripts through `lua/route.lua`, which frames the same way (docs/redis.md).

Events travel in batches: one pub/sub message carries every event one commit (of several
transactions) sends to one node. A topic's events (an agent's, supervisors', a watched engagement's,
a consumer's) go to the channel of each node in the topic's `where:<topic>` set, which the broker
keeps: a node adds itself when its first local socket subscribes to the topic, and takes itself out
when the last one leaves. Each entry is
`<topic length>:<topic><seq>:<frame length>:<frame>`: the topic, the agent's seq (0 for an event
numbered by the socket), and the frame in MessagePack, without its seq (the commit gives it one).
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources


class Keys:
    """Every key and channel, under one hash tag (`sb:{sb}:...`): one contact center is one Redis
    Cluster slot, which the multi-key commit needs."""

    def __init__(self, prefix: str) -> None:
        self.base = f"{prefix}:{{{prefix}}}"
        self.timers = f"{self.base}:timers"
        self.inflight = f"{self.base}:timers:inflight"
        self.epoch = f"{self.base}:epoch"
        self.nodes = f"{self.base}:nodes"
        self.reports = f"{self.base}:reports"
        self.channels = f"{self.base}:ev:"
        """The prefix of every pub/sub channel; the scripts add a topic or `node:<id>` to it."""

    def agent(self, agent_id: str) -> str:
        return f"{self.base}:a:{agent_id}"

    def engagement(self, engagement_id: str) -> str:
        return f"{self.base}:e:{engagement_id}"

    def queue(self, queue_id: str) -> str:
        return f"{self.base}:q:{queue_id}"

    def ranking(self, queue_id: str) -> str:
        """The queue's ranking: a sorted set of entries (`ranking.rank`), all at score 0, in their order."""
        return f"{self.base}:rank:{queue_id}"

    def ranked(self, queue_id: str) -> str:
        """Each ranked agent's entry in the queue's ranking (hash: agent -> entry), to replace it."""
        return f"{self.base}:rankof:{queue_id}"

    def ranking_version(self, queue_id: str) -> str:
        """Hash `{v}`: bumped by every change to the queue's ranking, so a decision that relied on all of
        it (no one free) can be checked like a record."""
        return f"{self.base}:rankv:{queue_id}"

    def receipt(self, key: str) -> str:
        return f"{self.base}:i:{key}"

    def talk(self, engagement_id: str) -> str:
        """The engagement's conversation head: transcript counters and partials (`TalkRec`)."""
        return f"{self.base}:t:{engagement_id}"

    def transcript(self, engagement_id: str) -> str:
        return f"{self.base}:x:{engagement_id}"

    def seq(self, agent_id: str) -> str:
        return f"{self.base}:seq:{agent_id}"

    def log(self, agent_id: str) -> str:
        return f"{self.base}:log:{agent_id}"

    def where(self, topic: str) -> str:
        """The nodes with a socket that wants this topic's events: the ones they are sent to."""
        return f"{self.base}:where:{topic}"

    def buried(self, node_id: str) -> str:
        return f"{self.base}:dead:{node_id}"

    def node_channel(self, node_id: str) -> str:
        """Where a node hears the events of the agents it has sockets of (and keeps its connection open)."""
        return f"{self.channels}node:{node_id}"


def frame(topic: str, seq: int, blob: bytes) -> bytes:
    """One entry of a batch, as `lua/route.lua` writes it."""
    name = topic.encode()
    return b"%d:%b%d:%d:%b" % (len(name), name, seq, len(blob), blob)


def entries(message: bytes) -> Iterator[tuple[str, int, bytes]]:
    """The (topic, seq, frame) entries of one pub/sub message, in order. Raises ValueError on a message
    that is not a batch."""
    at, end = 0, len(message)
    while at < end:
        colon = message.index(b":", at)
        start = colon + 1 + int(message[at:colon])
        topic = message[colon + 1 : start].decode()
        colon = message.index(b":", start)
        seq = int(message[start:colon])
        at = colon + 1
        colon = message.index(b":", at)
        at = colon + 1 + int(message[at:colon])
        if at > end:
            raise ValueError("a batch entry runs past the end of its message")
        yield topic, seq, message[colon + 1 : at]


def script(name: str, *, with_routing: bool = False) -> str:
    """A Lua script of `server/store/lua`; `with_routing` puts `route.lua` (batching and where an
    event goes) before it, so the commit and the broker's publish route events the same way."""
    lua = resources.files("server.store").joinpath("lua")
    text = lua.joinpath(name).read_text()
    return lua.joinpath("route.lua").read_text() + "\n" + text if with_routing else text
