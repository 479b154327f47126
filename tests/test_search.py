"""Transcript search as a unit: folding, every word, highlight offsets, and an index that keeps up."""

from __future__ import annotations

from msgspec.structs import replace

from protocol.model import Fragment
from server.search import MAX_HITS, Searcher, fold, spans


def frag(i: int, text: str, final: bool = True) -> Fragment:
    return Fragment(id=f"f{i}", speaker="consumer", text=text, final=final, ts=float(i))


def test_folding_drops_case_and_accents_and_expands_what_must_be():
    assert fold("Crème BRÛLÉE à Straße, ﬁn") == "creme brulee a strasse, fin"


def test_spans_point_into_the_original_text_even_when_folding_changes_lengths():
    text = "Die Straße, la crème — STRASSE"
    found = spans(text, ["strasse", "creme"])
    assert [text[a:b] for a, b in found] == ["Straße", "crème", "STRASSE"]


def test_every_word_must_match_in_the_same_fragment():
    searcher = Searcher()
    fragments = [frag(0, "my parcel is late"), frag(1, "the refund please"), frag(2, "refund the late parcel")]
    hits = searcher.search("e", fragments, "PARCEL refund")
    assert [h.fragment for h in hits] == ["f2"]
    assert searcher.search("e", fragments, "   ") == []


def test_the_index_notices_a_partial_replaced_by_its_final_and_new_fragments():
    searcher = Searcher()
    fragments = [frag(0, "hello"), frag(1, "I want a ref", final=False)]
    assert searcher.search("e", fragments, "refund") == []
    fragments[1] = replace(fragments[1], text="I want a refund", final=True)
    assert [h.fragment for h in searcher.search("e", fragments, "refund")] == ["f1"]
    fragments.append(frag(2, "refund again"))
    assert [h.fragment for h in searcher.search("e", fragments, "refund")] == ["f1", "f2"]


def test_hits_are_capped_and_in_transcript_order():
    fragments = [frag(i, f"line {i} about delivery") for i in range(MAX_HITS + 50)]
    hits = Searcher().search("e", fragments, "delivery")
    assert len(hits) == MAX_HITS
    assert [h.fragment for h in hits[:3]] == ["f0", "f1", "f2"]
