"""`fleettop collect`, `queue` and `cache` as a user runs them, embedded Redis included."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml
from queue_helpers import Fleettop, run_fleettop, service_for, wait_until
from redis.asyncio import Redis

from fleettop.timing import SCALE, scaled

RESULT_FIELDS = [
    "server",
    "status",
    "error",
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


async def test_collect_wait_json_on_the_embedded_redis(make_config, short_dir: Path, fleet):
    """No Redis URL: fleettop starts its own, private one, collects, and stops it."""
    data = make_config(servers=["sim-0001", "sim-0002", "sim-0004"], worker={"retries": 1})
    data["redis"] = {"url": None, "prefix": data["redis"]["prefix"]}
    config = short_dir / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    await fleet.stop("sim-0004")

    code, stdout, stderr = await run_fleettop(config, "collect", "--all", "--wait", "--json")

    assert code == 1, stderr  # one server failed
    results = {result["server"]: result for result in json.loads(stdout)}
    assert sorted(results) == ["sim-0001", "sim-0002", "sim-0004"]
    for result in results.values():
        assert list(result) == RESULT_FIELDS
    ok = results["sim-0001"]
    assert ok["status"] == "ok" and ok["error"] is None and 0 <= ok["mem_percent"] <= 100
    assert ok["disks"] and set(ok["disks"][0]) == {"mount", "percent", "used_bytes", "total_bytes"}
    # The same ISO-8601 form as `export` writes (one format for a script that joins the two).
    code, exported, _ = await run_fleettop(config, "export", "--server", "sim-0001", "--format", "json")
    assert code == 0 and json.loads(exported)[-1]["collected_at"] == ok["collected_at"]
    assert ok["collected_at"].endswith("+00:00")
    failed = results["sim-0004"]
    assert failed["status"] == "failed" and "sim-0004" in failed["error"] and failed["cpu_percent"] is None
    assert "Traceback" not in stderr

    redis_dir = Path(data["data_dir"]) / "redis"
    assert oct(redis_dir.stat().st_mode & 0o777) == "0o700"
    assert not (redis_dir / "redis.sock").exists()  # stopped on exit
    await fleet.start("sim-0004")


async def test_one_embedded_redis_is_shared_by_a_worker_and_a_command(make_config, short_dir: Path, fleet):
    data = make_config(servers=["sim-0001"], interval=10)
    data["redis"] = {"url": None, "prefix": data["redis"]["prefix"]}
    config = short_dir / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    socket_path = Path(data["data_dir"]) / "redis" / "redis.sock"

    headless = await Fleettop.start(config, "--headless", name="headless")
    try:

        async def socket_ready():  # redis-server writes its pid file just after it listens
            return socket_path.exists() and (socket_path.parent / "redis.pid").exists()

        await wait_until(socket_ready, 15)
        pid_before = (socket_path.parent / "redis.pid").read_text()
        private = Redis(unix_socket_path=str(socket_path))
        assert await private.config_get("port") == {"port": "0"}  # no TCP listener
        assert await private.config_get("save") == {"save": ""}
        await private.aclose()
        assert oct(socket_path.stat().st_mode & 0o777) == "0o700"
        code, stdout, stderr = await run_fleettop(config, "collect", "sim-0001", "--wait", "--json")
        assert code == 0, stderr
        assert json.loads(stdout)[0]["status"] == "ok"
        # The command used the worker's Redis (and its worker) and left it running for it.
        assert socket_path.exists() and (socket_path.parent / "redis.pid").read_text() == pid_before
        code, stdout, _ = await run_fleettop(config, "queue", "stats", "--json")
        assert code == 0 and json.loads(stdout)["scheduled"] == 1
    finally:
        assert await headless.stop() == 0
    assert not socket_path.exists()
    pid = int(pid_before)
    await wait_until(lambda: _gone(pid), 5)


async def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_unknown_names_are_one_line_and_exit_2(make_config, short_dir: Path, fleet):
    make_config(servers=["sim-0001"])
    code, stdout, stderr = await run_fleettop(short_dir / "config.yaml", "collect", "sim-0001", "nope", "--wait")
    assert code == 2
    assert stderr.strip() == "fleettop: no server named 'nope' (see: fleettop servers list)"
    code, _, stderr = await run_fleettop(short_dir / "config.yaml", "collect")
    assert code == 2 and len(stderr.strip().splitlines()) == 1


async def test_queue_commands_agree_with_every_process(make_config, short_dir: Path, fleet):
    data = make_config(servers=["sim-0001", "sim-0002"], interval=60)
    config = short_dir / "config.yaml"
    async with service_for(data, worker="manual") as service:
        servers = await service.resolve(["sim-0001", "sim-0002"])
        await service.collect_now(None)
        await service.wait_collected(servers, timeout=10)

        async def described() -> bool:  # by its next heartbeat: two connections kept (every 60 s)
            return [worker.connections for worker in (await service.stats()).workers] == [2]

        await wait_until(described, 10)

        code, stdout, _ = await run_fleettop(config, "queue", "stats", "--json")
        assert code == 0
        assert json.loads(stdout) == (await service.stats()).model_dump()
        assert json.loads(stdout)["completed"] == 2
        (worker,) = json.loads(stdout)["workers"]  # this process's (manual queue only: outside the ring)
        assert (worker["pid"], worker["scheduling"], worker["connections"]) == (os.getpid(), False, 2)
        code, stdout, _ = await run_fleettop(config, "queue", "stats")
        lines = stdout.splitlines()
        assert lines[lines.index("workers    1") + 2].split() == [
            worker["id"],
            worker["host"],
            str(os.getpid()),
            "manual",
            "2",
        ]

        code, stdout, _ = await run_fleettop(config, "queue", "pause", "--json")
        assert (code, json.loads(stdout)) == (0, {"paused": True})
        assert await service.is_paused()  # another process sees the pause
        code, stdout, _ = await run_fleettop(config, "queue", "resume")
        assert (code, stdout.strip()) == (0, "resumed")
        assert not await service.is_paused()

        redis, prefix = service.cache.redis, service.cache.prefix
        assert len([key async for key in redis.scan_iter(match=prefix + "metrics:latest:*")]) == 2
        code, stdout, _ = await run_fleettop(config, "cache", "clear")
        assert code == 0 and stdout.startswith("cleared ")
        for derived in ("metrics:*", "runs:*", "servers"):  # figures, outcomes, counts, the server list
            assert not [key async for key in redis.scan_iter(match=prefix + derived)], derived
        actions = [entry.action for entry in await service.repo.audit_entries()]
        assert {"collect.all", "queue.pause", "queue.resume", "cache.clear"} <= set(actions)
        # Rebuilt from SQL when next asked.
        code, stdout, _ = await run_fleettop(config, "queue", "stats", "--json")
        assert code == 0 and json.loads(stdout)["completed"] == 2


async def test_a_server_added_from_the_cli_is_scheduled_at_once_by_a_running_worker(
    make_config, short_dir: Path, fleet
):
    """`servers add` beside a running worker takes effect at once, not at the next periodic
    reconcile (every 10 s): the command tells the worker through the embedded Redis."""
    data = make_config(servers=["sim-0001"], interval=60)
    data["redis"] = {"url": None, "prefix": data["redis"]["prefix"]}
    config = short_dir / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    headless = await Fleettop.start(config, "--headless", name="headless")
    try:

        async def scheduled() -> int:
            code, stdout, _ = await run_fleettop(config, "queue", "stats", "--json")
            return json.loads(stdout)["scheduled"] if code == 0 else 0

        await wait_until(lambda: _equals(scheduled(), 1), 20)
        new = next(cfg for cfg in fleet.server_configs() if cfg.name == "sim-0002")
        code, _, stderr = await run_fleettop(
            config,
            "servers",
            "add",
            "extra",
            "--host",
            new.host,
            "--port",
            str(new.port),
            "--user",
            new.username,
            "--auth",
            "key",
            "--key-file",
            str(new.key_file),
        )
        assert code == 0, stderr
        await wait_until(lambda: _equals(scheduled(), 2), 4, step=0.3)
    finally:
        assert await headless.stop() == 0


async def _equals(value, expected) -> bool:
    return await value == expected


async def test_headless_without_a_config_file_says_where_one_would_go(short_dir: Path, redis_url: str, prefix: str):
    """`fleettop --headless` with no file at the config path: defaults (and the environment)
    apply, and a start-up line names the file to create; with the file there, no such line."""
    path = short_dir / ".config" / "fleettop" / "config.yaml"  # the default path, with HOME=short_dir
    path.parent.mkdir(parents=True)
    env = {
        "FLEETTOP_DATA_DIR": str(short_dir / "data"),
        "FLEETTOP_REDIS__URL": redis_url,
        "FLEETTOP_REDIS__PREFIX": prefix,
        "HOME": str(short_dir),
    }  # "name:" as it is, not a YAML mapping
    for present in (False, True):
        if present:
            path.write_text("worker:\n  concurrency: 2\n")
        headless = await Fleettop.start(path, "--headless", env=env, name=f"headless-{present}", named=False)
        try:
            await wait_until(lambda: "headless: redis at" in headless.text(), 30)  # noqa: B023 -- awaited before the loop moves on
        finally:
            assert await headless.stop() == 0, headless.text()
        said = [line for line in headless.text().splitlines() if "no config file" in line]
        if present:
            assert said == [], said
        else:
            assert (
                len(said) == 1
                and f"create {path} to change them (`fleettop config example` prints every key)" in said[0]
            ), said


async def test_collect_wait_fails_fast_on_an_unknown_host_key_and_tells_each_retry(make_config, short_dir: Path, fleet):
    """D5: no retry can fix an unknown host key, so `collect --wait` answers at once; a
    refused connection (a reboot, an sshd restart) is retried, and each retry is told."""
    import time

    unknown = short_dir / "empty_known_hosts"
    unknown.write_text("")
    # Real waits of 4 s and 8 s whatever the tests' clock (fleettop.timing): failing fast must show in seconds.
    make_config(
        servers=["sim-0001"], ssh={"known_hosts": str(unknown)}, worker={"retries": 3, "retry_backoff": 4 / SCALE}
    )
    started = time.monotonic()
    code, stdout, stderr = await run_fleettop(short_dir / "config.yaml", "collect", "sim-0001", "--wait")
    elapsed = time.monotonic() - started
    assert code == 1 and "host key unknown" in stdout and stderr == ""
    assert elapsed < 8, elapsed  # the start-up and one attempt; three attempts would wait 4 + 8 s more

    make_config(servers=["sim-0002"], worker={"retries": 3, "retry_backoff": 1})
    await fleet.stop("sim-0002")
    port = dict(fleet.hosts)["sim-0002"]
    code, stdout, stderr = await run_fleettop(short_dir / "config.yaml", "collect", "sim-0002", "--wait")
    refused = f"sim-0002 (127.0.0.1:{port}): connection refused"
    assert code == 1 and stdout == f"sim-0002  failed  {refused}\n"
    assert stderr.splitlines() == [
        f"attempt 1 of 3 failed: {refused}, retrying in {scaled(1):g} s",
        f"attempt 2 of 3 failed: {refused}, retrying in {scaled(2):g} s",
    ]
    await fleet.start("sim-0002")
