"""The local transport (the probe run on this machine) and SecretBox."""

from __future__ import annotations

import os
import stat

import pytest

from fleettop.domain import Server
from fleettop.errors import FleettopError
from fleettop.probe import CollectError, Prober
from fleettop.secrets import KEY_ENV, SecretBox, SecretMismatch

LOCAL = Server(id=1, name="localhost", host="localhost", transport="local")
WEB = Server(id=7, name="web", host="10.0.0.7", port=2222, username="ops", auth="password")


def meminfo_kib(key: str) -> int:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


async def test_local_transport_reads_this_machine(make_settings):
    prober = Prober(make_settings())
    first = await prober.collect(LOCAL, None)
    assert first.metrics.mem_total_bytes == meminfo_kib("MemTotal") * 1024
    assert first.metrics.cpu_percent is not None  # first contact: sampled twice
    assert "/" in {disk.mount for disk in first.metrics.disks}
    second = await prober.collect(LOCAL, first.counters)
    assert second.metrics.uptime_s >= first.metrics.uptime_s


async def test_local_transport_timeout_kills_the_probe(make_settings):
    prober = Prober(make_settings(ssh={"command_timeout": 0.05}))
    with pytest.raises(CollectError) as caught:
        await prober.collect(LOCAL, None)  # the first-contact pause alone is 0.25 s
    assert caught.value.kind == "timeout" and str(caught.value).startswith("localhost (local): ")


def test_secret_box_round_trip_and_key_file_mode(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    box = SecretBox(tmp_path / "data")
    token = box.seal("pa55 word", 7, WEB)
    assert b"pa55" not in token
    assert box.open(token, 7, WEB) == "pa55 word"
    assert stat.S_IMODE(os.stat(tmp_path / "data" / "secret.key").st_mode) == 0o600
    assert SecretBox(tmp_path / "data").open(token, 7, WEB) == "pa55 word"  # the same key next time
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["secret.key"]


def test_secret_box_key_from_environment(tmp_path, monkeypatch):
    from cryptography.fernet import Fernet

    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    box = SecretBox(tmp_path)
    assert box.open(box.seal("x", 7, WEB), 7, WEB) == "x"
    assert not (tmp_path / "secret.key").exists()
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    with pytest.raises(FleettopError, match="cannot be decrypted"):
        SecretBox(tmp_path).open(box.seal("x", 7, WEB), 7, WEB)


def test_secret_box_refuses_a_key_file_others_can_read(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    SecretBox(tmp_path).seal("x", 7, WEB)
    (tmp_path / "secret.key").chmod(0o644)
    with pytest.raises(FleettopError, match="chmod 600"):
        SecretBox(tmp_path).seal("x", 7, WEB)


@pytest.mark.parametrize(
    "elsewhere",
    [{"id": 8}, {"host": "10.0.0.8"}, {"port": 22}, {"username": "root"}, {"auth": "key"}, {"transport": "local"}],
)
def test_a_secret_sealed_for_one_server_is_refused_for_any_other(tmp_path, monkeypatch, elsewhere):
    """Finding 1: the token carries the server it was entered for; another id, host, port,
    user, auth or transport gets an error, never the password."""
    monkeypatch.delenv(KEY_ENV, raising=False)
    box = SecretBox(tmp_path)
    token = box.seal("pa55 word", WEB.id, WEB)
    other = WEB.model_copy(update=elsewhere)
    with pytest.raises(SecretMismatch, match="^stored password was entered for another host; enter it again$"):
        box.open(token, other.id, other)


def test_a_token_from_before_the_binding_is_refused(tmp_path, monkeypatch):
    """A bare Fernet token (fleettop before the binding) says nothing of its host: refused, to be entered again."""
    monkeypatch.delenv(KEY_ENV, raising=False)
    box = SecretBox(tmp_path)
    box.seal("x", 1, WEB)  # makes the key
    from cryptography.fernet import Fernet

    legacy = Fernet((tmp_path / "secret.key").read_bytes().strip()).encrypt(b"pa55 word")
    with pytest.raises(SecretMismatch, match="saved without the host it belongs to; enter it again"):
        box.open(legacy, WEB.id, WEB)
