"""The supervisor page in a real browser: live queue figures and agent states, watching an engagement's
transcript, and the supervisor's acts (an agent's status, ending, finishing wrap-up)."""

from __future__ import annotations

import re
import uuid

from playwright.async_api import expect
from starlette.applications import Starlette

from clients.agent import AgentClient
from server.app import create_app
from tests.browser.conftest import Pages, api_client, desk_config
from tests.redis_server import RedisServer
from tests.support import serving, token


async def test_supervisor_sees_queues_and_agents_live_watches_and_acts(pages: Pages):
    async with serving(create_app(desk_config())) as live, api_client(live) as api:
        page = await pages.open(f"{live.http}/supervisor?token={token('sue', 'supervisor')}")
        await expect(page.get_by_test_id("supervisor-name")).to_have_text("Sue Visor")
        await expect(page.get_by_test_id("conn-state")).to_have_text("Online")
        queues = page.get_by_test_id("queue-row")
        await expect(queues).to_have_count(4)
        calls = queues.and_(page.locator('[data-queue="calls"]'))
        billing = queues.and_(page.locator('[data-queue="billing"]'))
        await expect(calls).to_contain_text("Calls")
        await expect(calls.get_by_test_id("offline")).to_have_text("2")
        rows = page.get_by_test_id("agent-row")
        await expect(rows).to_have_count(3)
        ann = rows.and_(page.locator('[data-agent="ann"]'))
        ben = rows.and_(page.locator('[data-agent="ben"]'))
        await expect(ann.get_by_test_id("agent-status")).to_have_text("Offline")
        await pages.shot(page, "everyone-offline")

        async with (
            AgentClient.connect(live.ws, token("ann")) as ann_desk,
            AgentClient.connect(live.ws, token("ben")) as ben_desk,
        ):
            await expect(ann.get_by_test_id("agent-status")).to_have_text("Not ready")
            await ann_desk.set_status("ready")
            await expect(ann.get_by_test_id("agent-status")).to_have_text("Ready")
            await expect(calls.get_by_test_id("ready")).to_have_text("1")
            await expect(calls.get_by_test_id("available")).to_have_text("1")

            waiting = await api.post("/v1/engagements", json={"queue": "billing"})  # cat, its only agent, is away
            assert waiting.status_code == 201
            await expect(billing.get_by_test_id("waiting")).to_have_text("1")
            await expect(billing.get_by_test_id("longest-wait")).to_have_text(re.compile(r"^\d+:\d\d$"))

            created = await api.post("/v1/engagements", json={"queue": "calls", "consumer": {"name": "Lukas Becker"}})
            eid = created.json()["id"]
            ring = await ann_desk.next_event("ring")
            await ann_desk.accept(ring.offer)
            said = [{"speaker": "consumer", "text": "Mein Paket ist nicht angekommen."}]
            assert (await api.post(f"/v1/engagements/{eid}/transcript", json={"fragments": said})).status_code == 202
            await expect(ann.get_by_test_id("agent-activity")).to_have_text("Busy")
            await pages.shot(page, "live")

            await ann.get_by_test_id("watch-engagement").click()
            watch = page.get_by_test_id("watch")
            await expect(watch).to_have_attribute("data-engagement", eid)
            await expect(watch.get_by_test_id("watch-state")).to_have_text("Active")
            fragments = watch.get_by_test_id("watch-fragment")
            await expect(fragments).to_have_count(1)
            await expect(fragments.first).to_contain_text("Mein Paket ist nicht angekommen.")
            said = [{"speaker": "agent", "text": "Ich sehe nach."}]
            await api.post(f"/v1/engagements/{eid}/transcript", json={"fragments": said})
            await expect(fragments).to_have_count(2)
            await expect(fragments.nth(1)).to_contain_text("Ich sehe nach.")
            await pages.shot(page, "watching")

            await ben.get_by_test_id("set-status-select").select_option("not_ready:lunch")
            await ben.get_by_test_id("set-status").click()
            await expect(ben.get_by_test_id("agent-status")).to_have_text("Not ready · Lunch")
            info = (await api.get("/v1/agents/ben")).json()
            assert (info["status"], info["reason"]) == ("not_ready", "lunch")
            status = await ben_desk.next_event("status", where=lambda e: e.reason == "lunch")
            assert status.status == "not_ready"
            await ben.get_by_test_id("set-status-select").select_option("ready")
            await ben.get_by_test_id("set-status").click()
            await expect(ben.get_by_test_id("agent-status")).to_have_text("Ready")
            assert (await api.get("/v1/agents/ben")).json()["status"] == "ready"

            await watch.get_by_test_id("force-end").click()
            await expect(watch.get_by_test_id("watch-state")).to_have_text("Wrap up")
            await expect(ann.get_by_test_id("agent-activity")).to_have_text("Wrap-up")
            await watch.get_by_test_id("force-wrap-up-done").click()
            await expect(watch.get_by_test_id("watch-state")).to_have_text("Closed")
            await expect(ann.get_by_test_id("agent-activity")).to_have_text("Idle")
            record = (await api.get(f"/v1/engagements/{eid}")).json()
            assert record["state"] == "closed"
            assert {"supervisor:sue"} <= {h["actor"] for h in record["history"]}
            await pages.shot(page, "acted")

            await watch.get_by_test_id("unwatch").click()
            await expect(watch).to_have_count(0)
        await expect(ann.get_by_test_id("agent-status")).to_have_text("Ready")  # in grace: status kept
        await pages.finish()


async def test_supervisor_page_watches_again_after_a_restart_and_transfers(pages: Pages, shared_redis: RedisServer):
    """A Redis-backed node restarts under the page: the banner shows, the page comes back, gets every
    agent and queue again (no duplicate rows) and watches again: the line said during the outage is
    there, once. Then the supervisor moves the call to another queue."""
    prefix = f"browsersup{uuid.uuid4().hex[:8]}"
    config = desk_config()

    def node() -> Starlette:
        return create_app(config, redis_url=shared_redis.url, redis_prefix=prefix)

    async with serving(node()) as first, api_client(first) as api:
        port = first.port
        pages.allow([rf"WebSocket connection to 'ws://127\.0\.0\.1:{port}/v1/supervisor' failed"])
        page = await pages.open(f"{first.http}/supervisor?token={token('sue', 'supervisor')}")
        ann = page.get_by_test_id("agent-row").and_(page.locator('[data-agent="ann"]'))
        async with AgentClient.connect(first.ws, token("ann")) as desk:
            await desk.set_status("ready")
            created = await api.post("/v1/engagements", json={"queue": "calls", "consumer": {"name": "Omar Haddad"}})
            eid = created.json()["id"]
            await desk.accept((await desk.next_event("ring")).offer)
            said = [{"speaker": "consumer", "text": "Before the outage"}]
            await api.post(f"/v1/engagements/{eid}/transcript", json={"fragments": said})
            await ann.get_by_test_id("watch-engagement").click()
            fragments = page.get_by_test_id("watch-fragment")
            await expect(fragments).to_have_count(1)

    banner = page.get_by_test_id("conn-banner")
    await expect(banner).to_be_visible()
    await pages.shot(page, "reconnecting")
    async with serving(node()) as other, api_client(other) as api:
        said = [{"speaker": "consumer", "text": "During the outage"}]
        assert (await api.post(f"/v1/engagements/{eid}/transcript", json={"fragments": said})).status_code == 202

    async with serving(node(), port=port) as again, api_client(again) as api:
        await expect(banner).to_be_hidden(timeout=20_000)
        await expect(page.get_by_test_id("conn-state")).to_have_text("Online")
        await expect(fragments).to_have_count(2)
        await expect(fragments.filter(has_text="During the outage")).to_have_count(1)
        await expect(page.get_by_test_id("agent-row")).to_have_count(3)
        await expect(page.get_by_test_id("queue-row")).to_have_count(4)
        await expect(page.get_by_test_id("watch")).to_have_count(1)
        await pages.shot(page, "back")

        watch = page.get_by_test_id("watch")
        await watch.get_by_test_id("force-transfer-target").select_option("queue:billing")
        await watch.get_by_test_id("force-transfer").click()
        await expect(watch.get_by_test_id("watch-state")).to_have_text("Queued")
        billing = page.get_by_test_id("queue-row").and_(page.locator('[data-queue="billing"]'))
        await expect(billing.get_by_test_id("waiting")).to_have_text("1")
        moved = (await api.get(f"/v1/engagements/{eid}")).json()
        assert (moved["state"], moved["queue"], moved["agent"]) == ("queued", "billing", None)
        await pages.shot(page, "transferred")
        await pages.finish()


async def test_a_supervisor_moves_a_call_off_an_open_desktop(pages: Pages):
    """The agent's desktop hears of the supervisor's transfer: the call leaves it, and it says where to."""
    async with serving(create_app(desk_config())) as live, api_client(live) as api:
        desk = await pages.open(f"{live.http}/?token={token('ann')}")
        await desk.get_by_test_id("status-select").select_option("ready")
        await expect(desk.get_by_test_id("status-badge")).to_have_text("Ready")
        created = await api.post("/v1/engagements", json={"queue": "calls", "consumer": {"name": "Lukas Becker"}})
        eid = created.json()["id"]
        await desk.get_by_test_id("ring-accept").click()
        await expect(desk.get_by_test_id("engagement-view")).to_have_attribute("data-engagement", eid)

        console = await pages.open(f"{live.http}/supervisor?token={token('sue', 'supervisor')}")
        await console.get_by_test_id("watch-input").fill(eid)
        await console.get_by_test_id("watch-submit").click()
        watch = console.get_by_test_id("watch")
        await expect(watch.get_by_test_id("watch-state")).to_have_text("Active")
        await watch.get_by_test_id("force-transfer-target").select_option("queue:billing")
        await watch.get_by_test_id("force-transfer").click()
        await expect(watch.get_by_test_id("watch-state")).to_have_text("Queued")

        await expect(desk.get_by_test_id("engagement-view")).to_have_count(0)
        moved = desk.get_by_test_id("toast").filter(has_text="Lukas Becker: transferred to Billing by a supervisor")
        await expect(moved).to_be_visible()
        await expect(desk.get_by_test_id("activity")).to_have_text("Idle")
        await pages.shot(desk, "desk-after-transfer")
        await pages.finish()
