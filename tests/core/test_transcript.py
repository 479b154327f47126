"""Live transcript in the pure core: how partials and finals pair up, with and without ids. Partials
reach the agent (see `agent_saw`) but only finals are kept, in the order they came."""

from __future__ import annotations

from protocol.frames import FragmentIn, Transcript
from protocol.model import Fragment
from server.core import lifecycle
from tests.support import World, agent, make_config, run_sync, voice_queue


def call() -> tuple[World, str]:
    w = World(make_config([voice_queue("calls", transcription=True)], [agent("ann", "calls")]))
    w.sign_in("ann")
    eid = w.create("calls")
    offer = w.offer_of("ann")
    w.do(lambda tx: lifecycle.accept(tx, "ann", offer))
    return w, eid


def say(w: World, eid: str, *fragments: FragmentIn) -> list[Fragment]:
    return w.do(lambda tx: lifecycle.add_fragments(tx, eid, list(fragments)))


def transcript(w: World, eid: str) -> list[tuple[str, str, bool]]:
    return [(f.speaker, f.text, f.final) for f in run_sync(w.store.transcript(eid))]


def agent_saw(w: World, agent_id: str) -> list[tuple[str, str, bool]]:
    said = [e for e in w.events(agent_id) if isinstance(e, Transcript)]
    return [(f.speaker, f.text, f.final) for e in said for f in e.fragments]


def test_a_final_without_id_replaces_that_speakers_latest_partial_not_the_first():
    w, eid = call()
    w.events("ann")
    (first,) = say(w, eid, FragmentIn(id="leg-a-1", speaker="consumer", text="I would", final=False))
    (second,) = say(w, eid, FragmentIn(id="leg-a-2", speaker="consumer", text="the parcel", final=False))
    say(w, eid, FragmentIn(speaker="agent", text="Mm-hm", final=False))  # another speaker's partial: untouched

    (final,) = say(w, eid, FragmentIn(speaker="consumer", text="The parcel never came."))
    assert final.id == second.id
    assert transcript(w, eid) == [("consumer", "The parcel never came.", True)]
    assert agent_saw(w, "ann") == [
        ("consumer", "I would", False),
        ("consumer", "the parcel", False),
        ("agent", "Mm-hm", False),
        ("consumer", "The parcel never came.", True),
    ]
    (earlier,) = say(w, eid, FragmentIn(speaker="consumer", text="I would like a refund."))
    assert earlier.id == first.id  # the one left open is now the speaker's latest
    talk = run_sync(w.store.talk(eid))
    assert talk is not None and list(talk.partials.values()) == ["agent"] and talk.count == 2


def test_the_latest_partial_is_the_one_most_recently_updated():
    w, eid = call()
    say(w, eid, FragmentIn(id="a", speaker="consumer", text="one", final=False))
    say(w, eid, FragmentIn(id="b", speaker="consumer", text="two", final=False))
    say(w, eid, FragmentIn(id="a", speaker="consumer", text="one more", final=False))  # `a` is the latest again
    (final,) = say(w, eid, FragmentIn(speaker="consumer", text="One more thing."))
    assert final.id == "a"
    assert transcript(w, eid) == [("consumer", "One more thing.", True)]  # `b` still open: not kept yet


def test_partials_without_ids_grow_the_speakers_latest_until_a_final_closes_it():
    w, eid = call()
    (p1,) = say(w, eid, FragmentIn(speaker="consumer", text="Hel", final=False))
    (p2,) = say(w, eid, FragmentIn(speaker="consumer", text="Hello th", final=False))
    (done,) = say(w, eid, FragmentIn(speaker="consumer", text="Hello there."))
    (fresh,) = say(w, eid, FragmentIn(speaker="consumer", text="Next", final=False))
    assert p1.id == p2.id == done.id != fresh.id
    assert transcript(w, eid) == [("consumer", "Hello there.", True)]


def test_a_line_of_transcript_leaves_the_engagements_record_as_it_was():
    w, eid = call()
    before = w.engagement(eid)
    say(w, eid, FragmentIn(speaker="consumer", text="Hello", final=False), FragmentIn(speaker="consumer", text="Hi."))
    assert w.engagement(eid) is before  # not even rewritten: only the transcript's head and list change
    talk = run_sync(w.store.talk(eid))
    assert talk is not None and (talk.count, talk.size, talk.partials) == (1, 3, {})
