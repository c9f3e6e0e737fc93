"""The base of fleettop's own screens: `self.fleet` is the app, typed."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.screen import Screen

if TYPE_CHECKING:
    from fleettop.tui.app import FleetApp  # the app imports the screens: a type-only import


class FleetScreen(Screen[None]):
    @property
    def fleet(self) -> FleetApp:
        """The running FleetApp (Textual types `self.app` as any App)."""
        return cast("FleetApp", self.app)
