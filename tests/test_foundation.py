"""The foundation a user meets first: the command line, the example config, the package."""

from __future__ import annotations

import importlib.resources
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fleettop import __version__, config
from fleettop.cli import main

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config.example.yaml"


def test_help_lists_flags_and_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for word in ("--config", "--headless", "--no-worker", "--demo", "collect", "queue", "servers", "export"):
        assert word in out


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"fleettop {__version__}"


def test_example_config_loads_with_every_default():
    loaded = config.load(EXAMPLE, environ={})
    assert loaded.exists
    defaults = config.Settings()
    # The example documents the defaults: loading it changes nothing.
    assert loaded.settings == defaults


def test_example_server_entry_is_valid_once_uncommented(tmp_path):
    text = EXAMPLE.read_text()
    entry = text[text.index("# - name: web1") :]
    uncommented = "\n".join(re.sub(r"^# ?", "", line) for line in entry.splitlines())
    path = tmp_path / "config.yaml"
    path.write_text(text.replace("servers: []", "servers:").replace(entry, uncommented))
    server = config.load(path, environ={}).settings.servers[0]
    assert (server.name, server.port, server.interval, server.auth) == ("web1", 22, 300, "agent")
    assert server.thresholds.resolve(config.Settings().defaults.thresholds).cpu == 80


def test_every_settings_key_is_documented_in_the_example():
    text = EXAMPLE.read_text()
    for section, model in config.Settings.model_fields.items():
        assert re.search(rf"^{section}:", text, re.M), section
        sub = model.annotation
        for name, field in getattr(sub, "model_fields", {}).items():
            key = field.alias or name  # as a user writes it (alerts.for)
            assert re.search(rf"^\s+{key}:", text, re.M), f"{section}.{key}"


def test_environment_overrides_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("worker:\n  concurrency: 7\n")
    settings = config.load(
        path, environ={"FLEETTOP_WORKER__CONCURRENCY": "12", "FLEETTOP_REDIS__URL": "redis://x:1/0"}
    ).settings
    assert settings.worker.concurrency == 12
    assert settings.redis.url == "redis://x:1/0"


def test_environment_values_read_as_a_user_means_them(tmp_path):
    """A prefix ends in a colon like the default `fleettop:` (not a YAML mapping); a
    mapping is written in braces."""
    environ = {"FLEETTOP_REDIS__PREFIX": "team1:", "FLEETTOP_DEFAULTS__THRESHOLDS": "{cpu: 80}"}
    (tmp_path / "empty.yaml").write_text("")
    settings = config.load(tmp_path / "empty.yaml", environ=environ).settings
    assert settings.redis.prefix == "team1:"
    assert settings.defaults.thresholds.cpu == 80


def test_bad_environment_value_is_one_line_naming_the_key(tmp_path, capsys):
    import os

    (tmp_path / "empty.yaml").write_text("")
    env = dict(os.environ, FLEETTOP_WORKER__CONCURRENCY="lots", FLEETTOP_CONFIG=str(tmp_path / "empty.yaml"))
    proc = subprocess.run([sys.executable, "-m", "fleettop", "queue", "stats"], env=env, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "fleettop: environment FLEETTOP_WORKER__CONCURRENCY: worker.concurrency: must be a whole number (got 'lots')"
    ]


def test_styles_ship_inside_the_package():
    styles = importlib.resources.files("fleettop.styles")
    assert any(entry.name.endswith(".tcss") for entry in styles.iterdir())


def test_cli_paths_do_not_import_textual():
    code = (
        "import sys; from fleettop import cli; cli.build_parser();"
        "import fleettop.cli.servers, fleettop.cli.collect, fleettop.cli.trust;"
        "print('textual' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_help_ends_with_where_the_config_file_is(tmp_path, monkeypatch, capsys):
    """`--help`'s last line: the config path ($FLEETTOP_CONFIG here, whole on its line),
    or with no file there, that the defaults are in use and which file to create."""
    path = tmp_path / "fleet-top.yaml"
    monkeypatch.setenv("FLEETTOP_CONFIG", str(path))
    for present in (False, True):
        if present:
            path.write_text("worker:\n  concurrency: 2\n")
        with pytest.raises(SystemExit):
            main(["--help"])
        epilog = capsys.readouterr().out.rstrip("\n").split("\n\n")[-1].splitlines()
        expected = (
            f"config file: {path}"
            if present
            else f"no config file: defaults in use; create {path} to change them (`fleettop config example` prints every key)"
        )
        assert epilog == [expected]
