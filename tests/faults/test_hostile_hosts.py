"""Hostile hosts (app.sim's misbehave()): every answer is bounded in size and time,
refused with its own kind of error, and nothing a host sends reaches a terminal as
an escape sequence or as markup."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from app.config import Settings
from app.domain import Server
from app.probe import CollectError, Prober
from app.probe.ssh import MAX_OUTPUT_BYTES
from app.sim import HOSTILE

from queue_helpers import run_fleettop

ESC = "\x1b"

# behaviour -> the error kind it must end in (None: collected, with names made inert)
EXPECTED = {
    "huge": "unparsable",
    "endless": "unparsable",
    "garbage": "unparsable",
    "escapes": None,
    "stderr-escapes": "command_failed",
    "drip": "timeout",
}


def test_every_hostile_behaviour_is_covered():
    assert set(EXPECTED) == set(HOSTILE)


async def test_hostile_answers_are_bounded_and_refused(fleet, short_dir: Path):
    name, port = fleet.hosts[0]
    settings = Settings.model_validate(
        {"data_dir": str(short_dir / "data"),
         "ssh": {"known_hosts": str(fleet.known_hosts_path), "connect_timeout": 3, "command_timeout": 2}}
    )
    prober = Prober(settings)
    server = Server(id=1, name=name, host=fleet.address, port=port, username=fleet.username, auth="key",
                    key_file=str(fleet.client_key_path), interval=60)
    try:
        for how, kind in EXPECTED.items():
            fleet.misbehave(name, how)
            started = time.monotonic()
            if kind is None:
                result = await prober.collect(server, None)
                names = [text for disk in result.metrics.disks for text in (disk.mount, disk.device)]
                assert any("[bold red]boom[/]" in text for text in names)  # kept, literally
                assert not any(ch < " " or "\x7f" <= ch <= "\x9f" for text in names for ch in text), names
            else:
                with pytest.raises(CollectError) as caught:
                    await prober.collect(server, None)
                assert caught.value.kind == kind, (how, str(caught.value))
                message = str(caught.value)
                assert ESC not in message and "\n" not in message and "\x07" not in message
                assert len(message) < 400
            elapsed = time.monotonic() - started
            # An endless answer is cut at the cap, not at the timeout; a drip ends at the timeout.
            assert elapsed < (3.5 if how == "drip" else 1.5), (how, elapsed)
        fleet.misbehave(name, None)
        await prober.collect(server, None)  # the host behaves again: collected again
    finally:
        await prober.close()
    assert MAX_OUTPUT_BYTES <= 4 * 1024 * 1024


async def test_cli_output_of_hostile_hosts_is_inert(make_config, short_dir: Path, fleet):
    """`collect --wait` (text and --json) of a host whose stderr and mount names carry
    escapes and markup: no ESC or BEL byte reaches stdout; JSON escapes nothing needed."""
    names = ["sim-0001", "sim-0002"]
    make_config(servers=names, worker={"retries": 1, "concurrency": 2})
    fleet.misbehave("sim-0001", "stderr-escapes")
    fleet.misbehave("sim-0002", "escapes")
    config = short_dir / "config.yaml"
    code, out, err = await run_fleettop(config, "collect", *names, "--wait")
    assert code == 1, (out, err)  # one failed
    assert ESC not in out + err and "\x07" not in out + err
    assert "sim-0001  failed" in out and "[bold red]boom[/]" in out
    code, out, err = await run_fleettop(config, "collect", *names, "--wait", "--json")
    assert ESC not in out + err and "\x07" not in out + err
    results = {result["server"]: result for result in json.loads(out)}
    assert results["sim-0001"]["status"] == "failed"
    mounts = [disk["mount"] for disk in results["sim-0002"]["disks"]]
    assert any("[bold red]boom[/]" in mount for mount in mounts), mounts
