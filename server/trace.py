"""Traffic traces for `switchboard simulate`: JSON Lines, one engagement per line, read strictly, and
written from the histories a store recorded (`--export-trace`).

A line is `{"queue", "arrival_s", "handle_s"}` with optional `patience_s` (the consumer leaves if not
answered by then), `wrap_up_s`, `priority` and `id`; a line exported from a store also says what
really happened, `outcome` (`answered` or `abandoned`) and `wait_s`, so that the simulator can show
the recorded figures beside the simulated ones. A bad line is refused with its number and field, the
way a bad configuration is, because a plan computed from a half-read trace is worse than none.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from protocol.model import Engagement, EngagementState
from server.core.records import EngagementRec
from server.kpis import Recorded

Seconds = Annotated[float, Meta(ge=0)]


class TraceError(Exception):
    """The trace cannot be used; the message names the file, the line and the field."""


class TraceLine(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    queue: str
    arrival_s: Seconds
    handle_s: Seconds
    patience_s: Seconds | None = None
    wrap_up_s: Seconds | None = None
    priority: int = 0
    id: str | None = None
    outcome: Literal["answered", "abandoned"] | None = None
    wait_s: Seconds | None = None


_decode_line = msgspec.json.Decoder(TraceLine).decode
_encode = msgspec.json.Encoder().encode


def _where(text: str) -> str:
    """msgspec's `... - at `$.field`` as `field: ...`, like config errors."""
    if " - at `" in text:
        text, _, at = text.rpartition(" - at `")
        return f"{at.rstrip('`').removeprefix('$').removeprefix('.')}: {text}"
    return text


def parse(lines: Iterable[str | bytes], source: str, queues: Collection[str] | None = None) -> list[TraceLine]:
    """The trace's engagements, in the order written; blank lines are skipped. With `queues`, a line
    naming another queue is refused."""
    out: list[TraceLine] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            line = _decode_line(raw)
        except msgspec.ValidationError as exc:
            raise TraceError(f"{source}:{number}: {_where(str(exc))}") from None
        except msgspec.DecodeError as exc:
            raise TraceError(f"{source}:{number}: not valid JSON: {exc}") from None
        if (line.outcome is None) != (line.wait_s is None):
            raise TraceError(f"{source}:{number}: outcome: `outcome` and `wait_s` go together (what really happened)")
        if queues is not None and line.queue not in queues:
            raise TraceError(f"{source}:{number}: queue: no queue {line.queue!r} in the configuration")
        out.append(line)
    if not out:
        raise TraceError(f"{source}: no engagements in the trace")
    return out


def read(path: str | Path, queues: Collection[str] | None = None) -> list[TraceLine]:
    p = Path(path)
    try:
        with p.open("rb") as f:
            return parse(f, str(p), queues)
    except OSError as exc:
        raise TraceError(f"{p}: cannot read: {exc.strerror}") from None


def write(lines: Iterable[TraceLine]) -> Iterator[bytes]:
    for line in lines:
        yield _encode(line) + b"\n"


# --- from recorded histories ----------------------------------------------------------------------


class Exported(Struct, kw_only=True):
    """A trace made from records, and what was left out of it: engagements not over yet, and those a
    supervisor withdrew before anyone answered (neither answered nor abandoned: nothing to replay)."""

    lines: list[TraceLine]
    unfinished: int = 0
    withdrawn: int = 0


class _Story(Struct, kw_only=True):
    id: str
    queue: str
    created: float
    answered: float | None = None
    ended: float | None = None
    closed: float | None = None
    abandoned: float | None = None


def _story(eng: Recorded) -> _Story | None:
    first = eng.history[0] if eng.history else None
    if first is None or first.event != "created" or first.queue is None:
        return None
    story = _Story(id=eng.id, queue=first.queue, created=first.at)
    for h in eng.history:
        match h.event:
            case "accepted":
                story.answered = h.at if story.answered is None else story.answered
            case "assigned" if h.state is EngagementState.ASSIGNED:
                story.answered = h.at if story.answered is None else story.answered
            case "ended":
                story.ended = h.at
            case "resolved":
                story.ended = story.closed = h.at
            case "closed":
                story.closed = h.at
            case "abandoned":
                story.abandoned = h.at
    return story


def export(engagements: Iterable[Recorded]) -> Exported:
    """One trace line per finished engagement, arrivals counted from the earliest one, sorted by arrival.

    The queue is the one it was created in; `handle_s` runs from the first answer to the end of the
    conversation (live: `ended`; email: resolved), `wrap_up_s` from there to wrap-up done. An
    abandoned engagement's `patience_s` is how long the consumer waited; its `handle_s`, never seen,
    is its queue's mean over the answered ones (so a better staffed replay that answers it has a
    likely talk time). Consumers who were answered had a patience nobody measured: none is written.
    """
    stories: list[_Story] = []
    unfinished = withdrawn = 0
    for eng in engagements:
        story = _story(eng)
        if story is None or (story.closed is None and story.abandoned is None):
            unfinished += 1
        elif story.answered is None and story.abandoned is None:
            withdrawn += 1
        else:
            stories.append(story)
    if not stories:
        return Exported(lines=[], unfinished=unfinished, withdrawn=withdrawn)
    talks: dict[str, list[float]] = {}
    for s in stories:
        if s.answered is not None and s.ended is not None:
            talks.setdefault(s.queue, []).append(s.ended - s.answered)
    mean_talk = {q: math.fsum(t) / len(t) for q, t in talks.items()}
    origin = min(s.created for s in stories)
    lines = []
    for s in sorted(stories, key=lambda s: (s.created, s.id)):
        if s.answered is not None:
            ended = s.ended if s.ended is not None else s.closed
            assert ended is not None and s.closed is not None
            line = TraceLine(
                queue=s.queue,
                arrival_s=s.created - origin,
                handle_s=max(0.0, ended - s.answered),
                wrap_up_s=max(0.0, s.closed - ended),
                id=s.id,
                outcome="answered",
                wait_s=s.answered - s.created,
            )
        else:
            assert s.abandoned is not None
            waited = s.abandoned - s.created
            line = TraceLine(
                queue=s.queue,
                arrival_s=s.created - origin,
                handle_s=mean_talk.get(s.queue, 0.0),
                patience_s=waited,
                id=s.id,
                outcome="abandoned",
                wait_s=waited,
            )
        lines.append(line)
    return Exported(lines=lines, unfinished=unfinished, withdrawn=withdrawn)


def from_redis(url: str, prefix: str) -> list[EngagementRec]:
    """Every engagement record in a Redis store (docs/redis.md has the key layout), read directly."""
    from redis import Redis
    from redis.exceptions import RedisError

    from server.store.redis import Keys

    decode = msgspec.msgpack.Decoder(EngagementRec).decode
    client = Redis.from_url(url)
    try:
        records: list[EngagementRec] = []
        batch: list[bytes] = []

        def fetch() -> None:
            pipe = client.pipeline(transaction=False)
            for key in batch:
                pipe.hget(key, "d")
            records.extend(decode(blob) for blob in pipe.execute() if blob)
            batch.clear()

        for key in client.scan_iter(match=Keys(prefix).engagement("*"), count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                fetch()
        if batch:
            fetch()
        return records
    except (RedisError, OSError) as exc:
        raise TraceError(f"{url}: cannot read the engagements: {exc}") from None
    finally:
        client.close()


def from_file(path: str | Path) -> list[Engagement]:
    """Engagements as `GET /v1/engagements/{id}` answers them, one JSON object per line (a node that
    keeps its records in memory has no other way out for them)."""
    decode = msgspec.json.Decoder(Engagement).decode
    p = Path(path)
    out: list[Engagement] = []
    try:
        with p.open("rb") as f:
            for number, raw in enumerate(f, start=1):
                if raw.strip():
                    try:
                        out.append(decode(raw))
                    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                        raise TraceError(f"{p}:{number}: {_where(str(exc))}") from None
    except OSError as exc:
        raise TraceError(f"{p}: cannot read: {exc.strerror}") from None
    return out
