"""The terminal agent desktop: a Textual app over the asyncio client library.

One worker owns the connection: it opens the client (retrying while the server is unreachable), then
applies every event to the model (`Held`, rings, status) and re-renders what changed. Requests run in
their own workers, so the screen never waits on the network; a refused request is a notification,
never a crash. The client reconnects by itself (`auto_reconnect`), and the top bar says so.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

import httpx
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import ModalScreen
from textual.widgets import Footer, Header, Input, OptionList, Static, TextArea
from textual.widgets.option_list import Option
from websockets.exceptions import InvalidHandshake

from clients.agent import FATAL_CLOSES, AgentClient, ClientError, ConnectionClosed, RequestFailed, RequestTimeout
from clients.terminal.model import (
    HELD_STATES,
    Clock,
    Held,
    StatusInfo,
    activity,
    connection_text,
    consumer_name,
    http_base,
    list_entry,
    status_text,
)
from clients.terminal.screens import DispositionScreen, ReasonScreen, RingScreen, Target, TransferScreen
from clients.terminal.views import ACTIONS, EngagementView, KeyButton
from protocol.frames import (
    Closing,
    EngagementEvent,
    Error,
    MessageEvent,
    Ring,
    RingCancelled,
    ServerFrame,
    StatusEvent,
    Transcript,
    Welcome,
)
from protocol.model import AgentStatus, Engagement, EngagementState

T = TypeVar("T")

CLOSE_HELP = {
    4401: "the token was refused or expired: start again with a fresh token",
    4403: "this token is not an agent's",
    4400: "the server did not accept this client",
    1009: "a frame was too large",
}
GONE_CODES = frozenset({"not_found", "not_yours"})
"""A request refused with these means the engagement or offer is no longer ours: drop it from the screen."""


class DeskApp(App[int]):
    """The agent's desk. `url` is the server's ws:// URL; `http_url` defaults to the same host over HTTP."""

    TITLE = "Switchboard"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    #topbar { height: 1; background: $boost; }
    #conn { width: auto; padding: 0 1; }
    #status { width: 1fr; padding: 0 1; }
    #topbar Button { margin: 0 1; }
    #body { height: 1fr; }
    #sidebar { width: 38; border-right: solid $primary; }
    #sidebar .title { padding: 0 1; text-style: bold; background: $primary 20%; }
    #live-list, #mail-list { height: 1fr; border: none; }
    #views { width: 1fr; }
    #empty { padding: 1 2; color: $text-muted; }
    .eng-head { padding: 0 1; background: $primary 15%; }
    .eng-actions { height: 1; margin: 0 0 1 0; }
    .eng-actions Button { margin: 0 1 0 0; }
    .eng-tabs { height: 1fr; }
    .notes { height: 8; }
    .notes-state, .search-summary, .dispositions { padding: 0 1; }
    .transcript-scroll, .thread-scroll, .history-scroll { height: 1fr; padding: 0 1; }
    .reply { dock: bottom; }
    .dialog { width: 76; height: auto; max-height: 90%; padding: 1 2; border: thick $accent; background: $surface; }
    .dialog-buttons { height: auto; margin-top: 1; }
    .dialog-buttons Button { margin-right: 2; }
    .picker OptionList, .picker SelectionList { height: auto; max-height: 16; margin: 1 0; }
    RingScreen, ReasonScreen, DispositionScreen, TransferScreen { align: center middle; }
    #ring-countdown { margin-top: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "ready", "Ready"),
        Binding("n", "not_ready", "Not ready"),
        Binding("e", "end", "End"),
        Binding("p", "disposition", "Disposition"),
        Binding("w", "wrap_up_done", "Wrap-up done"),
        Binding("t", "transfer", "Transfer"),
        Binding("x", "release", "Release"),
        Binding("o", "focus_list('mail')", "Open list"),
        Binding("c", "focus_list('live')", "Conversations", show=False),
        Binding("left_square_bracket", "cycle(-1)", "Previous", show=False),
        Binding("right_square_bracket", "cycle(1)", "Next", show=False),
        Binding("1", "tab('profile')", "Profile", show=False),
        Binding("2", "tab('engagement')", "Notes", show=False),
        Binding("3", "tab('transcript')", "Transcript", show=False),
        Binding("slash", "tab('transcript')", "Search", show=False),
        Binding("4", "tab('thread')", "Thread", show=False),
        Binding("ctrl+s", "save_notes", "Save notes", show=False, priority=True),
        Binding("escape", "leave_field", "Leave field"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, url: str, token: str, *, http_url: str | None = None) -> None:
        super().__init__()
        self.url = url
        self.token = token
        self.http_url = http_url or http_base(url)
        self.client: AgentClient | None = None
        self.http: httpx.AsyncClient | None = None
        self.clock = Clock()
        self.me = ""
        self.connection = "connecting"
        self.connection_detail = ""
        self.status_info = StatusInfo()
        self.held: dict[str, Held] = {}
        self.views: dict[str, EngagementView] = {}
        self.current: str | None = None
        self.rings: dict[str, Ring] = {}
        self.ring_pending: dict[str, str] = {}
        self.ring_screen: RingScreen | None = None
        self.queues: dict[str, dict[str, Any]] = {}
        self._quitting = False
        self.refused = False

    # --- layout ------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="topbar"):
            yield Static(connection_text("connecting"), id="conn")
            yield Static(id="status")
            yield KeyButton("Ready (r)", variant="success", action="app.ready", compact=True, id="go-ready")
            yield KeyButton("Not ready (n)", variant="warning", action="app.not_ready", compact=True, id="go-not-ready")
        with Horizontal(id="body"):
            with Vertical(id="sidebar"):
                yield Static("Conversations", classes="title")
                yield OptionList(id="live-list")
                yield Static("Open list (email)", classes="title")
                yield OptionList(id="mail-list")
            with Vertical(id="views"):
                yield Static(self._empty_text(), id="empty")
        yield Footer()

    def on_mount(self) -> None:
        # reads (colleagues and queues for a transfer, the agent's own record) need a credential: the agent's token
        self.http = httpx.AsyncClient(
            base_url=self.http_url, timeout=5, headers={"Authorization": f"Bearer {self.token}"}
        )
        self._render_lists()
        self._render_status()
        self.set_interval(0.5, self._tick)
        self._connection()

    async def on_unmount(self) -> None:
        await self._shutdown_client()

    @staticmethod
    def _empty_text() -> Text:
        out = Text("No engagement selected.\n\n", style="bold")
        out.append("r: ready   n: not ready   o: open list (email)   q: quit\n", style="dim")
        out.append("Calls and chats open here when you accept them; pick an email in the open list.", style="dim")
        return out

    # --- connection --------------------------------------------------------------------------------

    @work(exclusive=True, group="connection", exit_on_error=False)
    async def _connection(self) -> None:
        delay = 0.5
        while not self._quitting:
            client = AgentClient(self.url, self.token, auto_reconnect=True, on_state=self._client_state)
            self.client = client
            self._set_connection("connecting")
            try:
                await client.open()
                break
            except ConnectionClosed as exc:
                await client.close()
                if exc.code in FATAL_CLOSES:
                    why = CLOSE_HELP.get(exc.code, exc.reason)
                    self.refused = True
                    self._set_connection("closed", f"({exc.code}: {why})")
                    self.notify(why, title="Cannot sign in", severity="error", timeout=30, markup=False)
                    return
                self._set_connection("offline", f"({exc.code})")
            except (OSError, InvalidHandshake, TimeoutError, ClientError) as exc:
                await client.close()
                self._set_connection("offline", f"({type(exc).__name__})")
            except Exception as exc:  # whatever else the socket raises: say it, and keep trying
                await client.close()
                self._set_connection("offline", f"({type(exc).__name__}: {exc})")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
        else:
            return
        self.run_worker(self._load_directory(), group="http", exit_on_error=False)
        async for event in client.events():
            try:
                self._on_event(event)
            except Exception as exc:  # one bad event must not take the desk down
                self.log.error("event failed", event=event, error=repr(exc))
                self.notify(f"{type(exc).__name__}: {exc}", title="Could not show an update", severity="error")
        closed = client.closed
        if not self._quitting:
            code = closed.code if closed else None
            self.refused = code in FATAL_CLOSES
            why = CLOSE_HELP.get(code or 0, closed.reason if closed else "")
            self._set_connection("closed", f"({code}: {why})" if code else "")
            self.notify(why or "The connection closed.", title="Disconnected", severity="error", markup=False)

    def _client_state(self, state: str) -> None:
        """The library's `on_state`: called as the connection changes, before the events that follow."""
        try:
            client = self.client
            if state == "connected" and client is not None and client.welcome is not None:
                self._apply_welcome(client.welcome)
            self._set_connection(state)
        except Exception as exc:
            self.log.error("state change failed", error=repr(exc))

    def _set_connection(self, state: str, detail: str = "") -> None:
        self.connection, self.connection_detail = state, detail
        with contextlib.suppress(NoMatches):  # not mounted yet, or already gone
            self.query_one("#conn", Static).update(connection_text(state, detail))

    def _apply_welcome(self, welcome: Welcome) -> None:
        self.clock.sync(welcome.server_time)
        self.me = welcome.agent
        self.sub_title = f"{welcome.name or welcome.agent} ({welcome.agent})"
        if welcome.resumed:
            return  # the missed events follow, in order: the model catches up from them
        # a fresh snapshot: what is held and ringing now replaces what the screen showed
        self.status_info = StatusInfo(welcome.status, welcome.reason)
        ids = {e.id for e in welcome.engagements}
        for eid in [e for e in self.held if e not in ids]:
            self._drop_engagement(eid)
        for eng in welcome.engagements:
            self._upsert_engagement(eng)
        offers = {r.offer for r in welcome.offers}
        for offer in [o for o in self.rings if o not in offers]:
            self.rings.pop(offer, None)
        for ring in welcome.offers:
            self.rings[ring.offer] = ring
        self._show_rings()
        self._render_status()
        if self.http is not None and self.connection != "connecting":
            self.run_worker(self._load_directory(), group="http", exit_on_error=False)

    async def _load_directory(self) -> None:
        """The queues (names, dispositions) and the agent's pending next status, over HTTP."""
        await self._fetch_queues()
        if self.http is None or not self.me:
            return
        try:
            info = (await self.http.get(f"/v1/agents/{self.me}")).raise_for_status().json()
        except (httpx.HTTPError, ValueError):
            return
        if info.get("status") == self.status_info.status:
            self.status_info.next_status = AgentStatus(info["next_status"]) if info.get("next_status") else None
            self.status_info.next_reason = info.get("next_reason")
            self._render_status()

    async def _fetch_queues(self) -> bool:
        if self.http is None:
            return False
        try:
            queues = (await self.http.get("/v1/queues")).raise_for_status().json()
        except (httpx.HTTPError, ValueError) as exc:
            self.notify(str(exc), title="Could not load the queues", severity="warning", markup=False)
            return False
        self.queues = {q["id"]: q for q in queues}
        for view in self.views.values():
            view.sync()
        return True

    async def _shutdown_client(self) -> None:
        self._quitting = True
        if self.client is not None:
            with contextlib.suppress(ClientError, OSError):
                await self.client.close()  # idempotent; also stops a reconnect loop that is still waiting
        if self.http is not None:
            await self.http.aclose()
            self.http = None

    # --- events ------------------------------------------------------------------------------------

    def _on_event(self, event: ServerFrame) -> None:
        match event:
            case Ring():
                self.rings[event.offer] = event
                self._show_rings()
                self._render_status()
            case RingCancelled():
                self._drop_ring(event.offer)
                if event.reason == "timeout":
                    self.notify("The ring timed out.", title="Missed", severity="warning")
                elif event.reason == "abandoned":
                    self.notify("The consumer hung up before you answered.", title="Ring cancelled")
                elif event.reason == "taken":
                    self.notify("A colleague answered first.", title="Ring cancelled")
            case EngagementEvent():
                self._upsert_engagement(event.engagement)
            case Transcript():
                held = self.held.get(event.engagement)
                if held is not None:
                    held.add_fragments(event.fragments)
                    self._sync_view(held.id)
            case MessageEvent():
                held = self.held.get(event.engagement)
                if held is not None:
                    held.add_message(event)
                    self._sync_view(held.id)
                    self._render_lists()
            case StatusEvent():
                self.status_info = StatusInfo(event.status, event.reason, event.next_status, event.next_reason)
                self._render_status()
            case Closing():
                self.notify("The server is restarting; the desk reconnects by itself.", title="Server draining")
            case Error():
                self.notify(event.message, title=f"Server error: {event.code}", severity="error", markup=False)
            case _:
                pass

    def _upsert_engagement(self, eng: Engagement) -> None:
        for offer in [o for o, r in self.rings.items() if r.engagement.id == eng.id and eng.agent == self.me]:
            self._drop_ring(offer)
        if eng.state.is_final or eng.agent != self.me or eng.state not in HELD_STATES:
            self._drop_engagement(eng.id)
            return
        held = self.held.get(eng.id)
        if held is None:
            held = self.held[eng.id] = Held(eng)
            view = EngagementView(held, self)
            view.display = False
            self.views[eng.id] = view
            self.query_one("#views").mount(view)
            current = self.held.get(self.current or "")
            if eng.channel.is_live and (current is None or current.is_email):
                self._select(eng.id)
        else:
            held.update(eng)
        self._sync_view(eng.id)
        self._render_lists()
        self._render_status()

    def _drop_engagement(self, eid: str) -> None:
        self.held.pop(eid, None)
        view = self.views.pop(eid, None)
        if view is not None:
            view.remove()
        if self.current == eid:
            self.current = None
            live = [h.id for h in self.held.values() if h.channel.is_live]
            if live:
                self._select(live[0])
            else:
                self._show_current()
        self._render_lists()
        self._render_status()

    def _sync_view(self, eid: str) -> None:
        if eid == self.current and eid in self.held:
            self.held[eid].mark_seen()
        view = self.views.get(eid)
        if view is not None:
            view.sync()
        if eid == self.current:
            self.refresh_bindings()

    # --- rings -------------------------------------------------------------------------------------

    def current_ring(self) -> Ring | None:
        if not self.rings:
            return None
        return min(self.rings.values(), key=lambda r: r.expires_at)

    def _drop_ring(self, offer: str) -> None:
        self.rings.pop(offer, None)
        self.ring_pending.pop(offer, None)
        self._show_rings()
        self._render_status()

    def _show_rings(self) -> None:
        if self.rings:
            if self.ring_screen is None:
                screen = RingScreen(self)
                self.push_screen(screen)
                self.ring_screen = screen  # only once it is on the stack: a failed push shows the next ring
            else:
                self.ring_screen.sync()
        elif self.ring_screen is not None:
            screen, self.ring_screen = self.ring_screen, None
            if self.screen is screen:
                screen.dismiss()
            else:  # not on top (should not happen: nothing opens over a ring); take it out anyway
                with contextlib.suppress(ValueError):  # already off the stack
                    self._screen_stack.remove(screen)

    def accept_ring(self, offer: str) -> None:
        if offer in self.ring_pending:
            return
        self.ring_pending[offer] = "Accepting…"
        self._show_rings()

        ring = self.rings.get(offer)
        eid = ring.engagement.id if ring is not None else None

        async def go() -> None:
            ok = await self._call("Accept", lambda c: c.accept(offer), offer=offer)
            self.ring_pending.pop(offer, None)
            if ok is not None:
                self._drop_ring(offer)
                accepted = ok.engagement or eid
                if accepted in self.held:
                    self._select(accepted)
            else:
                self._show_rings()

        self.run_worker(go(), group="requests", exit_on_error=False)

    def decline_ring(self, offer: str) -> None:
        if offer in self.ring_pending:
            return
        self.ring_pending[offer] = "Declining…"
        self._show_rings()

        async def go() -> None:
            ok = await self._call("Decline", lambda c: c.decline(offer), offer=offer)
            self.ring_pending.pop(offer, None)
            if ok is not None:
                self._drop_ring(offer)
            else:
                self._show_rings()

        self.run_worker(go(), group="requests", exit_on_error=False)

    # --- requests ----------------------------------------------------------------------------------

    async def _call(
        self,
        what: str,
        request: Callable[[AgentClient], Awaitable[T]],
        *,
        engagement: str | None = None,
        offer: str | None = None,
    ) -> T | None:
        """Run a request; on any failure say so in a notification and return None."""
        client = self.client
        if client is None or client.state != "connected":
            self.notify("Not connected: try again once the desk is back.", title=what, severity="warning")
            return None
        try:
            return await request(client)
        except RequestFailed as exc:
            self.notify(exc.message, title=f"{what}: {exc.code}", severity="error", markup=False)
            if exc.code in GONE_CODES:
                if engagement is not None and engagement in self.held:
                    self._drop_engagement(engagement)
                if offer is not None:
                    self._drop_ring(offer)
        except RequestTimeout:
            self.notify("The server did not answer in time.", title=what, severity="error")
        except ConnectionClosed:
            self.notify("The connection dropped; try again once it is back.", title=what, severity="warning")
        except Exception as exc:
            self.log.error(what, error=repr(exc))
            self.notify(f"{type(exc).__name__}: {exc}", title=what, severity="error", markup=False)
        return None

    def _request(self, what: str, request: Callable[[AgentClient], Awaitable[Any]], **kw: str | None) -> None:
        async def go() -> None:
            await self._call(what, request, **kw)

        self.run_worker(go(), group="requests", exit_on_error=False)

    def save_notes(self, held: Held, text: str) -> None:
        held.notes_state = "Saving…"
        self._sync_view(held.id)

        async def go() -> None:
            ok = await self._call("Save notes", lambda c: c.note(held.id, text), engagement=held.id)
            if ok is not None:
                held.saved_notes = text
                view = self.views.get(held.id)
                pending = view is not None and view.ready and view.notes_text() != text
                held.notes_state = "Unsaved changes" if pending else f"Saved ✓ ({len(text)} characters)"
            else:
                held.notes_state = "Not saved: see the notification"
            self._sync_view(held.id)

        self.run_worker(go(), group="requests", exit_on_error=False)

    def search(self, held: Held, query: str) -> None:
        if not query.strip():
            held.set_hits([], "")
            self._sync_view(held.id)
            return

        async def go() -> None:
            result = await self._call("Search", lambda c: c.search(held.id, query), engagement=held.id)
            if result is not None:
                held.set_hits(result.hits, query)
                self._sync_view(held.id)

        self.run_worker(go(), group="requests", exit_on_error=False)

    def reply(self, held: Held, box: Input) -> None:
        text = box.value
        box.disabled = True

        async def go() -> None:
            ok = await self._call("Send", lambda c: c.send(held.id, text), engagement=held.id)
            box.disabled = False
            if ok is not None:
                if box.value == text:
                    box.value = ""
                box.focus()

        self.run_worker(go(), group="requests", exit_on_error=False)

    # --- selection and rendering -------------------------------------------------------------------

    def _select(self, eid: str) -> None:
        held = self.held.get(eid)
        if held is None:
            return
        self.current = eid
        held.mark_seen()
        self._show_current()
        self._render_lists()
        if held.state is EngagementState.ASSIGNED and not held.opening:
            held.opening = True

            async def go() -> None:
                await self._call("Open", lambda c: c.open_engagement(eid), engagement=eid)
                held.opening = False

            self.run_worker(go(), group="requests", exit_on_error=False)

    def _show_current(self) -> None:
        for eid, view in self.views.items():
            view.display = eid == self.current
        with contextlib.suppress(NoMatches):
            self.query_one("#empty").display = self.current is None
        self.refresh_bindings()

    def _render_lists(self) -> None:
        with contextlib.suppress(NoMatches):
            for list_id, emails in (("#live-list", False), ("#mail-list", True)):
                options = self.query_one(list_id, OptionList)
                highlighted = options.highlighted_option
                keep = highlighted.id if highlighted is not None else None
                rows = [h for h in self.held.values() if h.is_email == emails]
                options.clear_options()
                if not rows:
                    options.add_option(Option(Text("  (none)", style="dim"), disabled=True))
                    continue
                options.add_options([Option(list_entry(h, h.id == self.current), id=h.id) for h in rows])
                if keep is not None and keep in self.held and self.held[keep].is_email == emails:
                    options.highlighted = options.get_option_index(keep)

    def _render_status(self) -> None:
        act = activity(list(self.held.values()), bool(self.rings))
        with contextlib.suppress(NoMatches):
            self.query_one("#status", Static).update(status_text(self.status_info, act))

    def _tick(self) -> None:
        view = self.views.get(self.current or "")
        if view is not None:
            view.sync_head()

    def transcription(self, held: Held) -> bool | None:
        """Whether the engagement's queue transcribes; None while the queues are not loaded."""
        queue = self.queues.get(held.engagement.queue)
        return None if queue is None else bool(queue.get("transcription"))

    def disposition_labels(self, eng: Engagement) -> dict[str, str]:
        queue = self.queues.get(eng.queue, {})
        return {d["code"]: d.get("label") or d["code"] for d in queue.get("dispositions", [])}

    @on(OptionList.OptionSelected, "#live-list, #mail-list")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        if event.option_id:
            self._select(event.option_id)

    # --- actions -----------------------------------------------------------------------------------

    def _current(self) -> Held | None:
        return self.held.get(self.current or "")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ACTIONS:
            held = self._current()
            if held is None:
                return False  # hidden: nothing to act on
            return True if held.state in ACTIONS[action] else None  # shown greyed out when it does not apply
        if action == "leave_field":
            return isinstance(self.focused, Input | TextArea | OptionList)
        return True

    def _no_modal(self) -> bool:
        return not isinstance(self.screen, ModalScreen)

    def action_ready(self) -> None:
        self._request("Ready", lambda c: c.set_status("ready"))

    def action_not_ready(self) -> None:
        if not self._no_modal():
            return

        def chosen(reason: str | None) -> None:
            if reason:
                self._set_not_ready(reason)

        self.push_screen(ReasonScreen(), chosen)

    def _set_not_ready(self, reason: str) -> None:
        async def go() -> None:
            ok = await self._call("Not ready", lambda c: c.set_status("not_ready", reason))
            if ok is not None and ok.deferred:
                self.notify(f"You will be not ready ({reason}) after this conversation.", title="Status")

        self.run_worker(go(), group="requests", exit_on_error=False)

    def action_end(self) -> None:
        held = self._current()
        if held is not None:
            self._request("End", lambda c: c.end(held.id), engagement=held.id)

    def action_wrap_up_done(self) -> None:
        held = self._current()
        if held is not None:
            self._request("Wrap-up done", lambda c: c.wrap_up_done(held.id), engagement=held.id)

    def action_release(self) -> None:
        held = self._current()
        if held is None:
            return

        async def go() -> None:
            ok = await self._call("Release", lambda c: c.release(held.id), engagement=held.id)
            if ok is not None:
                self._drop_engagement(held.id)  # no event comes back for it: it is no longer ours
                self.notify(f"{consumer_name(held.engagement)} went back to {held.engagement.queue_name}.")

        self.run_worker(go(), group="requests", exit_on_error=False)

    def action_disposition(self) -> None:
        held = self._current()
        if held is None or not self._no_modal():
            return

        async def go() -> None:
            if held.engagement.queue not in self.queues:
                await self._fetch_queues()
            queue = self.queues.get(held.engagement.queue)
            if queue is None:
                return
            choices = [(d["code"], d.get("label") or d["code"]) for d in queue.get("dispositions", [])]
            if not choices:
                self.notify(f"{queue.get('name')} has no dispositions.", title="Disposition", markup=False)
                return
            if not self._no_modal():
                return  # a ring came in meanwhile: it comes first

            def chosen(codes: list[str] | None) -> None:
                if codes is not None:
                    self._request("Disposition", lambda c: c.disposition(held.id, codes), engagement=held.id)

            self.push_screen(DispositionScreen(choices, list(held.engagement.dispositions)), chosen)

        self.run_worker(go(), group="requests", exit_on_error=False)

    def action_transfer(self) -> None:
        held = self._current()
        if held is None or not self._no_modal():
            return

        async def go() -> None:
            targets = await self._transfer_targets(held)
            if targets is None or not self._no_modal():
                return

            def chosen(target: tuple[str, str] | None) -> None:
                if target is not None:
                    self._transfer(held, *target)

            title = f"Transfer {consumer_name(held.engagement)} to a queue or an agent"
            self.push_screen(TransferScreen(title, targets), chosen)

        self.run_worker(go(), group="requests", exit_on_error=False)

    async def _transfer_targets(self, held: Held) -> list[Target] | None:
        if self.http is None:
            return None
        try:
            queues = (await self.http.get("/v1/queues")).raise_for_status().json()
            agents = (await self.http.get("/v1/agents")).raise_for_status().json()
        except (httpx.HTTPError, ValueError) as exc:
            self.notify(str(exc), title="Could not load queues and agents", severity="error", markup=False)
            return None
        self.queues = {q["id"]: q for q in queues}
        channel = held.channel.value
        targets: list[Target] = []
        for q in queues:
            if q["channel"] != channel:
                continue
            stats = q.get("stats", {})
            prompt = Text(q["name"], style="bold")
            prompt.append(f"  {q['id']} · {stats.get('waiting', 0)} waiting · {stats.get('available', 0)} available")
            targets.append(("queue", q["id"], prompt, True))
        for a in agents:
            if a["id"] == self.me:
                continue
            prompt = Text(a["name"], style="bold" if a.get("connected") else "dim")
            state = f"{a['status'].replace('_', ' ')}" if a.get("connected") else "signed out"
            prompt.append(f"  {a['id']} · {state} · {a.get('activity', '')}", style="dim")
            targets.append(("agent", a["id"], prompt, bool(a.get("connected"))))
        return targets

    def _transfer(self, held: Held, kind: str, target: str) -> None:
        async def go() -> None:
            if kind == "queue":
                ok = await self._call("Transfer", lambda c: c.transfer(held.id, queue=target), engagement=held.id)
            else:
                ok = await self._call("Transfer", lambda c: c.transfer(held.id, agent=target), engagement=held.id)
            if ok is not None:
                self._drop_engagement(held.id)  # the former agent gets no event: the reply is the news
                self.notify(f"{consumer_name(held.engagement)} transferred to {kind} {target}.", markup=False)

        self.run_worker(go(), group="requests", exit_on_error=False)

    def action_save_notes(self) -> None:
        view = self.views.get(self.current or "")
        if view is not None and view.ready:
            view.save_notes()

    def action_tab(self, tab: str) -> None:
        view = self.views.get(self.current or "")
        if view is not None and view.ready and not view.show_tab(tab):
            self.bell()

    def action_focus_list(self, which: str) -> None:
        options = self.query_one(f"#{which}-list", OptionList)
        options.focus()
        if options.highlighted is None:
            for index, option in enumerate(options.options):
                if not option.disabled:
                    options.highlighted = index
                    break

    def action_cycle(self, step: int) -> None:
        ids = list(self.held)
        if not ids:
            return
        index = ids.index(self.current) if self.current in ids else -1
        self._select(ids[(index + step) % len(ids)])

    def action_leave_field(self) -> None:
        self.set_focus(None)

    async def action_quit(self) -> None:
        await self._shutdown_client()
        code = 1 if self.refused else 0
        self.exit(code, return_code=code)


def run(url: str, token: str) -> int:
    """`switchboard agent`: run the desk in this terminal until the agent quits."""
    app = DeskApp(url, token)
    app.run()
    return app.return_code or 0  # 1 when the server refused the token
