"""The HTTP API: ingest for flows (API key), and read-only views of queues, agents and engagements.

Every error is JSON `{code, message}` with a fitting status; nothing else ever reaches the client.
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple, TypeVar

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from protocol.codes import ErrorCode
from protocol.http import (
    AgentDetail,
    AgentInfo,
    CreatedEngagement,
    CreateEngagement,
    DemoPeople,
    DispositionInfo,
    ErrorBody,
    Health,
    MembershipInfo,
    MessageAccepted,
    MessageIn,
    Person,
    QueueInfo,
    QueueStats,
    StatusChange,
    TranscriptAccepted,
    TranscriptBatch,
    TranscriptView,
)
from protocol.model import Consumer, Engagement
from server.auth import AuthError, Role, check_api_key, issue, verify
from server.core import lifecycle
from server.core.errors import Refused
from server.core.records import AgentRec
from server.core.tx import Tx, activity
from server.node import Node
from server.stats import Figures, all_figures

B = TypeVar("B")

STATUS_OF: dict[ErrorCode, int] = {
    ErrorCode.BAD_FRAME: 400,
    ErrorCode.INVALID_BODY: 400,
    ErrorCode.UNKNOWN_TYPE: 400,
    ErrorCode.INVALID_FIELD: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.NOT_YOURS: 403,
    ErrorCode.INVALID_STATE: 409,
    ErrorCode.UNKNOWN_QUEUE: 422,
    ErrorCode.UNKNOWN_AGENT: 422,
    ErrorCode.UNKNOWN_DISPOSITION: 422,
    ErrorCode.DISPOSITION_REQUIRED: 409,
    ErrorCode.NO_CAPACITY: 409,
    ErrorCode.NOT_ENABLED: 409,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.LIMIT_REACHED: 413,
    ErrorCode.IDEMPOTENCY_MISMATCH: 422,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.QUEUE_FULL: 429,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}

_encoder = msgspec.json.Encoder()


def json_response(body: Any, status: int = 200) -> Response:
    return Response(_encoder.encode(body), status_code=status, media_type="application/json")


def error_response(code: ErrorCode, message: str, status: int | None = None) -> Response:
    return json_response(ErrorBody(code=code, message=message), status or STATUS_OF.get(code, 400))


class ApiError(Exception):
    """Raised inside a handler to answer with an error body."""

    def __init__(self, code: ErrorCode, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def _node(request: Request) -> Node:
    return request.app.state.node


def require_key(request: Request) -> None:
    keys = _node(request).dir.server.api_keys
    if not check_api_key(request.headers.get("authorization"), keys):
        raise ApiError(ErrorCode.UNAUTHORIZED, "Send `Authorization: Bearer <api key>`")


class Reader(NamedTuple):
    """Who reads: the API key's holder (`role` None: a flow, a report job), a supervisor or an agent."""

    role: Role | None
    id: str | None = None

    def sees_personal_data_of(self, agent_id: str) -> bool:
        """Status reasons and histories: for the API key, supervisors and the agent themself."""
        return self.role != "agent" or self.id == agent_id


def require_reader(request: Request) -> Reader:
    """Every read needs the API key or an agent's or supervisor's token; a consumer's token reads
    nothing here (they see their conversation on their own socket)."""
    header = request.headers.get("authorization")
    node = _node(request)
    if check_api_key(header, node.dir.server.api_keys):
        return Reader(None)
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() == "bearer" and token:
        try:
            claims = verify(node.dir.server.secret or "", token.strip(), node.clock())
        except AuthError as exc:
            raise ApiError(ErrorCode.UNAUTHORIZED, f"Bad credentials: {exc}") from None
        if claims.role == "consumer":
            raise ApiError(ErrorCode.FORBIDDEN, "A consumer's token reads nothing here")
        return Reader(claims.role, claims.sub)
    raise ApiError(ErrorCode.UNAUTHORIZED, "Send `Authorization: Bearer <api key or token>`")


async def read_body(request: Request, kind: type[B]) -> B:
    limit = _node(request).dir.server.max_body_bytes
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(ErrorCode.TOO_LARGE, f"Body larger than {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise ApiError(ErrorCode.INVALID_BODY, "Expected a JSON object body")
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise ApiError(ErrorCode.INVALID_FIELD, f"Invalid body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ApiError(ErrorCode.INVALID_BODY, f"Body is not valid JSON: {exc}") from None


MAX_IDEMPOTENCY_KEY = 255


def _idempotency(request: Request, body: CreateEngagement) -> tuple[str, str] | None:
    """The request's `Idempotency-Key` and a fingerprint of what it asks for (key order in the JSON
    does not change it), or None without the header."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not key or len(key) > MAX_IDEMPOTENCY_KEY:
        raise ApiError(ErrorCode.INVALID_FIELD, f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    canonical = msgspec.json.encode(msgspec.to_builtins(body), order="sorted")
    return key, hashlib.sha256(canonical).hexdigest()


async def create_engagement(request: Request) -> Response:
    require_key(request)
    body = await read_body(request, CreateEngagement)
    once = _idempotency(request, body)
    c = body.consumer
    spec = lifecycle.NewEngagement(
        queue=body.queue,
        consumer=Consumer(id=c.id, name=c.name, phone=c.phone, email=c.email) if c else Consumer(),
        variables=body.variables,
        summary=body.summary,
        priority=body.priority,
        subject=body.subject,
        body=body.body,
    )
    node = _node(request)
    if once is None:
        view, new = await node.run(lambda tx: tx.view(lifecycle.create(tx, spec))), True
    else:
        key, digest = once

        def create_once(tx: Tx) -> tuple[Engagement, bool]:
            made = lifecycle.create_once(tx, spec, key, digest)
            return tx.view(made.engagement), made.new

        view, new = await node.run(create_once)
    server = node.dir.server
    consumer_token = issue(server.secret or "", view.id, "consumer", server.consumer_token_ttl_s, node.clock())
    created = CreatedEngagement(**{f: getattr(view, f) for f in view.__struct_fields__}, consumer_token=consumer_token)
    return json_response(created, 201 if new else 200)


async def add_transcript(request: Request) -> Response:
    require_key(request)
    body = await read_body(request, TranscriptBatch)
    node = _node(request)
    eid = request.path_params["id"]
    fragments = await node.run(lambda tx: lifecycle.add_fragments(tx, eid, body.fragments))
    return json_response(TranscriptAccepted(accepted=len(fragments), fragments=[f.id for f in fragments]), 202)


async def add_message(request: Request) -> Response:
    require_key(request)
    body = await read_body(request, MessageIn)
    node = _node(request)
    eid = request.path_params["id"]
    message = await node.run(lambda tx: lifecycle.consumer_message(tx, eid, body.text, body.subject, body.sender))
    return json_response(MessageAccepted(id=message.id), 202)


async def get_engagement(request: Request) -> Response:
    require_reader(request)
    node = _node(request)
    eid = request.path_params["id"]
    view = await node.engagement(eid)
    if view is None:
        raise ApiError(ErrorCode.NOT_FOUND, f"No engagement {eid!r}")
    return json_response(view)


async def get_transcript(request: Request) -> Response:
    """The whole transcript so far, for a desktop that reloads mid-call."""
    require_reader(request)
    node = _node(request)
    eid = request.path_params["id"]
    if await node.store.engagement(eid) is None:
        raise ApiError(ErrorCode.NOT_FOUND, f"No engagement {eid!r}")
    return json_response(TranscriptView(engagement=eid, fragments=await node.store.transcript(eid)))


async def end_engagement(request: Request) -> Response:
    require_key(request)
    node = _node(request)
    eid = request.path_params["id"]
    return json_response(await node.run(lambda tx: tx.view(lifecycle.consumer_end(tx, eid))))


def _queue_info(node: Node, queue_id: str, figures: Figures) -> QueueInfo:
    q = node.dir.queues[queue_id]
    return QueueInfo(
        id=q.id,
        name=q.title,
        channel=q.channel,
        acceptance=q.acceptance,
        strategy=q.strategy,
        ring_timeout_s=q.ring_timeout_s,
        wrap_up_s=q.wrap_up_s,
        dispositions=[DispositionInfo(code=d.code, label=d.label or d.code) for d in q.dispositions],
        disposition_required=q.disposition_required,
        transcription=q.transcription,
        overflow_queue=q.overflow.queue if q.overflow else None,
        overflow_after_s=q.overflow.after_s if q.overflow else None,
        stats=QueueStats(
            waiting=figures.waiting,
            longest_wait_s=figures.longest_wait_s,
            agents=figures.agents,
            available=figures.available,
        ),
    )


async def list_queues(request: Request) -> Response:
    require_reader(request)
    node = _node(request)
    figures = await all_figures(node.dir, node.store, node.clock())
    return json_response([_queue_info(node, qid, f) for qid, f in figures.items()])


async def get_queue(request: Request) -> Response:
    require_reader(request)
    node = _node(request)
    qid = request.path_params["id"]
    if qid not in node.dir.queues:
        raise ApiError(ErrorCode.NOT_FOUND, f"No queue {qid!r}")
    return json_response(_queue_info(node, qid, (await all_figures(node.dir, node.store, node.clock()))[qid]))


def _agent_info(node: Node, agent_id: str, rec: AgentRec | None, reader: Reader) -> AgentInfo:
    cfg = node.dir.agents[agent_id]
    rec = rec or AgentRec(id=agent_id)
    personal = reader.sees_personal_data_of(agent_id)
    return AgentInfo(
        id=agent_id,
        name=cfg.title,
        queues=[MembershipInfo(id=m.id, priority=m.priority) for m in cfg.memberships()],
        capacity={str(ch): n for ch, n in cfg.capacity.items()},
        status=rec.status,
        reason=rec.reason if personal else None,
        activity=activity(rec),
        next_status=rec.next.status if rec.next else None,
        next_reason=rec.next.reason if rec.next and personal else None,
        connected=rec.connected,
        engagements=list(rec.holds),
        offers=list(rec.offers),
    )


async def list_agents(request: Request) -> Response:
    reader = require_reader(request)
    node = _node(request)
    records = await node.store.agents(list(node.dir.agents))
    return json_response([_agent_info(node, a, rec, reader) for a, rec in zip(node.dir.agents, records, strict=True)])


async def get_agent(request: Request) -> Response:
    reader = require_reader(request)
    node = _node(request)
    aid = request.path_params["id"]
    if aid not in node.dir.agents:
        raise ApiError(ErrorCode.NOT_FOUND, f"No agent {aid!r}")
    rec = await node.store.agent(aid) or AgentRec(id=aid)
    history = None
    if reader.sees_personal_data_of(aid):
        history = [
            StatusChange(at=h.at, actor=h.actor, status=h.status, reason=h.reason, deferred=h.deferred)
            for h in rec.history
        ]
    return json_response(AgentDetail(**msgspec.structs.asdict(_agent_info(node, aid, rec, reader)), history=history))


async def demo_people(request: Request) -> Response:
    """The demo's sign-in picker: every agent and supervisor with a fresh token. Routed only under
    `switchboard demo` and `serve --demo` (see `demo_routes`); anywhere else the path is a 404."""
    node = _node(request)
    server = node.dir.server
    now = node.clock()

    def person(id: str, name: str, role: Role) -> Person:
        return Person(id=id, name=name, role=role, token=issue(server.secret or "", id, role, server.token_ttl_s, now))

    agents = [person(a.id, a.title, "agent") for a in node.dir.agents.values()]
    supervisors = [person(s.id, s.name or s.id, "supervisor") for s in node.dir.supervisors.values()]
    return json_response(DemoPeople(enabled=True, agents=agents, supervisors=supervisors))


async def metrics(request: Request) -> Response:
    """Prometheus text: this node's counters, its sockets, and every queue's waiting figures. Open to
    anyone unless `server.metrics_need_key` (they hold counts, no names or conversations)."""
    node = _node(request)
    if node.dir.server.metrics_need_key:
        require_key(request)
    try:
        figures = await all_figures(node.dir, node.store, node.clock())
    except Refused:
        figures = {}
    body = node.metrics.render((s.role for s in node.sessions), figures)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


async def healthz(request: Request) -> Response:
    return json_response(Health(status="ok"))


async def readyz(request: Request) -> Response:
    node = _node(request)
    problems = []
    if not await node.store.ping():
        problems.append("store unreachable")
    if not await node.broker.ping():
        problems.append("broker not subscribed")
    if problems:
        return error_response(ErrorCode.UNAVAILABLE, "; ".join(problems), 503)
    return json_response(Health(status="ready"))


async def openapi_document(request: Request) -> Response:
    """This API's OpenAPI document, generated from the Structs (docs/openapi.json is its committed copy)."""
    from server.openapi import document_bytes  # here, not at the top: server.openapi reads STATUS_OF above

    return Response(document_bytes(), media_type="application/json")


async def on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.code, exc.message, exc.status)


async def on_refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return error_response(exc.code, exc.message)


HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request", 413: "too_large"}


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    return json_response(ErrorBody(code=code, message=str(exc.detail)), exc.status_code)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    return error_response(ErrorCode.INTERNAL, "internal error; it has been logged", 500)


routes = [
    Route("/v1/engagements", create_engagement, methods=["POST"]),
    Route("/v1/engagements/{id}", get_engagement, methods=["GET"]),
    Route("/v1/engagements/{id}/end", end_engagement, methods=["POST"]),
    Route("/v1/engagements/{id}/transcript", add_transcript, methods=["POST"]),
    Route("/v1/engagements/{id}/transcript", get_transcript, methods=["GET"]),
    Route("/v1/engagements/{id}/messages", add_message, methods=["POST"]),
    Route("/v1/queues", list_queues, methods=["GET"]),
    Route("/v1/queues/{id}", get_queue, methods=["GET"]),
    Route("/v1/agents", list_agents, methods=["GET"]),
    Route("/v1/agents/{id}", get_agent, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/openapi.json", openapi_document, methods=["GET"]),
]

demo_routes = [Route("/v1/demo/people", demo_people, methods=["GET"])]
"""Only for `switchboard demo` and `serve --demo`: a token for anyone who asks."""
