"""SVG snapshots of every screen over a fixed fleet (update with --snapshot-update)."""

from __future__ import annotations

import time

import pytest
from scenes import SCENES


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    """Times are shown in local time: pin it, so the pictures match on any machine."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("name", sorted(SCENES))
def test_screen(snap_compare, name: str) -> None:
    scene = SCENES[name]
    assert snap_compare(scene.app(), press=scene.keys, terminal_size=scene.size)
