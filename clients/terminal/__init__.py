"""The terminal agent desktop (`switchboard agent`): a Textual app over `clients.agent.AgentClient`.

Same flow as the browser desktop: status, rings, one view per held engagement (profile, notes and
disposition, live transcript with search, chat or email thread), the email open list, transfers.
"""

from __future__ import annotations

from clients.terminal.app import DeskApp, run

__all__ = ["DeskApp", "run"]
