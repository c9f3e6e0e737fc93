"""What the user's ssh config says for one host, read by asyncssh's parser as OpenSSH reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleettop.probe.sshconfig import HostSettings, SSHConfigFiles, SSHConfigProblem

CONFIG = """\
Host web-1
  HostName 127.0.0.1
  Port 46511
Host web-*
  ProxyJump ops@bastion:2222
  ConnectTimeout 5
Host bastion
  HostName 10.0.0.9
  ProxyJump none
Host *
  User ops
  IdentityFile ~/.ssh/id_%h
  ServerAliveInterval 15
  UserKnownHostsFile /lab/known_hosts
  SomeOptionAsyncsshDoesNotKnow yes
"""


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "config"
    path.write_text(CONFIG)
    return path


def test_first_obtained_value_wins_as_in_openssh(config, tmp_path):
    files = SSHConfigFiles([config, tmp_path / "absent"])
    assert files.lookup("web-1") == HostSettings(
        address="127.0.0.1",
        port=46511,
        username="ops",
        identity_files=("~/.ssh/id_127.0.0.1",),
        proxy_jump="ops@bastion:2222",
        connect_timeout=5.0,
        keepalive_interval=15.0,
        known_hosts_files=(Path("/lab/known_hosts"),),
    )
    bastion = files.lookup("bastion")
    assert (bastion.address, bastion.proxy_jump, bastion.connect_timeout) == ("10.0.0.9", None, None)


def test_what_fleettop_sets_is_not_taken_from_the_file(config):
    settings = SSHConfigFiles([config]).lookup("web-1", username="deploy", port=2200)
    assert (settings.port, settings.username, settings.address) == (None, None, "127.0.0.1")


def test_no_files_say_nothing_and_an_edit_is_seen(config):
    assert SSHConfigFiles([]).lookup("web-1") == HostSettings()
    files = SSHConfigFiles([config])
    assert files.lookup("web-2").proxy_jump == "ops@bastion:2222"
    config.write_text(CONFIG.replace("ops@bastion:2222", "gw") + "\n")
    assert files.lookup("web-2").proxy_jump == "gw"


def test_a_broken_config_is_one_line_naming_file_and_line(config):
    config.write_text("Host web-1\n  Port\n")
    with pytest.raises(SSHConfigProblem, match=rf"{config} line 2: Missing Port value"):
        SSHConfigFiles([config]).lookup("web-1")


def test_an_unreadable_config_is_one_line(tmp_path):
    with pytest.raises(SSHConfigProblem, match=rf"ssh config {tmp_path}: cannot be read: Is a directory"):
        SSHConfigFiles([tmp_path]).lookup("web-1")
