"""Secrets at rest, in logs, in Redis, in the audit log and in error messages; Redis
with a password; the embedded Redis's permissions; who did what, in the audit log."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import subprocess
from pathlib import Path

import pytest
from fault_helpers import PrivateRedis, redis_server_binaries, unavailable
from ports import free_port
from queue_helpers import run_fleettop, service_for
from redis.asyncio import Redis
from store_helpers import start_run

from fleettop.config import LoadedConfig, Settings
from fleettop.wiring import open_service


def _files_bytes(directory: Path) -> bytes:
    return b"".join(
        path.read_bytes() for path in sorted(directory.rglob("*")) if path.is_file() and not path.is_socket()
    )


async def _collects_through_redis(data) -> None:
    """With this config's Redis: healthy, and a manual collection of sim-0001 succeeds."""
    async with service_for(data, worker=True) as service:
        assert (await service.health()).redis is True
        servers = await service.resolve(["sim-0001"])
        await service.collect_now(["sim-0001"])
        await service.wait_collected(servers, timeout=30)
        assert (await service.manual_outcomes([servers[0].id]))[0].status == "ok"


async def test_a_password_run_at_debug_leaves_no_plaintext_anywhere(
    make_config, short_dir: Path, fleet, prefix, redis_url, caplog
):
    """Password auth end to end (CLI-equivalent add, scheduled and manual collections,
    a wrong password too), every logger at DEBUG: the password is in no log record,
    no file in data_dir (SQLite file and WAL, log file), no Redis key, no audit entry,
    no `servers list --json` output."""
    data = make_config(servers=[], interval=10)
    (short_dir / "config.yaml").chmod(0o600)
    caplog.set_level(logging.DEBUG)
    for name in ("fleettop", "saq"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    good, bad = fleet.server_configs(auth="password")[:2]
    wrong = fleet.password + "-not-it"
    async with service_for(data, worker=True) as service:
        await service.add_server(good, secret=fleet.password)
        await service.add_server(bad, secret=wrong)
        servers = await service.resolve([good.name, bad.name])
        await service.collect_now([good.name, bad.name])
        await service.wait_collected(servers, timeout=60)
        ok, failed = await service.manual_outcomes([servers[0].id, servers[1].id])
        assert ok.status == "ok", ok
        assert failed.status == "failed" and "authentication failed" in failed.error
        audit = await service.repo.audit_entries(50)
        redis_values = []
        async for key in service.cache.redis.scan_iter(match=f"*{prefix}*"):
            kind = await service.cache.redis.type(key)
            if kind == b"string":
                redis_values.append(await service.cache.redis.get(key) or b"")
            elif kind == b"zset":
                redis_values.extend(
                    member for member, _ in await service.cache.redis.zrange(key, 0, -1, withscores=True)
                )
            elif kind == b"list":
                redis_values.extend(await service.cache.redis.lrange(key, 0, -1))
    for secret in (fleet.password, wrong):
        assert secret not in caplog.text
        assert secret.encode() not in _files_bytes(short_dir / "data")
        assert not any(secret.encode() in value for value in redis_values)
        assert not any(secret in entry.model_dump_json() for entry in audit)
        assert secret not in failed.error
    assert len(caplog.records) > 10  # the capture did see the run
    print(
        f"password run at DEBUG: {len(caplog.records)} log records, {len(redis_values)} Redis values, "
        f"{len(audit)} audit entries checked: 0 plaintext"
    )
    code, out, err = await run_fleettop(short_dir / "config.yaml", "servers", "list", "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert {entry["name"] for entry in listed} >= {good.name, bad.name}
    assert fleet.password not in out + err and "secret" not in {key for entry in listed for key in entry}


def test_the_secret_column_holds_ciphertext_only(make_config, short_dir: Path, fleet):
    """The secrets column, read with sqlite3 directly: Fernet tokens, no plain text."""
    import sqlite3

    data = make_config(servers=[])

    async def add() -> None:
        async with service_for(data, worker=False) as service:
            await service.add_server(fleet.server_configs(auth="password")[0], secret=fleet.password)

    asyncio.run(add())
    with sqlite3.connect(Path(data["data_dir"]) / "fleettop.db") as db:
        (blob,) = db.execute("SELECT secret FROM servers").fetchone()
    assert blob.startswith(b"gAAAAA")  # a Fernet token
    assert fleet.password.encode() not in blob
    key = Path(data["data_dir"]) / "secret.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


async def test_secrets_in_urls_are_redacted_from_errors(short_dir: Path):
    """Unreachable Redis or PostgreSQL given with a password in the URL: the error names
    the place, never the password; and the readable config file gets its warning."""
    port = free_port()  # nobody listens on it
    config = short_dir / "secret.yaml"
    config.write_text(f"data_dir: {short_dir / 'data'}\nredis:\n  url: redis://:Hunter2redis@127.0.0.1:{port}/0\n")
    config.chmod(0o644)
    code, out, err = await run_fleettop(config, "queue", "stats", "--json")
    assert code != 0 and "Hunter2redis" not in out + err, err
    assert f"127.0.0.1:{port}" in err
    assert err.count("other users can read it") == 1 and "chmod 600" in err
    config.write_text(
        f"data_dir: {short_dir / 'data'}\ndatabase:\n  url: postgresql+asyncpg://u:Hunter2pg@127.0.0.1:{port}/x\n"
    )
    config.chmod(0o600)
    code, out, err = await run_fleettop(config, "servers", "list", "--json")
    assert code != 0 and "Hunter2pg" not in out + err, err
    assert "other users can read it" not in err  # mode 0600: no warning


async def test_redis_with_a_password(short_dir: Path, make_config):
    """A Redis that requires a password: the right one in redis.url works end to end; a wrong
    one is refused with a clear error that does not repeat it."""
    server = PrivateRedis(short_dir, password="s3cret-redis-pw")
    server.start()
    try:
        data = make_config(servers=["sim-0001"], redis={"url": server.url})
        await _collects_through_redis(data)
        make_config(servers=["sim-0001"], redis={"url": server.url.replace("s3cret-redis-pw", "wrong-pw")})
        code, out, err = await run_fleettop(short_dir / "config.yaml", "queue", "stats")
        assert code != 0 and "wrong-pw" not in out + err, err
        assert "cannot reach redis at 127.0.0.1" in err, err
        assert "WRONGPASS" in err or "invalid" in err.lower() or "auth" in err.lower(), err
    finally:
        server.stop()


def _private_tls_redis(directory: Path, certs: Path) -> PrivateRedis:
    """A started private TLS redis-server: the first redis-server on PATH built with TLS.

    One built without it refuses `tls-port` as an unknown directive and the next is
    tried; any other failure to start fails the test.
    """
    refused = []
    for binary in redis_server_binaries():
        server = PrivateRedis(directory, tls=certs, binary=binary)
        try:
            server.start()
            return server
        except RuntimeError as exc:
            if "Bad directive" not in str(exc) or "'tls-port" not in str(exc):
                raise
            refused.append(binary)
    unavailable(f"no redis-server built with TLS (tried {', '.join(refused)})")


async def test_redis_over_tls(short_dir: Path, make_config):
    """rediss:// with the CA given in the URL, against a private TLS redis-server."""
    certs = short_dir / "tls"
    certs.mkdir()
    try:
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
                "-keyout",
                str(certs / "key.pem"),
                "-out",
                str(certs / "cert.pem"),
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        unavailable(f"openssl cannot make a test certificate: {exc}")
    server = _private_tls_redis(short_dir, certs)
    try:
        url = f"rediss://127.0.0.1:{server.tls_port}/0?ssl_ca_certs={certs / 'cert.pem'}"
        data = make_config(servers=["sim-0001"], redis={"url": url})
        await _collects_through_redis(data)
    finally:
        server.stop()


async def test_embedded_redis_is_reachable_only_through_an_owner_only_socket(short_dir: Path, fleet):
    settings = Settings.model_validate(
        {"data_dir": str(short_dir / "data"), "ssh": {"known_hosts": str(fleet.known_hosts_path)}}
    )
    async with open_service(
        LoadedConfig(settings=settings, path=short_dir / "none.yaml", exists=False), worker=False
    ) as service:
        directory = short_dir / "data" / "redis"
        socket_path = directory / "redis.sock"
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert stat.S_ISSOCK(socket_path.stat().st_mode)
        assert stat.S_IMODE(socket_path.stat().st_mode) & 0o077 == 0
        assert stat.S_IMODE((short_dir / "data").stat().st_mode) == 0o700
        for name in ("fleettop.db", "fleettop.db-wal", "fleettop.db-shm"):
            if (short_dir / "data" / name).exists():
                assert stat.S_IMODE((short_dir / "data" / name).stat().st_mode) == 0o600, name
        client = Redis(unix_socket_path=str(socket_path))
        try:
            assert (await client.config_get("port"))["port"] == "0"  # no TCP listener
            assert await client.config_get("bind")  # answered through the socket
        finally:
            await client.aclose()
        assert (await service.health()).redis is True


async def test_the_audit_log_records_every_change_and_manual_action(make_config, short_dir: Path, fleet):
    data = make_config(servers=[])
    cfg = fleet.server_configs()[0]
    async with service_for(data, worker=False) as service:
        await service.add_server(cfg)
        await service.edit_server(cfg.name, cfg.model_copy(update={"interval": 60}), secret="new-pass")
        await service.collect_now(None)
        await service.collect_now([cfg.name])
        await service.pause()
        await service.resume()
        await service.clean()
        await service.remove_server(cfg.name)
        entries = list(reversed(await service.repo.audit_entries(50)))
    actions = [entry.action for entry in entries]
    expected = [
        "server.add",
        "server.edit",
        "collect.all",
        "collect",
        "queue.pause",
        "queue.resume",
        "queue.clean",
        "server.remove",
    ]
    who = f"{os.environ.get('USER') or __import__('getpass').getuser()}@"
    assert all(entry.actor.startswith(who) and entry.at is not None for entry in entries)
    assert not any("new-pass" in entry.model_dump_json() for entry in entries)
    assert actions == expected, actions


async def test_collecting_named_servers_and_retrying_are_audited(make_config, short_dir: Path, fleet):
    data = make_config(servers=["sim-0001"])
    async with service_for(data, worker=False) as service:
        await service.collect_now(["sim-0001"])
        server = (await service.resolve(["sim-0001"]))[0]
        run_id = await start_run(service.repo, server.id, job_key="k", trigger="manual")
        await service.repo.finish_run(run_id, "failed", "x")
        await service.retry(run_id)
        actions = [entry.action for entry in await service.repo.audit_entries(50)]
    assert "collect" in actions and "collect.retry" in actions, actions


async def test_a_malformed_database_url_is_refused_without_its_password(short_dir: Path):
    from fleettop.store.db import DatabaseError, open_database

    for url in ("postgres:Hunter2pw@db:5432/x", "u:Hunter2pw@db/x", "mysql://u:Hunter2pw@db/x"):
        settings = Settings.model_validate({"data_dir": str(short_dir / "d"), "database": {"url": url}})
        with pytest.raises(DatabaseError) as caught:
            await open_database(settings)
        assert "Hunter2pw" not in str(caught.value), str(caught.value)
