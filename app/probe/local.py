"""The local transport: the probe script run on this machine, no SSH."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from fleettop.private import child_environment
from fleettop.probe.errors import CollectError
from fleettop.probe.script import PROBE_SCRIPT


async def run_local(where: str, first_contact: bool, timeout: float) -> str:
    """The script's stdout; raises CollectError (command_failed or timeout)."""
    try:
        process = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-s",
            "--",
            "1" if first_contact else "0",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group, so a timeout kills df as well
            env=child_environment(),  # not FLEETTOP_SECRET_KEY, nor a database URL's password
        )
    except OSError as exc:
        raise CollectError("command_failed", where, f"cannot run /bin/sh: {exc.strerror or exc}") from None
    try:
        async with asyncio.timeout(timeout):
            stdout, stderr = await process.communicate(PROBE_SCRIPT.encode())
    except TimeoutError:
        raise CollectError("timeout", where, f"probe did not finish within {timeout:g} s") from None
    finally:
        if process.returncode is None:  # timed out or cancelled: leave nothing running
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    if process.returncode != 0:
        lines = stderr.decode(errors="replace").strip().splitlines()
        detail = lines[-1] if lines else "no message"
        raise CollectError("command_failed", where, f"probe exited with status {process.returncode}: {detail}")
    return stdout.decode(errors="replace")
