"""The terminal desktop, end to end: a real server in-process, the Textual app headless driven by key
presses, consumers and media servers driven over the HTTP API. Every check is something the agent
would see on the screen (or a colleague would see through the API)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from rich.text import Text
from textual.notifications import SeverityLevel
from textual.pilot import Pilot
from textual.widgets import Input, OptionList, Static

from clients.agent import AgentClient, RequestFailed
from clients.terminal import DeskApp
from clients.terminal.model import HIT_STYLE
from clients.terminal.screens import DispositionScreen, ReasonScreen, RingScreen, TransferScreen
from clients.terminal.views import EngagementView
from server.app import create_app
from tests.e2e.conftest import handling_config
from tests.support import API_KEY, Running, serving, token

SIZE = (150, 50)


@pytest.fixture
async def live() -> AsyncIterator[Running]:
    async with serving(create_app(handling_config())) as running:
        yield running


@pytest.fixture
async def api(live: Running) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=live.http, headers=headers, timeout=5) as client:
        yield client


class Desk(DeskApp):
    """The desk, remembering every error it notified (the terminal's "page errors"), to assert on."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(url, token)
        self.errors: list[str] = []

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        if severity == "error":
            self.errors.append(f"{title}: {message}")
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)


# --- what is on the screen -------------------------------------------------------------------------


def shown(widget: Static) -> str:
    content = widget.content
    return content.plain if isinstance(content, Text) else str(content)


def top(app: DeskApp, which: str) -> str:
    return shown(app.query_one(f"#{which}", Static))


def listed(app: DeskApp, which: str) -> list[str]:
    options = app.query_one(f"#{which}-list", OptionList).options
    return [str(o.prompt.plain if isinstance(o.prompt, Text) else o.prompt) for o in options if o.id]


def view(app: DeskApp) -> EngagementView:
    views = [v for v in app.query(EngagementView) if v.display]
    assert len(views) == 1, f"{len(views)} engagement views shown"
    return views[0]


def part(app: DeskApp, css: str) -> str:
    return shown(view(app).query_one(css, Static))


def toasts(app: DeskApp) -> list[str]:
    return [str(t.render()) for t in app.screen.query("Toast")]


async def until(pilot: Pilot[Any], what: str, check: Callable[[], object], timeout: float = 5.0) -> None:
    """Let the app run until `check()` is truthy (errors count as not yet), or fail saying `what`."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            if check():
                return
        except Exception as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what} (last error: {last!r})")
        await pilot.pause(0.02)


async def type_text(pilot: Pilot[Any], text: str) -> None:
    await pilot.press(*["space" if ch == " " else ch for ch in text])


# --- the tests -------------------------------------------------------------------------------------


async def test_a_call_from_ring_to_wrap_up_then_an_email_opened_answered_and_transferred(
    live: Running, api: httpx.AsyncClient
):
    app = Desk(live.ws, token("ann"))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(pilot, "connected and not ready", lambda: "Connected" in top(app, "conn"))
        assert "Not ready" in top(app, "status")

        # the connection drops: the desk says it is reconnecting, then comes back by itself
        assert app.client is not None
        await app.client.drop()
        await until(pilot, "reconnecting shown", lambda: "Reconnecting" in top(app, "conn"))
        await until(pilot, "reconnected", lambda: "Connected" in top(app, "conn"))

        # go ready
        await pilot.press("r")
        await until(pilot, "ready", lambda: top(app, "status").startswith("Ready · Idle"))

        # a caller who hangs up while it rings: the ring closes by itself
        gone = (await api.post("/v1/engagements", json={"queue": "calls", "consumer": {"name": "Max"}})).json()["id"]
        await until(pilot, "a first ring", lambda: isinstance(app.screen, RingScreen))
        await api.post(f"/v1/engagements/{gone}/end")
        await until(pilot, "the ring closed", lambda: not isinstance(app.screen, RingScreen))
        await until(pilot, "why it closed", lambda: any("hung up" in t for t in toasts(app)))
        assert top(app, "status").startswith("Ready · Idle")

        # a call rings, with who it is, what the flow collected and the bot's summary
        call = {
            "queue": "calls",
            "consumer": {"name": "Jeanne Dupont", "phone": "+33612345678"},
            "variables": {"intent": "refund", "order": 1234},
            "summary": "Wants a refund for order 1234",
        }
        eid = (await api.post("/v1/engagements", json=call)).json()["id"]
        await until(pilot, "the ring", lambda: isinstance(app.screen, RingScreen))
        ring = app.screen
        await until(pilot, "ring details", lambda: "Jeanne Dupont" in shown(ring.query_one("#ring-details", Static)))
        details = shown(ring.query_one("#ring-details", Static))
        assert "+33612345678" in details and "Incoming voice · calls" in details
        assert "intent" in details and "refund" in details and "1234" in details
        assert "Wants a refund for order 1234" in details

        def seconds_to_answer() -> int:
            countdown = shown(ring.query_one("#ring-countdown", Static))
            assert countdown.startswith("Answer within")
            return int(countdown.split()[2])

        first = seconds_to_answer()
        assert 0 < first <= 10
        await until(pilot, "the countdown ticking", lambda: seconds_to_answer() < first, timeout=2)
        assert "Ringing" in top(app, "status")

        # accept: the ring closes and the call is on the desk
        await pilot.press("a")
        await until(pilot, "the call on the desk", lambda: not isinstance(app.screen, RingScreen))
        await until(pilot, "the call's view", lambda: "Active" in part(app, ".eng-head"))
        assert "Jeanne Dupont" in part(app, ".eng-head")
        assert any("Jeanne Dupont" in row for row in listed(app, "live"))
        assert "Busy" in top(app, "status")
        profile = part(app, ".profile-text")
        assert "Jeanne Dupont" in profile and "order" in profile and "Wants a refund" in profile

        # the transcript comes in live; a partial is replaced by its final, never shown twice
        fragments = [
            {"speaker": "consumer", "text": "Bonjour, je voudrais un remboursement pour ma commande"},
            {"speaker": "agent", "text": "Je regarde votre commande tout de suite"},
            {"speaker": "consumer", "text": "Merci bea", "final": False},
        ]
        await api.post(f"/v1/engagements/{eid}/transcript", json={"fragments": fragments})
        await pilot.press("3")
        await until(pilot, "the transcript", lambda: "Merci bea …" in part(app, ".transcript-text"))
        await api.post(
            f"/v1/engagements/{eid}/transcript", json={"fragments": [{"speaker": "consumer", "text": "Merci beaucoup"}]}
        )
        await until(pilot, "the final line", lambda: "Merci beaucoup" in part(app, ".transcript-text"))
        lines = part(app, ".transcript-text").splitlines()
        assert len(lines) == 3 and "remboursement" in lines[0] and "Je regarde" in lines[1]
        assert not any("Merci bea …" in line for line in lines)

        # search: the hit is highlighted where it is
        await type_text(pilot, "rembourse")
        await pilot.press("enter")
        await until(pilot, "a search hit", lambda: "1 match" in part(app, ".search-summary"))
        text = view(app).query_one(".transcript-text", Static).content
        assert isinstance(text, Text)
        marked = [text.plain[s.start : s.end] for s in text.spans if str(s.style) == HIT_STYLE]
        assert marked == ["rembourse"]

        # notes are saved as the agent types
        await pilot.press("escape", "2")
        await type_text(pilot, "Refund approved")
        await until(pilot, "notes saved", lambda: "Saved" in part(app, ".notes-state"))
        assert (await api.get(f"/v1/engagements/{eid}")).json()["notes"] == "Refund approved"

        # going not ready during the call waits for its end
        await pilot.press("escape", "n")
        await until(pilot, "the reason picker", lambda: isinstance(app.screen, ReasonScreen))
        await pilot.press("b")
        await until(pilot, "the next status", lambda: "next: Not ready (break)" in top(app, "status"))
        assert top(app, "status").startswith("Ready")

        # end: wrap-up with its countdown
        await pilot.press("e")
        await until(pilot, "wrap-up", lambda: "Wrap up" in part(app, ".eng-head"))
        head = part(app, ".eng-head")
        assert head.endswith("s left") and 0 < int(head.split("·")[-1].split()[0]) <= 30
        assert "Wrap up" in top(app, "status")

        # disposition, picked from the queue's
        await pilot.press("p")
        await until(pilot, "the disposition picker", lambda: isinstance(app.screen, DispositionScreen))
        await pilot.press("space", "s")
        await until(pilot, "the disposition", lambda: "Disposition: resolved" in part(app, ".dispositions"))

        # wrap-up done: the desk is free and the deferred status applies; then ready again
        await pilot.press("w")
        await until(pilot, "the call gone", lambda: not listed(app, "live"))
        assert app.query_one("#empty").display
        await until(pilot, "not ready after the call", lambda: "Not ready (break) · Idle" in top(app, "status"))
        await pilot.press("r")
        await until(pilot, "ready again", lambda: top(app, "status").startswith("Ready · Idle"))
        record = (await api.get(f"/v1/engagements/{eid}")).json()
        assert (record["state"], record["dispositions"]) == ("closed", ["resolved"])

        # an email lands in the open list, unread
        async with AgentClient.connect(live.ws, token("ben")) as ben:
            email = {
                "queue": "mail",
                "consumer": {"email": "jo@example.com"},
                "subject": "Invoice 77",
                "body": "Where is my invoice?",
            }
            mail = (await api.post("/v1/engagements", json=email)).json()["id"]
            await until(pilot, "the email listed", lambda: any("Invoice 77" in row for row in listed(app, "mail")))
            assert listed(app, "mail")[0].startswith("● ")
            assert "Assigned" in listed(app, "mail")[0]

            # opened from the list: its thread shows, the mark goes
            await pilot.press("o", "enter")
            await until(pilot, "the email opened", lambda: "Open" in part(app, ".eng-head"))
            assert not listed(app, "mail")[0].startswith("● ")
            await pilot.press("4")
            assert "Where is my invoice?" in part(app, ".thread-text")

            # answered
            await type_text(pilot, "Attached, sorry for the wait.")
            await pilot.press("enter")
            await until(pilot, "the reply shown", lambda: "Attached, sorry for the wait." in part(app, ".thread-text"))
            thread = (await api.get(f"/v1/engagements/{mail}")).json()["messages"]
            assert [(m["direction"], m["text"], m["subject"]) for m in thread] == [
                ("in", "Where is my invoice?", "Invoice 77"),
                ("out", "Attached, sorry for the wait.", "Re: Invoice 77"),
            ]

            # a refused request is a notification, not a crash
            await pilot.press("escape", "e")
            await until(pilot, "the refusal", lambda: any("disposition_required" in t for t in toasts(app)))
            assert "Open" in part(app, ".eng-head")

            # transferred to ben: it leaves ann's desk and lands in ben's open list
            await pilot.press("t")
            await until(pilot, "the transfer picker", lambda: isinstance(app.screen, TransferScreen))
            await type_text(pilot, "ben")
            await pilot.press("enter")
            await until(pilot, "the email gone", lambda: not listed(app, "mail"))
            landed = await ben.next_event("engagement", where=lambda e: e.engagement.id == mail)
            assert landed.engagement.state == "assigned"
            record = (await api.get(f"/v1/engagements/{mail}")).json()
            assert (record["agent"], record["state"]) == ("ben", "assigned")
            assert record["history"][-2]["event"] == "transferred"
        assert [e for e in app.errors if "disposition_required" not in e] == []  # the refusal was the only one

        # quitting closes the connection: the server sees ann leave
        client = app.client
        await pilot.press("q")
    assert client is not None and client.state == "closed"
    deadline = time.monotonic() + 5
    while (await api.get("/v1/agents/ann")).json()["connected"]:
        assert time.monotonic() < deadline, "the server still sees ann connected"
        await asyncio.sleep(0.02)


async def test_a_chat_lands_is_answered_ended_disposed_and_wrapped_up(live: Running, api: httpx.AsyncClient):
    """A chat on an auto-accept queue opens on the desk with no ring, on its thread; the consumer's lines
    show as they come; the reply typed in the box reaches the record; end, disposition, wrap-up done."""
    app = Desk(live.ws, token("ann"))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(pilot, "connected", lambda: "Connected" in top(app, "conn"))
        await pilot.press("r")
        await until(pilot, "ready", lambda: top(app, "status").startswith("Ready · Idle"))

        chat = {"queue": "chat", "consumer": {"name": "Mei Chen"}, "body": "Hi, my parcel is late"}
        eid = (await api.post("/v1/engagements", json=chat)).json()["id"]
        await until(pilot, "the chat on the desk", lambda: "Active" in part(app, ".eng-head"))
        assert not isinstance(app.screen, RingScreen)  # auto-accept: no ring
        assert "Mei Chen" in part(app, ".eng-head") and any("Mei Chen" in row for row in listed(app, "live"))
        assert "Busy" in top(app, "status")
        await until(pilot, "the first line", lambda: "Hi, my parcel is late" in part(app, ".thread-text"))

        await api.post(f"/v1/engagements/{eid}/messages", json={"text": "Order B-12, due Monday"})
        await until(pilot, "the consumer's next line", lambda: "Order B-12, due Monday" in part(app, ".thread-text"))
        assert part(app, ".thread-text").count("Order B-12") == 1

        # the reply box: typed and sent with Enter
        await pilot.press("4")
        await type_text(pilot, "It leaves today")
        await pilot.press("enter")
        await until(pilot, "the reply shown", lambda: "→ Ann" in part(app, ".thread-text"))
        assert "It leaves today" in part(app, ".thread-text")
        assert view(app).query_one(".reply", Input).value == ""
        thread = (await api.get(f"/v1/engagements/{eid}")).json()["messages"]
        assert [(m["direction"], m["text"]) for m in thread] == [
            ("in", "Hi, my parcel is late"),
            ("in", "Order B-12, due Monday"),
            ("out", "It leaves today"),
        ]

        # end: wrap-up, the reply box closes
        await pilot.press("escape", "e")
        await until(pilot, "wrap-up", lambda: "Wrap up" in part(app, ".eng-head"))
        assert "Wrap up" in top(app, "status")
        assert view(app).query_one(".reply", Input).disabled

        # the queue's disposition, then wrap-up done: ready and idle again
        await pilot.press("p")
        await until(pilot, "the disposition picker", lambda: isinstance(app.screen, DispositionScreen))
        await pilot.press("space", "s")
        await until(pilot, "the disposition", lambda: "Disposition: sale" in part(app, ".dispositions"))
        await pilot.press("w")
        await until(pilot, "the chat gone", lambda: not listed(app, "live"))
        assert app.query_one("#empty").display
        await until(pilot, "ready and idle", lambda: top(app, "status").startswith("Ready · Idle"))
        record = (await api.get(f"/v1/engagements/{eid}")).json()
        assert (record["state"], record["dispositions"]) == ("closed", ["sale"])
        assert app.errors == []
        await pilot.press("q")


async def test_a_declined_ring_rings_the_next_agent_and_a_released_email_goes_back_to_its_queue(
    live: Running, api: httpx.AsyncClient
):
    """Decline (d) closes the ring and the call rings ben; with no one else free, a declined call comes
    back as a new ring. An opened email released (x) leaves the open list and goes to ben through its
    queue; ann can no longer act on it."""
    app = Desk(live.ws, token("ann"))
    async with (
        AgentClient.connect(live.ws, token("ben")) as ben,
        app.run_test(size=SIZE, notifications=True) as pilot,
    ):
        await until(pilot, "connected", lambda: "Connected" in top(app, "conn"))
        await pilot.press("r")
        await until(pilot, "ready", lambda: top(app, "status").startswith("Ready · Idle"))

        # declined while ben is free: it rings ben, ann stays ready
        call = {"queue": "calls", "consumer": {"name": "Lukas Becker"}}
        first = (await api.post("/v1/engagements", json=call)).json()["id"]
        await until(pilot, "the ring", lambda: isinstance(app.screen, RingScreen))
        ring = app.screen
        await until(pilot, "who calls", lambda: "Lukas Becker" in shown(ring.query_one("#ring-details", Static)))
        await ben.set_status("ready")
        await pilot.press("d")
        await until(pilot, "the ring closed", lambda: not isinstance(app.screen, RingScreen))
        passed = await ben.next_event("ring", where=lambda r: r.engagement.id == first)
        await until(pilot, "still ready", lambda: top(app, "status").startswith("Ready · Idle"))
        history = [(h["event"], h.get("agent")) for h in (await api.get(f"/v1/engagements/{first}")).json()["history"]]
        assert [h for h in history if h[0] in ("offered", "declined")] == [
            ("offered", "ann"),
            ("declined", "ann"),
            ("offered", "ben"),
        ]
        await ben.accept(passed.offer)

        # declined when no one else is free: it comes back to ann, as a new ring
        call = {"queue": "calls", "consumer": {"name": "Nora Quinn"}}
        second = (await api.post("/v1/engagements", json=call)).json()["id"]
        await until(pilot, "the second ring", lambda: isinstance(app.screen, RingScreen))
        await until(pilot, "who calls", lambda: "Nora Quinn" in shown(app.screen.query_one("#ring-details", Static)))
        offers = set(app.rings)
        await pilot.press("d")
        await until(pilot, "a new ring for her", lambda: app.rings and not offers & set(app.rings))
        await until(pilot, "the ring shown again", lambda: isinstance(app.screen, RingScreen))
        await until(
            pilot,
            "the ring's details",
            lambda: (
                "Nora Quinn" in shown(app.screen.query_one("#ring-details", Static))
                and "Answer within" in shown(app.screen.query_one("#ring-countdown", Static))
            ),
        )
        history = [(h["event"], h.get("agent")) for h in (await api.get(f"/v1/engagements/{second}")).json()["history"]]
        assert [h for h in history if h[0] in ("offered", "declined")] == [
            ("offered", "ann"),
            ("declined", "ann"),
            ("offered", "ann"),
        ]
        await pilot.press("a")
        await until(pilot, "the call on the desk", lambda: "Active" in part(app, ".eng-head"))
        await pilot.press("e")
        await until(pilot, "wrap-up", lambda: "Wrap up" in part(app, ".eng-head"))
        await ben.set_status("not_ready", "break")

        # an email, opened, then released back to its queue: it goes to ben
        email = {"queue": "mail", "consumer": {"email": "li@example.org"}, "subject": "Wrong size", "body": "Swap?"}
        mail = (await api.post("/v1/engagements", json=email)).json()["id"]
        await until(pilot, "the email listed", lambda: any("Wrong size" in row for row in listed(app, "mail")))
        await pilot.press("o", "enter")
        await until(pilot, "the email opened", lambda: "Open" in part(app, ".eng-head"))
        await ben.set_status("ready")
        await pilot.press("x")
        await until(pilot, "the email gone", lambda: not listed(app, "mail"))
        await until(pilot, "where it went", lambda: any("went back to" in t for t in toasts(app)))
        landed = await ben.next_event("engagement", where=lambda e: e.engagement.id == mail)
        assert (landed.engagement.agent, landed.engagement.state) == ("ben", "assigned")
        record = (await api.get(f"/v1/engagements/{mail}")).json()
        assert (record["agent"], record["state"]) == ("ben", "assigned")
        moves = [(h["event"], h.get("agent")) for h in record["history"]]
        assert moves.index(("released", "ann")) < moves.index(("assigned", "ben"))
        async with AgentClient.connect(live.ws, token("ann")) as ann:  # ann's own socket: not hers any more
            for attempt in (ann.send(mail, "Still here?"), ann.release(mail), ann.end(mail)):
                with pytest.raises(RequestFailed) as refused:
                    await attempt
                assert refused.value.code == "not_yours"
        assert app.errors == []
        await pilot.press("q")
