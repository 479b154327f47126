"""The agent desktop in a real browser: sign-in, rings, a call from ring to wrap-up, email, and
coming back by itself, exactly once, after the server restarts."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from playwright.async_api import Locator, Page, expect
from starlette.applications import Starlette
from websockets.asyncio.client import connect

from clients.agent import AgentClient, RequestFailed
from server.app import create_app
from server.auth import issue
from tests.browser.conftest import Pages, api_client, desk_config
from tests.e2e.conftest import Raw
from tests.redis_server import RedisServer
from tests.support import serving, token


def view(page: Page) -> Locator:
    return page.get_by_test_id("engagement-view")


async def go_ready(page: Page) -> None:
    await page.get_by_test_id("status-select").select_option("ready")
    await expect(page.get_by_test_id("status-badge")).to_have_text("Ready")


async def test_a_call_from_ring_to_wrap_up(pages: Pages):
    """Sign in with ?token=, go ready; the ring shows who calls and why; accept with the keyboard;
    the transcript streams in (a partial becomes final in place); search highlights the hit; notes
    are saved as typed; end, pick the required disposition, finish wrap-up: ready and idle again."""
    async with serving(create_app(desk_config())) as live, api_client(live) as api:
        page = await pages.open(f"{live.http}/?token={token('ann')}")
        await expect(page.get_by_test_id("agent-name")).to_have_text("Ann")
        await expect(page.get_by_test_id("conn-state")).to_have_text("Online")
        await expect(page.get_by_test_id("status-badge")).to_have_text("Not ready")
        assert "token=" not in page.url  # the token does not stay in the address bar
        await pages.shot(page, "signed-in")

        await go_ready(page)
        await expect(page.get_by_test_id("activity")).to_have_text("Idle")

        gone = await api.post("/v1/engagements", json={"queue": "calls", "consumer": {"name": "Quick Caller"}})
        await expect(page.get_by_test_id("ring-consumer")).to_have_text("Quick Caller")
        assert (await api.post(f"/v1/engagements/{gone.json()['id']}/end")).json()["state"] == "abandoned"
        await expect(page.get_by_test_id("ring")).to_have_count(0)  # ring_cancelled {reason: abandoned}
        await expect(page.get_by_test_id("toast").filter(has_text="Hung up before you answered")).to_be_visible()
        await expect(page.get_by_test_id("status-badge")).to_have_text("Ready")

        created = await api.post(
            "/v1/engagements",
            json={
                "queue": "calls",
                "consumer": {"phone": "+33 6 12 34 56 78"},
                "variables": {"intent": "refund", "order": "A-1234"},
                "summary": "Parcel arrived damaged; wants a refund",
            },
        )
        assert created.status_code == 201, created.text
        eid = created.json()["id"]

        ring = page.get_by_test_id("ring")
        await expect(ring).to_be_visible()
        await expect(ring.get_by_test_id("ring-consumer")).to_have_text("Jeanne Dupont")
        await expect(ring.get_by_test_id("ring-queue")).to_have_text("Calls")
        await expect(ring.get_by_test_id("ring-summary")).to_contain_text("Parcel arrived damaged")
        await expect(ring.get_by_test_id("ring-variables")).to_contain_text("A-1234")
        await expect(ring.get_by_test_id("ring-variables")).to_contain_text("refund")
        await expect(ring.get_by_test_id("ring-countdown")).to_have_text(re.compile(r"^\d+ s left$"))
        await expect(ring.get_by_test_id("ring-accept")).to_contain_text("A")
        await expect(page.get_by_test_id("activity")).to_have_text("Ringing")
        await expect(ring.get_by_test_id("ring-accept")).to_be_focused()
        await pages.shot(page, "ringing")

        await page.keyboard.press("a")
        await expect(ring).to_have_count(0)
        await expect(view(page)).to_have_attribute("data-engagement", eid)
        await expect(view(page).get_by_test_id("state")).to_have_text("Active")
        await expect(page.get_by_test_id("activity")).to_have_text("Busy")
        await expect(view(page).get_by_test_id("profile-variables")).to_contain_text("A-1234")
        await expect(view(page).get_by_test_id("profile-summary")).to_have_text(
            "Parcel arrived damaged; wants a refund"
        )
        await expect(view(page).get_by_test_id("profile-fields")).to_contain_text("ACC-48213")
        await pages.shot(page, "accepted")

        await view(page).get_by_test_id("tab-transcript").click()
        fragments = view(page).get_by_test_id("fragment")
        said = [{"id": "f1", "speaker": "consumer", "text": "Bonjour, mon colis", "final": False}]
        assert (await api.post(f"/v1/engagements/{eid}/transcript", json={"fragments": said})).status_code == 202
        await expect(fragments).to_have_count(1)
        await expect(fragments.first).to_have_class(re.compile(r"\bpartial\b"))
        said = [
            {"id": "f1", "speaker": "consumer", "text": "Bonjour, mon colis est arrivé abîmé.", "final": True},
            {"speaker": "agent", "text": "Je regarde votre commande tout de suite."},
        ]
        assert (await api.post(f"/v1/engagements/{eid}/transcript", json={"fragments": said})).status_code == 202
        await expect(fragments).to_have_count(2)
        await expect(fragments.first).not_to_have_class(re.compile(r"\bpartial\b"))
        await expect(fragments.first).to_contain_text("Bonjour, mon colis est arrivé abîmé.")
        await expect(fragments.nth(1)).to_contain_text("Je regarde votre commande")
        await pages.shot(page, "transcript")

        await view(page).get_by_test_id("search-input").fill("colis abime")
        await view(page).get_by_test_id("search-input").press("Enter")
        hits = view(page).get_by_test_id("search-hit")
        await expect(hits).to_have_count(1)
        await expect(hits.first.locator("mark")).to_have_text(["colis", "abîmé"])
        await pages.shot(page, "search")

        await view(page).get_by_test_id("tab-engagement").click()
        await view(page).get_by_test_id("notes").fill("Refund approved, label sent")
        await expect(view(page).get_by_test_id("note-status")).to_have_text(re.compile("^Saved"))
        stored = (await api.get(f"/v1/engagements/{eid}")).json()
        assert stored["notes"] == "Refund approved, label sent"
        await view(page).get_by_test_id("notes").press_sequentially(" (by mail)")
        await view(page).get_by_test_id("notes-save").click()
        await expect(view(page).get_by_test_id("note-status")).to_have_text(re.compile("^Saved"))
        assert (await api.get(f"/v1/engagements/{eid}")).json()["notes"] == "Refund approved, label sent (by mail)"
        await pages.shot(page, "notes")

        await view(page).get_by_test_id("end").click()
        await expect(view(page).get_by_test_id("state")).to_have_text("Wrap up")
        await expect(view(page).get_by_test_id("wrap-up-countdown")).to_have_text(
            re.compile(r"Wrap-up ends in \d+:\d\d")
        )
        await expect(page.get_by_test_id("activity")).to_have_text("Wrap-up")
        await view(page).get_by_test_id("wrap-up-done").click()  # no disposition yet: the server says so
        await expect(page.get_by_test_id("toast").filter(has_text="Choose a disposition first")).to_be_visible()
        await pages.shot(page, "disposition-required")

        await view(page).get_by_test_id("disposition-resolved").check()
        await view(page).get_by_test_id("wrap-up-done").click()  # frames are handled in order: it is set by now
        await expect(view(page)).to_have_count(0)
        await expect(page.get_by_test_id("status-badge")).to_have_text("Ready")
        await expect(page.get_by_test_id("activity")).to_have_text("Idle")
        closed = (await api.get(f"/v1/engagements/{eid}")).json()
        assert closed["state"] == "closed" and closed["dispositions"] == ["resolved"]
        agent_info = (await api.get("/v1/agents/ann")).json()
        assert agent_info["status"] == "ready" and agent_info["engagements"] == []
        await pages.shot(page, "ready-again")
        await pages.finish()


async def test_demo_picker_sign_in_and_refused_tokens(pages: Pages):
    """With demo sign-in on, `/` lists the demo people; a forged token is refused by the server (4401)
    and the page says so on the sign-in screen rather than retrying; picking a name signs in."""
    async with serving(create_app(desk_config(), demo=True)) as live:
        page = await pages.open(f"{live.http}/")
        signin = page.get_by_test_id("signin")
        await expect(signin.get_by_test_id("picker-agent-ann")).to_be_visible()
        await expect(signin.get_by_test_id("picker-agent-cat")).to_be_visible()
        link = signin.get_by_test_id("picker-supervisor-sue")
        await expect(link).to_have_attribute("href", re.compile(r"^/supervisor\?token=ey"))
        await pages.shot(page, "picker")

        await signin.get_by_test_id("token-input").fill("not a token")
        await signin.get_by_test_id("token-submit").click()
        await expect(page.get_by_test_id("signin-message")).to_have_text("That is not a Switchboard token.")

        forged = issue("a-different-secret-0123456789-0123456789", "ann", "agent", 600)
        await page.get_by_test_id("token-input").fill(forged)
        await page.get_by_test_id("token-submit").click()
        message = page.get_by_test_id("signin-message")
        await expect(message).to_contain_text("Your sign-in was refused")
        await expect(message).to_contain_text("invalid token")
        await expect(page.get_by_test_id("conn-banner")).to_be_hidden()
        await pages.shot(page, "refused")

        await page.get_by_test_id("picker-agent-ben").click()
        await expect(page.get_by_test_id("agent-name")).to_have_text("Ben")
        await expect(page.get_by_test_id("conn-state")).to_have_text("Online")
        await pages.shot(page, "picked")

        await page.reload()  # the tab keeps its sign-in
        await expect(page.get_by_test_id("agent-name")).to_have_text("Ben")
        await page.get_by_test_id("sign-out").click()
        await expect(page.get_by_test_id("signin-message")).to_have_text("You are signed out.")
        await pages.finish()


async def test_an_email_from_inbox_to_reply_to_transfer(pages: Pages):
    """An email lands in the inbox marked unread; opening it clears the mark; a new line from the
    consumer shows once; the reply is in the thread and in the record; a transfer hands it to ben."""
    async with serving(create_app(desk_config())) as live, api_client(live) as api:
        page = await pages.open(f"{live.http}/?token={token('ann')}")
        await go_ready(page)
        async with AgentClient.connect(live.ws, token("ben")) as ben:
            created = await api.post(
                "/v1/engagements",
                json={
                    "queue": "mail",
                    "consumer": {"name": "Omar Haddad", "email": "omar@example.org"},
                    "subject": "Order A-77 never arrived",
                    "body": "Hello, I ordered two weeks ago and nothing came.",
                },
            )
            eid = created.json()["id"]
            item = page.get_by_test_id("inbox-item")
            await expect(item).to_have_attribute("data-engagement", eid)
            await expect(item.get_by_test_id("unread")).to_be_visible()
            await expect(item).to_contain_text("Order A-77 never arrived")
            await expect(page.get_by_test_id("workspace-empty")).to_be_visible()
            await pages.shot(page, "inbox-unread")

            await item.click()
            await expect(view(page).get_by_test_id("state")).to_have_text("Open")
            await expect(page.get_by_test_id("inbox-item").get_by_test_id("unread")).to_have_count(0)
            messages = view(page).get_by_test_id("message")
            await expect(messages).to_have_count(1)
            await expect(messages.first).to_contain_text("nothing came")
            assert (await api.get(f"/v1/engagements/{eid}")).json()["state"] == "open"

            line = await api.post(f"/v1/engagements/{eid}/messages", json={"text": "Any news?"})
            assert line.status_code == 202
            await expect(messages).to_have_count(2)
            await expect(messages.filter(has_text="Any news?")).to_have_count(1)

            await expect(view(page).get_by_test_id("reply-subject")).to_have_value("Re: Order A-77 never arrived")
            await view(page).get_by_test_id("reply-text").fill("Sorry! A new parcel leaves today.")
            await view(page).get_by_test_id("reply-send").click()
            await expect(messages).to_have_count(3)
            sent = messages.nth(2)
            await expect(sent).to_have_attribute("data-direction", "out")
            await expect(sent.get_by_test_id("message-text")).to_have_text("Sorry! A new parcel leaves today.")
            await expect(sent.get_by_test_id("message-subject")).to_have_text("Re: Order A-77 never arrived")
            await expect(view(page).get_by_test_id("reply-text")).to_have_value("")
            record = (await api.get(f"/v1/engagements/{eid}")).json()
            assert [(m["direction"], m["text"]) for m in record["messages"]][-1] == (
                "out",
                "Sorry! A new parcel leaves today.",
            )
            await pages.shot(page, "replied")

            second = await api.post(
                "/v1/engagements",
                json={"queue": "mail", "consumer": {"email": "mei@example.net"}, "subject": "Invoice", "body": "Hi"},
            )
            items = page.get_by_test_id("inbox-item")
            await expect(items).to_have_count(2)
            other = items.and_(page.locator(f'[data-engagement="{second.json()["id"]}"]'))
            first = items.and_(page.locator(f'[data-engagement="{eid}"]'))
            await expect(other.get_by_test_id("unread")).to_be_visible()
            await other.click()
            await expect(other.get_by_test_id("unread")).to_have_count(0)
            await api.post(f"/v1/engagements/{eid}/messages", json={"text": "Hello again"})
            await expect(first.get_by_test_id("unread")).to_be_visible()  # new since it was last opened
            await expect(page.get_by_test_id("toast").filter(has_text="New message from Omar Haddad")).to_be_visible()
            await pages.shot(page, "unread-again")
            await first.click()
            await expect(first.get_by_test_id("unread")).to_have_count(0)
            await expect(messages).to_have_count(4)

            await view(page).get_by_test_id("transfer").click()
            dialog = page.get_by_test_id("transfer-dialog")
            await expect(dialog).to_be_visible()
            await expect(dialog.get_by_test_id("transfer-queue")).to_contain_text("Mail")
            await dialog.get_by_test_id("transfer-to-agent").check()
            await dialog.get_by_test_id("transfer-agent").select_option("ben")
            await pages.shot(page, "transfer-dialog")
            await dialog.get_by_test_id("transfer-submit").click()
            await expect(dialog).to_be_hidden()
            await expect(page.get_by_test_id("inbox-item")).to_have_count(1)
            await expect(page.get_by_test_id("toast").filter(has_text="transferred to Ben")).to_be_visible()
            moved = (await api.get(f"/v1/engagements/{eid}")).json()
            assert moved["agent"] == "ben" and moved["state"] == "assigned"
            landed = await ben.next_event("engagement", where=lambda e: e.engagement.id == eid)
            assert landed.engagement.agent == "ben"
            await pages.shot(page, "transferred")
            await pages.finish()


async def test_the_desktop_comes_back_after_a_restart_and_shows_the_missed_line_once(
    pages: Pages, shared_redis: RedisServer
):
    """A Redis-backed node stops under the open page and starts again on the same port; meanwhile the
    consumer writes through another node. The page shows the banner, resumes by itself, and shows the
    line it missed exactly once."""
    prefix = f"browser{uuid.uuid4().hex[:8]}"
    config = desk_config()

    def node() -> Starlette:
        return create_app(config, redis_url=shared_redis.url, redis_prefix=prefix)

    async with serving(node()) as first, api_client(first) as api:
        port = first.port
        pages.allow([rf"WebSocket connection to 'ws://127\.0\.0\.1:{port}/v1/agent' failed"])
        page = await pages.open(f"{first.http}/?token={token('ann')}")
        await go_ready(page)
        created = await api.post("/v1/engagements", json={"queue": "chat", "consumer": {"name": "Mei Chen"}})
        eid = created.json()["id"]
        await expect(view(page)).to_have_attribute("data-engagement", eid)
        assert (await api.post(f"/v1/engagements/{eid}/messages", json={"text": "Hi, is anyone there?"})).is_success
        messages = view(page).get_by_test_id("message")
        await expect(messages).to_have_count(1)
        await pages.shot(page, "chatting")

    banner = page.get_by_test_id("conn-banner")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("Reconnecting")
    await expect(page.get_by_test_id("conn-state")).to_have_text("Reconnecting…")
    await pages.shot(page, "reconnecting")

    async with serving(node()) as other, api_client(other) as api:
        missed = await api.post(f"/v1/engagements/{eid}/messages", json={"text": "Sent while you were away"})
        assert missed.status_code == 202

    async with serving(node(), port=port) as again, api_client(again) as api:
        await expect(banner).to_be_hidden(timeout=20_000)
        await expect(page.get_by_test_id("conn-state")).to_have_text("Online")
        await expect(messages.filter(has_text="Sent while you were away")).to_have_count(1)
        await expect(messages).to_have_count(2)
        assert await page.evaluate("() => document.body.dataset.resumed") == "true"  # resumed, not rebuilt
        assert (await api.post(f"/v1/engagements/{eid}/messages", json={"text": "And one more"})).is_success
        await expect(messages).to_have_count(3)
        await expect(messages.filter(has_text="Sent while you were away")).to_have_count(1)
        await view(page).get_by_test_id("reply-text").fill("Back now, sorry")
        await view(page).get_by_test_id("reply-text").press("Enter")
        await expect(messages).to_have_count(4)
        await pages.shot(page, "resumed")
        await pages.finish()


async def test_a_fresh_snapshot_rebuilds_the_view(pages: Pages):
    """While on a call, a status change waits as the next status. A reload rebuilds the page from
    `welcome`: the call, its transcript so far and the next status are all back. An in-memory server
    that restarts has lost everything: the page reconnects, gets `resumed: false`, and rebuilds from
    the new, empty snapshot."""
    config = desk_config()
    async with serving(create_app(config)) as first, api_client(first) as api:
        port = first.port
        pages.allow([rf"WebSocket connection to 'ws://127\.0\.0\.1:{port}/v1/agent' failed"])
        page = await pages.open(f"{first.http}/?token={token('ann')}")
        await go_ready(page)
        created = await api.post("/v1/engagements", json={"queue": "calls", "consumer": {"name": "Mei Chen"}})
        eid = created.json()["id"]
        await page.get_by_test_id("ring-accept").click()
        await expect(view(page)).to_have_attribute("data-engagement", eid)
        said = [{"speaker": "consumer", "text": "Hello?"}, {"speaker": "agent", "text": "Hello, Mei."}]
        await api.post(f"/v1/engagements/{eid}/transcript", json={"fragments": said})
        await page.get_by_test_id("status-select").select_option("not_ready:lunch")
        await expect(page.get_by_test_id("next-status")).to_have_text("Next: Not ready · Lunch")
        await expect(page.get_by_test_id("status-badge")).to_have_text("Ready")
        await expect(page.get_by_test_id("toast").filter(has_text="once your current work is done")).to_be_visible()
        await pages.shot(page, "next-status")

        await page.reload()
        await expect(page.get_by_test_id("conn-state")).to_have_text("Online")
        assert await page.evaluate("() => document.body.dataset.resumed") == "false"
        await expect(view(page)).to_have_attribute("data-engagement", eid)
        await expect(view(page).get_by_test_id("state")).to_have_text("Active")
        await view(page).get_by_test_id("tab-transcript").click()
        so_far = view(page).get_by_test_id("fragment")
        await expect(so_far).to_have_text([re.compile(r"Hello\?"), re.compile("Hello, Mei")])
        await expect(page.get_by_test_id("next-status")).to_have_text("Next: Not ready · Lunch")
        await expect(page.get_by_test_id("status-select")).to_have_value("not_ready:lunch")
        await pages.shot(page, "reloaded")

    await expect(page.get_by_test_id("conn-banner")).to_be_visible()
    async with serving(create_app(config), port=port):
        await expect(page.get_by_test_id("conn-state")).to_have_text("Online", timeout=20_000)
        await expect(page.get_by_test_id("conn-banner")).to_be_hidden()
        await expect(view(page)).to_have_count(0)
        await expect(page.get_by_test_id("workspace-empty")).to_be_visible()
        await expect(page.get_by_test_id("status-badge")).to_have_text("Not ready")
        await expect(page.get_by_test_id("next-status")).to_be_hidden()
        await expect(page.get_by_test_id("activity")).to_have_text("Idle")
        await expect(page.get_by_test_id("toast").filter(has_text="could not resume")).to_be_visible()
        assert await page.evaluate("() => document.body.dataset.resumed") == "false"
        await pages.shot(page, "rebuilt")
        await pages.finish()


def events(record: dict[str, Any], *kinds: str) -> list[tuple[str, str | None]]:
    """An engagement's history as (event, agent) pairs, only the `kinds` of events when given."""
    return [(e["event"], e.get("agent")) for e in record["history"] if not kinds or e["event"] in kinds]


async def test_a_chat_lands_is_answered_ended_and_wrapped_up(pages: Pages):
    """A chat on an auto-accept queue starts on the desk with no ring, on its Chat tab; the consumer's
    lines (over HTTP and over their own socket) show once each; the reply typed in the box and sent with
    Enter reaches the consumer's socket and the record; End, the queue's disposition, wrap-up done:
    ready and idle again, and the consumer sees the conversation close."""
    async with serving(create_app(desk_config())) as live, api_client(live) as api:
        page = await pages.open(f"{live.http}/?token={token('ann')}")
        await go_ready(page)
        created = await api.post(
            "/v1/engagements", json={"queue": "chat", "consumer": {"name": "Mei Chen"}, "body": "Hi, my parcel is late"}
        )
        assert created.status_code == 201, created.text
        eid, consumer_token = created.json()["id"], created.json()["consumer_token"]
        await expect(view(page)).to_have_attribute("data-engagement", eid)
        await expect(view(page).get_by_test_id("state")).to_have_text("Active")
        await expect(page.get_by_test_id("ring")).to_have_count(0)  # auto-accept: no ring
        await expect(page.get_by_test_id("conv-item")).to_have_attribute("data-engagement", eid)
        await expect(page.get_by_test_id("activity")).to_have_text("Busy")
        await expect(view(page).get_by_test_id("tab-thread")).to_have_attribute("aria-selected", "true")
        messages = view(page).get_by_test_id("message")
        await expect(messages).to_have_count(1)
        await expect(messages.first).to_have_attribute("data-direction", "in")
        await expect(messages.first.get_by_test_id("message-text")).to_have_text("Hi, my parcel is late")

        async with connect(f"{live.ws}/v1/consumer/{eid}?token={consumer_token}") as ws:
            consumer = Raw(ws)
            assert (await consumer.request({"type": "hello", "id": 1}))["type"] == "welcome"
            conversation = await consumer.until("conversation")
            assert (conversation["state"], conversation["agent_name"]) == ("active", "Ann")

            line = await api.post(f"/v1/engagements/{eid}/messages", json={"text": "Order B-12, due Monday"})
            assert line.status_code == 202
            await expect(messages).to_have_count(2)
            await expect(messages.nth(1).get_by_test_id("message-text")).to_have_text("Order B-12, due Monday")
            sent = await consumer.request({"type": "send", "id": 2, "engagement": eid, "text": "Still nothing"})
            assert sent["type"] == "ok", sent
            await expect(messages).to_have_count(3)
            await expect(messages.filter(has_text="Still nothing")).to_have_count(1)
            await pages.shot(page, "chat-landed")

            reply = view(page).get_by_test_id("reply-text")
            await reply.click()
            await reply.press_sequentially("Sorry Mei! It leaves today.")
            await reply.press("Enter")
            await expect(messages).to_have_count(4)
            await expect(messages.nth(3)).to_have_attribute("data-direction", "out")
            await expect(messages.nth(3).get_by_test_id("message-text")).to_have_text("Sorry Mei! It leaves today.")
            await expect(reply).to_have_value("")
            echo = await consumer.first(lambda f: f["type"] == "message" and f["direction"] == "out")
            assert (echo["text"], echo["sender"]) == ("Sorry Mei! It leaves today.", "Ann")
            record = (await api.get(f"/v1/engagements/{eid}")).json()
            assert [(m["direction"], m["text"]) for m in record["messages"]] == [
                ("in", "Hi, my parcel is late"),
                ("in", "Order B-12, due Monday"),
                ("in", "Still nothing"),
                ("out", "Sorry Mei! It leaves today."),
            ]
            await pages.shot(page, "chat-replied")

            await view(page).get_by_test_id("end").click()
            await expect(view(page).get_by_test_id("state")).to_have_text("Wrap up")
            await expect(page.get_by_test_id("activity")).to_have_text("Wrap-up")
            await expect(view(page).get_by_test_id("wrap-up-countdown")).to_have_text(
                re.compile(r"Wrap-up ends in \d+:\d\d")
            )
            await expect(reply).to_be_disabled()
            ended = await consumer.first(lambda f: f["type"] == "conversation" and f["state"] != "active")
            assert ended["state"] == "wrap_up"
            await view(page).get_by_test_id("disposition-sale").check()
            await expect(view(page).get_by_test_id("disposition-sale")).to_be_checked()
            await pages.shot(page, "chat-wrap-up")

            await view(page).get_by_test_id("wrap-up-done").click()
            await expect(view(page)).to_have_count(0)
            await expect(page.get_by_test_id("conv-item")).to_have_count(0)
            await expect(page.get_by_test_id("status-badge")).to_have_text("Ready")
            await expect(page.get_by_test_id("activity")).to_have_text("Idle")
            closed = (await api.get(f"/v1/engagements/{eid}")).json()
            assert (closed["state"], closed["dispositions"]) == ("closed", ["sale"])
            assert (await api.get("/v1/agents/ann")).json()["status"] == "ready"
            await pages.shot(page, "chat-ready-again")
        await pages.finish()


async def test_a_declined_ring_goes_to_the_next_agent_or_comes_back(pages: Pages):
    """Declining with the button passes the call to the next ready agent (ben); the agent stays ready.
    Declining with the D key when no one else is free: the routing rules offer it to her again, as a new
    ring for the same caller."""
    async with (
        serving(create_app(desk_config())) as live,
        api_client(live) as api,
        AgentClient.connect(live.ws, token("ben")) as ben,
    ):
        page = await pages.open(f"{live.http}/?token={token('ann')}")
        await go_ready(page)
        call = {"queue": "calls", "consumer": {"name": "Lukas Becker"}}
        first = (await api.post("/v1/engagements", json=call)).json()
        ring = page.get_by_test_id("ring")
        await expect(ring.get_by_test_id("ring-consumer")).to_have_text("Lukas Becker")
        await expect(ring.get_by_test_id("ring-decline")).to_contain_text("D")
        await ben.set_status("ready")  # ben becomes free while it rings ann
        await pages.shot(page, "ring-to-decline")

        await ring.get_by_test_id("ring-decline").click()
        await expect(ring).to_have_count(0)
        passed = await ben.next_event("ring", where=lambda r: r.engagement.id == first["id"])
        await expect(page.get_by_test_id("status-badge")).to_have_text("Ready")  # a decline is not a missed call
        await expect(page.get_by_test_id("activity")).to_have_text("Idle")
        record = (await api.get(f"/v1/engagements/{first['id']}")).json()
        assert (record["state"], events(record, "offered", "declined")) == (
            "offered",
            [("offered", "ann"), ("declined", "ann"), ("offered", "ben")],
        )
        await pages.shot(page, "declined-to-ben")
        await ben.accept(passed.offer)  # ben is on the phone now: no one else is free for calls

        second = (await api.post("/v1/engagements", json={"queue": "calls", "consumer": {"name": "Nora Quinn"}})).json()
        await expect(ring.get_by_test_id("ring-consumer")).to_have_text("Nora Quinn")
        await expect(ring.get_by_test_id("ring-accept")).to_be_focused()
        offer = await ring.get_attribute("data-offer")
        assert offer
        await page.keyboard.press("d")
        await expect(ring).to_have_count(1)
        await expect(ring).not_to_have_attribute("data-offer", offer)  # a new ring, for the same caller
        await expect(ring).to_have_attribute("data-engagement", second["id"])
        await expect(ring.get_by_test_id("ring-consumer")).to_have_text("Nora Quinn")
        await expect(ring.get_by_test_id("ring-countdown")).to_have_text(re.compile(r"^\d+ s left$"))
        record = (await api.get(f"/v1/engagements/{second['id']}")).json()
        assert events(record, "offered", "declined") == [("offered", "ann"), ("declined", "ann"), ("offered", "ann")]
        assert "offered again" in record["history"][-1]["routing"]["rule"]
        await pages.shot(page, "declined-and-back")

        await page.keyboard.press("a")
        await expect(ring).to_have_count(0)
        await expect(view(page)).to_have_attribute("data-engagement", second["id"])
        await expect(view(page).get_by_test_id("state")).to_have_text("Active")
        await pages.finish()


async def test_a_released_email_goes_back_to_its_queue_and_on_to_a_colleague(pages: Pages):
    """An opened email released from the desk leaves the open list; it goes back through its queue to
    the next eligible agent (ben), and its former holder can no longer act on it."""
    async with (
        serving(create_app(desk_config())) as live,
        api_client(live) as api,
        AgentClient.connect(live.ws, token("ben")) as ben,
    ):
        page = await pages.open(f"{live.http}/?token={token('ann')}")
        await go_ready(page)
        email = {"queue": "mail", "consumer": {"email": "li@example.org"}, "subject": "Wrong size", "body": "Swap it?"}
        eid = (await api.post("/v1/engagements", json=email)).json()["id"]
        item = page.get_by_test_id("inbox-item")
        await expect(item).to_have_attribute("data-engagement", eid)
        await item.click()
        await expect(view(page).get_by_test_id("state")).to_have_text("Open")
        await view(page).get_by_test_id("tab-engagement").click()
        await view(page).get_by_test_id("notes").fill("Sizes are Lea's team")
        await ben.set_status("ready")
        await pages.shot(page, "email-to-release")

        await view(page).get_by_test_id("release").click()
        await expect(view(page)).to_have_count(0)
        await expect(page.get_by_test_id("inbox-item")).to_have_count(0)
        await expect(page.get_by_test_id("workspace-empty")).to_be_visible()
        await expect(page.get_by_test_id("toast").filter(has_text="released back to the queue")).to_be_visible()
        landed = await ben.next_event("engagement", where=lambda e: e.engagement.id == eid)
        assert (landed.engagement.agent, landed.engagement.state) == ("ben", "assigned")
        record = (await api.get(f"/v1/engagements/{eid}")).json()
        assert (record["agent"], record["state"], record["notes"]) == ("ben", "assigned", "Sizes are Lea's team")
        moves = events(record)
        assert moves.index(("released", "ann")) < moves.index(("assigned", "ben"))
        await pages.shot(page, "released")

        async with AgentClient.connect(live.ws, token("ann")) as ann:  # ann's own socket: it is not hers now
            for attempt in (ann.send(eid, "Still here?"), ann.release(eid), ann.end(eid)):
                with pytest.raises(RequestFailed) as refused:
                    await attempt
                assert refused.value.code == "not_yours"
        await expect(page.get_by_test_id("inbox-item")).to_have_count(0)
        await pages.finish()


async def test_the_transcript_follows_new_lines_unless_the_agent_scrolled_up(pages: Pages):
    """New transcript lines scroll the pane to the bottom; once the agent scrolls up, a new line leaves
    the view where it is and offers a jump to the latest lines; back at the bottom, it follows again."""
    async with serving(create_app(desk_config())) as live, api_client(live) as api:
        page = await pages.open(f"{live.http}/?token={token('ann')}")
        await go_ready(page)
        eid = (await api.post("/v1/engagements", json={"queue": "calls", "consumer": {"name": "Jo Long"}})).json()["id"]
        await page.get_by_test_id("ring-accept").click()
        await expect(view(page)).to_have_attribute("data-engagement", eid)
        await view(page).get_by_test_id("tab-transcript").click()
        pane = view(page).get_by_test_id("transcript")
        fragments = view(page).get_by_test_id("fragment")
        jump = view(page).get_by_test_id("jump-latest")

        async def say(*texts: str) -> None:
            said = [{"speaker": "consumer" if i % 2 else "agent", "text": text} for i, text in enumerate(texts)]
            assert (await api.post(f"/v1/engagements/{eid}/transcript", json={"fragments": said})).status_code == 202

        async def shows(fragment: Locator) -> bool:
            """Whether the line is inside the pane's visible part."""
            box, inner = await pane.bounding_box(), await fragment.bounding_box()
            assert box is not None and inner is not None
            return inner["y"] >= box["y"] - 1 and inner["y"] + inner["height"] <= box["y"] + box["height"] + 1

        await say(*(f"Line {n} of what was said" for n in range(1, 41)))
        await expect(fragments).to_have_count(40)
        handle = await pane.element_handle()
        at_bottom = "el => el.scrollHeight > el.clientHeight && el.scrollTop + el.clientHeight >= el.scrollHeight - 2"
        await page.wait_for_function(at_bottom, arg=handle)
        assert await shows(fragments.last) and not await shows(fragments.first)
        await say("Line 41, still following")
        await expect(fragments).to_have_count(41)
        await page.wait_for_function(at_bottom, arg=handle)
        assert await shows(fragments.last)
        await expect(jump).to_be_hidden()
        await pages.shot(page, "transcript-following")

        await pane.hover()
        await page.mouse.wheel(0, -20_000)  # the agent scrolls back up to the start
        await page.wait_for_function("el => el.scrollTop === 0", arg=handle)
        await say("Line 42, said while the agent reads back")
        await expect(fragments).to_have_count(42)
        await expect(jump).to_be_visible()
        assert await pane.evaluate("el => el.scrollTop") == 0  # the view did not move
        assert await shows(fragments.first) and not await shows(fragments.last)
        await pages.shot(page, "transcript-scrolled-up")

        await jump.click()
        await page.wait_for_function(at_bottom, arg=handle)
        await expect(jump).to_be_hidden()
        await say("Line 43, following again")
        await expect(fragments).to_have_count(43)
        await page.wait_for_function(at_bottom, arg=handle)
        assert await shows(fragments.last)
        await pages.shot(page, "transcript-following-again")
        await pages.finish()
