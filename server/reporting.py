"""Reporting: every engagement that ends, handed over before retention forgets it.

A node appends each engagement it ended to `reporting.file`, one JSON object per line (the
engagement as `GET /v1/engagements/{id}` shows it, history included), flushed line by line, so a
report job can tail it. On Redis the commit that ends an engagement also adds it to the
`<prefix>:{<prefix>}:reports` stream, atomically (docs/redis.md): the file is per node and written
after the commit, the stream is shared and can never miss one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import msgspec

from protocol.model import Engagement

log = logging.getLogger("switchboard.reporting")


class ReportFile:
    """An append-only JSON Lines file of ended engagements; a failed write is logged, never raised (the
    engagement has ended whatever the disk says)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: IO[bytes] | None = None
        self._encode = msgspec.json.Encoder().encode

    def write(self, ended: Sequence[Engagement]) -> None:
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("ab")
            self._file.write(b"".join(self._encode(e) + b"\n" for e in ended))
            self._file.flush()
        except OSError as exc:
            log.error("could not report %d ended engagements to %s: %s", len(ended), self.path, exc)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
