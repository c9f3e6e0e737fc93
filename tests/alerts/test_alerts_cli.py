"""`fleettop alerts`, `silence`, `notify test` as a user runs them: a real fleettop process on
the database a real worker wrote an alert into."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from alert_helpers import Receiver, alert_config, collect, manual_worker
from queue_helpers import run_fleettop, wait_until

from fleettop.probe.sim import SimFleet

ALERT_FIELDS = [
    "id", "server", "rule", "label", "state", "value", "peak", "threshold", "started_at", "fired_at", "resolved_at",
    "acked_by", "silenced_until",
]  # fmt: skip


async def test_alerts_ack_and_silence_from_the_command_line(
    make_config: Any, short_dir: Path, fleet: SimFleet, receiver: Receiver
) -> None:
    data = alert_config(make_config, None, receiver, **{"for": 1})
    config = short_dir / "config.yaml"
    config.chmod(0o600)
    fleet.host("sim-0001").machine.mem_fraction = 0.98
    async with manual_worker(data) as service:
        await collect(service)
        await wait_until(lambda: receiver.titled("FIRING"), timeout=15)

    code, out, err = await run_fleettop(config, "alerts", "--json")
    assert (code, err) == (0, "")
    (alert,) = json.loads(out)
    assert list(alert) == ALERT_FIELDS
    assert (alert["server"], alert["rule"], alert["label"], alert["state"]) == ("sim-0001", "ram", "", "firing")
    assert alert["threshold"] == 95 and alert["value"] > 95 and alert["acked_by"] is None

    code, out, _ = await run_fleettop(config, "alerts")
    assert code == 0 and "sim-0001" in out and "firing" in out and "ram" in out

    code, out, _ = await run_fleettop(config, "alerts", "ack", str(alert["id"]), "--json")
    assert code == 0 and json.loads(out)[0]["acked_by"]

    code, out, _ = await run_fleettop(
        config, "silence", "sim-0001", "--rule", "ram", "--for", "2h", "--comment", "disk swap", "--json"
    )
    assert code == 0
    (silence,) = json.loads(out)
    assert (silence["server"], silence["rule"], silence["comment"]) == ("sim-0001", "ram", "disk swap")
    code, out, _ = await run_fleettop(config, "alerts", "--json")
    assert json.loads(out)[0]["silenced_until"] == silence["until"]
    code, out, _ = await run_fleettop(config, "silence", "--list", "--json")
    assert [s["id"] for s in json.loads(out)] == [silence["id"]]
    code, out, _ = await run_fleettop(config, "silence", "--expire", str(silence["id"]))
    assert code == 0 and "expired" in out
    code, out, _ = await run_fleettop(config, "silence", "--list", "--json")
    assert json.loads(out) == []

    code, out, _ = await run_fleettop(config, "audit", "--json")
    actions = [entry["action"] for entry in json.loads(out)]
    assert ["alert.ack", "silence.add", "silence.expire"] == [a for a in actions if a.startswith(("alert", "silence"))]


async def test_wrong_input_is_one_line_and_exit_2(make_config: Any, short_dir: Path, receiver: Receiver) -> None:
    alert_config(make_config, None, receiver)
    config = short_dir / "config.yaml"
    config.chmod(0o600)
    await run_fleettop(config, "servers", "list")  # the config's servers synced (a note on stderr)
    for args, says in [
        (["alerts", "ack", "999"], "no open alert has id 999"),
        (["alerts", "ack"], "give the alert's ID"),
        (["silence", "sim-0001", "--for", "soon"], "silence --for 'soon'"),
        (["silence", "sim-0001"], "--for DURATION"),
        (["silence", "nosuch", "--for", "1h"], "no server named 'nosuch'"),
        (["silence", "--list", "sim-0001"], "--list and --expire take no NAME"),
        (["silence", "--expire", "42"], "no silence in force has id 42"),
    ]:
        code, out, err = await run_fleettop(config, *args)
        assert (code, out) == (2, ""), args
        assert err.count("\n") == 1 and says in err and "Traceback" not in err, (args, err)
    # An id no database integer can hold: argparse's usage line and one error, not an OverflowError.
    for args in (["alerts", "ack", "99999999999999999999"], ["silence", "--expire", "99999999999999999999"]):
        code, out, err = await run_fleettop(config, *args)
        assert (code, out) == (2, "") and "must be at most" in err and "Traceback" not in err, (args, err)


async def test_notify_test_says_per_url_sent_or_why_not_without_its_password(
    make_config: Any, short_dir: Path, receiver: Receiver
) -> None:
    dead = "json://ops:pa55word-x@127.0.0.1:1/dead"
    make_config(notify={"urls": [receiver.url, dead]})
    config = short_dir / "config.yaml"
    config.chmod(0o600)
    code, out, err = await run_fleettop(config, "notify", "test")
    assert code == 1
    sent, not_sent = out.splitlines()
    assert sent == f"sent      {receiver.url.replace('json://', 'json://', 1)}"
    assert not_sent.startswith("not sent  json://ops:****@127.0.0.1:1/dead: ")
    assert "pa55word" not in out + err
    assert [m["title"] for m in receiver.messages] == ["fleettop: test message"]
