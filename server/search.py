"""Transcript search: case and accents folded, every word must match, hits with highlighted spans.

Folding maps each character on its own (NFKD, combining marks dropped, casefolded), so a match in
the folded text maps back to exact character offsets in the original for highlighting. A node keeps
the folded, joined text of the transcripts it searched lately, so searching a 10,000-fragment
transcript again is a few `str.find` calls, and after a change only new text is folded.
"""

from __future__ import annotations

import bisect
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
    return fold(query).replace("\x00", " ").split()[:MAX_QUERY_WORDS]


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


class _Index:
    """One transcript's folded texts joined into one string, so a word is found by C-speed `find`."""

    def __init__(self, fragments: list[Fragment], folds: FoldCache) -> None:
        self.count = len(fragments)
        self.last = fragments[-1].id if fragments else ""
        self.partials = {i: f.text for i, f in enumerate(fragments) if not f.final}
        self.folded = [folds.folded(f) for f in fragments]
        self.starts: list[int] = []
        at = 0
        for text in self.folded:
            self.starts.append(at)
            at += len(text) + 1
        self.joined = "\x00".join(self.folded)

    def current(self, fragments: list[Fragment]) -> bool:
        """Still the same transcript: nothing added, and no partial replaced (finals do not change)."""
        if len(fragments) != self.count or (fragments and fragments[-1].id != self.last):
            return False
        return all(fragments[i].text == text for i, text in self.partials.items())

    def candidates(self, needle: str) -> list[int]:
        """Indexes of the fragments containing `needle`, in order."""
        found: list[int] = []
        at = self.joined.find(needle)
        while at != -1:
            i = bisect.bisect_right(self.starts, at) - 1
            found.append(i)
            at = self.joined.find(needle, self.starts[i + 1] if i + 1 < len(self.starts) else len(self.joined))
        return found


class Searcher:
    """Searches transcripts, keeping the index of the last few searched engagements (rebuilt when the
    transcript changed: new fragments, or a final replacing a partial; the folding of unchanged
    fragments is kept)."""

    def __init__(self, engagements: int = 64) -> None:
        self.folds = FoldCache()
        self.engagements = engagements
        self._indexes: OrderedDict[str, _Index] = OrderedDict()

    def _index(self, engagement_id: str, fragments: list[Fragment]) -> _Index:
        index = self._indexes.get(engagement_id)
        if index is None or not index.current(fragments):
            index = _Index(fragments, self.folds)
            self._indexes[engagement_id] = index
            if len(self._indexes) > self.engagements:
                self._indexes.popitem(last=False)
        self._indexes.move_to_end(engagement_id)
        return index

    def search(self, engagement_id: str, fragments: list[Fragment], query: str) -> list[Hit]:
        """Fragments containing every word of `query` (folded), in transcript order, at most MAX_HITS."""
        needles = sorted(words(query), key=len, reverse=True)  # scan for the longest word, likely the rarest
        if not needles:
            return []
        index = self._index(engagement_id, fragments)
        hits: list[Hit] = []
        for i in index.candidates(needles[0]):
            if all(n in index.folded[i] for n in needles[1:]):
                fragment = fragments[i]
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
