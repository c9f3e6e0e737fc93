"""The tests' warm fork of `fleettop` (tests/forked_fleettop.py) behaves as `python -m fleettop`:
the same output and exit code, the environment and working directory of each call, signals."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import forked_fleettop
from queue_helpers import wait_until


def real(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleettop", *argv], capture_output=True, text=True, env=env, cwd=cwd, timeout=60
    )


def test_a_forked_command_answers_as_python_m_fleettop(tmp_path: Path):
    env = {**os.environ, "HOME": str(tmp_path), "FLEETTOP_CONFIG": str(tmp_path / "nowhere.yaml")}
    for argv in (["--version"], ["servers", "list"], ["--config", "relative.yaml", "queue", "stats"], ["--bogus"]):
        forked = forked_fleettop.run(argv, env=env, cwd=tmp_path)
        expected = real(argv, env, tmp_path)
        assert (forked.returncode, forked.stdout, forked.stderr) == (
            expected.returncode,
            expected.stdout,
            expected.stderr,
        ), argv
    # Each call's own environment and directory, not the warm parent's.
    other = tmp_path / "other"
    other.mkdir()
    (other / "relative.yaml").write_text(
        f"data_dir: {other / 'data'}\nservers:\n  - {{name: only-here, host: 10.0.0.1}}\n"
    )
    moved = forked_fleettop.run(["--config", "relative.yaml", "servers", "list"], env=env, cwd=other)
    assert moved.returncode == 0 and "only-here" in moved.stdout, moved.stderr


async def test_a_forked_worker_is_a_process_of_its_own_that_signals_stop(tmp_path: Path):
    (tmp_path / "config.yaml").write_text(f"data_dir: {tmp_path / 'data'}\n")
    with open(tmp_path / "out.log", "wb") as out, open(os.devnull, "rb") as nothing:
        process = await forked_fleettop.start(
            ["--config", str(tmp_path / "config.yaml"), "--headless"],
            stdin=nothing.fileno(),
            stdout=out.fileno(),
            stderr=out.fileno(),
            env=dict(os.environ),
            cwd=tmp_path,
        )
    assert process.pid not in (os.getpid(), os.getppid())
    log = tmp_path / "out.log"
    await wait_until(lambda: "started" in log.read_text(), 30)
    assert process.returncode is None
    assert Path(f"/proc/{process.pid}/cwd").resolve() == tmp_path.resolve()
    process.send_signal(signal.SIGKILL)
    assert await asyncio.wait_for(process.wait(), 10) == -signal.SIGKILL
    assert process.returncode == -signal.SIGKILL
