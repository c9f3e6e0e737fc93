"""Add or edit a server, validated as you type with the config file's own rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import Button, Checkbox, Footer, Input, Label, RadioButton, RadioSet, Static

from fleettop.config import ConfigError, ConfigProblem, ServerConfig, validate_server
from fleettop.config.problems import Location
from fleettop.domain import Server
from fleettop.tui import FAILED
from fleettop.tui import format as fmt
from fleettop.tui.screens.base import FleetScreen

AUTH_METHODS = ("agent", "key", "password")
# Form field id -> the location (ConfigProblem.location) of the config key its errors are about.
TEXT_FIELDS: dict[str, Location] = {
    "name": ("name",),
    "host": ("host",),
    "port": ("port",),
    "username": ("username",),
    "key_file": ("key_file",),
    "interval": ("interval",),
    "cpu": ("thresholds", "cpu"),
    "ram": ("thresholds", "ram"),
    "disk": ("thresholds", "disk"),
    "tags": ("tags",),
    "jump": ("jump",),
}


class _StateInText:
    """A toggle whose state reads in text too, not only in colour: Textual draws the same
    glyph on and off ("▐X▌", "●"), which a colour-blind user or a monochrome terminal
    cannot tell apart."""

    ON: str
    OFF: str
    value: bool

    @property
    def _button(self) -> Content:
        return Content.styled(self.ON if self.value else self.OFF, self.get_visual_style("toggle--button"))  # type: ignore[attr-defined]


class StateCheckbox(_StateInText, Checkbox):
    ON, OFF = "[x]", "[ ]"


class StateRadioButton(_StateInText, RadioButton):
    ON, OFF = "(•)", "( )"


class ServerForm(FleetScreen):
    BINDINGS = [
        Binding("ctrl+s", "save", "Save"),
        Binding("ctrl+t", "test", "Test connection"),
        Binding("escape", "app.pop_screen", "Cancel"),
    ]

    def __init__(self, server: Server | None, *, config_path: Path | None = None) -> None:
        super().__init__()
        self.server = server
        self.config_path = config_path
        self.read_only = server is not None and server.source == "config"
        self.errors: dict[Location | None, ConfigProblem] = {}  # the first problem of each key
        self.touched: set[str] = set()  # errors show under fields the user has changed, all on save

    def compose(self) -> ComposeResult:
        server = self.server
        thresholds = server.thresholds if server else None
        with VerticalScroll(id="form"):
            yield Static("Edit server" if server else "Add server", id="form-title")
            if self.read_only:
                yield Static(f"defined in {self.config_path}; edit it there", id="read-only", markup=False)
            yield from self._field("name", "Name", server.name if server else "")
            yield from self._field("host", "Host", server.host if server else "", placeholder="name or IP address")
            yield from self._field("port", "Port", str(server.port) if server else "22")
            yield from self._field(
                "username", "User", server.username or "" if server else "", placeholder="default: ssh.username or you"
            )
            with Horizontal(classes="form-row"):
                yield Label("Auth", classes="field-label")
                current = server.auth if server else "agent"
                with RadioSet(id="auth", compact=True):
                    for method in AUTH_METHODS:
                        yield StateRadioButton(method, value=method == current, id=f"auth-{method}")
            yield from self._field(
                "key_file", "Key file", str(server.key_file or "") if server else "", placeholder="~/.ssh/id_ed25519"
            )
            with Horizontal(classes="form-row"):
                yield Label("Password", classes="field-label")
                has_secret = server is not None and server.has_secret
                yield Input(
                    password=True,
                    id="secret",
                    compact=True,
                    placeholder="password or key passphrase, stored encrypted"
                    + ("; empty keeps it" if has_secret else ""),
                )
            with Horizontal(classes="form-row"):
                yield Label("Enabled", classes="field-label")
                yield StateCheckbox(
                    "collect this server", server.enabled if server else True, id="enabled", compact=True
                )
            # A setting the server takes from `defaults:` shows as an empty field whose placeholder
            # is the value in force: left empty, it keeps following the config.
            interval = str(server.interval) if server else ""
            yield from self._field("interval", "Interval (s)", *self._own_or_default(server, "interval", interval))
            for key in ("cpu", "ram", "disk"):
                value = f"{getattr(thresholds, key):g}" if thresholds else ""
                yield from self._field(key, f"{key.upper()} alert %", *self._own_or_default(server, key, value))
            yield from self._field(
                "tags", "Tags", ", ".join(server.tags) if server else "", placeholder="web, prod (groups: by tag)"
            )
            yield from self._field(
                "jump",
                "Jump host",
                server.jump or "" if server else "",
                placeholder="[user@]host[:port], a server, none; empty: inherited",
            )
            yield Static("", id="form-error", classes="field-error")
            yield Static("", id="test-result")
            with Horizontal(id="form-buttons"):
                yield Button("Save ^s", variant="primary", id="save", disabled=self.read_only, compact=True)
                yield Button("Test connection ^t", id="test", compact=True)
                yield Button("Cancel esc", id="cancel", compact=True)
        yield Footer(compact=True, show_command_palette=False)

    @staticmethod
    def _own_or_default(server: Server | None, key: str, value: str) -> tuple[str, str]:
        """(field value, placeholder) of a setting that may be taken from `defaults:`."""
        if server is None:
            return "", "default from the config"
        if key in server.inherited:
            return "", f"default: {value}"
        return value, "empty: default from the config"

    def _field(self, key: str, label: str, value: str, placeholder: str = "") -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield Label(label, classes="field-label")
            yield Input(value, id=key, placeholder=placeholder, disabled=self.read_only, compact=True)
        yield Static("", id=f"{key}-error", classes="field-error")

    def on_mount(self) -> None:
        if self.read_only:
            for widget in self.query("RadioSet, Checkbox, #secret"):
                widget.disabled = True
        self.query_one("#name", Input).focus()

    # -------------------------------------------------------------- values

    def fields(self) -> dict[str, Any]:
        """The form as the config file would spell it; empty fields are left out (an empty name
        or host is then "required", as in the config file)."""
        value = {key: self.query_one(f"#{key}", Input).value.strip() for key in TEXT_FIELDS}
        fields: dict[str, Any] = {
            "auth": self._auth(),
            "enabled": self.query_one("#enabled", Checkbox).value,
        }
        if self.server is not None:
            fields["transport"] = self.server.transport
        for key in ("name", "host", "port", "username", "key_file", "interval"):
            if value[key]:
                fields[key] = value[key]
        thresholds = {key: value[key] for key in ("cpu", "ram", "disk") if value[key]}
        if thresholds:
            fields["thresholds"] = thresholds
        fields["tags"] = [tag.strip() for tag in value["tags"].split(",") if tag.strip()]
        if value["jump"]:
            fields["jump"] = value["jump"]
        return fields

    def _auth(self) -> str:
        pressed = self.query_one("#auth", RadioSet).pressed_button
        return pressed.id.removeprefix("auth-") if pressed and pressed.id else "agent"

    def validate_form(self, *, all_fields: bool = False) -> ServerConfig | None:
        """Run the config's rules and show each problem under its field."""
        if all_fields:
            self.touched.update(TEXT_FIELDS)
        self.errors = {}
        config: ServerConfig | None = None
        try:
            config = validate_server(self.fields())
        except ConfigError as exc:
            for problem in exc.records:
                self.errors.setdefault(problem.location, problem)
        for field_id, location in TEXT_FIELDS.items():
            shown = self.errors.get(location) if field_id in self.touched else None
            error = shown.message if shown else ""
            error_line = self.query_one(f"#{field_id}-error", Static)
            error_line.update(fmt.safe(error))
            error_line.display = bool(error)
            self.query_one(f"#{field_id}", Input).set_class(bool(error), "-bad-value")
        # Problems of fields without an input of their own (none expected, but never hidden).
        others = [str(problem) for location, problem in self.errors.items() if location not in TEXT_FIELDS.values()]
        general = self.query_one("#form-error", Static)
        general.update(fmt.safe("; ".join(others)))
        general.display = bool(others)
        return config

    @property
    def secret(self) -> str | None:
        return self.query_one("#secret", Input).value or None

    @on(Input.Changed)
    @on(RadioSet.Changed)
    def _changed(self, event: Input.Changed | RadioSet.Changed) -> None:
        if isinstance(event, Input.Changed) and event.input.id:
            self.touched.add(event.input.id)
            if event.input.id == "secret" and event.value and self._auth() == "agent":
                # A password typed for a server set to the agent (which uses none) means password auth;
                # with key auth it is the key's passphrase.
                self.query_one("#auth-password", RadioButton).value = True
        if self.is_mounted and not self.read_only:
            self.validate_form()

    # -------------------------------------------------------------- actions

    async def action_save(self) -> None:
        if self.read_only:
            self.notify(f"defined in {self.config_path}; edit it there", markup=False)
            return
        config = self.validate_form(all_fields=True)
        if config is None:
            self.notify("fix the fields marked in red", severity="error")
            return
        if self.server is None:
            result = await self.fleet.attempt(lambda fleet: fleet.add_server(config, self.secret))
        else:
            name = self.server.name
            result = await self.fleet.attempt(lambda fleet: fleet.edit_server(name, config, self.secret))
        if result is FAILED:
            return
        self.notify(f"saved {fmt.clean(config.name)}", markup=False)
        self.fleet.servers_changed()
        self.dismiss()

    def action_test(self) -> None:
        config = self.validate_form(all_fields=True)
        if config is None:
            self.notify("fix the fields marked in red", severity="error")
            return
        self._test(config, self.secret)

    @work(exclusive=True, group="test-connection")
    async def _test(self, config: ServerConfig, secret: str | None) -> None:
        result = self.query_one("#test-result", Static)
        result.set_classes("")
        result.update(fmt.safe(f"connecting to {config.host}…"))
        try:
            if (service := self.fleet.service) is None:
                raise RuntimeError("not connected yet")
            metrics = await service.test_connection(config, secret)
        except Exception as exc:
            result.set_classes("-failed")
            result.update(fmt.safe(f"✖ {exc}"))
            return
        result.set_classes("-ok")
        result.update(
            f"✔ connected: cpu {fmt.percent(metrics.cpu_percent)}  ram {fmt.percent(metrics.mem_percent)}"
            f"  disk {fmt.disk_percent(metrics.disk_percent)}  load {fmt.load(metrics.load1)}  up {fmt.duration(metrics.uptime_s)}"
        )

    @on(Button.Pressed, "#save")
    async def _save_pressed(self) -> None:
        await self.action_save()

    @on(Button.Pressed, "#test")
    def _test_pressed(self) -> None:
        self.action_test()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.dismiss()
