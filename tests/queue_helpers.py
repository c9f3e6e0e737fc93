"""Helpers of the queue and fault tests: services in this process, fleettop processes, waiting."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import forked_fleettop

from fleettop.config import LoadedConfig, Settings
from fleettop.service import FleetService
from fleettop.wiring import open_service


def loaded(data: dict[str, Any], path: Path | None = None) -> LoadedConfig:
    return LoadedConfig(settings=Settings.model_validate(data), path=path or Path("config.yaml"), exists=True)


@contextlib.asynccontextmanager
async def service_for(data: dict[str, Any], *, worker: bool | str) -> AsyncIterator[FleetService]:
    """worker=True: workers and scheduler; "manual": the manual queue's worker only."""
    async with open_service(loaded(data), worker=worker is True) as service:
        if worker == "manual":
            await service.start_worker(schedule=False)
        yield service


async def wait_until(check: Callable[[], Any], timeout: float, step: float = 0.1) -> Any:
    """Poll `check` (plain or async) until it returns something true."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(step)


class Fleettop:
    """A `fleettop` process (forked warm: forked_fleettop) with its output in a file."""

    def __init__(self, process: forked_fleettop.Process, output: Path):
        self.process = process
        self.output = output

    @classmethod
    async def start(
        cls,
        config: Path,
        *args: str,
        name: str = "fleettop",
        env: dict[str, str] | None = None,
        named: bool = True,
        open_files: tuple[int, int] | None = None,
    ) -> Fleettop:
        """named=False: no --config (`config` is then where the default path leads, by $HOME).
        open_files: its RLIMIT_NOFILE (soft, hard), as `ulimit -n` would set it."""
        output = config.parent / f"{name}-{uuid.uuid4().hex[:6]}.log"
        config_args = ["--config", str(config)] if named else []
        with output.open("wb") as sink, open(os.devnull, "rb") as nothing:
            process = await forked_fleettop.start(
                [*config_args, *args],
                stdin=nothing.fileno(),
                stdout=sink.fileno(),
                stderr=sink.fileno(),
                env={**os.environ, **(env or {})},
                cwd=config.parent,  # not the source tree: the installed package runs
                limits=forked_fleettop.limits(open_files=open_files),
            )
        return cls(process, output)

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    async def stop(self, signum: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signum)
        return await asyncio.wait_for(self.process.wait(), timeout)


async def run_fleettop(config: Path, *args: str, timeout: float = 60) -> tuple[int, str, str]:
    """Run a fleettop command to the end: (exit code, stdout, stderr)."""
    done = await forked_fleettop.run_async(["--config", str(config), *args], cwd=config.parent, timeout=timeout)
    return done.returncode, done.stdout, done.stderr
