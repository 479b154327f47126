"""Projections of records into the wire views of protocol/model.py."""

from __future__ import annotations

from protocol.frames import Conversation, Ring
from protocol.model import Engagement
from server.config import Directory
from server.core.records import EngagementRec


def engagement_view(directory: Directory, rec: EngagementRec, transcript_count: int = 0) -> Engagement:
    """The engagement as clients see it; `transcript_count` comes from its transcript's head (`TalkRec`),
    which the engagement's record does not carry."""
    queue = directory.queues.get(rec.queue)
    return Engagement(
        id=rec.id,
        queue=rec.queue,
        queue_name=queue.title if queue else rec.queue,
        channel=rec.channel,
        state=rec.state,
        priority=rec.priority,
        consumer=rec.consumer,
        variables=rec.variables,
        summary=rec.summary,
        subject=rec.subject,
        profile=rec.profile,
        agent=rec.agent,
        notes=rec.notes,
        dispositions=list(rec.dispositions),
        messages=list(rec.messages),
        transcript_count=transcript_count,
        history=list(rec.history),
        created_at=rec.created_at,
        ended_at=rec.ended_at,
        wrap_up_until=rec.wrap_up_until,
    )


def ring_frame(view: Engagement, offer_id: str, expires_at: float, timeout_s: float) -> Ring:
    return Ring(offer=offer_id, engagement=view, expires_at=expires_at, timeout_s=timeout_s)


def conversation(directory: Directory, rec: EngagementRec) -> Conversation:
    """What the consumer sees: the state, who is with them, and the thread (never notes or profile)."""
    agent = directory.agents.get(rec.agent or "")
    return Conversation(
        engagement=rec.id,
        state=rec.state,
        channel=rec.channel,
        agent_name=agent.title if agent else None,
        messages=list(rec.messages),
    )
