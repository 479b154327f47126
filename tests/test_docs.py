"""The published documents say what the code does: a stale copy fails here, with the fix in the message."""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from protocol.asyncapi import asyncapi
from protocol.codes import CLOSE_HELP, ERROR_HELP
from protocol.frames import Client, Ingest, Server
from protocol.schema import json_schema
from server import cli
from server.openapi import openapi
from server.transport.http import STATUS_OF

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_committed_json_schema_is_current():
    committed = json.loads((DOCS / "schema.json").read_text())
    assert committed == json.loads(json.dumps(json_schema())), "run: switchboard schema > docs/schema.json"


def test_every_error_code_is_documented_with_its_status_and_advice():
    text = (DOCS / "protocol.md").read_text()
    for code, advice in ERROR_HELP.items():
        status = STATUS_OF.get(code, "-")
        assert f"| `{code}` | {status} | {advice} |" in text, code


def test_every_close_code_is_documented_with_its_advice():
    text = (DOCS / "protocol.md").read_text()
    for code, advice in CLOSE_HELP.items():
        assert f"| `{int(code)}` | {advice} |" in text, code


def _printed(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert cli.main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_committed_openapi_document_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    committed = json.loads((DOCS / "openapi.json").read_text())
    assert committed == _printed(capsys, "openapi"), "run: switchboard openapi > docs/openapi.json"


def test_committed_asyncapi_document_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    committed = json.loads((DOCS / "asyncapi.json").read_text())
    assert committed == _printed(capsys, "asyncapi"), "run: switchboard asyncapi > docs/asyncapi.json"


def _walk(node: Any, path: str = "#") -> Iterator[tuple[str, str, Any]]:
    """Every (JSON pointer, key, value) below `node`."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        here = f"{path}/{key}"
        yield here, str(key), value
        yield from _walk(value, here)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref} points outside the document"
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def test_every_ref_in_the_published_documents_resolves() -> None:
    for document in (asyncapi(), openapi()):
        for _, key, value in _walk(document):
            if key == "$ref":
                _resolve(document, value)


def test_asyncapi_document_is_well_formed_asyncapi_3() -> None:
    doc = asyncapi()
    assert doc["asyncapi"] == "3.0.0"
    for channel_key, channel in doc["channels"].items():
        for message in channel["messages"].values():
            assert _resolve(doc, message["$ref"])["payload"]["$ref"].startswith("#/components/schemas/")
        for name in re.findall(r"{(\w+)}", channel["address"]):
            assert name in channel.get("parameters", {}), f"{channel_key}: parameter {name} is not described"
    for op_id, op in doc["operations"].items():
        assert op["action"] in ("send", "receive"), op_id
        channel = op["channel"]["$ref"]
        # AsyncAPI 3: an operation's messages are messages of its channel
        for ref in [m["$ref"] for m in op["messages"]] + [m["$ref"] for m in op.get("reply", {}).get("messages", [])]:
            assert ref.startswith(f"{channel}/messages/"), (op_id, ref)
    for pointer, key, value in _walk(doc["components"]["schemas"], "#/components/schemas"):
        if key == "discriminator" and not pointer.endswith("/properties/discriminator"):
            assert isinstance(value, str), f"{pointer}: AsyncAPI schemas take the property name, not an object"
        assert key != "prefixItems", f"{pointer}: draft-07 has no prefixItems"
    assert all(m.get("summary") for m in doc["components"]["messages"].values()), "give every frame a summary"


def test_every_frame_is_on_a_socket_in_the_asyncapi_document() -> None:
    operations = asyncapi()["operations"].values()

    def frames(action: str) -> set[str]:
        return {m["$ref"].rsplit("/", 1)[1] for op in operations if op["action"] == action for m in op["messages"]}

    assert frames("receive") == {t.__name__ for t in (*typing.get_args(Client), *typing.get_args(Ingest))}
    assert frames("send") == {t.__name__ for t in typing.get_args(Server)}


def _json_examples() -> list[dict[str, object]]:
    """Every JSON value in the ```json blocks of docs/protocol.md (a block may hold several)."""
    text = (DOCS / "protocol.md").read_text()
    decoder = json.JSONDecoder()
    found: list[dict[str, object]] = []
    for block in re.findall(r"```json\n(.*?)```", text, re.S):
        at = 0
        while block[at:].strip():
            at += len(block[at:]) - len(block[at:].lstrip())
            value, at = decoder.raw_decode(block, at)
            found.append(value)
    return found


def _decodes(raw: bytes, union: object) -> bool:
    try:
        msgspec.json.decode(raw, type=union)
    except msgspec.ValidationError:
        return False
    return True


def test_every_frame_type_has_a_json_example_that_is_a_valid_frame() -> None:
    examples = _json_examples()
    unions = {"Client": Client, "Server": Server, "Ingest": Ingest}
    for example in examples:
        raw = json.dumps(example).encode()
        assert any(_decodes(raw, union) for union in unions.values()), f"docs/protocol.md: not a frame: {example}"
    documented = {str(e["type"]) for e in examples}
    for union in unions.values():
        for kind in typing.get_args(union):
            tag = kind.__struct_config__.tag
            assert tag in documented, f"docs/protocol.md has no JSON example of `{tag}`"
            assert f"`{tag}" in (DOCS / "protocol.md").read_text(), f"`{tag}` is not named in docs/protocol.md"
