"""AsyncAPI 3.0 description of the WebSocket protocol, generated from the frame Structs.

The payloads are the Structs' own JSON Schemas, so they cannot drift from the code; what a Struct
cannot say (which socket takes which frames, who sends what, which credential opens it) is the
`CHANNELS` table, checked against the unions in `protocol/frames.py` by tests/test_docs.py.

msgspec writes OpenAPI-flavoured JSON Schema (2020-12), while the default AsyncAPI schema format is
JSON Schema draft-07 with a string `discriminator`; `_draft07` bridges the two so that AsyncAPI tools
read the payloads as they are meant.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import msgspec

from protocol import VERSION
from protocol.codec import SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK, SUBPROTOCOLS
from protocol.codes import CLOSE_HELP
from protocol.frames import (
    AGENT_ACTIONS,
    SUPERVISOR_ACTIONS,
    Accept,
    AgentState,
    Client,
    Closing,
    Conversation,
    Decline,
    Disposition,
    End,
    EngagementEvent,
    Error,
    ForceEnd,
    ForceTransfer,
    ForceWrapUpDone,
    Hello,
    Ingest,
    IngestHello,
    IngestPing,
    IngestTranscript,
    MessageEvent,
    Note,
    Ok,
    Open,
    Ping,
    Pong,
    QueueStats,
    Release,
    Reply,
    Ring,
    RingCancelled,
    Search,
    SearchResult,
    Send,
    Server,
    SetAgentStatus,
    SetStatus,
    StatusEvent,
    Transcript,
    Transfer,
    Unwatch,
    Watch,
    Welcome,
    WrapUpDone,
)
from protocol.schema import components

REF = "#/components/schemas/{name}"

_REPLIES_TO_PEOPLE = (Welcome, Ok, Error, Pong)
_AGENT_TAIL = (MessageEvent, StatusEvent, Closing)


@dataclass(frozen=True)
class Socket:
    """One WebSocket endpoint: the frames it takes, the frames it sends, and who may open it."""

    key: str
    address: str
    title: str
    description: str
    takes: tuple[type[msgspec.Struct], ...]
    sends: tuple[type[msgspec.Struct], ...]
    security: tuple[str, ...]
    parameters: tuple[tuple[str, str], ...] = ()


CHANNELS: tuple[Socket, ...] = (
    Socket(
        "agent",
        "/v1/agent",
        "Agents' desktops",
        "Rings, engagements, transcript and status pushed to an agent; the agent's actions in. Events carry "
        "the agent's `seq`; reconnect with `hello {resume_from}` to get what was missed.",
        (Hello, Ping, *AGENT_ACTIONS),
        (*_REPLIES_TO_PEOPLE, SearchResult, Ring, RingCancelled, EngagementEvent, Transcript, *_AGENT_TAIL),
        ("token",),
    ),
    Socket(
        "supervisor",
        "/v1/supervisor",
        "Supervisors' consoles",
        "Every agent's state and every queue's figures live, watched engagements in full, and the acts a "
        "supervisor may take where agents get stuck (each recorded in the engagement's history). An agent "
        "frame sent here is answered `error {code: forbidden}`.",
        (Hello, Ping, *SUPERVISOR_ACTIONS),
        (*_REPLIES_TO_PEOPLE, AgentState, QueueStats, EngagementEvent, Transcript, MessageEvent, Closing),
        ("token",),
    ),
    Socket(
        "consumer",
        "/v1/consumer/{engagement}",
        "The consumer's chat or email page",
        "Where the consumer's conversation stands and its thread, never notes, profile or history; the "
        "consumer writes with `send` (their own engagement only).",
        (Hello, Ping, Send),
        (*_REPLIES_TO_PEOPLE, Conversation, MessageEvent, Closing),
        ("consumerToken",),
        (("engagement", "The engagement's id, as `POST /v1/engagements` answered it with the `consumer_token`."),),
    ),
    Socket(
        "ingest",
        "/v1/ingest",
        "Media servers streaming transcript",
        "Each `transcript` is applied like `POST /v1/engagements/{id}/transcript` and answered `ok` or "
        "`error`; the socket stays open across engagements and is not rate limited.",
        (IngestHello, IngestTranscript, IngestPing),
        (*_REPLIES_TO_PEOPLE, Closing),
        ("apiKeyHeader", "apiKeyQuery"),
    ),
)

_SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "token": {
        "type": "httpApiKey",
        "in": "query",
        "name": "token",
        "description": "An agent's or supervisor's signed token (`switchboard token ID [--role supervisor]`), as "
        "`?token=` (browsers) or in the first frame, `hello {token}`. A bad or expired token closes the socket "
        "with 4401; a role that does not fit the path, with 4403.",
    },
    "consumerToken": {
        "type": "httpApiKey",
        "in": "query",
        "name": "token",
        "description": "The engagement's `consumer_token` (from `POST /v1/engagements`), as `?token=` or in "
        "`hello {token}`.",
    },
    "apiKeyHeader": {
        "type": "http",
        "scheme": "bearer",
        "description": "The ingest API key as `Authorization: Bearer <key>` (or in `hello {token}`).",
    },
    "apiKeyQuery": {"type": "httpApiKey", "in": "query", "name": "token", "description": "The ingest API key."},
}


# For the frames whose Struct has no docstring; protocol.md has the full story of each.
SUMMARIES: dict[type[msgspec.Struct], str] = {
    Hello: "First frame on every socket: the token (unless in the URL) and, on reconnect, the last seq seen.",
    Ping: "Keep-alive; always answered `pong` with the server's time.",
    SetStatus: "Go ready or not_ready; while in a live engagement or its wrap-up it becomes the next status.",
    Accept: "Take one of your running offers.",
    Decline: "Turn down one of your running offers; it goes on to the next eligible agent.",
    Note: "Replace the engagement's notes (at most 64 KiB); no event.",
    Disposition: "Set the engagement's dispositions, each one of the queue's; `[]` clears them.",
    Search: "Search the transcript of an engagement you hold; answered `search_result`.",
    Send: "A chat line or email reply to the consumer (chat and email only).",
    End: "End the conversation: a live engagement goes to wrap_up, an email is resolved.",
    WrapUpDone: "Finish wrap-up; the engagement is closed and the agent free.",
    Open: "Open an assigned email from the open list.",
    Transfer: "Hand the engagement to a queue or to an agent (exactly one of the two).",
    Release: "Give the engagement back to its queue, with its place in line.",
    Watch: "Follow an engagement: its snapshot, transcript so far, then every change until `unwatch`.",
    Unwatch: "Stop following an engagement.",
    SetAgentStatus: "Set an agent's status (an agent not signed in cannot be made ready).",
    ForceWrapUpDone: "Finish an agent's wrap-up, no disposition needed.",
    ForceEnd: "End an engagement in any state but over.",
    ForceTransfer: "Transfer an engagement from any state but over.",
    IngestHello: "First frame: the ingest key, unless sent as a header or in the URL.",
    IngestTranscript: "Transcript fragments for an engagement, applied like the HTTP transcript call.",
    IngestPing: "Keep-alive; answered `pong`.",
    Error: "A request failed, or a frame could not be read; `code` says what to do.",
    Pong: "The answer to `ping`, with the server's time (to correct for clock skew).",
    SearchResult: "The answer to `search`: hits in transcript order, with spans to highlight.",
    Ring: "An offer: accept it before `expires_at`. The engagement carries consumer, profile and variables.",
    RingCancelled: "A ring is over: declined, timeout, abandoned (the consumer left) or taken (ring-all).",
    EngagementEvent: "The engagement's full snapshot, on every change of state.",
    Transcript: "Transcript fragments in order; upsert by `id` (a final replaces its partial).",
    MessageEvent: "A line of a chat or email thread; `direction` is `in` (consumer) or `out` (agent).",
    StatusEvent: "The agent's status, reason or next status changed.",
    Closing: "The node is draining: reconnect, elsewhere, after `retry_after_ms`.",
    QueueStats: "A queue's figures changed (at most twice a second).",
    AgentState: "An agent's status, activity or engagements changed.",
}


def _summary(kind: type[msgspec.Struct]) -> str | None:
    if kind.__doc__:
        return inspect.cleandoc(kind.__doc__).split("\n\n")[0].replace("\n", " ")
    return SUMMARIES.get(kind)


def _tag(kind: type[msgspec.Struct]) -> str:
    return str(kind.__struct_config__.tag)


def _message(kind: type[msgspec.Struct], client: bool) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": _tag(kind),
        "title": _tag(kind),
        "payload": {"$ref": REF.format(name=kind.__name__)},
    }
    summary = _summary(kind)
    if summary:
        message["summary"] = summary
    if client:
        message["correlationId"] = {"$ref": "#/components/correlationIds/request"}
    elif issubclass(kind, Reply):
        message["correlationId"] = {"$ref": "#/components/correlationIds/reply"}
    return message


def _draft07(node: Any, *, properties: bool = False) -> Any:
    """msgspec's schema as AsyncAPI reads it: `discriminator` as its property name, tuples as item lists."""
    if isinstance(node, list):
        return [_draft07(item) for item in node]
    if not isinstance(node, dict):
        return node
    if properties:  # the keys are field names, not keywords
        return {name: _draft07(sub) for name, sub in node.items()}
    out = {key: _draft07(sub, properties=key == "properties") for key, sub in node.items()}
    if isinstance(out.get("discriminator"), dict):
        out["discriminator"] = out["discriminator"]["propertyName"]
    if "prefixItems" in out:
        out["items"] = out.pop("prefixItems")
        out["additionalItems"] = False
    return out


def _channel_ref(socket: Socket, kind: type[msgspec.Struct]) -> dict[str, str]:
    return {"$ref": f"#/channels/{socket.key}/messages/{kind.__name__}"}


def asyncapi() -> dict[str, Any]:
    """The whole document, from the server's point of view (AsyncAPI 3 describes one application)."""
    (client, server, ingest), schemas = components([Client, Server, Ingest], ref_template=REF)
    schemas = {"ClientFrame": client, "ServerFrame": server, "IngestFrame": ingest, **schemas}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for socket in CHANNELS:
        for kind in socket.takes:
            messages[kind.__name__] = _message(kind, client=True)
        for kind in socket.sends:
            messages.setdefault(kind.__name__, _message(kind, client=False))
        channel: dict[str, Any] = {
            "address": socket.address,
            "title": socket.title,
            "description": socket.description,
            "messages": {
                kind.__name__: {"$ref": f"#/components/messages/{kind.__name__}"}
                for kind in (*socket.takes, *socket.sends)
            },
            "bindings": {"$ref": "#/components/channelBindings/socket"},
        }
        if socket.parameters:
            channel["parameters"] = {name: {"description": text} for name, text in socket.parameters}
        channels[socket.key] = channel
        security = [{"$ref": f"#/components/securitySchemes/{name}"} for name in socket.security]
        here = {"$ref": f"#/channels/{socket.key}"}
        operations[f"{socket.key}Receive"] = {
            "action": "receive",
            "channel": here,
            "title": f"Frames the server takes on {socket.address}",
            "description": "The first frame is always `hello`. A frame with `id` gets exactly one reply with `re` "
            "equal to it; one without `id` is answered only when it fails (`error`, `re: null`) or is a `ping`.",
            "security": security,
            "messages": [_channel_ref(socket, kind) for kind in socket.takes],
            "reply": {
                "channel": here,
                "messages": [_channel_ref(socket, kind) for kind in socket.sends if issubclass(kind, Reply)],
            },
        }
        operations[f"{socket.key}Send"] = {
            "action": "send",
            "channel": here,
            "title": f"Frames the server sends on {socket.address}",
            "description": "Replies (with `re`, no `seq`) and events (with `seq`). Clients ignore fields and event "
            "types they do not know: a v1 server may add them.",
            "security": security,
            "messages": [_channel_ref(socket, kind) for kind in socket.sends],
        }
    closes = "\n".join(f"- `{int(code)}`: {help}" for code, help in CLOSE_HELP.items())
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": f"Switchboard protocol {VERSION}",
            "version": VERSION,
            "description": (
                "The WebSocket side of Switchboard: agents, supervisors, consumers and media servers. Written "
                "from the server's point of view, as AsyncAPI 3 documents one application: `receive` "
                "operations are the frames clients send, `send` operations the frames the server sends. Every "
                "frame is an object whose `type` names it. The HTTP API is described by `switchboard openapi` "
                "(`GET /openapi.json`); the whole protocol, in prose, in docs/protocol.md.\n\n"
                f"Close codes the server uses:\n{closes}"
            ),
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "localhost:8000",
                "protocol": "ws",
                "title": "A node started with `switchboard serve` (use `wss` behind TLS)",
                "description": (
                    f"Two subprotocols (`Sec-WebSocket-Protocol`): `{SUBPROTOCOL_JSON}`, the default, carries "
                    f"JSON in text frames; `{SUBPROTOCOL_MSGPACK}` carries the same frames as MessagePack in "
                    "binary frames. The server picks the client's first supported choice; a client offering only "
                    "unknown subprotocols is closed with 4400."
                ),
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": {name: _draft07(schema) for name, schema in schemas.items()},
            "messages": messages,
            "securitySchemes": _SECURITY_SCHEMES,
            "correlationIds": {
                "request": {
                    "description": "A request's `id`, echoed as `re` by its reply.",
                    "location": "$message.payload#/id",
                },
                "reply": {"description": "The `id` of the request this answers.", "location": "$message.payload#/re"},
            },
            "channelBindings": {
                "socket": {
                    "ws": {
                        "method": "GET",
                        "query": {
                            "type": "object",
                            "properties": {"token": {"type": "string", "description": "The credential, for browsers."}},
                        },
                        "headers": {
                            "type": "object",
                            "properties": {"Sec-WebSocket-Protocol": {"type": "string", "enum": list(SUBPROTOCOLS)}},
                        },
                        "bindingVersion": "0.1.0",
                    }
                }
            },
        },
    }
