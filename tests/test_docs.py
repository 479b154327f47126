"""The published documents say what the code does: a stale copy fails here, with the fix in the message."""

from __future__ import annotations

import json
from pathlib import Path

from protocol.codes import CLOSE_HELP, ERROR_HELP
from protocol.schema import json_schema
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
