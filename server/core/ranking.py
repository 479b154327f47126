"""Each agent's place in each of their queues: the order routing picks in, kept as agents change.

An agent's entry in a queue's ranking (`rank`) is a string whose order is the strategy's order, or
none when they cannot take one of the queue's engagements now. The transaction works out the entries
of every agent it writes (`Changes.ranks`) and the store keeps each queue's ranking with the records,
so a routing decision reads the first few entries of one queue, however many members it has.
"""

from __future__ import annotations

from typing import NamedTuple

from protocol.model import AgentStatus, Channel, Strategy
from server.config import Directory, QueueCfg, Room
from server.core.records import AgentRec

RANK_WIDTH = 32
"""A ranking entry is 32 characters of sort key, then the agent's id."""
PRIORITY_TOP = 999_999


def has_room(room: Room, agent: AgentRec, channel: Channel) -> bool:
    """Capacity left on `channel` (`room`: the agent's, from `Directory.room`), and nothing held or
    ringing that blocks it: one pass, no allocation, out at the first reason to say no."""
    if not agent.holds and not agent.offers:
        return room.capacity > 0
    used, capacity, blocked_by = 0, room.capacity, room.blocked_by
    for busy in (agent.holds, agent.offers):
        for item in busy.values():
            if item.channel is channel:
                used += 1
                if used >= capacity:
                    return False
            elif item.channel in blocked_by:
                return False
    return used < capacity


def available(agent: AgentRec) -> bool:
    """Signed in, ready, and not about to change status."""
    if agent.status is not AgentStatus.READY or not agent.sessions:
        return False
    return agent.next is None or agent.next.status is AgentStatus.READY


def rank(directory: Directory, queue: QueueCfg, agent: AgentRec) -> str | None:
    """The agent's entry in the queue's ranking, None when they cannot take one of its engagements now.

    Entries sort in the strategy's order: least loaded then longest idle (`longest_idle`, and
    `ring_all`'s order of explanation), highest skill priority first (`most_skilled`), member order
    (`round_robin`); the agent's id last, after `RANK_WIDTH` characters, breaks ties. Each carries
    the load and idle time it was ranked on, so a choice is explained without reading the agents it
    passed over (`Ranked`)."""
    channel = queue.channel
    if not available(agent) or not has_room(directory.room[agent.id][channel], agent, channel):
        return None
    match queue.strategy:
        case Strategy.MOST_SKILLED:
            first = PRIORITY_TOP - directory.skills[agent.id][queue.id]
        case Strategy.ROUND_ROBIN:
            first = directory.position[queue.id][agent.id]
        case _:
            first = 0
    return f"{first:06d}{agent.load(channel):06d}{agent.idle_since:020.6f}{agent.id}"


class Ranked(NamedTuple):
    """An agent as the ranking shows them: enough to choose and to explain the choice."""

    agent: str
    load: int
    idle_since: float


def ranked(entry: str) -> Ranked:
    return Ranked(entry[RANK_WIDTH:], int(entry[6:12]), float(entry[12:RANK_WIDTH]))


def ranked_agent(entry: str) -> str:
    return entry[RANK_WIDTH:]


def after(queue: QueueCfg, directory: Directory, agent_id: str | None) -> str | None:
    """Where round robin starts again: the entries of members after `agent_id` in member order."""
    position = directory.position[queue.id].get(agent_id or "")
    return None if position is None else f"{position + 1:06d}"
