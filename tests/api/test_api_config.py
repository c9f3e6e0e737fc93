"""The api section: what listen and the tokens accept, in the config's one-line errors."""

from __future__ import annotations

import pytest

from fleettop import config

GOOD = "0123456789abcdef0123"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9105", ("127.0.0.1", 9105)),
        ("[::1]:9105", ("::1", 9105)),
        ("localhost:1", ("localhost", 1)),
        (" 0.0.0.0:65535 ", ("0.0.0.0", 65535)),
    ],
)
def test_listen_takes_host_and_port(text: str, expected: tuple[str, int]):
    assert config.parse_listen(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "9105",
        "127.0.0.1",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "::1:9105",
        "a b:80",
        "$(reboot):80",
        "127.0.0.1:-1",
        "[::1]:x",
    ],
)
def test_listen_refuses_the_rest(text: str):
    with pytest.raises(ValueError):
        config.parse_listen(text)


def test_api_errors_name_the_file_line_and_key(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(f"api:\n  listen: nowhere\n  token: short\n  tokens:\n    'bad name': {GOOD}\n    ok: {GOOD}\n")
    with pytest.raises(config.ConfigError) as caught:
        config.load(path, environ={})
    problems = caught.value.problems
    assert problems[0].startswith(f"{path}:2: api.listen: must be HOST:PORT")
    assert problems[1].startswith(f"{path}:3: api.token: must be at least 16 printable ASCII characters")
    assert problems[2].startswith(f"{path}:4: api.tokens: token name 'bad name' must be 1-63 characters")
    assert not any("short" in problem.split("api.token")[1] for problem in problems[1:2])  # a token is never echoed


def test_tokens_by_name_and_from_the_environment(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(f"api:\n  tokens:\n    grafana: {GOOD}\n")
    path.chmod(0o600)
    loaded = config.load(path, environ={"FLEETTOP_API__TOKEN": "e" * 32, "FLEETTOP_API__LISTEN": "127.0.0.1:9105"})
    assert loaded.settings.api.named_tokens() == {"api": "e" * 32, "grafana": GOOD}
    assert loaded.settings.api.listen == "127.0.0.1:9105"
    path.write_text(f"api:\n  tokens:\n    a: {GOOD}\n    b: {GOOD}\n")
    with pytest.raises(config.ConfigError) as caught:
        config.load(path, environ={})
    assert "two names share one token" in caught.value.problems[0]


def test_a_token_in_a_file_others_can_read_is_warned_of(tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_text(f"api:\n  token: {GOOD}\n")
    path.chmod(0o644)
    config.load(path, environ={})
    assert "other users can read it (mode 0644): chmod 600" in capsys.readouterr().err
