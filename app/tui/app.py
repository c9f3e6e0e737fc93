"""The fleettop dashboard application and its entry point.

The app talks only to a fleet service (typed by fleettop.tui.contract.FleetView). It either
receives one (tests) or opens one itself inside its own event loop, in a task started on
mount and stopped -- awaited -- on unmount, so the embedded SAQ worker shuts
down cleanly when the user quits.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timezone
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.signal import Signal
from textual.theme import BUILTIN_THEMES

from fleettop.config import LoadedConfig
from fleettop.domain import QueueStats, Server
from fleettop.tui import FAILED, Failed, prefs
from fleettop.tui import format as fmt
from fleettop.tui.contract import FleetView
from fleettop.tui.screens.alerts import AlertsScreen
from fleettop.tui.screens.confirm import ConfirmScreen
from fleettop.tui.screens.dashboard import DashboardScreen
from fleettop.tui.screens.detail import DetailScreen
from fleettop.tui.screens.form import ServerForm
from fleettop.tui.screens.help import HelpScreen
from fleettop.tui.screens.queue import QueueScreen
from fleettop.views import Health

COUNTS_INTERVAL = 1.5  # seconds between queue/fleet count refreshes, while anything happens
# When nothing happens (no event for ACTIVE_WINDOW seconds, all healthy, no run due) the
# counts are still re-read this often: health and a worker coming or going send no event.
IDLE_COUNTS_INTERVAL = 10.0
ACTIVE_WINDOW = 2 * COUNTS_INTERVAL
FLUSH_INTERVAL = 0.25  # events are coalesced and repainted at most this often
# Past this many changed servers, one list_servers() beats N server_row() calls
# (measured with 1,000 servers on SQLite: ~1.2 s against ~4 ms each).
BULK_RELOAD = 200
CONFIG_NOTE_S = 6  # the first-run "no config file" note: read once, then out of the way


# textual-light draws warnings (and its accent, the same amber) in #ffa62b: 1.5:1 against its
# #E0E0E0 background. This darker amber reads at 4.8:1 (WCAG AA), 4.1:1 on the header's panel.
LIGHT_THEME = dataclasses.replace(BUILTIN_THEMES["textual-light"], warning="#8a5300", accent="#8a5300")


def stylesheet() -> Path:
    """styles/ ships as the fleettop.styles package, in editable and wheel installs alike."""
    return Path(str(files("fleettop.styles").joinpath("fleettop.tcss")))


T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class FleetApp(App):
    TITLE = "fleettop"
    CSS_PATH = stylesheet()
    BINDINGS = [
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
        # As in htop and k9s: ctrl+c quits from anywhere (Textual's own ctrl+c only says how to quit).
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("f1", "help", "Help", show=False),
        Binding("f10", "quit", "Quit", show=False),
    ]

    def __init__(
        self,
        service: FleetView | None = None,
        *,
        open_service: Callable[[], AbstractAsyncContextManager[FleetView]] | None = None,
        config_path: Path | None = None,
        config_note: str | None = None,
        clock: Callable[[], datetime] = utc_now,
        live: bool = True,
        demo: bool = False,
        prefs_path: Path | None = None,
    ) -> None:
        """Pass a ready `service`, or `open_service` to open one in the app's loop.

        `config_note`: said once at start (there is no config file: LoadedConfig.missing_note).
        `clock` drives every displayed time (fixed in snapshot tests); `live=False` skips the
        periodic timers and the event stream, for still pictures. `demo`: the header says
        that nothing done here is kept (--demo runs on a throwaway data dir). `prefs_path`: where the
        theme is remembered (fleettop.tui.prefs; None: not remembered).
        """
        super().__init__()
        self.register_theme(LIGHT_THEME)  # in place of Textual's own, under its name
        self.service = service
        self._open_service = open_service
        # Pushed to the screens that subscribe: the servers whose rows changed, the new queue counts.
        self.servers_signal: Signal[set[int]] = Signal(self, "servers")
        self.counts_signal: Signal[QueueStats | None] = Signal(self, "counts")
        self.config_path = config_path
        self.config_note = config_note
        self.clock = clock
        self.live = live
        self.demo = demo
        self.prefs_path = prefs_path
        self._stop_service = asyncio.Event()
        # A plain task, not a Textual worker: Textual cancels its workers at shutdown
        # without waiting, and the service must close (worker stopped, jobs re-queued).
        self._service_task: asyncio.Task[None] | None = None
        self._changed_ids: set[int] = set()
        self._servers_changed = False
        self._counts_due = False
        self._last_event_at = 0.0  # time.monotonic() of the last event received
        self._counts_at: float | None = None  # time.monotonic() of the last count refresh
        self._counts_wall: datetime | None = None  # and self.clock() then
        self._healthy = False  # the last health read: Redis, database and a worker all fine
        self._dashboard = DashboardScreen()

    # ------------------------------------------------------------ lifecycle

    async def on_mount(self) -> None:
        await self._restore_theme()
        await self.push_screen(self._dashboard)
        if self.service is not None:
            self.run_worker(self._service_ready(), name="load", exclusive=False)
        else:
            self._service_task = asyncio.create_task(self._hold_service(), name="fleettop-service")

    async def _hold_service(self) -> None:
        try:
            assert self._open_service is not None  # on_mount: no service given, so one to open
            async with self._open_service() as service:
                self.service = service
                await self._service_ready()
                await self._stop_service.wait()
        except Exception as exc:
            if self.screen_stack:
                self.exit(return_code=1, message=f"fleettop: cannot start: {fmt.clean(exc)}")
            else:  # quit (a key, a signal) while starting: its screens went before the first load ended
                self.log.warning(f"service: {exc!r}")
        finally:
            self.service = None

    async def _restore_theme(self) -> None:
        """The theme saved last time, then every change saved (a theme no longer there is skipped)."""
        if self.prefs_path is None:
            return
        saved = await asyncio.to_thread(prefs.load_theme, self.prefs_path)
        if saved in self.available_themes:
            self.theme = saved
        self._saved_theme = self.theme
        self.theme_changed_signal.subscribe(self, self._theme_changed)

    def _theme_changed(self, theme: Any) -> None:
        if theme.name != self._saved_theme:
            self._saved_theme = theme.name
            self.run_worker(self._save_theme(theme.name), group="prefs")

    async def _save_theme(self, name: str) -> None:
        if self.prefs_path is None:
            return
        try:
            await asyncio.to_thread(prefs.save_theme, self.prefs_path, name)
        except OSError as exc:  # a read-only data_dir: the theme applies, only until the next start
            self.notify(f"theme not saved: {fmt.clean(exc)}", severity="warning", markup=False)

    async def on_unmount(self) -> None:
        self._stop_service.set()
        if self._service_task is not None:
            await self._service_task

    async def _service_ready(self) -> None:
        if self.live:  # listen before the first load, so no change falls in between
            self.run_worker(self._follow_events(), name="events")
        await self.reload_servers()
        if self.config_note:  # once, beside the list it is about, not over a loading screen
            self.notify(self.config_note, timeout=CONFIG_NOTE_S, markup=False)
            self.config_note = None
        await self.refresh_counts()
        self.dashboard.tick()
        if self.live:
            # Service calls run in workers, off the app's message queue, so a slow
            # query never holds up a key press.
            self.set_interval(1.0, self._tick)
            self.set_interval(COUNTS_INTERVAL, self._counts_tick)
            self.set_interval(FLUSH_INTERVAL, lambda: self._in_background(self._flush_changes, "flush"))

    @property
    def dashboard(self) -> DashboardScreen:
        """The dashboard screen; still there for a read that returns once the app has closed
        its screens (its updates are then dropped: dashboard._while_running)."""
        return self._dashboard

    # ---------------------------------------------------------- live updates

    async def _follow_events(self) -> None:
        """Note what each event changed; `_flush_changes` repaints it in batches."""
        while (service := self.service) is not None:
            try:
                async for event in service.events():
                    self._last_event_at = time.monotonic()
                    if event.kind in ("sample", "run") and event.server_id is not None:
                        self._changed_ids.add(event.server_id)
                    elif event.kind == "servers":
                        self._servers_changed = True
                    # interrupted: the header shows the outage
                    if event.kind in ("run", "queue", "servers", "interrupted"):
                        self._counts_due = True
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis went away: say so, and listen again shortly
                self._counts_due = True  # the header shows the outage at the next flush
                self.notify(f"event stream lost: {fmt.clean(exc)}", severity="warning", markup=False)
                await asyncio.sleep(2)

    def _counts_tick(self) -> None:
        """The periodic count refresh, skipped while the fleet is idle (see IDLE_COUNTS_INTERVAL)."""
        if self._counts_needed():
            self._in_background(self.refresh_counts, "counts")

    def _counts_needed(self) -> bool:
        now = time.monotonic()
        if self._counts_at is None or not self._healthy or now - self._last_event_at < ACTIVE_WINDOW:
            return True
        if now - self._counts_at >= IDLE_COUNTS_INTERVAL:
            return True
        # A scheduled run fell due since the last refresh: the queue counts move (waiting,
        # scheduled) even when no worker takes it, and so no event says so.
        rows = self.dashboard.table.rows_by_id.values()
        due = min((row.next_run_at for row in rows if row.next_run_at is not None), default=None)
        return due is not None and self._counts_wall is not None and self._counts_wall < due <= self.clock()

    def _in_background(self, job: Callable[[], Any], group: str) -> None:
        """Start `job` in a worker unless the previous round is still running."""
        if not any(worker.group == group and not worker.is_finished for worker in self.workers):
            self.run_worker(job(), group=group)

    async def _flush_changes(self) -> None:
        if (service := self.service) is None:
            return
        changed, self._changed_ids = self._changed_ids, set()
        reload, self._servers_changed = self._servers_changed or len(changed) > BULK_RELOAD, False
        try:
            if reload:
                await self.reload_servers()
            else:
                for server_id in changed:
                    row = await service.server_row(server_id)
                    if row is None:
                        self.dashboard.remove_row(server_id)
                    else:
                        self.dashboard.show_row(row)
            if changed:
                self.dashboard.show_summary()
                self.servers_signal.publish(changed)
            if self._counts_due:
                self._counts_due = False
                await self.refresh_counts()
        except Exception as exc:  # the store or Redis hiccuped: keep the work for the next round
            self.log.warning(f"repaint: {exc!r}")
            self._changed_ids |= changed
            self._servers_changed |= reload

    def servers_changed(self) -> None:
        """Reload the list at the next flush (the service's own event may come too)."""
        self._servers_changed = True

    async def reload_servers(self) -> None:
        if self.service is not None:
            self.dashboard.show_rows(await self.service.list_servers())

    async def refresh_counts(self) -> None:
        if (service := self.service) is None:
            return
        self._counts_at, self._counts_wall = time.monotonic(), self.clock()
        # Health first and on its own: it never raises, and an outage of Redis or the
        # database (when the counts below cannot be had) is exactly what it must show.
        try:
            health = await service.health()
        except Exception as exc:
            health = Health(redis=False, database=False, worker="none")
            self.log.warning(f"health: {exc!r}")
        self._healthy = health.redis and health.database and health.worker != "none"
        self.dashboard.show_health(health)
        read_stats, aggregate = await asyncio.gather(service.stats(), service.aggregate(), return_exceptions=True)
        if isinstance(read_stats, BaseException) or isinstance(aggregate, BaseException):
            self._healthy = False  # the next round is the next tick
            self.log.warning(f"counts: {read_stats!r} {aggregate!r}")
        stats = None if isinstance(read_stats, BaseException) else read_stats  # None: unknown, not the last figures
        # The fleet summary keeps its last figures: they are the servers', each row shows its age.
        self.dashboard.show_counts(
            stats=stats, aggregate=None if isinstance(aggregate, BaseException) else aggregate, health=health
        )
        self.counts_signal.publish(stats)

    def _tick(self) -> None:
        self.dashboard.tick()

    # -------------------------------------------------------- shared actions

    async def attempt(self, call: Callable[[FleetView], Awaitable[T]], *, quiet: bool = False) -> T | Failed:
        """Call the service (`attempt(lambda fleet: fleet.stats())`); a failure is shown as an
        error notification and returns FAILED. `quiet`: a periodic read, whose failure the header
        already tells (no toast each time)."""
        if self.service is None:
            if not quiet:
                self.notify("not connected yet", severity="warning")
            return FAILED
        try:
            return await call(self.service)
        except Exception as exc:
            if not quiet:
                self.notify(failure_text(exc), severity="error", markup=False, timeout=8)
            return FAILED

    async def toggle_pause(self) -> None:
        paused = await self.attempt(lambda fleet: fleet.is_paused())
        if paused is FAILED or await self.attempt(lambda fleet: fleet.resume() if paused else fleet.pause()) is FAILED:
            return
        self.notify("collection resumed" if paused else "collection paused")
        await self.refresh_counts()

    def show_details(self, name: str) -> None:
        self.push_screen(DetailScreen(name))

    def show_queue(self) -> None:
        self.push_screen(QueueScreen())

    def show_alerts(self) -> None:
        self.push_screen(AlertsScreen())

    def show_form(self, server: Server | None) -> None:
        self.push_screen(ServerForm(server, config_path=self.config_path))

    def confirm_delete(self, server: Server) -> None:
        if server.source == "config":
            self.notify(f"{fmt.clean(server.name)} is defined in {self.config_path}; remove it there", markup=False)
            return

        async def delete(confirmed: bool | None) -> None:
            if confirmed and await self.attempt(lambda fleet: fleet.remove_server(server.name)) is not FAILED:
                self.dashboard.remove_row(server.id)
                self.notify(f"deleted {fmt.clean(server.name)}", markup=False)
                await self.refresh_counts()

        self.push_screen(
            ConfirmScreen(f"Delete server {fmt.clean(server.name)} and all its history?", confirm="Delete"),
            delete,
        )

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The screen's keys, in the command palette too."""
        yield from super().get_system_commands(screen)
        for binding in screen.BINDINGS:
            # check_action: only the one of Pause / Resume that applies now
            if (
                isinstance(binding, Binding)
                and binding.description
                and screen.check_action(binding.action, ()) is not False
            ):
                yield SystemCommand(
                    binding.description,
                    f"key {binding.key_display or binding.key}",
                    lambda action=binding.action: screen.run_action(action),
                )


def failure_text(exc: Exception) -> str:
    """One line for a failed service call. Redis out of reach reads as what it means, not as
    redis-py's "Error 111 connecting to …" (told by the class's module: the TUI imports no Redis)."""
    if type(exc).__module__.startswith("redis.") and type(exc).__name__ in {"ConnectionError", "TimeoutError"}:
        return "Redis is not answering: try again in a moment"
    return fmt.clean(exc)


def dashboard_app(args: argparse.Namespace, loaded: LoadedConfig) -> FleetApp:
    from fleettop.wiring import bind_api, open_service

    api = bind_api(loaded, args.listen)  # before the screen: a port in use is one line, exit 2
    return FleetApp(
        open_service=lambda: open_service(
            loaded, worker=not args.no_worker, demo=args.demo, long_running=True, api=api
        ),
        config_path=loaded.path,
        config_note=loaded.missing_note,
        demo=bool(args.demo),
        prefs_path=None if args.demo else loaded.settings.data_dir / prefs.PREFS_FILE,  # a demo keeps nothing
    )


# Asked to stop (kill, systemd), or the terminal is gone (an ssh session dropped, `tmux
# kill-session`): quit as `q` does -- terminal restored, jobs in flight finished or
# re-queued, the embedded Redis stopped if this was its last user. Textual handles
# neither signal, and their default action kills the process with none of that done.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


async def cmd_dashboard(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    app = dashboard_app(args, loaded)
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, app.exit)
    try:
        await app.run_async()
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
    return app.return_code or 0
