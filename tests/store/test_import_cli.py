"""`fleettop servers import ssh-config|ansible` end to end (#15), on SQLite and Postgres."""

from __future__ import annotations

import yaml
from test_store_cli import add_config_servers


def test_ssh_config_import_is_idempotent_and_audited(fleettop, config_path, tmp_path):
    ssh_dir = tmp_path / "ssh"
    (ssh_dir / "conf.d").mkdir(parents=True)
    (ssh_dir / "conf.d" / "db.conf").write_text("Host db-1\n  HostName 10.0.1.1\n")
    config = ssh_dir / "config"
    witness = tmp_path / "ran"
    config.write_text(
        f"Include {ssh_dir}/conf.d/*.conf\n"
        "Host web-1 web-2 web-*\n  ProxyJump bastion\n"
        f'Match exec "touch {witness}"\n  User x\n'
        "Host *\n  User ops\n"
    )
    code, out, err = fleettop("servers", "import", "ssh-config", str(config), "--dry-run")
    assert (code, err) == (0, "")
    assert out.splitlines()[-4:] == [
        "would add db-1: db-1:22",
        "would add web-1: web-1:22",
        "would add web-2: web-2:22",
        "3 added, 0 updated, 0 unchanged, 0 skipped (dry run: nothing changed)",
    ]
    assert fleettop("servers", "list", "--json")[1].strip() == "[]"
    code, out, _ = fleettop("servers", "import", "ssh-config", str(config), "--match", "web-*", "--tag", "web")
    lines = out.splitlines()
    assert lines[0] == f"note: {config}:2: Host pattern 'web-*' skipped: not one server"
    assert lines[2] == f"note: {config} is not in ssh.config: its aliases resolve only once it is (or is included)"
    assert lines[3].startswith("added web-1 (ssh web-1:22, auth agent, every 900s*") and "tags web" in lines[3]
    assert lines[-1] == "2 added, 0 updated, 0 unchanged, 0 skipped"
    code, out, _ = fleettop("servers", "import", "ssh-config", str(config), "--match", "web-*", "--tag", "web")
    assert out.splitlines()[-3:] == ["unchanged web-1", "unchanged web-2", "0 added, 0 updated, 2 unchanged, 0 skipped"]
    code, out, _ = fleettop("audit", "--json")
    imported = [entry for entry in yaml.safe_load(out) if entry["detail"].startswith(f"imported from {config}")]
    assert sorted(entry["target"] for entry in imported) == ["web-1", "web-2"]
    assert not witness.exists()


INVENTORY = """\
[web]
web1.example.com ansible_host=192.0.2.10 ansible_port=2222
[db]
db1 ansible_host=192.0.2.20 ansible_user=postgres
db2 ansible_host="{{ lookup('env', 'X') }}"
[prod:children]
web
db
"""


def test_ansible_import_adds_then_updates_what_changed_and_keeps_the_config_servers(
    fleettop,
    config_path,
    tmp_path,
):
    add_config_servers(config_path, [{"name": "db1", "host": "10.9.9.9"}])
    inventory = tmp_path / "hosts"
    inventory.write_text(INVENTORY)
    code, out, err = fleettop("servers", "import", "ansible", str(inventory))
    assert (code, err) == (0, "fleettop: server 'db1': added from the config file\n")
    lines = out.splitlines()
    assert (
        lines[0].startswith("added web1.example.com (ssh 192.0.2.10:2222, auth agent,") and "tags web,prod" in lines[0]
    )
    assert lines[1] == f"skipped db1: defined in {config_path} (change it there)"
    assert lines[2].startswith(f"skipped db2 ({inventory}:5): ansible_host is a template")
    assert lines[3] == "1 added, 0 updated, 0 unchanged, 2 skipped"
    fleettop("servers", "edit", "web1.example.com", "--tag", "mine")  # a tag of the user's own stays
    inventory.write_text(INVENTORY.replace("ansible_port=2222", "ansible_port=2200"))
    code, out, _ = fleettop("servers", "import", "ansible", str(inventory))
    assert out.splitlines()[0] == "updated web1.example.com: port 2222 -> 2200, tags mine -> mine,web,prod"
    code, out, _ = fleettop("servers", "import", "ansible", str(inventory))
    assert out.splitlines()[0] == "unchanged web1.example.com"


def test_a_file_that_cannot_be_imported_is_one_line(fleettop, tmp_path):
    assert fleettop("servers", "import", "ansible", str(tmp_path / "none")) == (
        2,
        "",
        f"fleettop: {tmp_path / 'none'}: cannot be read: No such file or directory\n",
    )
    script = tmp_path / "inventory.sh"
    script.write_text("#!/bin/sh\necho '{}'\n")
    code, out, err = fleettop("servers", "import", "ansible", str(script))
    assert (code, out) == (2, "") and err.startswith(
        f"fleettop: {script}: is a script (a dynamic inventory): fleettop runs nothing"
    )
    assert len(err.splitlines()) == 1
