"""`pytest tests/bench -s -n 0`: the benchmark run (quick) as a test; prints the figures table
(`-n 0`: in this process, not an xdist worker, whose output -s would not show).
Not part of the default run (pyproject's addopts ignore tests/bench). Fails only when
the bench cannot run (a collection fails); targets not met are reported, not failed."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402


def test_bench() -> None:
    if os.geteuid() != 0 or not Path("/usr/sbin/sshd").exists() or not shutil.which("redis-server"):
        pytest.skip("the bench needs root, /usr/sbin/sshd and Redis")
    quick = os.environ.get("FLEETTOP_BENCH_FULL") != "1"
    assert run.main(["--quick"] if quick else []) == 0
