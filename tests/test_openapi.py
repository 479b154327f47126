"""The HTTP API answers as its OpenAPI document says: schemathesis drives the app in-process.

Requests are generated from the document (valid ones and broken ones) and sent with the ingest key;
every answer must be a documented status, with the documented content type and body, and never a 5xx.
Each operation alone, then sequences that follow the document's links (create an engagement, then
read, end, transcribe or write to it), so the success paths of the per-engagement routes are checked
too. Generation is bounded and derandomized: a run takes seconds and a failure repeats.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import hypothesis
import jsonschema_rs
import pytest
import schemathesis
from schemathesis.checks import (  # registered checks, resolved through the module's __getattr__
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.definitions import OPENAPI_31  # the 3.1 meta-schema schemathesis ships
from starlette.routing import Route

from server.app import create_app
from server.config import Config
from server.openapi import openapi
from server.transport import http
from tests.support import API_KEY, agent, make_config, voice_queue

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
QUEUES = ("support-voice", "sales-chat", "care-email")


def center() -> Config:
    """The queue and agent ids the document's examples use, so example requests reach the success paths."""
    return make_config(
        [
            voice_queue("support-voice", transcription=True, dispositions=[{"code": "resolved"}]),
            {"id": "sales-chat", "channel": "chat", "acceptance": "auto"},
            {"id": "care-email", "channel": "email"},
        ],
        [agent("alice", "support-voice", "sales-chat", "care-email"), agent("bob", "support-voice")],
    )


app = create_app(center())
# Loaded from the generator rather than with `from_asgi("/openapi.json", app)`: that would start the app
# (its lifespan, on schemathesis's own event loop) while pytest merely collects this module, and the
# lazy `schemathesis.pytest.from_fixture` fails on pytest 9.2 (it sets `request.node._nodeid`).
# `test_the_app_serves_the_document` checks that `/openapi.json` is this same document.
schema = schemathesis.openapi.from_dict(openapi())
schema.app = app
schema.config.update(headers={"Authorization": f"Bearer {API_KEY}"})
schema.config.generation.update(max_examples=25, deterministic=True)


@pytest.fixture(scope="module", autouse=True)
def _stop_app() -> Iterator[None]:
    yield
    shutdown_lifespans()  # the app's timers and store, started by the in-process client on its own loop


@schema.parametrize()
def test_every_operation_answers_as_documented(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=CHECKS)


class Linked(schema.as_state_machine()):  # type: ignore[misc]
    """Follows the links; a generated queue id names one of the center's queues (by its length), since a
    random one is almost never a configured queue and the chain would stop at `422 unknown_queue`."""

    def before_call(self, case: schemathesis.Case) -> None:
        body = case.body
        if case.operation.label == "POST /v1/engagements" and isinstance(body, dict):
            queue = body.get("queue")
            if isinstance(queue, str):
                case.body = body = {**body, "queue": QUEUES[len(queue) % len(QUEUES)]}
            if case.headers and "Idempotency-Key" in case.headers:
                # the app outlives each example: a key drawn twice would answer 200 the second time, and
                # hypothesis, replaying a case, would see the chain of calls change under it
                case.headers["Idempotency-Key"] = uuid.uuid4().hex

    def validate_response(self, response: schemathesis.Response, case: schemathesis.Case, **kwargs: object) -> None:
        case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs or None)


def test_linked_operations_answer_as_documented() -> None:
    settings = hypothesis.settings(
        max_examples=30, stateful_step_count=8, derandomize=True, database=None, deadline=None
    )
    Linked.run(settings=settings)


async def test_the_app_serves_the_document() -> None:
    transport = httpx.ASGITransport(app=create_app(center()))
    async with httpx.AsyncClient(transport=transport, base_url="http://switchboard") as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.json() == json.loads(json.dumps(openapi()))


def test_the_document_is_valid_openapi_3_1() -> None:
    errors = [str(e) for e in jsonschema_rs.validator_for(OPENAPI_31).iter_errors(openapi())]
    assert not errors


def test_every_route_is_documented() -> None:
    served = {(method.lower(), r.path) for r in http.routes if isinstance(r, Route) for method in r.methods or ()}
    documented = {(method, path) for path, item in openapi()["paths"].items() for method in item}
    assert documented == {(method, path) for method, path in served if method != "head"}
