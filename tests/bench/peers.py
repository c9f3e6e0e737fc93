"""The bench's peers (ansible-core, parallel-ssh) and py-spy, in a virtualenv of their own,
made on first use from PyPI: `python tests/bench/peers.py` makes it (if missing) and prints
its path; `--path` prints the path only.

The venv is `${XDG_CACHE_HOME:-~/.cache}/fleettop-bench/peers-<hash>`, the hash of
peer-requirements.txt (every version pinned) and of the Python version: a change of
either makes a new one, an old one is left where it is. FLEETTOP_BENCH_PEERVENV names an
existing venv to use instead (nothing is installed into it). Several bench processes may
ask at once: one builds under a lock, the others wait for it; a half-built venv (a build
interrupted) is built again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parent / "peer-requirements.txt"
DONE = ".fleettop-bench-complete"  # written last: the venv is whole


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fleettop-bench"


def venv_path() -> Path:
    """Where the peers' venv is (or will be); nothing is created."""
    override = os.environ.get("FLEETTOP_BENCH_PEERVENV")
    if override:
        return Path(override)
    digest = hashlib.sha256(
        REQUIREMENTS.read_bytes() + f"\npython {sys.version_info[0]}.{sys.version_info[1]}".encode()
    )
    return cache_root() / f"peers-{digest.hexdigest()[:12]}"


def ensure() -> Path:
    """The peers' venv, made first if it is missing."""
    venv = venv_path()
    if os.environ.get("FLEETTOP_BENCH_PEERVENV"):
        if not (venv / "bin" / "python").exists():
            raise RuntimeError(f"FLEETTOP_BENCH_PEERVENV={venv} has no bin/python")
        return venv
    if (venv / DONE).exists():
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    with (venv.parent / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another bench may be building it: wait for it
        if (venv / DONE).exists():
            return venv
        shutil.rmtree(venv, ignore_errors=True)  # a build that did not finish
        print(
            f"bench: making the peers' venv {venv} (first use, from PyPI; about a minute)", file=sys.stderr, flush=True
        )
        try:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run(
                [
                    str(venv / "bin" / "python"),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--no-input",
                    "-r",
                    str(REQUIREMENTS),
                ],
                check=True,
            )
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        (venv / DONE).write_text(REQUIREMENTS.read_text())
    return venv


def peer_bin(name: str) -> str:
    """The path of a program of the peers' venv (python, ansible, py-spy), the venv made if missing."""
    return str(ensure() / "bin" / name)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--path"]:
        print(venv_path())
        return 0
    with contextlib.suppress(BrokenPipeError):
        print(ensure())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
