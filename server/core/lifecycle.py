"""The engagement and agent lifecycles: every command and timer, as changes to records plus events.

Live engagements go `queued -> offered -> active -> wrap_up -> closed` (auto queues skip `offered`);
email goes `queued -> assigned -> open -> resolved`; a consumer who leaves while waiting makes it
`abandoned`. Every transition appends a history entry with its actor. Every function either records
its changes in the `Tx` or raises `Refused` before doing anything the caller could observe.

Timers are keyed strings armed through the `Tx` (`ring|<offer>`, `wrap|<engagement>`,
`grace|<agent>`, `overflow|<engagement>`); `fire` handles one, and does nothing if the world moved on
since it was armed, so a late or duplicate timer is harmless.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from msgspec import Struct, field
from msgspec.structs import replace

from protocol.codes import ErrorCode
from protocol.frames import EngagementEvent, FragmentIn, MessageEvent, Ring, RingCancelled
from protocol.frames import Transcript as TranscriptEvent
from protocol.model import (
    Acceptance,
    AgentStatus,
    CancelReason,
    Channel,
    Consumer,
    Engagement,
    EngagementState,
    Fragment,
    HistoryEntry,
    Message,
    Profile,
    Routing,
    Scalar,
    Strategy,
)
from server.config import QueueCfg
from server.core.errors import Refused
from server.core.ranking import Ranked, after, has_room
from server.core.records import (
    AgentRec,
    EngagementRec,
    Hold,
    NextStatus,
    Offer,
    OfferRef,
    Receipt,
    StatusStep,
    WaitEntry,
)
from server.core.routing import EXPLAINED, choose
from server.core.tx import Tx
from server.core.views import ring_frame
from server.topics import consumer_topic, watch_topic

S = EngagementState
SYSTEM = "system"
CONSUMER = "consumer"
CONSUMER_ENDED = "consumer_ended"
"""The history event of a consumer who ended an email conversation that an agent holds."""
STATUS_HISTORY = 50
"""How many status changes an agent's record keeps (the latest ones)."""


def agent_actor(agent_id: str) -> str:
    return f"agent:{agent_id}"


def supervisor_actor(supervisor_id: str) -> str:
    return f"supervisor:{supervisor_id}"


def ring_key(offer_id: str) -> str:
    return f"ring|{offer_id}"


def wrap_key(engagement_id: str) -> str:
    return f"wrap|{engagement_id}"


def grace_key(agent_id: str) -> str:
    return f"grace|{agent_id}"


def overflow_key(engagement_id: str) -> str:
    return f"overflow|{engagement_id}"


def idle_key(engagement_id: str) -> str:
    return f"idle|{engagement_id}"


def engagement_of_offer(offer_id: str) -> str:
    """Offer ids are `<engagement>-o<n>`, so an offer leads to its engagement without an index."""
    return offer_id.rpartition("-o")[0]


class NewEngagement(Struct, frozen=True, kw_only=True):
    """What a flow asks for when it creates an engagement."""

    queue: str
    consumer: Consumer = field(default_factory=Consumer)
    variables: dict[str, Scalar] = field(default_factory=dict)
    summary: str | None = None
    priority: int = 0
    subject: str | None = None
    body: str | None = None


# --- helpers --------------------------------------------------------------------------------------


def _history(tx: Tx, eng: EngagementRec, event: str, actor: str, **fields: object) -> EngagementRec:
    entry = HistoryEntry(at=tx.now, event=event, actor=actor, **fields)  # type: ignore[arg-type]
    return replace(eng, history=(*eng.history, entry))


def _notify(tx: Tx, eng: EngagementRec, agent_id: str | None = None) -> None:
    """Send the engagement's snapshot to the agent who holds it (or to `agent_id`). Watchers and the
    consumer hear of every change from the transaction itself (see `Tx.changes`)."""
    target = agent_id or eng.agent
    if target:
        tx.emit(target, EngagementEvent(engagement=tx.view(eng)))


def _require(tx: Tx, engagement_id: str) -> EngagementRec:
    eng = tx.engagement(engagement_id)
    if eng is None:
        raise Refused(ErrorCode.NOT_FOUND, f"No engagement {engagement_id!r}")
    return eng


def _owned(tx: Tx, agent_id: str, engagement_id: str, states: Iterable[EngagementState]) -> EngagementRec:
    eng = _require(tx, engagement_id)
    if eng.agent != agent_id:
        raise Refused(ErrorCode.NOT_YOURS, f"Engagement {engagement_id!r} is not yours")
    allowed = tuple(states)
    if eng.state not in allowed:
        wanted = " or ".join(s.value for s in allowed)
        raise Refused(ErrorCode.INVALID_STATE, f"Engagement {engagement_id!r} is {eng.state}, not {wanted}")
    return eng


def _profile(tx: Tx, consumer: Consumer, variables: dict[str, Scalar]) -> Profile:
    """Address-book entry (by id, phone or email) merged with what the flow collected; the flow wins."""
    contact = tx.dir.lookup_contact(consumer.id, consumer.phone, consumer.email)
    fields: dict[str, Scalar] = dict(contact.fields) if contact else {}
    fields.update(variables)
    return Profile(
        contact=contact.id if contact else None,
        name=consumer.name or (contact.name if contact else None),
        phone=consumer.phone or (contact.phone if contact else None),
        email=consumer.email or (contact.email if contact else None),
        fields=fields,
    )


def _enqueue(tx: Tx, eng: EngagementRec, since: float, *, arrived: bool = False) -> EngagementRec:
    """Put the engagement in its queue's waiting line (priority, then `since`), and arm its overflow.

    `arrived` marks entry into this queue (created, overflowed in): the overflow clock counts from
    there, while `since` (kept across declines) decides the place in line.
    """
    qrec = tx.queue(eng.queue)
    entry = WaitEntry(eng.id, eng.priority, since)
    waiting = sorted((*(w for w in qrec.waiting if w.engagement != eng.id), entry), key=WaitEntry.order)
    tx.put_queue(replace(qrec, waiting=tuple(waiting)))
    queued_at = tx.now if arrived or eng.queued_at is None else eng.queued_at
    eng = replace(eng, state=S.QUEUED, agent=None, offers=(), waiting_since=since, queued_at=queued_at)
    overflow = tx.dir.queues[eng.queue].overflow
    if overflow is not None:
        tx.arm(overflow_key(eng.id), queued_at + overflow.after_s)
    return eng


def _dequeue(tx: Tx, eng: EngagementRec) -> None:
    qrec = tx.queue(eng.queue)
    if any(w.engagement == eng.id for w in qrec.waiting):
        tx.put_queue(replace(qrec, waiting=tuple(w for w in qrec.waiting if w.engagement != eng.id)))
    tx.disarm(overflow_key(eng.id))


def _drop_offer(
    tx: Tx, eng: EngagementRec, offer: Offer, reason: CancelReason, event: str, actor: str, note: str | None = None
) -> EngagementRec:
    """End one ring: off the agent, off the engagement, timer disarmed, agent told, history written."""
    agent = tx.agent(offer.agent)
    if offer.id in agent.offers:
        offers = {k: v for k, v in agent.offers.items() if k != offer.id}
        tx.put_agent(replace(agent, offers=offers))
    tx.disarm(ring_key(offer.id))
    tx.emit(offer.agent, RingCancelled(offer=offer.id, reason=reason, engagement=eng.id))
    tried = eng.tried if offer.agent in eng.tried or reason is CancelReason.TAKEN else (*eng.tried, offer.agent)
    eng = replace(eng, offers=tuple(o for o in eng.offers if o.id != offer.id), tried=tried)
    return _history(tx, eng, event, actor, agent=offer.agent, offer=offer.id, reason=note or reason.value)


def _back_to_queue_if_unoffered(tx: Tx, eng: EngagementRec) -> EngagementRec:
    if eng.state is S.OFFERED and not eng.offers:
        eng = _enqueue(tx, eng, eng.waiting_since if eng.waiting_since is not None else tx.now)
        eng = _history(tx, eng, "requeued", SYSTEM, state=S.QUEUED, queue=eng.queue)
    return eng


def _status_step(
    tx: Tx, agent: AgentRec, actor: str, status: AgentStatus, reason: str | None, *, deferred: bool = False
) -> AgentRec:
    """Append a status change to the agent's history (the latest STATUS_HISTORY are kept)."""
    step = StatusStep(tx.now, actor, status, reason if status is AgentStatus.NOT_READY else None, deferred)
    return replace(agent, history=(*agent.history, step)[-STATUS_HISTORY:])


def _apply_status(tx: Tx, agent: AgentRec, status: AgentStatus, reason: str | None, actor: str) -> AgentRec:
    """Set the status now, in the agent's history as `actor`'s doing; becoming ready starts the idle
    clock used by longest-idle routing."""
    idle_since = tx.now if status is AgentStatus.READY and agent.status is not AgentStatus.READY else agent.idle_since
    agent = replace(
        agent,
        status=status,
        reason=reason if status is AgentStatus.NOT_READY else None,
        next=None,
        idle_since=idle_since,
    )
    return _status_step(tx, agent, actor, status, reason)


def _defer_status(tx: Tx, agent: AgentRec, status: AgentStatus, reason: str | None, actor: str) -> AgentRec:
    """Keep a status asked for during live work as the next status (none, when it is the current one)."""
    same = agent.status is status and (status is AgentStatus.READY or agent.reason == reason)
    nxt = None if same else NextStatus(status, reason if status is AgentStatus.NOT_READY else None)
    return _status_step(tx, replace(agent, next=nxt), actor, status, reason, deferred=True)


def _release_hold(tx: Tx, agent_id: str, engagement_id: str) -> AgentRec:
    """The agent is done with an engagement: free the capacity; after the last live one, apply next status."""
    agent = tx.agent(agent_id)
    holds = {k: v for k, v in agent.holds.items() if k != engagement_id}
    agent = replace(agent, holds=holds)
    if not agent.in_live_work():
        agent = replace(agent, idle_since=tx.now)
        if agent.next is not None:
            agent = _apply_status(tx, agent, agent.next.status, agent.next.reason, SYSTEM)
    tx.put_agent(agent)
    return agent


def _set_hold(tx: Tx, agent_id: str, eng: EngagementRec) -> None:
    agent = tx.agent(agent_id)
    tx.put_agent(replace(agent, holds={**agent.holds, eng.id: Hold(eng.channel, eng.state)}))


# --- routing --------------------------------------------------------------------------------------


def route(tx: Tx, queue_ids: Iterable[str]) -> None:
    """Offer waiting engagements of these queues to eligible agents until no more can be placed.

    Heads of line are served across the queues by priority then time waiting; within a queue every
    agent is eligible for every engagement, so an unplaceable head means the whole queue waits.
    """
    qids = list(dict.fromkeys(queue_ids))
    budget = sum(len(tx.queue(q).waiting) for q in qids) + 1
    for _ in range(budget):
        heads = [(tx.queue(q).waiting[0], q) for q in qids if tx.queue(q).waiting]
        heads.sort(key=lambda h: h[0].order())
        if not any(_place(tx, q, entry) for entry, q in heads):
            return


def _place(tx: Tx, queue_id: str, entry: WaitEntry) -> bool:
    queue = tx.dir.queues[queue_id]
    eng = tx.engagement(entry.engagement)
    if eng is None:  # a waiting entry whose record is gone cannot be served; drop it rather than stall the line
        qrec = tx.queue(queue_id)
        tx.put_queue(replace(qrec, waiting=tuple(w for w in qrec.waiting if w.engagement != entry.engagement)))
        return True
    pool = _pool(tx, queue, eng)
    if not pool:
        tx.relied_on_ranking(queue_id)  # "no one is free" must not stand if someone was freed meanwhile
        return False
    if all(a.agent in eng.tried for a in pool):
        tx.relied_on_ranking(queue_id)  # offered again to someone who passed: only because no one else is free
    qrec = tx.queue(queue_id)
    choice = choose(tx, queue, qrec, eng, pool, tx.ranked_count(queue_id))
    tx.put_queue(
        replace(qrec, waiting=tuple(w for w in qrec.waiting if w.engagement != eng.id), rr_last=choice.rr_last)
    )
    tx.disarm(overflow_key(eng.id))
    if queue.channel is Channel.EMAIL:
        _assign(tx, eng, choice.agents[0], choice.routing)
    elif queue.acceptance is Acceptance.AUTO:
        _start_auto(tx, eng, choice.agents[0], choice.routing)
    else:
        _ring(tx, eng, choice.agents, choice.routing)
    return True


def _pool(tx: Tx, queue: QueueCfg, eng: EngagementRec) -> list[Ranked]:
    """The agents to choose among, first in the queue's ranking: enough to find one who has not passed
    on this engagement when there is one, and to explain the choice; everyone for ring-all. Round robin
    starts after the last agent offered one of the queue's engagements and goes round. Only the ones
    chosen are read (and so checked at commit): the others only weighed the choice."""
    if queue.strategy is Strategy.RING_ALL:
        return tx.ranked(queue.id)
    limit = EXPLAINED + len(eng.tried) + 1
    pool = tx.ranked(queue.id, limit=limit)
    if queue.strategy is Strategy.ROUND_ROBIN:
        start = after(queue, tx.dir, tx.queue(queue.id).rr_last)
        if start is not None:
            onward = tx.ranked(queue.id, start, limit)
            pool = list({a.agent: a for a in onward + pool}.values())[:limit]
    return pool


def _ring(tx: Tx, eng: EngagementRec, agent_ids: list[str], routing: Routing | None, reason: str | None = None) -> None:
    queue = tx.dir.queues[eng.queue]
    expires_at = tx.now + queue.ring_timeout_s
    offers: list[Offer] = []
    count = eng.offer_count
    for agent_id in agent_ids:
        count += 1
        offers.append(Offer(f"{eng.id}-o{count}", agent_id, expires_at))
    eng = replace(eng, state=S.OFFERED, offers=(*eng.offers, *offers), offer_count=count)
    for offer in offers:
        eng = _history(
            tx,
            eng,
            "offered",
            SYSTEM,
            state=S.OFFERED,
            agent=offer.agent,
            offer=offer.id,
            routing=routing,
            reason=reason,
        )
    tx.put_engagement(eng)
    for offer in offers:
        agent = tx.agent(offer.agent)
        ref = OfferRef(eng.id, eng.channel, expires_at)
        tx.put_agent(replace(agent, offers={**agent.offers, offer.id: ref}))
        tx.arm(ring_key(offer.id), expires_at)
        tx.emit(offer.agent, ring_frame(tx.view(eng), offer.id, expires_at, queue.ring_timeout_s))


def _start_auto(tx: Tx, eng: EngagementRec, agent_id: str, routing: Routing) -> None:
    eng = replace(eng, state=S.ACTIVE, agent=agent_id, offers=())
    eng = _history(tx, eng, "assigned", SYSTEM, agent=agent_id, routing=routing)
    eng = _history(tx, eng, "accepted", SYSTEM, state=S.ACTIVE, agent=agent_id, reason="auto_accept")
    tx.put_engagement(eng)
    _set_hold(tx, agent_id, eng)
    _notify(tx, eng)
    _transcript_so_far(tx, eng)


def _assign(tx: Tx, eng: EngagementRec, agent_id: str, routing: Routing | None, reason: str | None = None) -> None:
    eng = replace(eng, state=S.ASSIGNED, agent=agent_id, offers=())
    eng = _history(tx, eng, "assigned", SYSTEM, state=S.ASSIGNED, agent=agent_id, routing=routing, reason=reason)
    eng = _touch(tx, eng)
    tx.put_engagement(eng)
    _set_hold(tx, agent_id, eng)
    _notify(tx, eng)


# --- engagement commands --------------------------------------------------------------------------


IDEMPOTENCY_S = 24 * 3600.0
"""How long an `Idempotency-Key` holds: a flow retrying within a day gets the engagement it made."""


class Created(NamedTuple):
    engagement: EngagementRec
    new: bool
    """False when an earlier create under the same idempotency key made it."""


def create_once(tx: Tx, spec: NewEngagement, key: str, digest: str) -> Created:
    """`create`, unless a create under the idempotency `key` was made in the last day: then that
    engagement, as it is now, if the request is the same (`digest`), and a refusal if it is not."""
    receipt = tx.receipt(key)
    if receipt is not None:
        if receipt.digest != digest:
            raise Refused(
                ErrorCode.IDEMPOTENCY_MISMATCH,
                f"Idempotency-Key {key!r} was used for another request (engagement {receipt.engagement})",
            )
        eng = tx.engagement(receipt.engagement)
        if eng is None:
            raise Refused(
                ErrorCode.INVALID_STATE,
                f"Idempotency-Key {key!r} made engagement {receipt.engagement}, which is no longer kept",
            )
        return Created(eng, False)
    eng = create(tx, spec)
    tx.put_receipt(Receipt(key=key, digest=digest, engagement=eng.id, expires_at=tx.now + IDEMPOTENCY_S))
    return Created(eng, True)


def create(tx: Tx, spec: NewEngagement, actor: str = "api") -> EngagementRec:
    """A flow hands over a consumer: record the engagement, queue it, and route at once."""
    queue = tx.dir.queues.get(spec.queue)
    if queue is None:
        raise Refused(ErrorCode.UNKNOWN_QUEUE, f"No queue {spec.queue!r}")
    if queue.max_waiting is not None and len(tx.queue(queue.id).waiting) >= queue.max_waiting:
        raise Refused(ErrorCode.QUEUE_FULL, f"Queue {queue.id!r} already has {queue.max_waiting} waiting")
    eid = tx.ids("e")
    messages: tuple[Message, ...] = ()
    if spec.body is not None:
        _check_text(tx, spec.body)
        sender = spec.consumer.email or spec.consumer.name or CONSUMER
        messages = (
            Message(id=f"{eid}-m1", direction="in", sender=sender, text=spec.body, subject=spec.subject, ts=tx.now),
        )
    eng = EngagementRec(
        id=eid,
        queue=queue.id,
        channel=queue.channel,
        state=S.QUEUED,
        priority=spec.priority,
        consumer=spec.consumer,
        variables=dict(spec.variables),
        summary=spec.summary,
        subject=spec.subject,
        profile=_profile(tx, spec.consumer, spec.variables),
        created_at=tx.now,
        messages=messages,
        thread_bytes=sum(len(m.text.encode()) for m in messages),
    )
    eng = _history(tx, eng, "created", actor, state=S.QUEUED, queue=queue.id)
    tx.put_engagement(_enqueue(tx, eng, tx.now, arrived=True), new=True)
    route(tx, [queue.id])
    return _require(tx, eid)


def consumer_end(tx: Tx, engagement_id: str) -> EngagementRec:
    """The consumer hung up or left. Waiting or ringing: abandoned. Talking: the agent goes to wrap-up.

    An email in an agent's open list cannot be hung up: the thread stays theirs to resolve (with a last
    reply, a disposition), and its history says the consumer ended the conversation; the agent gets the
    snapshot. Ending an engagement that is already over, or an email the consumer already ended,
    changes nothing, so a flow may retry its hang-up.
    """
    eng = _require(tx, engagement_id)
    if eng.state is S.WRAP_UP or eng.state.is_final:
        return eng
    if eng.state in (S.ASSIGNED, S.OPEN):
        if any(h.event == CONSUMER_ENDED for h in eng.history):
            return eng
        eng = _history(tx, eng, CONSUMER_ENDED, CONSUMER, state=eng.state, agent=eng.agent)
        tx.put_engagement(eng)
        _notify(tx, eng)
        return eng
    if eng.state is S.ACTIVE:
        return _to_wrap_up(tx, eng, CONSUMER)
    return _withdraw(tx, eng, CONSUMER, S.ABANDONED)


def _withdraw(tx: Tx, eng: EngagementRec, actor: str, final: EngagementState) -> EngagementRec:
    """Take a waiting or ringing engagement out of routing for good; rings are rescinded."""
    freed = [o.agent for o in eng.offers]
    _dequeue(tx, eng)
    for offer in eng.offers:
        eng = _drop_offer(tx, eng, offer, CancelReason.ABANDONED, "rescinded", actor)
    eng = replace(eng, state=final, ended_at=tx.now, waiting_since=None)
    eng = _history(tx, eng, final.value, actor, state=final)
    tx.put_engagement(eng)
    route(tx, [q for a in freed for q in tx.dir.agent_queues(a)])
    return eng


def force_end(tx: Tx, engagement_id: str, actor: str) -> EngagementRec:
    """A supervisor ends an engagement wherever it is stuck: the step that ends it from its state."""
    eng = _require(tx, engagement_id)
    match eng.state:
        case S.ACTIVE:
            return _to_wrap_up(tx, eng, actor)
        case S.WRAP_UP:
            return _close(tx, eng, actor, "ended by supervisor")
        case S.ASSIGNED | S.OPEN:
            return _resolve(tx, eng, actor, enforce_disposition=False)
        case S.QUEUED | S.OFFERED:
            return _withdraw(tx, eng, actor, S.CLOSED)
    raise Refused(ErrorCode.INVALID_STATE, f"Engagement {engagement_id!r} is already {eng.state}")


def _to_wrap_up(tx: Tx, eng: EngagementRec, actor: str) -> EngagementRec:
    queue = tx.dir.queues[eng.queue]
    until = tx.now + queue.wrap_up_s if queue.wrap_up_s is not None else None
    eng = replace(eng, state=S.WRAP_UP, ended_at=tx.now, wrap_up_until=until)
    eng = _history(tx, eng, "ended", actor, state=S.WRAP_UP, agent=eng.agent)
    tx.put_engagement(eng)
    if until is not None:
        tx.arm(wrap_key(eng.id), until)
    if eng.agent:
        _set_hold(tx, eng.agent, eng)
    _notify(tx, eng)
    return eng


def _running_offer(tx: Tx, agent_id: str, offer_id: str) -> tuple[AgentRec, EngagementRec, Offer]:
    agent = tx.agent(agent_id)
    ref = agent.offers.get(offer_id)
    if ref is None:
        eng = tx.engagement(engagement_of_offer(offer_id))
        if eng is not None and any(o.id == offer_id for o in eng.offers):
            raise Refused(ErrorCode.NOT_YOURS, f"Offer {offer_id!r} is not yours")
        raise Refused(ErrorCode.NOT_FOUND, f"No running offer {offer_id!r} (it may have expired or been taken)")
    eng = _require(tx, ref.engagement)
    return agent, eng, next(o for o in eng.offers if o.id == offer_id)


def accept(tx: Tx, agent_id: str, offer_id: str) -> EngagementRec:
    agent, eng, mine = _running_offer(tx, agent_id, offer_id)
    actor = agent_actor(agent_id)
    eng = replace(eng, offers=tuple(o for o in eng.offers if o.id != offer_id))
    tx.disarm(ring_key(offer_id))
    tx.put_agent(replace(agent, offers={k: v for k, v in agent.offers.items() if k != offer_id}))
    others = list(eng.offers)
    for other in others:
        eng = _drop_offer(tx, eng, other, CancelReason.TAKEN, "rescinded", SYSTEM, note=f"taken by {agent_id}")
    eng = replace(eng, state=S.ACTIVE, agent=agent_id, offers=(), waiting_since=None)
    eng = _history(tx, eng, "accepted", actor, state=S.ACTIVE, agent=agent_id, offer=mine.id)
    tx.put_engagement(eng)
    _set_hold(tx, agent_id, eng)
    _notify(tx, eng)
    _transcript_so_far(tx, eng)
    route(tx, [q for o in others for q in tx.dir.agent_queues(o.agent)])
    return eng


def _transcript_so_far(tx: Tx, eng: EngagementRec) -> None:
    """On accept, the agent gets one `transcript` event with everything said before. Reading the head
    (`tx.talk`) makes this commit fail if a line is kept meanwhile: that line, sent while the call was
    not yet theirs, would reach neither the agent's event nor this one."""
    if eng.agent and tx.talk(eng.id).count:
        tx.emit(eng.agent, TranscriptEvent(engagement=eng.id, fragments=tx.transcript(eng.id)))


def decline(tx: Tx, agent_id: str, offer_id: str, reason: str | None = None) -> EngagementRec:
    _, eng, offer = _running_offer(tx, agent_id, offer_id)
    eng = _drop_offer(
        tx, eng, offer, CancelReason.DECLINED, "declined", agent_actor(agent_id), note=reason or "declined"
    )
    eng = _back_to_queue_if_unoffered(tx, eng)
    tx.put_engagement(eng)
    route(tx, [eng.queue, *tx.dir.agent_queues(agent_id)])
    return eng


def end(tx: Tx, agent_id: str, engagement_id: str) -> EngagementRec:
    """The agent ends the conversation: live engagements go to wrap-up, email is resolved."""
    eng = _owned(tx, agent_id, engagement_id, (S.ACTIVE, S.ASSIGNED, S.OPEN))
    if eng.channel is Channel.EMAIL:
        return _resolve(tx, eng, agent_actor(agent_id))
    return _to_wrap_up(tx, eng, agent_actor(agent_id))


def _resolve(
    tx: Tx, eng: EngagementRec, actor: str, *, enforce_disposition: bool = True, reason: str | None = None
) -> EngagementRec:
    queue = tx.dir.queues[eng.queue]
    if enforce_disposition and queue.disposition_required and not eng.dispositions:
        raise Refused(ErrorCode.DISPOSITION_REQUIRED, f"Queue {queue.id!r} requires a disposition first")
    tx.disarm(idle_key(eng.id))
    eng = replace(eng, state=S.RESOLVED, ended_at=tx.now)
    eng = _history(tx, eng, "resolved", actor, state=S.RESOLVED, agent=eng.agent, reason=reason)
    tx.put_engagement(eng)
    _notify(tx, eng)
    if eng.agent:
        _release_hold(tx, eng.agent, eng.id)
        route(tx, tx.dir.agent_queues(eng.agent))
    return eng


def open_engagement(tx: Tx, agent_id: str, engagement_id: str) -> EngagementRec:
    """The agent opens an assigned email from the open list."""
    eng = _owned(tx, agent_id, engagement_id, (S.ASSIGNED, S.OPEN))
    if eng.state is S.OPEN:
        return eng
    eng = _history(tx, replace(eng, state=S.OPEN), "opened", agent_actor(agent_id), state=S.OPEN, agent=agent_id)
    eng = _touch(tx, eng)
    tx.put_engagement(eng)
    _set_hold(tx, agent_id, eng)
    _notify(tx, eng)
    return eng


HANDLED = (S.ACTIVE, S.ASSIGNED, S.OPEN)


def transfer(
    tx: Tx, engagement_id: str, actor: str, *, by: str | None, queue: str | None = None, agent: str | None = None
) -> EngagementRec:
    """Hand an engagement to another queue or agent, with its notes, transcript, thread and history.

    `by` is the agent asking (who must hold it), or None for a supervisor, who may also move one that
    is waiting or ringing: its rings are rescinded first (`taken`: the engagement went elsewhere, which
    is no fault of the agents rung). The former agent is freed at once and can no longer act on it. To
    a queue: it waits there (same channel only). To an agent: a live engagement rings them, an email
    lands in their open list; they need to be signed in with room on the channel, whatever their status.
    """
    if (queue is None) == (agent is None):
        raise Refused(ErrorCode.INVALID_FIELD, "Transfer to exactly one of `queue` or `agent`")
    if by is not None:
        eng = _owned(tx, by, engagement_id, HANDLED)
    else:
        eng = _require(tx, engagement_id)
        if eng.state not in (*HANDLED, S.QUEUED, S.OFFERED):
            raise Refused(ErrorCode.INVALID_STATE, f"Engagement {engagement_id!r} is {eng.state}; it cannot move")
    if queue is not None:
        target_queue = tx.dir.queues.get(queue)
        if target_queue is None:
            raise Refused(ErrorCode.UNKNOWN_QUEUE, f"No queue {queue!r}")
        if target_queue.channel is not eng.channel:
            raise Refused(ErrorCode.INVALID_FIELD, f"Queue {queue!r} serves {target_queue.channel}, not {eng.channel}")
    if agent is not None:
        if agent not in tx.dir.agents:
            raise Refused(ErrorCode.UNKNOWN_AGENT, f"No agent {agent!r}")
        if agent == eng.agent:
            raise Refused(ErrorCode.INVALID_STATE, f"Engagement {engagement_id!r} is already {agent}'s")
        target = tx.agent(agent)
        # a ring of this very engagement is rescinded below, so the room it takes counts as free
        own_rings = {o.id for o in eng.offers if o.agent == agent}
        if own_rings:
            target = replace(target, offers={k: v for k, v in target.offers.items() if k not in own_rings})
        if not target.connected or not has_room(tx.dir.room[agent][eng.channel], target, eng.channel):
            raise Refused(ErrorCode.NO_CAPACITY, f"{agent} is not signed in with room for a {eng.channel} engagement")
    former = eng.agent
    rung = [o.agent for o in eng.offers]
    if eng.state is S.QUEUED:
        _dequeue(tx, eng)
    for offer in eng.offers:
        eng = _drop_offer(tx, eng, offer, CancelReason.TAKEN, "rescinded", actor, note=f"transferred by {actor}")
    if former is not None:
        _release_hold(tx, former, eng.id)
    eng = _history(tx, replace(eng, agent=None), "transferred", actor, agent=agent, queue=queue, former=former)
    if queue is not None:
        eng = _enqueue(tx, replace(eng, queue=queue, tried=()), eng.waiting_since or eng.created_at, arrived=True)
        tx.put_engagement(eng)
    else:
        assert agent is not None
        why = f"transfer by {actor}"
        eng = replace(eng, waiting_since=eng.waiting_since or tx.now, tried=tuple(t for t in eng.tried if t != agent))
        if eng.channel is Channel.EMAIL:
            _assign(tx, eng, agent, None, why)
        else:
            _ring(tx, eng, [agent], None, why)
    freed = [a for a in (former, *rung) if a is not None]
    route(tx, [eng.queue, *(q for a in freed for q in tx.dir.agent_queues(a))])
    moved = _require(tx, engagement_id)
    if former is not None and moved.agent != former:
        _tell_former(tx, former, moved)
    return moved


def _tell_former(tx: Tx, former: str, eng: EngagementRec) -> None:
    """The agent an engagement was taken from gets its snapshot (no longer theirs), to close it."""
    tx.emit(former, EngagementEvent(engagement=tx.view(eng)))


def release(tx: Tx, agent_id: str, engagement_id: str) -> EngagementRec:
    """Give an engagement back to its queue: it goes to another eligible agent before the one who released it."""
    eng = _owned(tx, agent_id, engagement_id, HANDLED)
    _release_hold(tx, agent_id, eng.id)
    eng = _history(tx, replace(eng, agent=None), "released", agent_actor(agent_id), agent=agent_id)
    eng = _enqueue(tx, replace(eng, tried=(agent_id,)), eng.created_at, arrived=True)
    tx.put_engagement(eng)
    route(tx, [eng.queue, *tx.dir.agent_queues(agent_id)])
    released = _require(tx, engagement_id)
    if released.agent != agent_id:
        _tell_former(tx, agent_id, released)
    return released


def note(tx: Tx, agent_id: str, engagement_id: str, text: str) -> EngagementRec:
    """Replace the engagement's notes (clients save as the agent types)."""
    eng = _owned(tx, agent_id, engagement_id, (S.ACTIVE, S.WRAP_UP, S.ASSIGNED, S.OPEN))
    limit = tx.dir.limits.notes_bytes
    if len(text.encode()) > limit:
        raise Refused(ErrorCode.TOO_LARGE, f"Notes are limited to {limit} bytes")
    eng = replace(eng, notes=text)
    tx.put_engagement(eng)
    return eng


def dispose(tx: Tx, agent_id: str, engagement_id: str, codes: list[str]) -> EngagementRec:
    """Set the engagement's dispositions; every code must be one of the queue's."""
    eng = _owned(tx, agent_id, engagement_id, (S.ACTIVE, S.WRAP_UP, S.ASSIGNED, S.OPEN))
    allowed = tx.dir.queues[eng.queue].disposition_codes()
    unknown = [c for c in codes if c not in allowed]
    if unknown:
        raise Refused(
            ErrorCode.UNKNOWN_DISPOSITION,
            f"Unknown disposition {unknown[0]!r} for queue {eng.queue!r}; allowed: {sorted(allowed)}",
        )
    unique = tuple(dict.fromkeys(codes))
    eng = _history(tx, replace(eng, dispositions=unique), "disposition", agent_actor(agent_id), codes=tuple(unique))
    tx.put_engagement(eng)
    _notify(tx, eng)
    return eng


def wrap_up_done(tx: Tx, engagement_id: str, actor: str, agent_id: str | None = None) -> EngagementRec:
    """Finish wrap-up and close. An agent (`agent_id` given) must own it and have any required disposition."""
    if agent_id is not None:
        eng = _owned(tx, agent_id, engagement_id, (S.WRAP_UP,))
        queue = tx.dir.queues[eng.queue]
        if queue.disposition_required and not eng.dispositions:
            raise Refused(ErrorCode.DISPOSITION_REQUIRED, f"Queue {queue.id!r} requires a disposition first")
    else:
        eng = _require(tx, engagement_id)
        if eng.state is not S.WRAP_UP:
            raise Refused(ErrorCode.INVALID_STATE, f"Engagement {engagement_id!r} is {eng.state}, not wrap_up")
    return _close(tx, eng, actor, None)


def _close(tx: Tx, eng: EngagementRec, actor: str, reason: str | None) -> EngagementRec:
    tx.disarm(wrap_key(eng.id))
    eng = replace(eng, state=S.CLOSED, wrap_up_until=None)
    eng = _history(tx, eng, "closed", actor, state=S.CLOSED, agent=eng.agent, reason=reason)
    tx.put_engagement(eng)
    _notify(tx, eng)
    if eng.agent:
        _release_hold(tx, eng.agent, eng.id)
        route(tx, tx.dir.agent_queues(eng.agent))
    return eng


# --- conversation: chat and email threads, live transcript ------------------------------------------

TEXT_CHANNELS = (Channel.CHAT, Channel.EMAIL)


def _touch(tx: Tx, eng: EngagementRec) -> EngagementRec:
    """Record activity on an email; the queue's inactivity limit counts from the latest."""
    limit = tx.dir.queues[eng.queue].inactivity_close_s
    if eng.channel is Channel.EMAIL and limit is not None:
        tx.arm(idle_key(eng.id), tx.now + limit)
    return replace(eng, touched_at=tx.now)


def _check_text(tx: Tx, text: str) -> int:
    """The size of one chat line or email, refused when it is empty or too large."""
    if not text.strip():
        raise Refused(ErrorCode.INVALID_FIELD, "A message needs some `text`")
    size, limit = len(text.encode()), tx.dir.limits.message_bytes
    if size > limit:
        raise Refused(ErrorCode.TOO_LARGE, f"A message holds at most {limit} bytes; this one has {size}")
    return size


def _add_message(eng: EngagementRec, message: Message, size: int) -> EngagementRec:
    return replace(eng, messages=(*eng.messages, message), thread_bytes=eng.thread_bytes + size)


def _message(
    tx: Tx, eng: EngagementRec, direction: str, sender: str, text: str, subject: str | None
) -> tuple[Message, int]:
    """A new line of the engagement's thread and its size, within the thread's limits."""
    size, limits = _check_text(tx, text), tx.dir.limits
    if len(eng.messages) >= limits.thread_messages:
        raise Refused(ErrorCode.LIMIT_REACHED, f"The thread already holds {limits.thread_messages} messages")
    if eng.thread_bytes + size > limits.thread_bytes:
        raise Refused(
            ErrorCode.LIMIT_REACHED, f"The thread holds {eng.thread_bytes} bytes; it may hold {limits.thread_bytes}"
        )
    return Message(
        id=f"{eng.id}-m{len(eng.messages) + 1}",
        direction=direction,
        sender=sender,
        text=text,
        subject=subject,
        ts=tx.now,
    ), size


def _deliver_message(tx: Tx, eng: EngagementRec, message: Message) -> None:
    event = MessageEvent(
        engagement=eng.id,
        id=message.id,
        direction=message.direction,
        sender=message.sender,
        text=message.text,
        subject=message.subject,
        ts=message.ts,
    )
    if eng.agent and eng.state in HANDLED:
        tx.emit(eng.agent, event)
    tx.notify(consumer_topic(eng.id), event)
    tx.notify(watch_topic(eng.id), event)


def consumer_message(tx: Tx, engagement_id: str, text: str, subject: str | None, sender: str | None) -> Message:
    """A consumer's chat line or email reply: kept in the thread, pushed to the agent handling it."""
    eng = _require(tx, engagement_id)
    if eng.channel not in TEXT_CHANNELS:
        raise Refused(ErrorCode.NOT_ENABLED, f"A {eng.channel} engagement has no text thread")
    if eng.state.is_final or eng.state is S.WRAP_UP:
        raise Refused(ErrorCode.INVALID_STATE, f"Engagement {engagement_id!r} is {eng.state}; start a new one")
    who = sender or eng.consumer.name or eng.consumer.email or CONSUMER
    message, size = _message(tx, eng, "in", who, text, subject)
    eng = _touch(tx, _add_message(eng, message, size))
    tx.put_engagement(eng)
    _deliver_message(tx, eng, message)
    return message


def send(tx: Tx, agent_id: str, engagement_id: str, text: str, subject: str | None) -> EngagementRec:
    """The agent writes to the consumer (a chat line, an email reply; replying opens an assigned email).
    Returns the engagement; the message is the last of its thread."""
    eng = _owned(tx, agent_id, engagement_id, HANDLED)
    if eng.channel not in TEXT_CHANNELS:
        raise Refused(ErrorCode.NOT_ENABLED, f"A {eng.channel} engagement has no text thread")
    if eng.channel is Channel.EMAIL and subject is None and eng.subject:
        subject = eng.subject if eng.subject.lower().startswith("re:") else f"Re: {eng.subject}"
    message, size = _message(tx, eng, "out", tx.dir.agents[agent_id].title, text, subject)
    eng = _add_message(eng, message, size)
    if eng.state is S.ASSIGNED:
        eng = _history(tx, replace(eng, state=S.OPEN), "opened", agent_actor(agent_id), state=S.OPEN, agent=agent_id)
        _set_hold(tx, agent_id, eng)
        _notify(tx, eng)
    eng = _touch(tx, eng)
    tx.put_engagement(eng)
    _deliver_message(tx, eng, message)
    return eng


RECENT_FINALS = 32
"""Finals whose place is remembered, so that one sent again replaces itself (`TalkRec.recent`)."""


def add_fragments(tx: Tx, engagement_id: str, incoming: list[FragmentIn]) -> list[Fragment]:
    """Live transcript in: a final replaces the partial with the same id (or, without ids, that speaker's
    latest partial), so nothing is shown twice. The handling agent and watchers get every fragment in
    order; only finals are kept (a partial lives until its final replaces it, on the desktops).

    The engagement's record is read, never written: a line of transcript changes only the transcript's
    head (`TalkRec`) and appends to its list, so a long call costs no more per line than a short one.
    """
    eng = _require(tx, engagement_id)
    if eng.channel is Channel.EMAIL or not tx.dir.queues[eng.queue].transcription:
        raise Refused(ErrorCode.NOT_ENABLED, f"Transcription is off for queue {eng.queue!r}")
    if eng.state.is_final:
        raise Refused(ErrorCode.INVALID_STATE, f"Engagement {engagement_id!r} is {eng.state}")
    talk = tx.talk(engagement_id)
    partials, recent = dict(talk.partials), dict(talk.recent)
    count, size, made = talk.count, talk.size, talk.made
    limits = tx.dir.limits
    out: list[Fragment] = []
    kept: list[tuple[int, Fragment]] = []
    for f in incoming:
        if not f.speaker:
            raise Refused(ErrorCode.INVALID_FIELD, "Each fragment needs a `speaker`")
        length = len(f.text.encode())
        if length > limits.fragment_bytes:
            raise Refused(ErrorCode.TOO_LARGE, f"A fragment holds at most {limits.fragment_bytes} bytes of `text`")
        fid = f.id
        if fid is None:
            fid = next((i for i, speaker in reversed(partials.items()) if speaker == f.speaker), None)
        if fid is None:
            made += 1
            fid = f"{eng.id}-f{made}"
        partials.pop(fid, None)
        fragment = Fragment(id=fid, speaker=f.speaker, text=f.text, final=f.final, ts=f.ts or tx.now)
        out.append(fragment)
        if not f.final:
            partials[fid] = f.speaker
            continue
        size += length
        place = recent.get(fid)
        if place is None:  # a new line, at the end
            recent[fid] = count
            count += 1
            if len(recent) > RECENT_FINALS:
                del recent[next(iter(recent))]
        kept.append((-1 if place is None else place, fragment))
    if count > limits.transcript_fragments:
        raise Refused(ErrorCode.LIMIT_REACHED, f"The transcript may hold {limits.transcript_fragments} fragments")
    if size > limits.transcript_bytes:
        raise Refused(ErrorCode.LIMIT_REACHED, f"The transcript may hold {limits.transcript_bytes} bytes")
    tx.put_talk(replace(talk, count=count, size=size, made=made, partials=partials, recent=recent))
    if kept:
        tx.put_fragments(eng.id, kept)
    event = TranscriptEvent(engagement=eng.id, fragments=out)
    if eng.agent and eng.state in (S.ACTIVE, S.WRAP_UP):
        tx.emit(eng.agent, event)
    tx.notify(watch_topic(eng.id), event)
    return out


def _inactive(tx: Tx, engagement_id: str) -> None:
    eng = tx.engagement(engagement_id)
    limit = tx.dir.queues[eng.queue].inactivity_close_s if eng else None
    if eng is None or limit is None or eng.state not in (S.ASSIGNED, S.OPEN) or eng.touched_at is None:
        return
    due = eng.touched_at + limit
    if tx.now < due:
        tx.arm(idle_key(engagement_id), due)
        return
    _resolve(tx, eng, SYSTEM, enforce_disposition=False, reason="inactivity")


# --- agent commands -------------------------------------------------------------------------------


def set_status(tx: Tx, agent_id: str, status: AgentStatus, reason: str | None, actor: str) -> AgentRec:
    """Change status now, or, in a live engagement or its wrap-up, make it the next status.

    Going not ready while ringing turns the rings down (as declines), so calls stop ringing an agent
    who just stepped away.
    """
    if status is AgentStatus.OFFLINE:
        raise Refused(ErrorCode.INVALID_FIELD, "Status must be ready or not_ready")
    agent = tx.agent(agent_id)
    if status is AgentStatus.READY and not agent.connected:
        raise Refused(ErrorCode.INVALID_STATE, f"{agent_id} is not signed in; only a signed-in agent can be ready")
    if agent.in_live_work():
        agent = _defer_status(tx, agent, status, reason, actor)
        tx.put_agent(agent)
        return agent
    agent = _apply_status(tx, agent, status, reason, actor)
    tx.put_agent(agent)
    touched = list(tx.dir.agent_queues(agent_id))
    if status is AgentStatus.NOT_READY:
        for offer_id, ref in list(agent.offers.items()):
            eng = _require(tx, ref.engagement)
            offer = next(o for o in eng.offers if o.id == offer_id)
            eng = _drop_offer(
                tx, eng, offer, CancelReason.DECLINED, "declined", actor, note=f"went not_ready ({reason})"
            )
            eng = _back_to_queue_if_unoffered(tx, eng)
            tx.put_engagement(eng)
            touched.append(eng.queue)
    route(tx, touched)
    return tx.agent(agent_id)


def connect(tx: Tx, agent_id: str, node: str, resend_rings: bool) -> AgentRec:
    """A socket signed in on `node`. First sign-in: not ready. Back within the grace: as before, rings re-sent."""
    agent = tx.agent(agent_id)
    tx.disarm(grace_key(agent_id))
    if agent.status is AgentStatus.OFFLINE:
        agent = _apply_status(tx, agent, AgentStatus.NOT_READY, None, agent_actor(agent_id))
    sessions = {**agent.sessions, node: agent.sessions.get(node, 0) + 1}
    agent = replace(agent, sessions=sessions, disconnected_at=None)
    tx.put_agent(agent)
    if resend_rings:
        for offer_id, ref in agent.offers.items():
            eng = _require(tx, ref.engagement)
            timeout = tx.dir.queues[eng.queue].ring_timeout_s
            tx.emit(agent_id, ring_frame(tx.view(eng), offer_id, ref.expires_at, timeout))
    route(tx, tx.dir.agent_queues(agent_id))
    return agent


def disconnect(tx: Tx, agent_id: str, node: str) -> AgentRec:
    """A socket on `node` closed. The agent's last one starts the grace period; rings keep running meanwhile."""
    agent = tx.agent(agent_id)
    left = agent.sessions.get(node, 0) - 1
    sessions = {n: c for n, c in agent.sessions.items() if n != node}
    if left > 0:
        sessions[node] = left
    return _sessions_changed(tx, agent, sessions)


def node_lost(tx: Tx, agent_id: str, node: str) -> AgentRec:
    """`node` died with some of the agent's sockets: they are gone, as if each had dropped."""
    agent = tx.agent(agent_id)
    if node not in agent.sessions:
        return agent
    return _sessions_changed(tx, agent, {n: c for n, c in agent.sessions.items() if n != node})


def _sessions_changed(tx: Tx, agent: AgentRec, sessions: dict[str, int]) -> AgentRec:
    gone = not sessions and agent.connected
    agent = replace(agent, sessions=sessions, disconnected_at=tx.now if gone else agent.disconnected_at)
    tx.put_agent(agent)
    if gone:
        tx.arm(grace_key(agent.id), tx.now + tx.dir.server.grace_s)
    return agent


# --- timers ---------------------------------------------------------------------------------------


def fire(tx: Tx, key: str) -> None:
    """Handle one due timer. Each handler checks the world still matches, so stale timers do nothing."""
    kind, _, ref = key.partition("|")
    match kind:
        case "ring":
            _ring_expired(tx, ref)
        case "wrap":
            _wrap_up_expired(tx, ref)
        case "grace":
            _grace_expired(tx, ref)
        case "overflow":
            _overflow(tx, ref)
        case "idle":
            _inactive(tx, ref)
        case _:
            raise Refused(ErrorCode.INTERNAL, f"Unknown timer {key!r}")


def _ring_expired(tx: Tx, offer_id: str) -> None:
    eng = tx.engagement(engagement_of_offer(offer_id))
    offer = next((o for o in eng.offers if o.id == offer_id), None) if eng else None
    if eng is None or offer is None:
        return
    if tx.now < offer.expires_at:
        tx.arm(ring_key(offer_id), offer.expires_at)
        return
    eng = _drop_offer(tx, eng, offer, CancelReason.TIMEOUT, "expired", SYSTEM, note="timeout")
    eng = _back_to_queue_if_unoffered(tx, eng)
    tx.put_engagement(eng)
    agent = tx.agent(offer.agent)
    server = tx.dir.server
    if agent.status is AgentStatus.READY and server.missed_status == "not_ready":
        missed = _defer_status if agent.in_live_work() else _apply_status
        tx.put_agent(missed(tx, agent, AgentStatus.NOT_READY, server.missed_reason, SYSTEM))
    route(tx, [eng.queue, *tx.dir.agent_queues(offer.agent)])


def _wrap_up_expired(tx: Tx, engagement_id: str) -> None:
    eng = tx.engagement(engagement_id)
    if eng is None or eng.state is not S.WRAP_UP or eng.wrap_up_until is None:
        return
    if tx.now < eng.wrap_up_until:
        tx.arm(wrap_key(engagement_id), eng.wrap_up_until)
        return
    _close(tx, eng, SYSTEM, "wrap_up_limit")


def _grace_expired(tx: Tx, agent_id: str) -> None:
    agent = tx.agent(agent_id)
    if agent.connected or agent.disconnected_at is None:
        return
    due = agent.disconnected_at + tx.dir.server.grace_s
    if tx.now < due:
        tx.arm(grace_key(agent_id), due)
        return
    agent = _apply_status(tx, agent, AgentStatus.NOT_READY, "connection_lost", SYSTEM)
    tx.put_agent(agent)
    touched = []
    for offer_id, ref in agent.offers.items():
        eng = _require(tx, ref.engagement)
        offer = next(o for o in eng.offers if o.id == offer_id)
        eng = _drop_offer(tx, eng, offer, CancelReason.TIMEOUT, "rescinded", SYSTEM, note="connection_lost")
        eng = _back_to_queue_if_unoffered(tx, eng)
        tx.put_engagement(eng)
        touched.append(eng.queue)
    route(tx, touched)


def _overflow(tx: Tx, engagement_id: str) -> None:
    eng = tx.engagement(engagement_id)
    if eng is None or eng.state is not S.QUEUED or eng.waiting_since is None or eng.queued_at is None:
        return
    since = eng.waiting_since
    overflow = tx.dir.queues[eng.queue].overflow
    if overflow is None:
        return
    due = eng.queued_at + overflow.after_s
    if tx.now < due:
        tx.arm(overflow_key(engagement_id), due)
        return
    _dequeue(tx, eng)
    source = eng.queue
    eng = replace(eng, queue=overflow.queue, tried=())
    eng = _history(
        tx,
        eng,
        "overflowed",
        SYSTEM,
        state=S.QUEUED,
        queue=overflow.queue,
        reason=f"waited {overflow.after_s:g}s in {source}",
    )
    tx.put_engagement(_enqueue(tx, eng, since, arrived=True))
    route(tx, [overflow.queue])


# --- sign-in --------------------------------------------------------------------------------------


class SignIn(Struct, frozen=True):
    """What `welcome` shows: the agent after sign-in, what they hold, and the rings still running."""

    agent: AgentRec
    engagements: list[Engagement]
    offers: list[Ring]


def sign_in(tx: Tx, agent_id: str, node: str, fresh: bool) -> SignIn:
    """Connect and say what `welcome` shows. A `fresh` client (no resume) also gets, as events, the
    rings still running and the transcript so far of the calls it holds."""
    agent = connect(tx, agent_id, node, fresh)
    held = [e for e in map(tx.engagement, agent.holds) if e is not None]
    if fresh:
        for eng in held:
            if eng.state in (S.ACTIVE, S.WRAP_UP) and tx.talk(eng.id).count:
                tx.emit(agent_id, TranscriptEvent(engagement=eng.id, fragments=tx.transcript(eng.id)))
    return standing(tx, agent_id)


def standing(tx: Tx, agent_id: str) -> SignIn:
    """What `welcome` shows of a signed-in agent, changing nothing (also the answer to a token refresh)."""
    agent = tx.agent(agent_id)
    engagements = [tx.view(e) for e in map(tx.engagement, agent.holds) if e is not None]
    offers = []
    for offer_id, ref in agent.offers.items():
        eng = _require(tx, ref.engagement)
        offers.append(ring_frame(tx.view(eng), offer_id, ref.expires_at, tx.dir.queues[eng.queue].ring_timeout_s))
    return SignIn(agent, engagements, offers)
