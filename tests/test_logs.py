"""Log lines carry the ids of who they concern: those bound by a socket session and those passed."""

from __future__ import annotations

import asyncio
import json
import logging
import sys

from server import logs


def _record(message: str, **extra: str) -> logging.LogRecord:
    record = logging.LogRecord("switchboard.test", logging.WARNING, __file__, 1, message, None, None)
    record.__dict__.update(extra)
    return record


async def test_ids_bound_in_a_task_stay_in_that_task():
    seen: dict[str, str] = {}

    async def session(agent: str) -> None:
        logs.bind(agent=agent)
        await asyncio.sleep(0)  # let the other session bind too
        seen[agent] = logs.JsonFormatter("n1").format(_record("not reading"))

    await asyncio.gather(session("alice"), session("bob"))
    for agent, line in seen.items():
        assert json.loads(line) | {"ts": 0} == {
            "ts": 0,
            "level": "warning",
            "logger": "switchboard.test",
            "message": "not reading",
            "node": "n1",
            "agent": agent,
        }


def test_text_lines_append_the_ids_and_json_lines_carry_the_traceback():
    record = _record("failed on accept", engagement="e-1")
    assert logs.TextFormatter("n1").format(record).endswith("failed on accept [node=n1 engagement=e-1]")
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    line = json.loads(logs.JsonFormatter().format(record))
    assert line["engagement"] == "e-1" and "ValueError: boom" in line["exc"] and "node" not in line
