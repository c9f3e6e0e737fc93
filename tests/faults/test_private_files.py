"""Security review findings 3 and 7: directories and files another user could have planted or
changed are refused with one line naming the path and the fix; key files are read with a
bound; fleettop's own files are the user's, mode 0600, opened without following links."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
from pathlib import Path

import forked_fleettop
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
    return forked_fleettop.run(["--config", str(config), *args], cwd=config.parent, memory=memory_cap)


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
    code = main(
        ["--config", str(config), "servers", "add", "zkey", "--host", "127.0.0.1", "--auth", "key", "--key-file", path]
    )
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
    assert done.stderr == "fleettop: zkey (127.0.0.1:1): key file /dev/zero is not a regular file\n"


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


# -- finding 3: data_dir, the SQLite directory, known_hosts, the log, secret.key ----------


def _shared_with_nogroup(path: Path, mode: int) -> None:
    """`path` in group nogroup, with `mode`: writable by a group other users are in."""
    if os.geteuid() != 0:
        pytest.skip("needs root to give a file to another group")
    os.chown(path, -1, NOBODY)
    path.chmod(mode)


def _only_line(done: subprocess.CompletedProcess) -> str:
    assert done.stderr.count("\n") == 1, done.stderr
    return done.stderr


def test_a_data_dir_another_user_owns_is_refused_before_anything_in_it_is_used(tmp_path: Path):
    """The review's reproduction: another user made data_dir first (in a shared place) and
    planted a known_hosts there. fleettop refuses the directory: nothing in it is read."""
    if os.geteuid() != 0:
        pytest.skip("needs root to give a directory to another uid")
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o1777)
    shared.chmod(0o1777)
    data_dir = shared / "fleettop"
    data_dir.mkdir(mode=0o777)
    data_dir.chmod(0o755)
    (data_dir / "known_hosts").write_text("[127.0.0.1]:42202 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAttacker\n")
    os.chown(data_dir / "known_hosts", NOBODY, NOBODY)
    os.chown(data_dir, NOBODY, NOBODY)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(data_dir)}))
    for command in (("servers", "list"), ("servers", "test", "localhost"), ("export",)):
        done = _fleettop(config, *command)
        assert done.returncode == 1
        assert _only_line(done) == (
            f"fleettop: {data_dir} belongs to another user (uid {NOBODY}): fleettop uses only files and "
            "directories of your own here (chown it, or choose another path)\n"
        )
    assert sorted(path.name for path in data_dir.iterdir()) == ["known_hosts"]  # no database made there


def test_a_group_writable_data_dir_is_refused_and_a_readable_one_tightened(tmp_path: Path):
    """Writable by a group that others are in (here nogroup): refused. Only the user's private
    group (umask 002 systems) may keep a write bit: nobody else is in it."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    _shared_with_nogroup(data_dir, 0o770)
    config = _config(tmp_path)
    done = _fleettop(config, "servers", "list")
    assert done.returncode == 1
    assert (
        _only_line(done) == f"fleettop: {data_dir} can be written by other users (mode 0770): chmod go-w {data_dir}\n"
    )
    data_dir.chmod(0o755)
    done = _fleettop(config, "servers", "list")
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    data_dir.chmod(0o777)
    done = _fleettop(config, "servers", "list")
    assert done.returncode == 1
    assert (
        _only_line(done) == f"fleettop: {data_dir} can be written by other users (mode 0777): chmod go-w {data_dir}\n"
    )


def test_an_existing_database_file_is_tightened_and_its_directory_checked(tmp_path: Path):
    config = _config(tmp_path)
    assert _fleettop(config, "servers", "list").returncode == 0
    database = tmp_path / "data" / "fleettop.db"
    database.chmod(0o644)
    assert _fleettop(config, "servers", "list").returncode == 0
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    elsewhere = tmp_path / "team"
    elsewhere.mkdir()
    _shared_with_nogroup(elsewhere, 0o775)
    config = _config(tmp_path, database={"url": f"sqlite+aiosqlite:///{elsewhere / 'fleet.db'}"})
    done = _fleettop(config, "servers", "list")
    assert done.returncode == 1
    assert (
        _only_line(done) == f"fleettop: {elsewhere} can be written by other users (mode 0775): chmod go-w {elsewhere}\n"
    )
    assert not (elsewhere / "fleet.db").exists()


def test_a_writable_or_linked_known_hosts_is_refused(tmp_path: Path):
    """ssh.known_hosts that others may write, or fleettop's own known_hosts replaced by a
    link: no connection is trusted through it."""
    user_known_hosts = tmp_path / "known_hosts"
    user_known_hosts.write_text("")
    _shared_with_nogroup(user_known_hosts, 0o664)
    config = _config(
        tmp_path, ssh={"known_hosts": str(user_known_hosts)}, servers=[{"name": "web", "host": "127.0.0.1", "port": 1}]
    )
    done = _fleettop(config, "servers", "test", "web")
    assert done.returncode == 1
    assert _only_line(done) == (
        f"fleettop: web (127.0.0.1:1): known_hosts cannot be read: {user_known_hosts} can be written by other "
        f"users (mode 0664): chmod go-w {user_known_hosts}\n"
    )
    user_known_hosts.chmod(0o644)
    own = tmp_path / "data" / "known_hosts"
    own.symlink_to(user_known_hosts)
    done = _fleettop(config, "servers", "test", "web")
    assert done.returncode == 1
    assert _only_line(done) == (
        f"fleettop: web (127.0.0.1:1): known_hosts cannot be read: {own} is a symbolic link: fleettop does not "
        "follow one here (give the file itself)\n"
    )


def test_the_log_and_the_secret_key_are_never_opened_through_a_link(tmp_path: Path):
    from fleettop.private import UnsafePath, open_own_file
    from fleettop.secrets import SecretBox

    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    (data_dir / "fleettop.log").symlink_to(victim)
    with pytest.raises(UnsafePath, match="fleettop.log is a symbolic link"):
        open_own_file(data_dir / "fleettop.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    (data_dir / "secret.key").symlink_to(victim)
    with pytest.raises(UnsafePath, match="secret.key is a symbolic link"):
        SecretBox(data_dir).seal("x", 1, Server(id=1, name="a", host="h"))
    assert victim.read_text() == "keep me\n"


async def test_the_local_probe_does_not_inherit_fleettops_secrets(monkeypatch):
    """The local probe's shell (like the embedded redis-server) gets no FLEETTOP_* variable:
    the secret key and a database URL's password stay in fleettop's own environment."""
    from fleettop.probe import local

    monkeypatch.setenv("FLEETTOP_SECRET_KEY", "k" * 44)
    monkeypatch.setenv("FLEETTOP_DATABASE__URL", "postgresql+asyncpg://u:Hunter2@db/x")
    monkeypatch.setattr(local, "PROBE_SCRIPT", "env\n")  # the shell prints what it was given
    environment = await local.run_local("localhost (local)", False, 5)
    assert "Hunter2" not in environment and "FLEETTOP_" not in environment
    assert f"PATH={os.environ['PATH']}" in environment.splitlines()


def test_the_users_private_group_may_keep_its_write_bit(tmp_path: Path):
    """umask 002 systems (a group per user, nobody else in it) make files 0664: not refused."""
    import grp
    import pwd

    from fleettop.private import private_dir, read_trusted_file

    user = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid())
    if group.gr_name != user or set(group.gr_mem) - {user}:
        pytest.skip(f"the primary group {group.gr_name} is not {user}'s private group")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    known_hosts.chmod(0o664)
    assert read_trusted_file(known_hosts, follow_links=False) == b""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(0o775)
    private_dir(data_dir)
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
