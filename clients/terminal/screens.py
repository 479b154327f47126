"""The desktop's modal screens: the ring, and the pickers for a not-ready reason, dispositions and a
transfer target."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, OptionList, SelectionList, Static
from textual.widgets.option_list import Option
from textual.widgets.selection_list import Selection

from clients.terminal.model import NOT_READY_REASONS, countdown_text, ring_text, seconds_left

if TYPE_CHECKING:
    from clients.terminal.app import DeskApp


class RingScreen(ModalScreen[None]):
    """An offer ringing: who, from where, what the bot gathered, how long is left; accept or decline.

    It shows the first of the running rings (the desk keeps them) and closes when none is left."""

    BINDINGS = [
        Binding("a", "accept", "Accept"),
        Binding("d", "decline", "Decline"),
    ]

    def __init__(self, desk: DeskApp) -> None:
        # no fixed id: a ring that comes right after the last one closed (a declined call offered again)
        # opens a new screen while the closing one is still mounted, and two equal ids would refuse it
        super().__init__(classes="ring-screen")
        self.desk = desk
        self._ready = False

    def compose(self) -> ComposeResult:
        with Vertical(id="ring-box", classes="dialog"):
            yield Static(id="ring-details")
            yield Static(id="ring-countdown")
            yield Static(id="ring-more")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Accept (a)", variant="success", id="ring-accept")
                yield Button("Decline (d)", variant="error", id="ring-decline")

    def on_mount(self) -> None:
        self._ready = True
        self.sync()
        self.set_interval(0.25, self.tick)

    def sync(self) -> None:
        if not self._ready:
            return
        ring = self.desk.current_ring()
        if ring is None:
            return
        self.query_one("#ring-details", Static).update(ring_text(ring))
        others = len(self.desk.rings) - 1
        more = Text(f"{others} more ringing" if others > 0 else "", style="bold")
        self.query_one("#ring-more", Static).update(more)
        busy = self.desk.ring_pending.get(ring.offer)
        for button in self.query(Button):
            button.disabled = busy is not None
        self.tick()

    def tick(self) -> None:
        ring = self.desk.current_ring()
        if ring is None:
            return
        busy = self.desk.ring_pending.get(ring.offer)
        widget = self.query_one("#ring-countdown", Static)
        if busy:
            widget.update(Text(busy, style="bold"))
            return
        left = seconds_left(ring.expires_at, self.desk.clock.now())
        widget.update(countdown_text("Answer within", left, ring.timeout_s or left))

    def action_accept(self) -> None:
        ring = self.desk.current_ring()
        if ring is not None:
            self.desk.accept_ring(ring.offer)

    def action_decline(self) -> None:
        ring = self.desk.current_ring()
        if ring is not None:
            self.desk.decline_ring(ring.offer)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "ring-accept":
            self.action_accept()
        elif event.button.id == "ring-decline":
            self.action_decline()


class ReasonScreen(ModalScreen[str | None]):
    """Why the agent goes not ready."""

    BINDINGS = [
        Binding("b", "pick('break')", "Break"),
        Binding("l", "pick('lunch')", "Lunch"),
        Binding("t", "pick('training')", "Training"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog picker"):
            yield Static(Text("Not ready: why?", style="bold"))
            yield OptionList(
                *[Option(f"{reason.capitalize()} ({reason[0]})", id=reason) for reason in NOT_READY_REASONS],
                id="reasons",
            )
            yield Static(Text("Enter or b / l / t to pick, Esc to cancel", style="dim"))

    def action_pick(self, reason: str) -> None:
        self.dismiss(reason)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option_id)


class DispositionScreen(ModalScreen[list[str] | None]):
    """Pick the engagement's dispositions among its queue's (several may apply)."""

    BINDINGS = [
        Binding("s", "save", "Save"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, choices: list[tuple[str, str]], current: list[str]) -> None:
        super().__init__()
        self.choices = choices
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog picker"):
            yield Static(Text("Disposition", style="bold"))
            yield SelectionList[str](
                *[Selection(text, code, code in self.current) for code, text in self.choices],
                id="dispositions",
            )
            yield Static(Text("Space to tick, s to save, Esc to cancel", style="dim"))
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save (s)", variant="primary", id="dispo-save")
                yield Button("Cancel", id="dispo-cancel")

    def action_save(self) -> None:
        picked = set(self.query_one(SelectionList).selected)
        self.dismiss([code for code, _ in self.choices if code in picked])

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "dispo-save":
            self.action_save()
        else:
            self.action_cancel()


Target = tuple[str, str, Text, bool]
"""(kind `queue` or `agent`, id, what to show, whether it can take it now)."""


class TransferScreen(ModalScreen[tuple[str, str] | None]):
    """Pick a queue (same channel) or an agent to hand the engagement to; typing filters the list."""

    BINDINGS = [
        Binding("down", "move(1)", show=False),
        Binding("up", "move(-1)", show=False),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, title: str, targets: list[Target]) -> None:
        super().__init__()
        self.title_text = title
        self.targets = targets

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog picker"):
            yield Static(Text(self.title_text, style="bold"))
            yield Input(placeholder="Type to filter, Enter to transfer", id="transfer-filter")
            yield OptionList(id="transfer-targets")
            yield Static(Text("↑/↓ to choose, Enter to transfer, Esc to cancel", style="dim"))

    def on_mount(self) -> None:
        self.fill("")
        self.query_one("#transfer-filter", Input).focus()

    def fill(self, query: str) -> None:
        words = query.casefold().split()
        options = self.query_one("#transfer-targets", OptionList)
        options.clear_options()
        first: int | None = None
        for section, kind in (("Queues", "queue"), ("Agents", "agent")):
            rows = [
                t for t in self.targets if t[0] == kind and all(w in f"{t[1]} {t[2].plain}".casefold() for w in words)
            ]
            if not rows:
                continue
            options.add_option(Option(Text(section, style="bold underline"), disabled=True))
            for _, target_id, prompt, enabled in rows:
                if enabled and first is None:
                    first = options.option_count
                options.add_option(Option(prompt, id=f"{kind}:{target_id}", disabled=not enabled))
        if first is not None:
            options.highlighted = first

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.fill(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        option = self.query_one("#transfer-targets", OptionList).highlighted_option
        if option is not None and option.id and not option.disabled:
            self._pick(option.id)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option_id:
            self._pick(event.option_id)

    def _pick(self, option_id: str) -> None:
        kind, _, target = option_id.partition(":")
        self.dismiss((kind, target))

    def action_move(self, step: int) -> None:
        options = self.query_one("#transfer-targets", OptionList)
        if step > 0:
            options.action_cursor_down()
        else:
            options.action_cursor_up()

    def action_cancel(self) -> None:
        self.dismiss(None)
