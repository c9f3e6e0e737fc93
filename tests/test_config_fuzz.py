"""The config loader under arbitrary input: only its own one-line errors come out."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleettop import config

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.floats(allow_nan=True), st.text(max_size=30)
)
keys = st.sampled_from(
    [
        "data_dir",
        "database",
        "redis",
        "worker",
        "servers",
        "defaults",
        "ssh",
        "url",
        "port",
        "name",
        "host",
        "interval",
        "thresholds",
        "cpu",
        "concurrency",
        "servrs",
        "enabled",
        "transport",
    ]
) | st.text(max_size=8)
documents = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5), max_leaves=25
)


def _check(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            config.load(path, environ={})
        except config.ConfigError as exc:
            assert exc.problems
            for line in exc.problems:
                assert line.startswith(str(path)) and "\n" not in line


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_structured_garbage_gets_one_line_errors(document):
    _check(yaml.safe_dump(document))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_gets_one_line_errors(text):
    _check(text)
