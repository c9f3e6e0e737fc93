"""Security review findings 3 and 7: directories and files another user could have planted or
changed are refused with one line naming the path and the fix; key files are read with a
bound; fleettop's own files are the user's, mode 0600, opened without following links."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fleettop.cli import main
from fleettop.config import Settings
from fleettop.domain import Server
from fleettop.probe import CollectError, Prober

NOBODY = 65534


def _config(directory: Path, **data) -> Path:
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump({"data_dir": str(directory / "data"), **data}))
    return path


def _fleettop(config: Path, *args: str, memory_cap: int | None = None) -> subprocess.CompletedProcess:
    def cap() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_cap, memory_cap))

    return subprocess.run(
        [sys.executable, "-m", "fleettop", "--config", str(config), *args], capture_output=True, text=True,
        timeout=60, stdin=subprocess.DEVNULL, preexec_fn=cap if memory_cap else None,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},  # asyncssh's DSA deprecation is not ours to show
    )


@pytest.fixture
def fifo(tmp_path: Path):
    path = tmp_path / "key.fifo"
    os.mkfifo(path)
    yield path
    # Release a reader still blocked on it (the code before the fix), so no thread is left hanging.
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK) if _has_reader(path) else None
    if fd is not None:
        os.close(fd)


def _has_reader(path: Path) -> bool:
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        return True
    except OSError:
        return False


# -- finding 7: key_file ----------------------------------------------------------------


@pytest.mark.parametrize("device", ["/dev/zero", "fifo", "directory"])
def test_a_key_file_that_cannot_be_a_key_is_refused_when_added(tmp_path: Path, capsys, request, device: str):
    path = {"/dev/zero": "/dev/zero", "fifo": None, "directory": str(tmp_path)}[device]
    if path is None:
        path = str(request.getfixturevalue("fifo"))
    config = _config(tmp_path)
    code = main(["--config", str(config), "servers", "add", "zkey", "--host", "127.0.0.1", "--auth", "key", "--key-file", path])
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"fleettop: server 'zkey': key_file {path} is not a regular file\n"


def test_a_big_key_file_is_refused_when_edited(tmp_path: Path, capsys):
    config = _config(tmp_path)
    assert main(["--config", str(config), "servers", "add", "web", "--host", "127.0.0.1"]) == 0
    big = tmp_path / "big_key"
    big.write_bytes(b"x" * (64 * 1024 + 1))
    capsys.readouterr()
    assert main(["--config", str(config), "servers", "edit", "web", "--auth", "key", "--key-file", str(big)]) == 2
    assert capsys.readouterr().err == f"fleettop: server 'web': key_file {big} is larger than 64 KiB\n"


def test_collecting_with_dev_zero_as_key_file_fails_at_once_instead_of_filling_memory(tmp_path: Path):
    """The review's reproduction (a config server, never checked at add time), under a 1 GiB
    address-space cap: before, `servers test` died of MemoryError after reading /dev/zero."""
    config = _config(
        tmp_path, servers=[{"name": "zkey", "host": "127.0.0.1", "port": 1, "auth": "key", "key_file": "/dev/zero"}]
    )
    done = _fleettop(config, "servers", "test", "zkey", memory_cap=1024**3)
    assert done.returncode == 1, done.stderr
    assert done.stderr == "fleettop: zkey ([127.0.0.1]:1): key file /dev/zero is not a regular file\n"


async def test_a_fifo_as_key_file_does_not_hang_a_thread(tmp_path: Path, fifo: Path):
    settings = Settings.model_validate({"data_dir": str(tmp_path / "data"), "ssh": {"connect_timeout": 2}})
    prober = Prober(settings)
    try:
        with pytest.raises(CollectError) as caught:
            async with asyncio.timeout(5):
                await prober.collect(
                    Server(id=1, name="fkey", host="127.0.0.1", port=1, auth="key", key_file=str(fifo)), None
                )
    finally:
        await prober.close()
    assert caught.value.kind == "auth_failed" and str(caught.value).endswith(f"key file {fifo} is not a regular file")
    assert not _has_reader(fifo)  # no thread left blocked opening it
