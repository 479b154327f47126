"""OpenAPI 3.1 description of the HTTP API, generated from the Structs in `protocol/http.py`.

The body schemas come from the same Structs the handlers decode and encode, so a field added there
shows up here at once. What the Structs cannot say (which route needs which credential, which error
codes each handler can answer) is the table below, kept next to the codes' HTTP statuses
(`STATUS_OF`) so a status changed there changes here too. `tests/test_openapi.py` runs schemathesis
against the app with this document, so a handler whose answers drift from the table fails the suite;
`tests/test_docs.py` pins the committed copy, `docs/openapi.json`.
"""

from __future__ import annotations

import copy
import functools
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal

from protocol import VERSION
from protocol.codes import ERROR_HELP, ErrorCode
from protocol.http import (
    AgentDetail,
    AgentInfo,
    CreatedEngagement,
    CreateEngagement,
    ErrorBody,
    Health,
    MessageAccepted,
    MessageIn,
    QueueInfo,
    TranscriptAccepted,
    TranscriptBatch,
    TranscriptView,
)
from protocol.model import Engagement
from protocol.schema import components as schema_components
from server.transport.http import STATUS_OF

REF = "#/components/schemas/{name}"
JSON = "application/json"

Security = Literal["key", "reader", "none"]

# every route can fail unexpectedly; every route that reads the store can find it unreachable
_ALWAYS = (ErrorCode.INTERNAL,)
_STORE = (ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL)
_BODY = (ErrorCode.INVALID_BODY, ErrorCode.INVALID_FIELD, ErrorCode.TOO_LARGE)
_READER = (ErrorCode.UNAUTHORIZED, ErrorCode.FORBIDDEN)

_SECURITY: dict[Security, list[dict[str, list[str]]]] = {
    "key": [{"apiKey": []}],
    "reader": [{"apiKey": []}, {"token": []}],
    "none": [],
}


@dataclass(frozen=True)
class Operation:
    """One route and method: what it takes, what it answers, and every error code its handler can raise."""

    method: str
    path: str
    operation_id: str
    tag: str
    summary: str
    status: int
    answer: Any  # a Struct type or a container of them; None for a non-JSON answer (see `media`)
    errors: tuple[ErrorCode, ...]
    security: Security = "none"
    body: Any = None
    description: str = ""
    media: str = JSON
    example: dict[str, Any] | None = None
    links: tuple[str, ...] = ()
    headers: tuple[dict[str, Any], ...] = ()


_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "Any string of up to 255 characters, unique per request the caller means to make once. The same key "
        "within 24 h answers `200` with the engagement it made (as it is now, with a fresh `consumer_token`), "
        "so a retry after a timeout never creates a second one; the same key with another body is "
        "`422 idempotency_mismatch`."
    ),
    "schema": {"type": "string", "maxLength": 255},
}

_ID = "/v1/engagements/{id}"

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "post",
        "/v1/engagements",
        "createEngagement",
        "ingest",
        "Hand a consumer over: create an engagement, queue it and route it at once",
        201,
        CreatedEngagement,
        (
            ErrorCode.UNAUTHORIZED,
            *_BODY,
            ErrorCode.UNKNOWN_QUEUE,
            ErrorCode.QUEUE_FULL,
            ErrorCode.IDEMPOTENCY_MISMATCH,
            ErrorCode.INVALID_STATE,
            *_STORE,
        ),
        security="key",
        body=CreateEngagement,
        headers=(_IDEMPOTENCY_KEY,),
        description=(
            "Answers with the engagement, already routed (its `state` may be `offered`, `active` or "
            "`assigned`), and the `consumer_token` its consumer's socket (`/v1/consumer/{id}`) signs in with. "
            "`body` (with `subject`) is the first inbound message, for email. With an `Idempotency-Key` "
            "already used in the last 24 h: `200` and the engagement that key made."
        ),
        example={
            "queue": "support-voice",
            "consumer": {"phone": "+33612345678"},
            "variables": {"intent": "billing"},
            "summary": "Wants a refund",
            "priority": 0,
        },
        links=("getEngagement", "endEngagement", "addTranscript", "getTranscript", "addMessage"),
    ),
    Operation(
        "get",
        _ID,
        "getEngagement",
        "engagements",
        "The engagement with its history",
        200,
        Engagement,
        (ErrorCode.UNAUTHORIZED, ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND, *_STORE),
        security="reader",
    ),
    Operation(
        "post",
        f"{_ID}/end",
        "endEngagement",
        "ingest",
        "The consumer hung up or left",
        200,
        Engagement,
        (ErrorCode.UNAUTHORIZED, ErrorCode.NOT_FOUND, *_STORE),
        security="key",
        description=(
            "Waiting or ringing: `abandoned`; talking: `wrap_up`. An email already in an agent's open list "
            "stays there for its agent to resolve (a thread cannot be hung up): its history records that the "
            "consumer ended it. Ending an engagement that is already over (or an email the consumer already "
            "ended) changes nothing and answers it again, so a flow may retry."
        ),
    ),
    Operation(
        "post",
        f"{_ID}/transcript",
        "addTranscript",
        "ingest",
        "Add live transcript fragments",
        202,
        TranscriptAccepted,
        (
            ErrorCode.UNAUTHORIZED,
            *_BODY,
            ErrorCode.NOT_FOUND,
            ErrorCode.NOT_ENABLED,
            ErrorCode.INVALID_STATE,
            ErrorCode.LIMIT_REACHED,
            *_STORE,
        ),
        security="key",
        body=TranscriptBatch,
        description=(
            "A fragment without `id` gets one; a `final` fragment replaces the partial with the same `id`, "
            "or, without an id, that speaker's latest partial. Only for queues with transcription on, and "
            "engagements not over. A transcript holds at most `limits.transcript_fragments` fragments and "
            "`limits.transcript_bytes` bytes: a batch that would go past either is refused whole "
            "(`413 limit_reached`)."
        ),
        example={"fragments": [{"speaker": "consumer", "text": "Bonjour, c'est pour un remboursement", "final": True}]},
    ),
    Operation(
        "get",
        f"{_ID}/transcript",
        "getTranscript",
        "engagements",
        "The whole transcript so far",
        200,
        TranscriptView,
        (ErrorCode.UNAUTHORIZED, ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND, *_STORE),
        security="reader",
    ),
    Operation(
        "post",
        f"{_ID}/messages",
        "addMessage",
        "ingest",
        "The consumer's chat line or email reply",
        202,
        MessageAccepted,
        (
            ErrorCode.UNAUTHORIZED,
            *_BODY,
            ErrorCode.NOT_FOUND,
            ErrorCode.NOT_ENABLED,
            ErrorCode.INVALID_STATE,
            ErrorCode.LIMIT_REACHED,
            *_STORE,
        ),
        security="key",
        body=MessageIn,
        description=(
            "Kept in the thread and pushed to the agent handling it; `sender` defaults to the consumer's "
            "name or email. Chat and email only, and not after the conversation ended. A thread holds at most "
            "`limits.thread_messages` messages and `limits.thread_bytes` bytes (`413 limit_reached`)."
        ),
        example={"text": "Is anyone there?"},
    ),
    Operation(
        "get",
        "/v1/queues",
        "listQueues",
        "directory",
        "Every queue: configuration and live figures",
        200,
        list[QueueInfo],
        (*_READER, *_STORE),
        security="reader",
    ),
    Operation(
        "get",
        "/v1/queues/{id}",
        "getQueue",
        "directory",
        "One queue: configuration and live figures",
        200,
        QueueInfo,
        (*_READER, ErrorCode.NOT_FOUND, *_STORE),
        security="reader",
    ),
    Operation(
        "get",
        "/v1/agents",
        "listAgents",
        "directory",
        "Every agent: queues, capacity and live status",
        200,
        list[AgentInfo],
        (*_READER, *_STORE),
        security="reader",
        description=(
            "An agent's `reason` and `next_reason` (why they are not ready) are personal data: shown to the API "
            "key, supervisors and the agent themself; `null` to other agents."
        ),
    ),
    Operation(
        "get",
        "/v1/agents/{id}",
        "getAgent",
        "directory",
        "One agent: queues, capacity, live status and status history",
        200,
        AgentDetail,
        (*_READER, ErrorCode.NOT_FOUND, *_STORE),
        security="reader",
        description=(
            "As in the listing, plus `history`: the agent's latest status changes (up to 50, oldest first), "
            "each with who made it (`agent:<id>`, `supervisor:<id>` or `system`) and whether it was deferred "
            "as the next status. A supervisor's change of an agent's status is recorded there. Reasons and "
            "history are personal data: for the API key, supervisors and the agent themself (`history: null` "
            "and no reasons for another agent)."
        ),
    ),
    Operation(
        "get",
        "/metrics",
        "metrics",
        "operations",
        "Prometheus metrics of this node",
        200,
        None,
        (ErrorCode.UNAUTHORIZED, *_ALWAYS),
        media="text/plain",
        description=(
            "Prometheus text exposition format (version 0.0.4). Counters are per node. Open by default (counts "
            "only: no names, no conversations); with `server.metrics_need_key` it needs the API key."
        ),
    ),
    Operation("get", "/healthz", "healthz", "operations", "The process runs", 200, Health, _ALWAYS),
    Operation(
        "get",
        "/readyz",
        "readyz",
        "operations",
        "The node can serve: its store and broker answer",
        200,
        Health,
        _STORE,
    ),
    Operation(
        "get",
        "/openapi.json",
        "openapi",
        "meta",
        "This document",
        200,
        None,
        _ALWAYS,
        description="Generated from the Structs; `switchboard openapi` prints the same document.",
    ),
)

# name, description, example (the demo configuration's, which the schemathesis test configures too)
_PARAMETERS = {
    _ID: ("EngagementId", "The engagement's id, as `POST /v1/engagements` answered it", None),
    "/v1/queues/{id}": ("QueueId", "A queue's id, from the configuration", "support-voice"),
    "/v1/agents/{id}": ("AgentId", "An agent's id, from the configuration", "alice"),
}

_TAGS = [
    {"name": "ingest", "description": "Flows, IVRs, chatbots, gateways and media servers hand work over (API key)."},
    {"name": "engagements", "description": "Reading engagements (API key, or an agent's or supervisor's token)."},
    {
        "name": "directory",
        "description": "Queues and agents with live figures (API key, or any agent's or supervisor's token).",
    },
    {"name": "operations", "description": "Health, readiness and metrics for orchestrators and Prometheus."},
    {"name": "meta", "description": "This description of the API."},
]


def _parameter(path: str) -> dict[str, str] | None:
    for prefix, (name, _, _) in _PARAMETERS.items():
        if path.startswith(prefix):
            return {"$ref": f"#/components/parameters/{name}"}
    return None


def _path_parameter(description: str, example: str | None) -> dict[str, Any]:
    parameter = {"name": "id", "in": "path", "required": True, "description": description, "schema": {"type": "string"}}
    if example is not None:
        parameter["example"] = example
    return parameter


def _errors(codes: tuple[ErrorCode, ...], error_ref: dict[str, str]) -> dict[str, Any]:
    """One response per status, its body `ErrorBody` with `code` narrowed to what that status can carry."""
    by_status: dict[int, list[ErrorCode]] = defaultdict(list)
    for code in codes:
        by_status[STATUS_OF[code]].append(code)
    responses: dict[str, Any] = {}
    for status in sorted(by_status):
        group = by_status[status]
        narrowed = {"properties": {"code": {"enum": [str(c) for c in group]}}}
        responses[str(status)] = {
            "description": " ".join(f"`{c}`: {ERROR_HELP[c]}" for c in group),
            "content": {JSON: {"schema": {"allOf": [error_ref, narrowed]}}},
        }
    return responses


def _operation(op: Operation, schemas: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    if op.answer is not None:
        answer: dict[str, Any] = {"schema": schemas[op.answer]}
    elif op.media == JSON:
        answer = {"schema": {"type": "object"}}
    else:
        answer = {"schema": {"type": "string"}}
    success: dict[str, Any] = {"description": op.summary, "content": {op.media: answer}}
    if op.links:
        success["links"] = {
            target: {"operationId": target, "parameters": {"id": "$response.body#/id"}} for target in op.links
        }
    doc: dict[str, Any] = {
        "operationId": op.operation_id,
        "tags": [op.tag],
        "summary": op.summary,
        "security": _SECURITY[op.security],
        "responses": {str(op.status): success, **_errors(op.errors, schemas[ErrorBody])},
    }
    if op.description:
        doc["description"] = op.description
    # copies: a caller may change the document it gets (schemathesis does), never the table
    parameters = [p for p in (_parameter(op.path), *copy.deepcopy(op.headers)) if p is not None]
    if parameters:
        doc["parameters"] = parameters
    if op.body is not None:
        media: dict[str, Any] = {"schema": schemas[op.body]}
        if op.example is not None:
            media["example"] = copy.deepcopy(op.example)
        doc["requestBody"] = {"required": True, "content": {JSON: media}}
    return doc


def openapi() -> dict[str, Any]:
    """The document, built fresh: `document_bytes` is the cached form the app serves."""
    kinds = [ErrorBody]
    for op in OPERATIONS:
        kinds += [k for k in (op.answer, op.body) if k is not None and k not in kinds]
    refs, components = schema_components(kinds, ref_template=REF)
    schemas = dict(zip(kinds, refs, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Switchboard HTTP API",
            "version": VERSION,
            "description": (
                "Ingest for flows (`Authorization: Bearer <api key>`), read-only views of queues, agents and "
                "engagements, and health. Every error is JSON `{code, message}` with a fitting status; the "
                "codes and what to do about each are in docs/protocol.md. The WebSocket protocol (agents, "
                "supervisors, consumers, media servers) is described by `switchboard asyncapi`."
            ),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": _TAGS,
        "paths": paths,
        "components": {
            "schemas": components,
            "parameters": {name: _path_parameter(text, example) for name, text, example in _PARAMETERS.values()},
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An ingest key: one of `server.api_keys`, or `SWITCHBOARD_API_KEY`.",
                },
                "token": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A signed-in agent's or supervisor's token (`switchboard token ID`).",
                },
            },
        },
    }


@functools.cache
def document_bytes() -> bytes:
    """The document as served at `GET /openapi.json`: it only changes with the code, so it is built once."""
    return json.dumps(openapi(), sort_keys=True).encode()
