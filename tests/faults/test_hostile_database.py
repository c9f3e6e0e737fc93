"""Rows written straight into a shared database are validated by nobody: whatever a
name, host or user holds, the CLI's text output prints it as one inert line."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from queue_helpers import run_fleettop, service_for

ESC = "\x1b"


async def test_cli_text_output_cleans_what_the_database_holds(make_config, short_dir: Path, fleet):
    data = make_config(servers=[], worker={"retries": 1})
    first, second = fleet.server_configs()[:2]
    async with service_for(data, worker=False) as service:
        await service.add_server(first)
        await service.add_server(second)
    with sqlite3.connect(Path(data["data_dir"]) / "fleettop.db") as db:
        db.execute("update servers set name = char(27) || ']0;DBNAME' || char(7) || 'x' where name = ?", (first.name,))
        db.execute(
            "update servers set host = '127.0.0.1' || char(27) || '[31m', username = 'u' || char(27) || '[5m' "
            "where name = ?",
            (second.name,),
        )
    config = short_dir / "config.yaml"

    code, out, err = await run_fleettop(config, "servers", "list")
    assert code == 0, err
    assert ESC not in out + err and "\x07" not in out + err, out
    assert "]0;DBNAME x" in out and "127.0.0.1 [31m" in out

    code, out, err = await run_fleettop(config, "collect", "--all", "--wait")
    assert code == 1, (out, err)  # the second cannot be reached at that host
    assert ESC not in out + err and "\x07" not in out + err, out
    lines = out.splitlines()
    assert any(line.startswith("]0;DBNAME x  ok") for line in lines), out
    assert any(line.startswith(f"{second.name}  failed") and "127.0.0.1 [31m" in line for line in lines), out


def test_a_collect_error_cleans_where_it_happened_too():
    """The `where` part names a server and host from the database; the error is stored
    in runs.error, logged and printed: all of it one clean line."""
    from fleettop.probe import CollectError

    error = CollectError("unreachable", "web\x1b]0;X\x07 ([10.0.0.1\x1b[31m]:22)", "cannot connect")
    assert ESC not in str(error) and "\x07" not in str(error)
    assert str(error) == "web ]0;X  ([10.0.0.1 [31m]:22): cannot connect"


async def test_trust_and_untrust_clean_the_host_the_database_holds(make_config, short_dir: Path, fleet):
    """untrust printed `No key for [<ESC>]0;…]:port` straight from the row (security review
    finding 13, on the commands added since)."""
    data = make_config(servers=[])
    server = fleet.server_configs()[0]
    async with service_for(data, worker=False) as service:
        await service.add_server(server)
    with sqlite3.connect(Path(data["data_dir"]) / "fleettop.db") as db:
        db.execute(
            "update servers set host = 'x' || char(27) || ']0;PWNED' || char(7) || 'y' where name = ?", (server.name,)
        )
    config = short_dir / "config.yaml"
    for command in ("untrust", "trust"):
        code, out, err = await run_fleettop(config, command, server.name, "--yes" if command == "trust" else "--")
        assert ESC not in out + err and "\x07" not in out + err, (command, out, err)
        assert "x ]0;PWNED y" in out + err, (command, out, err)
