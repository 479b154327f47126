"""The one exception the core raises: a request that cannot be carried out, with its error code."""

from __future__ import annotations

from protocol.codes import ErrorCode


class Refused(Exception):
    """The command is refused and nothing changes; `code` and `message` go to the client as they are."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
