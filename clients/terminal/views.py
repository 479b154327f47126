"""The view of one held engagement: a header with its state (and wrap-up countdown), the actions, and
tabs for the profile, the engagement (notes, disposition, history), the live transcript with search,
and the chat or email thread with a reply box."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.timer import Timer
from textual.widgets import Button, Input, Static, TabbedContent, TabPane, TextArea

from clients.terminal.model import (
    Held,
    dispositions_text,
    head_text,
    history_text,
    profile_text,
    thread_text,
    transcript_text,
)
from protocol.model import EngagementState

if TYPE_CHECKING:
    from clients.terminal.app import DeskApp

NOTES_DEBOUNCE_S = 0.6

# which actions make sense in which state (the server has the last word; this keeps the screen honest)
SENDABLE = frozenset({EngagementState.ACTIVE, EngagementState.ASSIGNED, EngagementState.OPEN})
ACTIONS: dict[str, frozenset[EngagementState]] = {
    "end": frozenset({EngagementState.ACTIVE, EngagementState.ASSIGNED, EngagementState.OPEN}),
    "disposition": frozenset(
        {EngagementState.ACTIVE, EngagementState.WRAP_UP, EngagementState.ASSIGNED, EngagementState.OPEN}
    ),
    "wrap_up_done": frozenset({EngagementState.WRAP_UP}),
    "transfer": frozenset({EngagementState.ACTIVE, EngagementState.ASSIGNED, EngagementState.OPEN}),
    "release": frozenset({EngagementState.ACTIVE, EngagementState.ASSIGNED, EngagementState.OPEN}),
}
BUTTONS = [
    ("end", "End (e)", "error"),
    ("disposition", "Disposition (p)", "default"),
    ("wrap_up_done", "Wrap-up done (w)", "success"),
    ("transfer", "Transfer (t)", "default"),
    ("release", "Release (x)", "default"),
]


class KeyButton(Button, can_focus=False):
    """A button for the mouse; the keyboard has its key (shown in the label), so it takes no focus."""


class EngagementView(Vertical):
    """Renders a `Held` from the model; `sync()` after the model changed (safe before mount)."""

    def __init__(self, held: Held, desk: DeskApp) -> None:
        super().__init__(classes="engagement")
        self.held = held
        self.desk = desk
        self.ready = False
        self._notes_timer: Timer | None = None
        # voice and video have a transcript; a chat when its queue transcribes (or is not known yet)
        self._transcript = held.channel.is_live and (not held.has_thread or desk.transcription(held) is not False)

    @property
    def has_transcript(self) -> bool:
        return self._transcript

    def compose(self) -> ComposeResult:
        yield Static(classes="eng-head")
        with Horizontal(classes="eng-actions"):
            for action, text, variant in BUTTONS:
                yield KeyButton(text, variant=variant, action=f"app.{action}", compact=True, classes=f"do-{action}")  # type: ignore[arg-type]
        with TabbedContent(classes="eng-tabs", initial="thread" if self.held.has_thread else "profile"):
            with TabPane("Profile", id="profile"), VerticalScroll():
                yield Static(classes="profile-text")
            with TabPane("Engagement", id="engagement"):
                yield Static(classes="dispositions")
                yield TextArea(classes="notes")
                yield Static(classes="notes-state")
                with VerticalScroll(classes="history-scroll"):
                    yield Static(classes="history")
            if self.has_transcript:
                with TabPane("Transcript", id="transcript"):
                    yield Input(placeholder="Search the transcript, Enter to search", classes="search")
                    yield Static(classes="search-summary")
                    with VerticalScroll(classes="transcript-scroll"):
                        yield Static(classes="transcript-text")
            if self.held.has_thread:
                with TabPane("Email" if self.held.is_email else "Chat", id="thread"):
                    with VerticalScroll(classes="thread-scroll"):
                        yield Static(classes="thread-text")
                    yield Input(placeholder="Reply, Enter to send", classes="reply")

    def on_mount(self) -> None:
        notes = self.query_one(".notes", TextArea)
        notes.load_text(self.held.saved_notes)
        self.ready = True
        self.sync()

    # --- rendering ---------------------------------------------------------------------------------

    def sync(self) -> None:
        if not self.ready:
            return
        held = self.held
        eng = held.engagement
        self.sync_head()
        for action, _, _ in BUTTONS:
            self.query_one(f".do-{action}", Button).display = eng.state in ACTIONS[action]
        self.query_one(".profile-text", Static).update(profile_text(eng))
        self.query_one(".dispositions", Static).update(dispositions_text(eng, self.desk.disposition_labels(eng)))
        self._sync_notes()
        self.query_one(".history", Static).update(history_text(eng))
        if self.has_transcript:
            self.query_one(".search-summary", Static).update(Text(held.search_summary, style="bold"))
            self._update_scrolled(".transcript-scroll", ".transcript-text", transcript_text(held))
        if held.has_thread:
            self._update_scrolled(".thread-scroll", ".thread-text", thread_text(held))
            self.query_one(".reply", Input).disabled = eng.state not in SENDABLE

    def sync_head(self) -> None:
        if self.ready:
            self.query_one(".eng-head", Static).update(head_text(self.held, self.desk.clock.now()))

    def _update_scrolled(self, scroller: str, target: str, text: Text) -> None:
        scroll = self.query_one(scroller, VerticalScroll)
        at_end = scroll.scroll_y >= scroll.max_scroll_y - 1
        self.query_one(target, Static).update(text)
        if at_end:
            scroll.call_after_refresh(scroll.scroll_end, animate=False)

    def _sync_notes(self) -> None:
        held = self.held
        notes = self.query_one(".notes", TextArea)
        server = held.engagement.notes
        # take the server's notes only when nothing typed here is waiting to be saved
        if server != held.saved_notes and notes.text == held.saved_notes and not notes.has_focus:
            held.saved_notes = server
            notes.load_text(server)
        self.query_one(".notes-state", Static).update(Text(held.notes_state, style="dim"))

    # --- input -------------------------------------------------------------------------------------

    def show_tab(self, tab: str) -> bool:
        tabs = self.query_one(TabbedContent)
        if not tabs.query(f"#{tab}"):
            return False
        tabs.active = tab
        focus = {"engagement": ".notes", "transcript": ".search", "thread": ".reply"}.get(tab)
        if focus:
            self.query_one(focus).focus()
        return True

    def notes_text(self) -> str:
        return self.query_one(".notes", TextArea).text

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        event.stop()
        text = event.text_area.text
        if self._notes_timer is not None:
            self._notes_timer.stop()
            self._notes_timer = None
        if text == self.held.saved_notes:
            return
        self.held.notes_state = "Unsaved changes (saving as you type, ctrl+s to save now)"
        self.query_one(".notes-state", Static).update(Text(self.held.notes_state, style="dim"))
        self._notes_timer = self.set_timer(NOTES_DEBOUNCE_S, self.save_notes)

    def save_notes(self) -> None:
        if self._notes_timer is not None:
            self._notes_timer.stop()
            self._notes_timer = None
        text = self.notes_text()
        if text != self.held.saved_notes:
            self.desk.save_notes(self.held, text)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.has_class("search"):
            self.desk.search(self.held, event.value)
        elif event.input.has_class("reply") and event.value.strip():
            self.desk.reply(self.held, event.input)
