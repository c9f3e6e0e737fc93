"""D27: `fleettop config example` prints config.example.yaml from the installed package, and
`--help` points to it (pip installs no file at the top of the repository)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fleettop.cli import main

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config.example.yaml"


def test_config_example_prints_the_example_even_with_a_broken_config(tmp_path, capsys):
    broken = tmp_path / "config.yaml"
    broken.write_text("servers: [oops\n")
    assert main(["--config", str(broken), "config", "example"]) == 0
    assert capsys.readouterr().out == EXAMPLE.read_text(encoding="utf-8")


def test_help_points_to_config_example(tmp_path):
    env = dict(os.environ, FLEETTOP_CONFIG=str(tmp_path / "absent.yaml"))
    proc = subprocess.run([sys.executable, "-m", "fleettop", "--help"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0
    assert "config example" in proc.stdout.splitlines()[-1]
    assert "config.example.yaml" not in proc.stdout


@pytest.mark.slow
def test_the_wheel_carries_the_example(tmp_path):
    """Built from a copy of the source tree (a build writes build/ and egg-info beside it)."""
    source = tmp_path / "src"
    shutil.copytree(
        REPO,
        source,
        symlinks=True,
        # Nor a virtualenv (.venv, .ci/venv: 300 MB), which the build does not read.
        ignore=shutil.ignore_patterns(".git", "*.egg-info", "build", "__pycache__", ".*cache", ".hypothesis", "*venv"),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(source), "-w", str(tmp_path / "dist")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (wheel,) = (tmp_path / "dist").glob("fleettop-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("fleettop/config.example.yaml").decode() == EXAMPLE.read_text(encoding="utf-8")
