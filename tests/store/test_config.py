"""Every bad config of issue 2 is refused with one line naming the file, the line and the key."""

from __future__ import annotations

import textwrap

import pytest

from fleettop import config
from fleettop.cli import main

GOOD_SERVER = "  - name: web1\n    host: 10.0.0.1\n"


def problems_of(tmp_path, text: str) -> list[str]:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(config.ConfigError) as caught:
        config.load(path, environ={})
    return caught.value.problems


@pytest.mark.parametrize(
    ("text", "line", "key", "message"),
    [
        ("servers:\n  - name: a\n    host: [x\n", 4, "", "malformed YAML"),
        (
            "data_dir: /tmp\nworker:\n  concurrency: lots\n",
            3,
            "worker.concurrency",
            "must be a whole number (got 'lots')",
        ),
        (
            "servers:\n  - name: web1\n    host: h1\n    port: 70000\n",
            4,
            "servers[0].port",
            "between 1 and 65535 (got 70000)",
        ),
        ("servers:\n  - name: web1\n    host: h1\n    port: 0\n", 4, "servers[0].port", "between 1 and 65535 (got 0)"),
        (
            "servers:\n  - name: web1\n    host: h1\n    thresholds:\n      disk: 101\n",
            5,
            "servers[0].thresholds.disk",
            "between 0 and 100 (got 101)",
        ),
        ("defaults:\n  thresholds:\n    cpu: -1\n", 3, "defaults.thresholds.cpu", "between 0 and 100 (got -1)"),
        (
            "servers:\n  - name: web1\n    host: h1\n    interval: 5\n",
            4,
            "servers[0].interval",
            "at least 10 seconds (got 5)",
        ),
        ("defaults:\n  interval: 9\n", 2, "defaults.interval", "at least 10 seconds (got 9)"),
        (
            "servers:\n" + GOOD_SERVER + "  - name: web1\n    host: 10.0.0.2\n",
            4,
            "servers[1].name",
            "duplicate server name 'web1' (also servers[0])",
        ),
        (
            "servers:\n  - name: web1\n    host: 'web 1; rm -rf /'\n",
            3,
            "servers[0].host",
            "not a valid host name or IP address",
        ),
        ("servers:\n  - name: web1\n    host: -bad-.example\n", 3, "servers[0].host", "not a valid host name"),
        ("data_dir: /tmp\nservrs:\n" + GOOD_SERVER, 2, "servrs", "unknown key"),
        ("servers:\n  - name: web1\n    host: h1\n    hostname: h1\n", 4, "servers[0].hostname", "unknown key"),
    ],
    ids=[
        "malformed-yaml",
        "wrong-type",
        "port-too-high",
        "port-zero",
        "threshold-over-100",
        "threshold-negative",
        "interval-under-10s",
        "default-interval-under-10s",
        "duplicate-names",
        "host-with-shell",
        "host-bad-label",
        "unknown-top-key",
        "unknown-server-key",
    ],
)
def test_bad_config_names_file_line_and_key(tmp_path, text, line, key, message):
    problems = problems_of(tmp_path, text)
    assert len(problems) == 1, problems
    path = tmp_path / "config.yaml"
    prefix = f"{path}:{line}: {key}: " if key else f"{path}:{line}: "
    assert problems[0].startswith(prefix), problems[0]
    assert message in problems[0]
    assert "\n" not in problems[0]


def test_every_problem_is_reported_at_once(tmp_path):
    problems = problems_of(
        tmp_path,
        """\
        servers:
          - name: web1
            host: 10.0.0.1
            port: 70000
          - name: web1
            host: "bad host!"
            interval: 5
        servrs: []
        """,
    )
    assert len(problems) == 5
    assert {p.split(": ")[1] for p in problems} == {
        "servers[0].port",
        "servers[1].host",
        "servers[1].interval",
        "servrs",
        "servers[1].name",
    }


def test_each_problem_is_a_record_the_line_is_made_of(tmp_path):
    """ConfigError.records: the key's path as a tuple, the message, where it was set; each line
    of ConfigError.problems is its record, rendered (what the TUI form and the CLI each read)."""
    path = tmp_path / "config.yaml"
    path.write_text("servers:\n  - name: web1\n    host: h1\n    port: 0\n    thresholds:\n      cpu: lots\n")
    with pytest.raises(config.ConfigError) as caught:
        config.load(path, environ={"FLEETTOP_WORKER__CONCURRENCY": "0"})
    records = caught.value.records
    assert [(r.location, r.where) for r in records] == [
        (("worker", "concurrency"), "environment FLEETTOP_WORKER__CONCURRENCY: "),
        (("servers", 0, "port"), f"{path}:4: "),
        (("servers", 0, "thresholds", "cpu"), f"{path}:6: "),
    ]
    assert records[1].message == "must be between 1 and 65535 (got 0)" and records[1].key == "servers[0].port"
    assert caught.value.problems == [str(record) for record in records]
    assert caught.value.problems[1] == f"{path}:4: servers[0].port: must be between 1 and 65535 (got 0)"

    with pytest.raises(config.ConfigError) as caught:
        config.validate_server({"name": "web 1", "host": "h1", "thresholds": {"ram": 101}})
    assert [(r.location, r.where) for r in caught.value.records] == [(("name",), ""), (("thresholds", "ram"), "")]
    assert caught.value.problems[1] == "thresholds.ram: threshold must be between 0 and 100 (got 101)"

    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(config.ConfigError) as caught:
        config.load(tmp_path / "dir.yaml", environ={})
    (record,) = caught.value.records
    assert record.location is None and str(record) == f"{tmp_path / 'dir.yaml'}: is not a regular file"


def test_a_top_level_that_is_not_a_mapping(tmp_path):
    problems = problems_of(tmp_path, "- just\n- a list\n")
    assert problems == [f"{tmp_path / 'config.yaml'}:1: the top level must be a mapping of keys, not list"]


def test_the_cli_refuses_a_bad_config_with_exit_2_and_one_line(tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_text("servers:\n  - name: web1\n    host: h1\n    port: 99999\n")
    assert main(["--config", str(path), "servers", "list"]) == 2
    err = capsys.readouterr().err
    assert err == f"fleettop: {path}:4: servers[0].port: must be between 1 and 65535 (got 99999)\n"


# -- issue 12: D6, D15 ---------------------------------------------------------------


def test_a_named_config_file_that_does_not_exist_is_an_error(tmp_path, monkeypatch, capsys):
    missing = tmp_path / "nonexistent.yaml"
    assert main(["--config", str(missing), "servers", "list"]) == 2
    assert capsys.readouterr().err == f"fleettop: {missing}: no such config file (named by --config)\n"
    monkeypatch.setenv("FLEETTOP_CONFIG", str(missing))
    assert main(["queue", "stats"]) == 2
    assert capsys.readouterr().err == f"fleettop: {missing}: no such config file (named by FLEETTOP_CONFIG)\n"


def test_only_the_default_config_file_may_be_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(config.loader, "DEFAULT_CONFIG_PATH", tmp_path / "absent.yaml")
    loaded = config.load(environ={})
    assert not loaded.exists


def test_a_redis_url_of_another_scheme_is_a_config_error_without_the_url(tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_text(f"data_dir: {tmp_path / 'data'}\nredis:\n  url: http://user:s3cret@x\n")
    assert main(["--config", str(path), "queue", "stats"]) == 2
    err = capsys.readouterr().err
    assert err == f"fleettop: {path}:3: redis.url: must start with redis://, rediss://, unix:// (got http://)\n"


@pytest.mark.parametrize("data_dir", ["/proc/nope", "/etc/passwd", "/etc/passwd/sub"])
def test_a_data_dir_that_cannot_be_made_is_a_config_error(tmp_path, capsys, data_dir):
    path = tmp_path / "config.yaml"
    path.write_text(f"worker:\n  concurrency: 2\ndata_dir: {data_dir}\n")
    assert main(["--config", str(path), "servers", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fleettop: {path}:3: data_dir: {data_dir} "), err
    assert err.count("\n") == 1 and "unexpected" not in err


def test_a_data_dir_from_the_environment_names_the_variable(tmp_path, monkeypatch, capsys):
    path = tmp_path / "config.yaml"
    path.write_text("worker:\n  concurrency: 2\n")
    monkeypatch.setenv("FLEETTOP_DATA_DIR", "/proc/nope")
    assert main(["--config", str(path), "servers", "list"]) == 2
    assert capsys.readouterr().err.startswith(
        "fleettop: environment FLEETTOP_DATA_DIR: data_dir: /proc/nope cannot be created"
    )


def test_retention_per_tier_and_the_old_days_key(tmp_path):
    """`retention: {days: N}` (before the rollups) is read as raw_days; the tiers default to
    14, 90 and 730 days; days beside raw_days is refused, naming the line."""
    path = tmp_path / "config.yaml"
    path.write_text("retention:\n  days: 30\n")
    assert config.load(path, environ={}).settings.retention.keep_days() == {"raw": 30, "5m": 90, "1h": 730}
    path.write_text("retention:\n  rollup_1h_days: 400\n")
    assert config.load(path, environ={}).settings.retention.keep_days() == {"raw": 14, "5m": 90, "1h": 400}
    assert problems_of(tmp_path, "retention:\n  days: 30\n  raw_days: 7\n") == [
        f"{tmp_path / 'config.yaml'}:1: retention: days is the old name of raw_days: set only raw_days"
    ]
    assert problems_of(tmp_path, "retention:\n  rollup_5m_days: 0\n") == [
        f"{tmp_path / 'config.yaml'}:2: retention.rollup_5m_days: must be at least 1 (got 0)"
    ]


@pytest.mark.parametrize(
    "text",
    [
        'notify: {urls: "json://user:S3CRET-VALUE@host/x"}\n',
        "notify: {urls: [{json://user:S3CRET-VALUE@host/x: 1}]}\n",
        'api: {token: ["S3CRET-VALUE-0123456789"]}\n',
        "api: {tokens: [S3CRET-VALUE-0123456789]}\n",
        "redis: {url: [redis://:S3CRET-VALUE@host]}\n",
    ],
)
def test_an_error_about_a_secret_key_never_echoes_its_value(tmp_path, text):
    """A notify URL, an API token or a service URL may hold a password: the error names the key
    and the line, not the value (a --headless worker's stderr goes to the journal)."""
    lines = problems_of(tmp_path, text)
    assert lines and all("S3CRET" not in line for line in lines), lines


def test_a_secret_from_the_environment_is_not_echoed_either(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("{}\n")
    with pytest.raises(config.ConfigError) as caught:
        config.load(path, environ={"FLEETTOP_NOTIFY__URLS": "json://user:S3CRET-VALUE@host/x"})
    assert caught.value.problems and "S3CRET" not in " ".join(caught.value.problems)
