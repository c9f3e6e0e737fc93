"""The local transport (the probe run on this machine) and SecretBox."""

from __future__ import annotations

import os
import stat

import pytest

from fleettop.domain import Server
from fleettop.errors import FleettopError
from fleettop.probe import CollectError, Prober
from fleettop.secrets import KEY_ENV, SecretBox

LOCAL = Server(id=1, name="localhost", host="localhost", transport="local")


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
    token = box.encrypt("pa55 word")
    assert b"pa55" not in token
    assert box.decrypt(token) == "pa55 word"
    assert stat.S_IMODE(os.stat(tmp_path / "data" / "secret.key").st_mode) == 0o600
    assert SecretBox(tmp_path / "data").decrypt(token) == "pa55 word"  # the same key next time
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["secret.key"]


def test_secret_box_key_from_environment(tmp_path, monkeypatch):
    from cryptography.fernet import Fernet

    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    box = SecretBox(tmp_path)
    assert box.decrypt(box.encrypt("x")) == "x"
    assert not (tmp_path / "secret.key").exists()
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    with pytest.raises(FleettopError, match="cannot be decrypted"):
        SecretBox(tmp_path).decrypt(box.encrypt("x"))


def test_secret_box_refuses_a_key_file_others_can_read(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    SecretBox(tmp_path).encrypt("x")
    (tmp_path / "secret.key").chmod(0o644)
    with pytest.raises(FleettopError, match="chmod 600"):
        SecretBox(tmp_path).encrypt("x")
