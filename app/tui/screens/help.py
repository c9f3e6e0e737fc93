"""`?`: the keys of the screen underneath, generated from its bindings so it never drifts,
and what the mouse does there (the screen's MOUSE_HELP)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

MOUSE_HELP = "Mouse: the wheel scrolls; footer keys click."  # for a screen that says nothing of its own
GLOBAL_KEYS = [
    ("?", "Help", "this list (also F1)"),
    ("ctrl+p", "Palette", "every action, and the theme"),
    ("esc", "Back", ""),
    ("q", "Quit", "also ctrl+c, F10"),
]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def __init__(self, underneath: Screen) -> None:
        super().__init__(classes="dialog")
        self.underneath = underneath

    def compose(self) -> ComposeResult:
        keys = [
            (binding.key_display or binding.key, binding.description, binding.tooltip)
            for binding in self.underneath.BINDINGS
            if isinstance(binding, Binding)
            and binding.description
            and binding.key != "escape"
            # and not hidden right now (the detail screen's t, say, without a host-key error)
            and self.underneath.check_action(binding.action.partition("(")[0], ()) is not False
        ] + GLOBAL_KEYS
        key_width = max(len(key) for key, _, _ in keys)
        name_width = max(len(name) for _, name, _ in keys)
        lines = [Content.assemble(("Keys", "bold $accent"), ("   esc closes", "$text-muted"))]
        lines += [
            Content.assemble(
                (key.rjust(key_width), "bold $accent"),
                "  ",
                (name.ljust(name_width), "bold"),
                "  ",
                (more, "$text-muted"),
            )
            for key, name, more in keys
        ]
        lines += [Content(""), Content.styled(getattr(self.underneath, "MOUSE_HELP", MOUSE_HELP), "$text-muted")]
        with VerticalScroll(id="dialog"):
            yield Static(Content("\n").join(lines), id="help")
