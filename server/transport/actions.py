"""What each client frame does: one core command per frame, and the `ok` it earns.

Agent frames act as the signed-in agent on their own offers and engagements only (the core checks
ownership); supervisor frames act on anyone and are recorded in history as the supervisor.
"""

from __future__ import annotations

from typing import assert_never

from protocol.codes import ErrorCode
from protocol.frames import (
    Accept,
    AgentAction,
    Decline,
    Disposition,
    End,
    ForceEnd,
    ForceTransfer,
    ForceWrapUpDone,
    Note,
    Ok,
    Open,
    Release,
    Search,
    SearchResult,
    Send,
    ServerFrame,
    SetAgentStatus,
    SetStatus,
    Transfer,
    WrapUpDone,
)
from protocol.model import AgentStatus
from server.core import lifecycle
from server.core.errors import Refused
from server.core.lifecycle import agent_actor, supervisor_actor
from server.node import Node


async def agent_action(node: Node, agent_id: str, frame: AgentAction) -> ServerFrame:
    actor = agent_actor(agent_id)
    match frame:
        case SetStatus(status=status, reason=reason):
            agent = await node.run(lambda tx: lifecycle.set_status(tx, agent_id, AgentStatus(status), reason, actor))
            return _status_ok(agent.status, agent.reason, agent.next is not None)
        case Accept(offer=offer):
            eng = await node.run(lambda tx: lifecycle.accept(tx, agent_id, offer))
            return Ok(engagement=eng.id, offer=offer)
        case Decline(offer=offer, reason=reason):
            eng = await node.run(lambda tx: lifecycle.decline(tx, agent_id, offer, reason))
            return Ok(engagement=eng.id, offer=offer)
        case Note(engagement=eid, text=text):
            await node.run(lambda tx: lifecycle.note(tx, agent_id, eid, text))
        case Disposition(engagement=eid, codes=codes):
            await node.run(lambda tx: lifecycle.dispose(tx, agent_id, eid, codes))
        case End(engagement=eid):
            await node.run(lambda tx: lifecycle.end(tx, agent_id, eid))
        case WrapUpDone(engagement=eid):
            await node.run(lambda tx: lifecycle.wrap_up_done(tx, eid, actor, agent_id=agent_id))
        case Open(engagement=eid):
            await node.run(lambda tx: lifecycle.open_engagement(tx, agent_id, eid))
        case Transfer(engagement=eid, queue=queue, agent=target):
            await node.run(lambda tx: lifecycle.transfer(tx, eid, actor, by=agent_id, queue=queue, agent=target))
        case Release(engagement=eid):
            await node.run(lambda tx: lifecycle.release(tx, agent_id, eid))
        case Send(engagement=eid, text=text, subject=subject):
            eng = await node.run(lambda tx: lifecycle.send(tx, agent_id, eid, text, subject))
            node.webhooks.message_sent(node.dir.queues[eng.queue], eng.id, eng.messages[-1])
            return Ok(engagement=eid, message=eng.messages[-1].id)
        case Search(engagement=eid, query=query):
            return await search(node, agent_id, eid, query)
        case _:
            assert_never(frame)
    return Ok(engagement=getattr(frame, "engagement", None))


async def supervisor_action(
    node: Node, supervisor_id: str, frame: SetAgentStatus | ForceWrapUpDone | ForceEnd | ForceTransfer
) -> ServerFrame:
    actor = supervisor_actor(supervisor_id)
    match frame:
        case SetAgentStatus(agent=agent_id, status=status, reason=reason):
            if agent_id not in node.dir.agents:
                raise Refused(ErrorCode.UNKNOWN_AGENT, f"No agent {agent_id!r}")
            agent = await node.run(lambda tx: lifecycle.set_status(tx, agent_id, AgentStatus(status), reason, actor))
            return _status_ok(agent.status, agent.reason, agent.next is not None)
        case ForceWrapUpDone(engagement=eid):
            await node.run(lambda tx: lifecycle.wrap_up_done(tx, eid, actor))
        case ForceEnd(engagement=eid):
            await node.run(lambda tx: lifecycle.force_end(tx, eid, actor))
        case ForceTransfer(engagement=eid, queue=queue, agent=target):
            await node.run(lambda tx: lifecycle.transfer(tx, eid, actor, by=None, queue=queue, agent=target))
        case _:
            assert_never(frame)
    return Ok(engagement=getattr(frame, "engagement", None))


async def search(node: Node, agent_id: str, engagement_id: str, query: str) -> SearchResult:
    """Search the transcript of an engagement the agent handles (or handled and is wrapping up). The
    query is cut to its limit before anything else: folding a megabyte of query is work for nothing."""
    query = query[: node.dir.limits.search_query_chars]
    eng = await node.store.engagement(engagement_id)
    if eng is None:
        raise Refused(ErrorCode.NOT_FOUND, f"No engagement {engagement_id!r}")
    if eng.agent != agent_id:
        raise Refused(ErrorCode.NOT_YOURS, f"Engagement {engagement_id!r} is not yours")
    fragments = await node.store.transcript(engagement_id)
    hits = node.searcher.search(engagement_id, fragments, query)
    return SearchResult(engagement=engagement_id, query=query, hits=hits)


def _status_ok(status: AgentStatus, reason: str | None, deferred: bool) -> Ok:
    return Ok(status=status, reason=reason, deferred=deferred)
