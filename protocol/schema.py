"""JSON Schema of protocol v1, generated from the Structs so it can never drift from the code."""

from __future__ import annotations

from typing import Any

import msgspec

from protocol import VERSION
from protocol.frames import Client, Server


def json_schema() -> dict[str, Any]:
    """Both unions as one document: `$defs` holds every frame, `client` and `server` the two unions."""
    (client, server), components = msgspec.json.schema_components([Client, Server], ref_template="#/$defs/{name}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://switchboard.dev/schema/{VERSION}.json",
        "title": f"Switchboard protocol {VERSION}",
        "description": "Client frames (agent and supervisor sockets) and server frames; `type` is the tag.",
        "oneOf": [{"$ref": "#/$defs/ClientFrame"}, {"$ref": "#/$defs/ServerFrame"}],
        "$defs": {"ClientFrame": client, "ServerFrame": server, **components},
    }
