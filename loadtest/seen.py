"""What the simulated agents saw on the wire, checked after the fact (beside invariants.py, which
checks what the store kept): each agent's stream of `seq` numbers across its sockets.

Plain functions over what the agents recorded, one `Segment` per socket, so they are tested without
servers and can be run again over a chaos run's `raw.json`.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import groupby
from typing import TypedDict


class Segment(TypedDict):
    """One socket of one agent, from its welcome to its close. `resume_from` is what the agent sent in
    `hello` (None at its first sign-in), `resumed` and `head` what the welcome said (`head` its `seq`),
    `seqs` every event seq received after it, in order; `node` the index of the node it was open on."""

    agent: str
    node: int
    opened: float
    resume_from: int | None
    resumed: bool
    head: int
    seqs: list[int]
    closed: float | None
    code: int | None
    reason: str


class Continuity(TypedDict):
    events: int
    gaps: int
    duplicates: int
    backwards: int
    stale_resumes: int
    problems: list[str]


class Resumes(TypedDict):
    first_sign_ins: int
    resumed: int
    fresh: int


def seq_continuity(segments: Iterable[Segment]) -> tuple[Continuity, Resumes]:
    """Per agent, socket after socket: after a resumed welcome the seqs go on from `resume_from` + 1
    (the replay first, then live events), and the welcome's own seq is not behind that point (a server
    that resumes from a log missing what the agent already saw would replay nothing and go on as if
    nothing were missing); after a fresh welcome (`resumed: false`: the server no longer had what was
    missed), and at sign-in, from the welcome's seq + 1, whatever came before. In between, every seq
    once, in order: a seq skipped is a gap, one seen before a duplicate, and one lower than the last
    that was never seen is going backwards."""
    out = Continuity(events=0, gaps=0, duplicates=0, backwards=0, stale_resumes=0, problems=[])
    resumes = Resumes(first_sign_ins=0, resumed=0, fresh=0)
    problems = out["problems"]
    for _, sockets in groupby(sorted(segments, key=lambda s: (s["agent"], s["opened"])), key=lambda s: s["agent"]):
        seen: set[int] = set()
        for seg in sockets:
            where = f"{seg['agent']} on node{seg['node']}"
            expected = seg["head"]
            if seg["resume_from"] is None:
                resumes["first_sign_ins"] += 1
                seen = set()
            elif seg["resumed"]:
                resumes["resumed"] += 1
                expected = seg["resume_from"]
                if seg["head"] < expected:
                    out["stale_resumes"] += 1
                    problems.append(f"{where}: resumed from {expected} but the welcome's seq is {seg['head']}")
            else:
                resumes["fresh"] += 1
                seen = set()
            for seq in seg["seqs"]:
                out["events"] += 1
                if seq == expected + 1:
                    expected = seq
                elif seq > expected + 1:
                    out["gaps"] += seq - expected - 1
                    problems.append(f"{where}: seq {seq} after {expected}")
                    expected = seq
                elif seq in seen:
                    out["duplicates"] += 1
                    problems.append(f"{where}: seq {seq} again (after {expected})")
                else:
                    out["backwards"] += 1
                    problems.append(f"{where}: seq {seq} after {expected}, going backwards")
                seen.add(seq)
    return out, resumes
