"""JSON Schema of protocol v1, generated from the Structs so it can never drift from the code."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import msgspec

from protocol import VERSION
from protocol.frames import Client, Server


def components(kinds: Iterable[Any], ref_template: str) -> tuple[tuple[dict[str, Any], ...], dict[str, Any]]:
    """`msgspec.json.schema_components`, with every description a cleaned docstring: msgspec releases
    differ in whether they dedent docstrings, and the committed documents must not change with them."""
    refs, schemas = msgspec.json.schema_components(kinds, ref_template=ref_template)
    for schema in schemas.values():
        if isinstance(schema.get("description"), str):
            schema["description"] = inspect.cleandoc(schema["description"])
    return refs, schemas


def json_schema() -> dict[str, Any]:
    """Both unions as one document: `$defs` holds every frame, `client` and `server` the two unions."""
    (client, server), defs = components([Client, Server], ref_template="#/$defs/{name}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://switchboard.dev/schema/{VERSION}.json",
        "title": f"Switchboard protocol {VERSION}",
        "description": "Client frames (agent and supervisor sockets) and server frames; `type` is the tag.",
        "oneOf": [{"$ref": "#/$defs/ClientFrame"}, {"$ref": "#/$defs/ServerFrame"}],
        "$defs": {"ClientFrame": client, "ServerFrame": server, **defs},
    }
