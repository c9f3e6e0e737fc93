"""`fleettop history` and `export --step`, end to end through fleettop.cli.main on SQLite and Postgres."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from store_helpers import metrics, store_sample, with_repo

from fleettop.rollup import bucket_start

# Two whole hours that ended at least an hour ago: inside the raw retention, in the 5-minute
# and hourly rollups.
HOUR0 = bucket_start(int(time.time()) - 3 * 3600, 3600)


def at(minute: int) -> datetime:
    return datetime.fromtimestamp(HOUR0 + minute * 60, UTC)


def iso(minute: int) -> str:
    return at(minute).isoformat()


@pytest.fixture
def web1(fleettop, config_path):
    """web1 with a sample a minute for two hours: cpu = the minute (0..119), disk / rising."""
    fleettop("servers", "add", "web1", "--host", "h1")

    async def store(repo):
        server = await repo.get_server("web1")
        for minute in range(120):
            await store_sample(repo, server.id, metrics(at(minute), cpu=float(minute), disk=50 + minute / 10))

    with_repo(config_path, store)


def test_history_json_from_the_hourly_rollups(fleettop, web1):
    code, out, err = fleettop(
        "history", "web1", "--metric", "cpu", "--since", iso(0), "--until", iso(120), "--step", "1h", "--json"
    )
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert (document["server"], document["tier"], document["step"]) == ("web1", "1h", 3600)
    assert document["since"] == iso(0) and document["until"] == iso(120)
    (series,) = document["series"]
    assert series["metric"] == "cpu"
    assert series["points"] == [
        {"at": iso(0), "n": 60, "min": 0.0, "avg": 29.5, "max": 59.0},
        {"at": iso(60), "n": 60, "min": 60.0, "avg": 89.5, "max": 119.0},
    ]


def test_history_csv_of_a_mount_from_the_five_minute_rollups(fleettop, web1):
    code, out, _ = fleettop(
        "history", "web1", "--metric", "disk:/", "--since", iso(0), "--until", iso(30), "--step", "15m", "--csv"
    )
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["at"], r["metric"], r["n"], r["min"], r["max"]) for r in rows] == [
        (iso(0), "disk:/", "15", "50.0", "51.4"),
        (iso(15), "disk:/", "15", "51.5", "52.9"),
    ]


def test_history_table_and_the_point_budget(fleettop, web1):
    """Without --step the range is cut into at most 200 points: two hours of samples a
    minute are read raw, one point a minute."""
    code, out, _ = fleettop("history", "web1", "--since", iso(0), "--until", iso(120))
    lines = out.splitlines()
    assert code == 0 and lines[0].endswith("every 1m (raw samples)")
    assert lines[1].split() == ["at", "cpu", "ram", "swap", "disk", "load1", "net_rx", "net_tx"]
    assert len(lines) == 2 + 120
    assert lines[2].split()[2:4] == ["0.0", "20.0"]  # the first minute's cpu and ram
    code, out, _ = fleettop(
        "history", "web1", "--metric", "cpu", "--since", iso(0), "--until", iso(120), "--step", "1h"
    )
    assert out.splitlines()[1].split() == ["at", "n", "min", "avg", "max"]
    assert out.splitlines()[3].split()[2:] == ["60", "60.0", "89.5", "119.0"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--since", "5x"), "--since '5x': give a duration"),
        (("--step", "0m"), "--step: '0m' is not a duration"),
        (("--metric", "cpux"), "--metric 'cpux': one of cpu, ram, swap, disk, load1, net_rx, net_tx, or disk:MOUNT"),
        (("--since", "1h", "--until", "2h"), "--since must be before --until"),
        (("--since", "0001-01-01"), "--since: 0001-01-01 is before 1970"),
        (("--step", "99999999999999999999y"), "--step 99999999999999999999y: at most 10 years"),
        # 5-minute points are kept 90 days: a longer range does not quietly come back hourly
        (("--since", "100d", "--step", "5m"), "--step 5m: points that close are kept 90 days"),
    ],
)
def test_history_refuses_bad_input_in_one_line(fleettop, argv, message):
    fleettop("servers", "add", "web1", "--host", "h1")
    code, out, err = fleettop("history", "web1", *argv)
    assert (code, out) == (2, "") and err.startswith(f"fleettop: {message}") and err.count("\n") == 1


def test_history_of_an_unknown_server_or_mount(fleettop, web1):
    code, _, err = fleettop("history", "nope")
    assert code == 2 and "no server named 'nope'" in err
    code, out, _ = fleettop("history", "web1", "--metric", "disk:/nope", "--since", iso(0), "--until", iso(60))
    assert code == 0 and "no history in this range (mounts with history: disk:/)" in out


def test_export_step_gives_every_metric_of_every_server(fleettop, web1):
    code, out, _ = fleettop("export", "--step", "1h", "--since", iso(0), "--until", iso(120))
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["metric"] for r in rows} == {"cpu", "ram", "swap", "disk", "load1", "net_rx", "disk:/"}  # no net_tx yet
    cpu = [r for r in rows if r["metric"] == "cpu"]
    assert [(r["server"], r["at"], r["n"], r["avg"]) for r in cpu] == [
        ("web1", iso(0), "60", "29.5"),
        ("web1", iso(60), "60", "89.5"),
    ]
    code, out, _ = fleettop(
        "export", "--step", "1h", "--since", iso(0), "--until", iso(60), "--format", "json", "--server", "web1"
    )
    records = json.loads(out)
    assert {"server": "web1", "at": iso(0), "metric": "cpu", "n": 60, "min": 0.0, "avg": 29.5, "max": 59.0} in records
    assert fleettop("export", "--step", "7x")[0] == 2
    assert fleettop("export", "--step", "1h", "--server", "nope")[0] == 2
    assert datetime.fromisoformat(records[0]["at"]) - at(0) == timedelta(0)


def test_db_rollup_rolls_up_the_samples_stored_before_the_rollups(fleettop, config_path):
    """An upgraded database has samples and no rollups: `db rollup` makes them, once per day
    of samples, and doing it again changes nothing."""
    from sqlalchemy import insert

    from fleettop.store.rows import sample_values
    from fleettop.store.tables import SampleRow

    fleettop("servers", "add", "web1", "--host", "h1")

    async def store_raw(repo):  # as before 0003: samples only
        server = await repo.get_server("web1")
        async with repo.database.engine.begin() as conn:
            await conn.execute(
                insert(SampleRow.__table__),
                [sample_values(server.id, metrics(at(m), cpu=float(m)), None) for m in range(120)],
            )

    with_repo(config_path, store_raw)
    hourly = ("history", "web1", "--metric", "cpu", "--since", iso(0), "--until", iso(120), "--step", "1h", "--json")
    assert json.loads(fleettop(*hourly)[1])["series"][0]["points"] == []
    code, out, _ = fleettop("db", "rollup")
    assert code == 0 and out.startswith("rolled up ")
    points = json.loads(fleettop(*hourly)[1])["series"][0]["points"]
    assert [(p["n"], p["avg"]) for p in points] == [(60, 29.5), (60, 89.5)]
    fleettop("db", "rollup")
    assert json.loads(fleettop(*hourly)[1])["series"][0]["points"] == points


def test_until_alone_reads_the_day_before_it(fleettop, web1):
    code, out, err = fleettop("history", "web1", "--until", iso(120), "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["until"] == iso(120) and document["since"] <= iso(120 - 24 * 60)
