"""Error codes and WebSocket close codes: the one place a client learns what went wrong and what to do.

Every `error` frame and every HTTP error body carries one `ErrorCode`; every close the server initiates
uses one `CloseCode`. `ERROR_HELP` and `CLOSE_HELP` say whether the client should retry, and are
published in docs/protocol.md, so a client author can write the whole handling table from them.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    BAD_FRAME = "bad_frame"
    INVALID_BODY = "invalid_body"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_FIELD = "invalid_field"
    HELLO_REQUIRED = "hello_required"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    NOT_YOURS = "not_yours"
    INVALID_STATE = "invalid_state"
    UNKNOWN_QUEUE = "unknown_queue"
    UNKNOWN_AGENT = "unknown_agent"
    UNKNOWN_DISPOSITION = "unknown_disposition"
    DISPOSITION_REQUIRED = "disposition_required"
    NO_CAPACITY = "no_capacity"
    NOT_ENABLED = "not_enabled"
    TOO_LARGE = "too_large"
    LIMIT_REACHED = "limit_reached"
    IDEMPOTENCY_MISMATCH = "idempotency_mismatch"
    RATE_LIMITED = "rate_limited"
    QUEUE_FULL = "queue_full"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


ERROR_HELP: dict[ErrorCode, str] = {
    ErrorCode.BAD_FRAME: "The frame is not valid JSON/MessagePack or not an object. Fix the client; do not retry.",
    ErrorCode.INVALID_BODY: "The HTTP body is not valid JSON. Fix the caller; do not retry.",
    ErrorCode.UNKNOWN_TYPE: "The `type` is not a frame this endpoint knows. Fix the client; do not retry.",
    ErrorCode.INVALID_FIELD: "A field is missing, unknown or of the wrong type; `message` names it. Do not retry.",
    ErrorCode.HELLO_REQUIRED: "The first frame on a socket must be `hello`. Send `hello`, then retry.",
    ErrorCode.UNAUTHORIZED: "Missing, bad or expired credentials. Get a new token or key; then retry.",
    ErrorCode.FORBIDDEN: "Your role may not do this (a supervisor sending an agent action, or the reverse).",
    ErrorCode.NOT_FOUND: "No such offer or engagement (or it is over). Refresh your view; do not retry.",
    ErrorCode.NOT_YOURS: "The offer or engagement belongs to another agent. Do not retry.",
    ErrorCode.INVALID_STATE: "The action does not fit the current state (say, `end` on a ringing call). Refresh.",
    ErrorCode.UNKNOWN_QUEUE: "No queue with that id. Check the configuration; do not retry.",
    ErrorCode.UNKNOWN_AGENT: "No agent with that id. Check the configuration; do not retry.",
    ErrorCode.UNKNOWN_DISPOSITION: "A code is not among the queue's dispositions. Pick from the queue's list.",
    ErrorCode.DISPOSITION_REQUIRED: "The queue requires a disposition before wrap-up can finish. Send one first.",
    ErrorCode.NO_CAPACITY: "The target agent has no free capacity on that channel (or is not signed in).",
    ErrorCode.NOT_ENABLED: "The feature is off for this queue (say, transcription). Do not retry.",
    ErrorCode.TOO_LARGE: "The body, frame, note, message or fragment is larger than the server accepts. Send less.",
    ErrorCode.LIMIT_REACHED: (
        "The engagement holds as much as it may (thread, transcript: server limits); nothing was stored, "
        "and the engagement goes on. Do not retry."
    ),
    ErrorCode.IDEMPOTENCY_MISMATCH: (
        "The `Idempotency-Key` was used in the last 24 h for a different request. Use a new key for a new request."
    ),
    ErrorCode.RATE_LIMITED: "Too many requests. Back off, then retry.",
    ErrorCode.QUEUE_FULL: "The queue holds as many waiting engagements as it may. Retry later.",
    ErrorCode.UNAVAILABLE: "The node cannot serve this now (storage unreachable, draining). Retry, maybe elsewhere.",
    ErrorCode.INTERNAL: "A fault on the server; it was logged. Retry once; report it if it persists.",
}


class CloseCode(enum.IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013
    PROTOCOL_VIOLATION = 4400
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403
    HELLO_TIMEOUT = 4408
    RATE_LIMITED = 4429
    SLOW_CONSUMER = 4500
    DRAINING = 4503


CLOSE_HELP: dict[CloseCode, str] = {
    CloseCode.NORMAL: "Closed on request. Reconnect only if you want to.",
    CloseCode.GOING_AWAY: "The server is shutting down. Reconnect (with `resume_from`) after a short delay.",
    CloseCode.MESSAGE_TOO_BIG: "A frame exceeded the size limit. Fix the client; reconnect with smaller frames.",
    CloseCode.INTERNAL_ERROR: "A server fault. Reconnect with backoff and `resume_from`.",
    CloseCode.TRY_AGAIN_LATER: (
        "The node is at its connection limit, or cannot reach its store or broker. Reconnect with backoff, "
        "maybe elsewhere."
    ),
    CloseCode.PROTOCOL_VIOLATION: "The first frame was not `hello`, or the subprotocol is unsupported. Fix the client.",
    CloseCode.UNAUTHORIZED: "Missing, bad or expired token, or unknown agent. Get a new token before reconnecting.",
    CloseCode.FORBIDDEN: "The token's role does not fit this endpoint. Use the right endpoint; do not retry.",
    CloseCode.HELLO_TIMEOUT: "No `hello` arrived in time. Reconnect and send `hello` first.",
    CloseCode.RATE_LIMITED: "The client sent too fast. Reconnect after a backoff, and send less.",
    CloseCode.SLOW_CONSUMER: "The client did not read fast enough. Reconnect with `resume_from`.",
    CloseCode.DRAINING: "The node is draining. Reconnect (to another node) after `retry_after_ms`.",
}
