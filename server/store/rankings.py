"""Queue rankings kept in a process: what the embedded store (and the simulator) answer
`Snapshot.ranked` from. The entries, and when they change, come from the core (`Changes.ranks`)."""

from __future__ import annotations

import bisect
from collections.abc import Mapping


class Rankings:
    """Each queue's ranking, sorted, and each ranked agent's entry in it."""

    def __init__(self) -> None:
        self._sorted: dict[str, list[str]] = {}
        self._entry: dict[str, dict[str, str]] = {}

    def apply(self, ranks: Mapping[str, Mapping[str, str | None]]) -> None:
        for queue_id, moves in ranks.items():
            entries = self._sorted.setdefault(queue_id, [])
            current = self._entry.setdefault(queue_id, {})
            for agent_id, entry in moves.items():
                old = current.pop(agent_id, None)
                if old is not None:
                    del entries[bisect.bisect_left(entries, old)]
                if entry is not None:
                    bisect.insort(entries, entry)
                    current[agent_id] = entry

    def ranked(self, queue_id: str, start: str | None, limit: int | None) -> list[str]:
        entries = self._sorted.get(queue_id, [])
        first = bisect.bisect_left(entries, start) if start is not None else 0
        return entries[first : None if limit is None else first + limit]

    def count(self, queue_id: str) -> int:
        return len(self._sorted.get(queue_id, ()))
