"""Transcript search: case and accents folded, every word must match, hits with highlighted spans.

Folding maps each character on its own (NFKD, combining marks dropped, casefolded), so a match in
the folded text maps back to exact character offsets in the original for highlighting. Folded
fragments are cached per node by (fragment id, text), so searching a 10,000-fragment transcript
again folds only what is new.
"""

from __future__ import annotations

import functools
import unicodedata
from collections import OrderedDict

from protocol.frames import Hit
from protocol.model import Fragment

MAX_QUERY_WORDS = 16
MAX_HITS = 500


@functools.lru_cache(maxsize=65536)
def fold_char(ch: str) -> str:
    decomposed = unicodedata.normalize("NFKD", ch)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def fold(text: str) -> str:
    return "".join(map(fold_char, text))


def words(query: str) -> list[str]:
    return [w for w in fold(query).split() if w][:MAX_QUERY_WORDS]


class FoldCache:
    """Folded texts by fragment id, bounded; a fragment whose text changed (a final) is folded again."""

    def __init__(self, size: int = 200_000) -> None:
        self.size = size
        self._folded: OrderedDict[str, tuple[str, str]] = OrderedDict()

    def folded(self, fragment: Fragment) -> str:
        cached = self._folded.get(fragment.id)
        if cached is not None and cached[0] == fragment.text:
            return cached[1]
        folded = fold(fragment.text)
        self._folded[fragment.id] = (fragment.text, folded)
        if len(self._folded) > self.size:
            self._folded.popitem(last=False)
        return folded


def spans(text: str, needles: list[str]) -> list[tuple[int, int]]:
    """Where the folded needles occur in `text`, as [start, end) offsets into the original text."""
    origin: list[int] = []  # folded offset -> offset of the original character it came from
    pieces: list[str] = []
    for i, ch in enumerate(text):
        piece = fold_char(ch)
        origin.extend([i] * len(piece))
        pieces.append(piece)
    folded = "".join(pieces)
    found: list[tuple[int, int]] = []
    for needle in needles:
        at = folded.find(needle)
        while at != -1:
            end = at + len(needle)
            found.append((origin[at], origin[end - 1] + 1))
            at = folded.find(needle, end)
    merged: list[tuple[int, int]] = []
    for start, end in sorted(found):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def search(fragments: list[Fragment], query: str, cache: FoldCache) -> list[Hit]:
    """Fragments containing every word of `query` (folded), in transcript order."""
    needles = words(query)
    if not needles:
        return []
    hits: list[Hit] = []
    for fragment in fragments:
        folded = cache.folded(fragment)
        if all(n in folded for n in needles):
            hits.append(
                Hit(
                    fragment=fragment.id,
                    speaker=fragment.speaker,
                    ts=fragment.ts,
                    text=fragment.text,
                    spans=spans(fragment.text, needles),
                )
            )
            if len(hits) >= MAX_HITS:
                break
    return hits
