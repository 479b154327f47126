"""What the simulated agents saw on the wire, checked after the fact (beside invariants.py, which
checks what the store kept): each agent's stream of `seq` numbers across its sockets, and whether two
agents were ever told at once that the same engagement was theirs.

The store's records only show the state that won; an agent acts on what it was told, and a fenced
node or a lost write can tell one agent something the records no longer show. Plain functions over
what the agents recorded, one `Segment` per socket, so they are tested without servers.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from itertools import groupby
from typing import NamedTuple, TypedDict

from loadtest.invariants import HELD
from protocol.model import Engagement


class Told(NamedTuple):
    """What one snapshot (in a `welcome`, a `ring` or an `engagement` event) told an agent: whether the
    engagement was theirs to work (active, wrap-up, assigned or open), as of `at`, the server's time of
    the latest step in the snapshot's history: when it became so, whenever the frame arrived. `seq` is
    the event's (the welcome's for what a welcome lists)."""

    engagement: str
    at: float
    seq: int
    mine: bool


def told(agent: str, engagement: Engagement, seq: int) -> Told:
    at = max((h.at for h in engagement.history), default=engagement.created_at)
    return Told(engagement.id, at, seq, engagement.agent == agent and engagement.state in HELD)


class Segment(TypedDict):
    """One socket of one agent, from its welcome to its close. `resume_from` is what the agent sent in
    `hello` (None at its first sign-in), `resumed` and `head` what the welcome said (`head` its `seq`),
    `seqs` every event seq received after it, in order; `node` the index of the node it was open on.
    `welcomed_at` is the welcome's `server_time`, `welcome` what it said of the engagements and rings it
    listed, `told` what every snapshot after it said, in the order received."""

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
    welcomed_at: float
    welcome: list[Told]
    told: list[Told]


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
    for _, sockets in _by_agent(segments):
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


class Tenure(NamedTuple):
    """A stretch of server time over which an agent was told an engagement was theirs: from the step
    that made it so (`seq` the event that told them) until a later step said otherwise."""

    agent: str
    start: float
    end: float
    seq: int


def double_assignments(segments: Iterable[Segment]) -> list[str]:
    """Two agents told, over overlapping stretches of the server's time, that they held the same
    engagement: what two desktops showed at once, whatever the records kept in the end.

    Each snapshot speaks for the moment of the latest step in its history, so an agent's view is
    ordered by the server's time, not by when frames arrived: a replay after a resume, older than the
    welcome before it, still ends what it ends. A welcome speaks for its `server_time` of everything it
    does not list: not the agent's (a hand-over missed, then shown by the welcome, ends there). A
    fresh welcome (`resumed: false`) says the server no longer had what the agent missed: its view is
    only known up to the latest moment it had heard of, so a hold it was never told it lost ends there.
    The same moment ends one agent's view and starts the next one's in a hand-over (a transfer and the
    assignment it causes are one step), so views are half-open: [start, end).
    """
    views: dict[str, list[Tenure]] = defaultdict(list)
    for agent, sockets in _by_agent(segments):
        for eid, tenures in _views(agent, sockets).items():
            views[eid] += tenures
    problems = []
    for eid, tenures in sorted(views.items()):
        tenures.sort(key=lambda v: v.start)
        for i, a in enumerate(tenures):
            for b in tenures[i + 1 :]:
                if b.start < a.end and b.agent != a.agent:
                    until = min(a.end, b.end)
                    problems.append(
                        f"{eid}: {a.agent} (told at {a.start:.3f}, seq {a.seq}) and {b.agent} (told at "
                        f"{b.start:.3f}, seq {b.seq}) both held it "
                        + ("to the end" if until == math.inf else f"until {until:.3f}")
                    )
    return problems


def _by_agent(segments: Iterable[Segment]) -> Iterator[tuple[str, Iterator[Segment]]]:
    """Each agent's sockets in the order it opened them (one after the other: one desk, one socket)."""
    return groupby(sorted(segments, key=lambda s: (s["agent"], s["opened"])), key=lambda s: s["agent"])


def _views(agent: str, sockets: Iterable[Segment]) -> dict[str, list[Tenure]]:
    """Per engagement, the stretches over which what the agent's sockets were told made it theirs."""
    heard: list[tuple[float, int, Told]] = []  # (server time, order received, what)
    welcomes: list[tuple[float, int, int, set[str]]] = []  # (server time, order received, seq, listed as theirs)
    horizon = -math.inf  # the latest server time the agent had heard of
    for seg in sockets:
        order = len(heard)
        fresh = seg["resume_from"] is not None and not seg["resumed"]
        listed = {t.engagement for t in seg["welcome"] if t.mine}
        welcomes.append((horizon if fresh else seg["welcomed_at"], order, seg["head"], listed))
        heard += [(t.at, order, t) for t in seg["welcome"]]
        heard += [(t.at, len(heard) + i, t) for i, t in enumerate(seg["told"])]
        horizon = max([horizon, seg["welcomed_at"], *(at for at, _, _ in heard[order:])])
    engagements = {t.engagement for _, _, t in heard}
    for at, order, seq, listed in welcomes:
        heard += [(at, order, Told(eid, at, seq, False)) for eid in engagements - listed]
    said: dict[str, list[tuple[float, int, Told]]] = defaultdict(list)
    for item in sorted(heard, key=lambda item: item[:2]):
        said[item[2].engagement].append(item)
    return {eid: _tenures(agent, items) for eid, items in said.items()}


def _tenures(agent: str, said: list[tuple[float, int, Told]]) -> list[Tenure]:
    tenures: list[Tenure] = []
    since: Told | None = None
    for at, _, t in said:
        if t.mine and since is None:
            since = t
        elif not t.mine and since is not None:
            tenures.append(Tenure(agent, since.at, at, since.seq))
            since = None
    if since is not None:
        tenures.append(Tenure(agent, since.at, math.inf, since.seq))
    return tenures
