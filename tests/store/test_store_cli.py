"""`fleettop servers`, `export` and `db`, end to end through fleettop.cli.main on SQLite and Postgres."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import stat
import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from store_helpers import T0, metrics, store_sample, with_repo

from fleettop import config
from fleettop.secrets import SecretBox
from fleettop.store.db import head_revision, open_database
from fleettop.store.repo import Repository


class FakeTerminal(io.StringIO):
    """Standard input as a person at a terminal would type it."""

    def isatty(self) -> bool:
        return True


def add_config_servers(config_path, servers: list[dict]) -> None:
    data = yaml.safe_load(config_path.read_text())
    data["servers"] = servers
    config_path.write_text(yaml.safe_dump(data))


# -- servers -------------------------------------------------------------------------


def test_servers_add_list_and_json(fleettop):
    assert fleettop("servers", "list")[1].startswith("No servers yet")
    code, out, err = fleettop(
        "servers",
        "add",
        "web1",
        "--host",
        "10.0.0.1",
        "--port",
        "2222",
        "--user",
        "ops",
        "--interval",
        "60",
        "--cpu",
        "75",
    )
    assert (code, err) == (0, "")
    assert out.startswith("added server 'web1' (ssh ops@10.0.0.1:2222, auth agent, every 60s")
    code, out, _ = fleettop("servers", "add", "db1", "--host", "db1.example.com", "--disable", "--json")
    assert code == 0 and json.loads(out)["enabled"] is False
    code, out, _ = fleettop("servers", "list")
    lines = out.splitlines()
    assert lines[0].split() == [
        "NAME",
        "HOST",
        "PORT",
        "USER",
        "TRANSPORT",
        "AUTH",
        "INTERVAL",
        "CPU/RAM/DISK",
        "%",
        "ENABLED",
        "TAGS",
        "SOURCE",
    ]
    assert lines[1].split() == [
        "db1",
        "db1.example.com",
        "22",
        "-",
        "ssh",
        "agent",
        "900s*",
        "90*/95*/90*",
        "no",
        "-",
        "db",
    ]
    assert lines[2].split() == [
        "web1",
        "10.0.0.1",
        "2222",
        "ops",
        "ssh",
        "agent",
        "60s",
        "75/95*/90*",
        "yes",
        "-",
        "db",
    ]
    code, out, _ = fleettop("servers", "list", "--json")
    listed = json.loads(out)
    assert [s["name"] for s in listed] == ["db1", "web1"]
    assert listed[1]["thresholds"] == {"cpu": 75.0, "ram": 95.0, "disk": 90.0} and listed[1]["port"] == 2222
    assert "secret" not in listed[1] and listed[1]["has_secret"] is False


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--host", "10.0.0.1", "--port", "70000"], "fleettop: port: must be between 1 and 65535 (got 70000)\n"),
        (["--host", "bad host;"], "fleettop: host: is not a valid host name or IP address\n"),
        (["--host", "h", "--interval", "5"], "fleettop: interval: must be at least 10 seconds (got 5)\n"),
        (
            ["--host", "h", "--cpu", "120"],
            "fleettop: thresholds.cpu: threshold must be between 0 and 100 (got 120.0)\n",
        ),
        (
            ["--host", "h", "--auth", "password"],
            "fleettop: server 'web2': --auth password needs --password (asked for here, stored encrypted)\n",
        ),
    ],
    ids=["bad-port", "bad-host", "short-interval", "bad-threshold", "password-without-secret"],
)
def test_servers_add_validates_like_the_config(fleettop, argv, error):
    assert fleettop("servers", "add", "web2", *argv) == (2, "", error)
    assert fleettop("servers", "list", "--json")[1].strip() == "[]"


def test_servers_add_a_duplicate_name(fleettop):
    assert fleettop("servers", "add", "web1", "--host", "h1")[0] == 0
    assert fleettop("servers", "add", "web1", "--host", "h2") == (2, "", "fleettop: server 'web1' already exists\n")
    assert fleettop("servers", "add", "bad name!", "--host", "h2")[2].startswith(
        "fleettop: name: must be 1-63 characters"
    )


def test_servers_edit_and_audit(fleettop, config_path):
    fleettop("servers", "add", "web1", "--host", "10.0.0.1")
    code, out, _ = fleettop("servers", "edit", "web1", "--port", "2200", "--rename", "web2", "--ram", "80")
    assert code == 0
    assert out == "edited server 'web2': name web1 -> web2, port 22 -> 2200, ram threshold 95* -> 80\n"
    server = json.loads(fleettop("servers", "list", "--json")[1])[0]
    assert (server["name"], server["port"], server["host"], server["thresholds"]["ram"]) == (
        "web2",
        2200,
        "10.0.0.1",
        80,
    )
    assert fleettop("servers", "edit", "web9", "--port", "1") == (
        2,
        "",
        "fleettop: no server named 'web9' (see: fleettop servers list)\n",
    )
    assert fleettop("servers", "edit", "web2", "--port", "0")[0:2] == (2, "")
    assert fleettop("servers", "edit", "web2")[0] == 2
    fleettop("servers", "add", "web3", "--host", "h")
    assert fleettop("servers", "edit", "web3", "--rename", "web2") == (
        2,
        "",
        "fleettop: server 'web2' already exists\n",
    )

    entries = with_repo(config_path, lambda repo: repo.audit_entries(10))
    assert [(e.action, e.target) for e in reversed(entries)] == [
        ("server.add", "web1"),
        ("server.edit", "web2"),
        ("server.add", "web3"),
    ]
    assert "port 22 -> 2200" in entries[1].detail and "@" in entries[1].actor


def test_audit_prints_the_newest_entries_oldest_first(fleettop, config_path):
    assert fleettop("audit") == (0, "no audit entries\n", "")
    fleettop("servers", "add", "web1", "--host", "10.0.0.1")
    fleettop("servers", "edit", "web1", "--port", "2200")
    fleettop("servers", "add", "web3", "--host", "h")

    code, out, err = fleettop("audit")
    assert (code, err) == (0, "")
    rows = [line.split(maxsplit=4) for line in out.splitlines()]
    assert [row[2:4] for row in rows] == [["server.add", "web1"], ["server.edit", "web1"], ["server.add", "web3"]]
    assert all("@" in row[1] for row in rows) and rows[1][4] == "port 22 -> 2200"
    times = [datetime.strptime(row[0], "%Y-%m-%dT%H:%M:%SZ") for row in rows]
    assert times == sorted(times)
    assert len({line.index("server.") for line in out.splitlines()}) == 1  # columns aligned

    code, out, _ = fleettop("audit", "--limit", "2", "--json")
    entries = json.loads(out)
    assert [(entry["action"], entry["target"]) for entry in entries] == [
        ("server.edit", "web1"),
        ("server.add", "web3"),
    ]
    assert set(entries[0]) == {"at", "actor", "action", "target", "detail"}
    with pytest.raises(SystemExit) as refused:  # argparse's one-line usage error
        fleettop("audit", "--limit", "0")
    assert refused.value.code == 2

    # Text that reached the log from elsewhere prints on one line, with no terminal escape.
    with_repo(config_path, lambda repo: repo.audit("collect", "web1", "odd\x1b[31m\nsecond line"))
    out = fleettop("audit", "--limit", "1")[1]
    assert out.count("\n") == 1 and "\x1b" not in out and out.rstrip().endswith("collect  web1  odd [31m second line")


def test_password_is_stored_encrypted(fleettop, config_path, monkeypatch, settings):
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret pass\n"))  # piped, as a script would
    code, out, _ = fleettop("servers", "add", "web1", "--host", "h", "--password", "--json")
    assert code == 0 and json.loads(out)["auth"] == "password" and json.loads(out)["has_secret"] is True
    blob = with_repo(config_path, lambda repo: _secret_of(repo, "web1"))
    assert b"s3cret" not in blob
    server = with_repo(config_path, lambda repo: repo.get_server("web1"))
    assert SecretBox(settings.data_dir).open(blob, server.id, server) == "s3cret pass"
    # A new address drops it (it was entered for the old one), and so does switching to the agent.
    assert fleettop("servers", "edit", "web1", "--port", "2222")[1].endswith(
        "port 22 -> 2222, secret removed: set it again with fleettop servers edit web1 --password\n"
    )
    assert with_repo(config_path, lambda repo: _secret_of(repo, "web1")) is None
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret pass\n"))
    assert fleettop("servers", "edit", "web1", "--password")[1].endswith("secret replaced\n")
    assert fleettop("servers", "edit", "web1", "--auth", "agent")[1].endswith(
        "auth password -> agent, secret removed\n"
    )
    assert with_repo(config_path, lambda repo: _secret_of(repo, "web1")) is None


async def _secret_of(repo: Repository, name: str) -> bytes | None:
    return await repo.get_secret((await repo.get_server(name)).id)


def _store_samples(config_path, name: str, times: list[datetime]) -> None:
    async def action(repo: Repository):
        server = await repo.get_server(name)
        for i, at in enumerate(times):
            await store_sample(repo, server.id, metrics(at, cpu=float(i)))

    with_repo(config_path, action)


def test_servers_remove_asks_unless_yes(fleettop, config_path, monkeypatch):
    fleettop("servers", "add", "web1", "--host", "h")
    _store_samples(config_path, "web1", [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)])

    # No terminal to ask on (tests, cron): refused without --yes.
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert fleettop("servers", "remove", "web1") == (
        2,
        "",
        "fleettop: not removing server 'web1': no terminal to confirm on (add --yes)\n",
    )
    # At a terminal: "n" (or just Enter) keeps it.
    monkeypatch.setattr("sys.stdin", FakeTerminal("n\n"))
    code, out, _ = fleettop("servers", "remove", "web1")
    assert code == 1 and out == "Remove server 'web1' and its 3 samples? [y/N] Server 'web1' kept.\n"
    monkeypatch.setattr("sys.stdin", FakeTerminal("y\n"))
    code, out, _ = fleettop("servers", "remove", "web1")
    assert code == 0 and out.endswith("removed server 'web1' and its 3 samples\n")
    assert fleettop("servers", "remove", "web1", "--yes") == (
        2,
        "",
        "fleettop: no server named 'web1' (see: fleettop servers list)\n",
    )

    fleettop("servers", "add", "web2", "--host", "h")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert fleettop("servers", "remove", "web2", "--yes") == (0, "removed server 'web2' and its 0 samples\n", "")
    actions = [e.action for e in with_repo(config_path, lambda repo: repo.audit_entries(10))]
    assert actions.count("server.remove") == 2


def test_config_servers_are_synced_and_edited_in_the_file(fleettop, config_path, monkeypatch):
    fleettop("servers", "add", "cli1", "--host", "h")
    add_config_servers(config_path, [{"name": "web1", "host": "10.0.0.1", "thresholds": {"cpu": 50}}])
    code, out, err = fleettop("servers", "list", "--json")
    assert err == "fleettop: server 'web1': added from the config file\n"
    assert {s["name"]: s["source"] for s in json.loads(out)} == {"cli1": "db", "web1": "config"}
    assert fleettop("servers", "list")[2] == ""  # synced once: nothing more to say

    code, _, err = fleettop("servers", "edit", "web1", "--port", "2222")
    assert (
        code == 2
        and err
        == f"fleettop: server 'web1' is defined in {config_path}: change it there (only its password can be set here)\n"
    )
    code, _, err = fleettop("servers", "remove", "web1", "--yes")
    assert code == 2 and "take it out of the file first" in err
    assert (
        fleettop("servers", "add", "web1", "--host", "h")[2]
        == f"fleettop: server 'web1' already exists (defined in {config_path})\n"
    )
    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
    assert fleettop("servers", "edit", "web1", "--password")[0] == 0

    # Out of the file: kept (with its secret), now a database server the CLI may remove.
    add_config_servers(config_path, [])
    code, out, err = fleettop("servers", "list", "--json")
    assert "'web1': no longer in the config file: kept" in err
    web1 = next(s for s in json.loads(out) if s["name"] == "web1")
    assert web1["source"] == "db" and web1["has_secret"] is True
    assert fleettop("servers", "remove", "web1", "--yes")[0] == 0


# -- export --------------------------------------------------------------------------


@pytest.fixture
def exported_fleet(fleettop, config_path):
    fleettop("servers", "add", "web1", "--host", "h1")
    fleettop("servers", "add", "web2", "--host", "h2")
    _store_samples(config_path, "web1", [T0 + timedelta(minutes=m) for m in range(3)])
    _store_samples(config_path, "web2", [T0 + timedelta(minutes=m, seconds=30) for m in range(3)])


def test_export_json_to_a_file(fleettop, exported_fleet, tmp_path):
    output = tmp_path / "out.json"
    code, out, err = fleettop("export", "--format", "json", "--output", str(output))
    assert (code, out, err) == (0, "", f"exported 6 samples to {output}\n")
    records = json.loads(output.read_text())
    assert [(r["server"], r["collected_at"]) for r in records[:3]] == [
        ("web1", "2026-11-01T12:00:00+00:00"),
        ("web2", "2026-11-01T12:00:30+00:00"),
        ("web1", "2026-11-01T12:01:00+00:00"),
    ]
    first = records[0]
    assert list(first) == [
        "server",
        "collected_at",
        "cpu_percent",
        "mem_percent",
        "swap_percent",
        "disk_percent",
        "disks",
        "load1",
        "load5",
        "load15",
        "procs",
        "uptime_s",
        "net_rx_bps",
        "net_tx_bps",
    ]
    assert (first["cpu_percent"], first["mem_percent"], first["swap_percent"], first["disk_percent"]) == (
        0.0,
        20.0,
        1.5,
        30.0,
    )
    assert first["disks"] == [{"mount": "/", "percent": 30.0, "used_bytes": 30, "total_bytes": 100}]
    assert (first["load1"], first["procs"], first["uptime_s"], first["net_rx_bps"], first["net_tx_bps"]) == (
        0.5,
        123,
        86400.5,
        1000.0,
        None,
    )
    assert not list(tmp_path.glob(".*.partial"))


def test_export_never_follows_a_link_planted_beside_the_output(fleettop, exported_fleet, tmp_path):
    """Security review finding 11: another user's symlink at the old draft path
    (.out.csv.partial) is not followed; the export is a new file of the owner's, mode 0600."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / ".out.csv.partial").symlink_to(victim)
    output = shared / "out.csv"
    code, _, err = fleettop("export", "--output", str(output))
    assert code == 0, err
    assert victim.read_text() == "keep me\n"
    assert not output.is_symlink() and output.read_text().startswith("server,collected_at,")
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    assert sorted(p.name for p in shared.iterdir()) == [".out.csv.partial", "out.csv"]  # the planted link, left alone


def test_export_csv_to_stdout_with_filters(fleettop, exported_fleet):
    code, out, _ = fleettop(
        "export", "--server", "web2", "--since", "2026-11-01T12:01:00Z", "--until", "2026-11-01T13:02:10+01:00"
    )
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    # 13:02:10+01:00 is 12:02:10 UTC, so web2's 12:02:30 sample is past --until.
    assert [(r["server"], r["collected_at"], r["cpu_percent"]) for r in rows] == [
        ("web2", "2026-11-01T12:01:30+00:00", "1.0")
    ]
    assert json.loads(rows[0]["disks"])[0]["mount"] == "/" and rows[0]["net_tx_bps"] == ""
    code, out, _ = fleettop("export")
    assert len(list(csv.DictReader(io.StringIO(out)))) == 6


def test_export_relative_times_and_errors(fleettop, config_path):
    fleettop("servers", "add", "web1", "--host", "h1")
    now = datetime.now(UTC)
    _store_samples(
        config_path, "web1", [now - timedelta(days=2), now - timedelta(hours=2), now - timedelta(minutes=10)]
    )
    count = lambda *argv: len(json.loads(fleettop("export", "--format", "json", *argv)[1]))  # noqa: E731
    assert (count("--since", "30m"), count("--since", "24h"), count("--since", "7d"), count("--until", "1h")) == (
        1,
        2,
        3,
        2,
    )
    assert fleettop("export", "--format", "json", "--since", "1m")[1] == "[]\n"
    assert fleettop("export", "--since", "yesterday") == (
        2,
        "",
        "fleettop: --since 'yesterday': give a duration such as 30m, 24h, 7d or an ISO-8601 time\n",
    )
    assert fleettop("export", "--since", "1h", "--until", "2h")[2] == "fleettop: --since must be before --until\n"
    assert fleettop("export", "--server", "web9") == (
        2,
        "",
        "fleettop: no server named 'web9' (see: fleettop servers list)\n",
    )


def test_export_of_10k_samples_streams(fleettop, config_path, tmp_path):
    from test_store_repo import STREAMED, insert_samples

    fleettop("servers", "add", "web1", "--host", "h1")

    async def fill():
        database = await open_database(config.load(config_path, environ={}).settings)
        try:
            await insert_samples(database, (await Repository(database).get_server("web1")).id, STREAMED)
        finally:
            await database.close()

    asyncio.run(fill())

    async def load_all(repo: Repository):
        return [s async for s in repo.iter_samples()]

    tracemalloc.start()
    everything = with_repo(config_path, load_all)
    loaded_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(everything) == STREAMED
    del everything

    output = tmp_path / "big.json"
    tracemalloc.start()
    code, _, _ = fleettop("export", "--format", "json", "--output", str(output))
    export_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert code == 0
    records = json.loads(output.read_text())
    assert len(records) == STREAMED and records[-1]["cpu_percent"] == (STREAMED - 1) % 100
    assert records[-1]["collected_at"] == (T0 + timedelta(seconds=STREAMED - 1)).isoformat()
    assert export_peak < loaded_peak / 5, (export_peak, loaded_peak)


# -- db ------------------------------------------------------------------------------


@pytest.mark.empty_database
def test_db_upgrade_and_purge(fleettop, config_path):
    code, out, _ = fleettop("db", "upgrade")
    assert code == 0 and out.endswith(f"upgraded from revision none to {head_revision()}\n")
    assert fleettop("db", "upgrade")[1].endswith(f"is up to date (revision {head_revision()})\n")
    fleettop("servers", "add", "web1", "--host", "h1")
    now = datetime.now(UTC)
    _store_samples(config_path, "web1", [now - timedelta(days=20), now - timedelta(days=15), now - timedelta(days=13)])
    code, out, _ = fleettop("db", "purge")
    assert code == 0 and out.startswith("purged 2 samples older than 14 days, 0 5-minute rows older than 90 days")
    assert fleettop("db", "purge")[1].startswith("purged 0 samples")
    entries = with_repo(config_path, lambda repo: repo.audit_entries(10))
    assert [e.action for e in entries][:2] == ["db.purge", "db.purge"] and "2 samples" in entries[1].detail
    assert "db.upgrade" in [e.action for e in entries]
