"""Reading the servers another tool lists: an OpenSSH client config, an Ansible inventory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleettop.inventory import InventoryError, ansible_hosts, matches, ssh_config_hosts


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def ssh_dir(tmp_path):
    return tmp_path / "home" / ".ssh"


def test_ssh_config_gives_concrete_hosts_in_order_includes_followed_nothing_run(ssh_dir, tmp_path):
    witness = tmp_path / "ran"
    write(ssh_dir / "conf.d" / "10-db.conf", "Host db-1 db-2\n  HostName 10.0.1.%h\nHost web-1\n  Port 2222\n")
    write(ssh_dir / "conf.d" / "20-lab.conf", "Host=lab\n  User=ops\n")
    config = write(
        ssh_dir / "config",
        "# a comment\n"
        "Include conf.d/*.conf\n"
        "Include missing/*.conf\n"
        'Host web-1 "web-2" web-* !web-3\n'
        "  HostName web.example.com\n"
        "\tProxyJump bastion\n"
        f'Match exec "touch {witness}"\n'
        "  User someone\n"
        "Host bastion\n"
        f"  ProxyCommand touch {witness}\n"
        "Host *\n"
        "  ServerAliveInterval 15\n",
    )
    result = ssh_config_hosts(config, ssh_dir)
    assert [(host.name, host.host) for host in result.hosts] == [
        ("db-1", "db-1"),
        ("db-2", "db-2"),
        ("web-1", "web-1"),
        ("lab", "lab"),
        ("web-2", "web-2"),
        ("bastion", "bastion"),
    ]
    assert result.hosts[0].origin == f"{ssh_dir / 'conf.d' / '10-db.conf'}:1"
    assert result.hosts[4].origin == f"{config}:4"
    assert any("'web-*' skipped" in note for note in result.notes)
    assert any("'!web-3' skipped" in note for note in result.notes)
    assert any("'*' skipped" in note for note in result.notes)
    assert any("missing/*.conf" in note and "matched no file" in note for note in result.notes)
    assert not witness.exists()


def test_ssh_config_include_loop_and_bad_quoting_are_one_line_errors(ssh_dir):
    loop = write(ssh_dir / "config", "Include config\n")
    with pytest.raises(InventoryError, match="includes itself"):
        ssh_config_hosts(loop, ssh_dir)
    bad = write(ssh_dir / "bad", 'Host "web-1\n')
    with pytest.raises(InventoryError, match=rf"^{bad}:1: No closing quotation$"):
        ssh_config_hosts(bad, ssh_dir)


@pytest.mark.parametrize("kind", ["missing", "directory", "fifo", "binary"])
def test_a_file_that_cannot_be_read_is_one_line_naming_it(tmp_path, kind):
    path = tmp_path / "inventory"
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "binary":
        path.write_bytes(b"\xff\xfe[web]\n")
    with pytest.raises(InventoryError) as info:
        ansible_hosts(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert {
        "missing": "No such file",
        "directory": "is a directory",
        "fifo": "not a regular file",
        "binary": "not UTF-8",
    }[kind] in message


INI = """\
mail.example.com ansible_host=192.0.2.5

[webservers]
web[01:03].example.com
foo.example.com ansible_port=2222 ansible_user=deploy   # a comment

[dbservers]
db-a ansible_host=10.0.0.1 ansible_ssh_user=postgres
db-b ansible_host="{{ lookup('env', 'DB_B') }}"

[prod:children]
webservers
dbservers

[webservers:vars]
ansible_user=web

[prod:vars]
ansible_user=prod
ansible_port=2200

[all:vars]
ansible_port=22
"""

YAML = """\
all:
  hosts:
    mail.example.com:
      ansible_host: 192.0.2.5
  children:
    webservers:
      hosts:
        web[01:03].example.com:
        foo.example.com:
          ansible_port: 2222
          ansible_user: deploy
      vars:
        ansible_user: web
    dbservers:
      hosts:
        db-a: {ansible_host: 10.0.0.1, ansible_ssh_user: postgres}
        db-b:
          ansible_host: !vault |
            $ANSIBLE_VAULT;1.1;AES256
            6162
    prod:
      children:
        webservers:
        dbservers:
      vars: {ansible_user: prod, ansible_port: 2200}
  vars:
    ansible_port: 22
"""


@pytest.mark.parametrize(
    ("filename", "text"), [("hosts", INI), ("hosts.ini", INI), ("hosts.yml", YAML), ("hosts", YAML)]
)
def test_ansible_inventory_hosts_with_their_address_port_user_and_groups_as_tags(tmp_path, filename, text):
    result = ansible_hosts(write(tmp_path / filename, text))
    hosts = {host.name: host for host in result.hosts}
    assert sorted(hosts) == sorted(
        [
            "mail.example.com",
            "web01.example.com",
            "web02.example.com",
            "web03.example.com",
            "foo.example.com",
            "db-a",
            "db-b",
        ]
    )
    mail = hosts["mail.example.com"]
    assert (mail.host, mail.port, mail.username, mail.tags) == ("192.0.2.5", 22, None, ())
    web = hosts["web02.example.com"]
    # the host's nearest group (webservers) sets the user; its parent (prod) the port
    assert (web.host, web.port, web.username, web.tags) == ("web02.example.com", 2200, "web", ("webservers", "prod"))
    foo = hosts["foo.example.com"]
    assert (foo.port, foo.username) == (2222, "deploy")
    db = hosts["db-a"]
    assert (db.host, db.port, db.username, db.tags) == ("10.0.0.1", 2200, "postgres", ("dbservers", "prod"))
    assert hosts["db-b"].problem and "not evaluated" in hosts["db-b"].problem
    assert all(host.problem is None for name, host in hosts.items() if name != "db-b")


def test_a_dynamic_inventory_script_is_refused_not_run(tmp_path):
    witness = tmp_path / "ran"
    script = write(tmp_path / "inventory.py", f"#!/bin/sh\ntouch {witness}\n")
    script.chmod(0o755)
    with pytest.raises(InventoryError, match="is a script .* fleettop runs nothing"):
        ansible_hosts(script)
    assert not witness.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[web\nhost1\n", r":1: section header '\[web' has no closing"),
        ("[web:stuff]\n", ":1: unknown section kind 'stuff'"),
        ("[web]\nhost1 port\n", ":2: expected key=value after the host name, got 'port'"),
        ("[web]\nweb[1:99999]\n", "gives more than 10000 hosts"),
        # ranges side by side multiply: 10^8 names, refused before they are made
        ("g:\n  hosts:\n    h[1:9999][1:9999]:\n", "gives more than 10000 hosts"),
        # a YAML alias makes a group its own child
        ("all:\n  children: &a\n    g1:\n      children: *a\n", "'g1' contains itself"),
        ("all:\n  hosts: [a, b]\n", "hosts must be a mapping"),
        ("all:\n  hosts:\n    a: {\n", "malformed YAML"),
        ("all:\n  members: {}\n", "has 'members': expected hosts, children or vars"),
    ],
)
def test_a_malformed_inventory_is_one_line_saying_where(tmp_path, text, message):
    path = write(tmp_path / "inventory", text)
    with pytest.raises(InventoryError, match=message) as info:
        ansible_hosts(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_match_patterns():
    assert matches("web-1", ["db-*", "web-?"]) and not matches("web-10", ["web-?"])
