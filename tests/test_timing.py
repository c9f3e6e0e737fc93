"""The tests' clock (fleettop.timing): the suite runs the protocol's waits scaled down, and
without the variable every figure is the one the README promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fleettop import timing

# What a user is promised (README "How collection works", "Configuration").
README_FIGURES = {
    "min_interval": 10,
    "retries": 3,
    "retry_waits": [5, 10],
    "job_heartbeat_limit": 10,
    "sweep_every": 5,
    "reconcile_every": 10,
}
FIGURES = """
import json
from fleettop import config, timing
from fleettop.queue import contract, jobs, scheduler
settings = config.Settings()
print(json.dumps({
    "scale": timing.SCALE,
    "min_interval": config.MIN_INTERVAL,
    "retries": settings.worker.retries,
    "retry_waits": [contract.retry_delay(settings, attempt) for attempt in (1, 2)],
    "job_heartbeat_limit": contract.HEARTBEAT_LIMIT_S,
    "sweep_every": jobs.SWEEP_EVERY_S,
    "reconcile_every": scheduler.RECONCILE_EVERY_S,
}))
"""


def figures(scale: str | None) -> dict:
    env = {key: value for key, value in os.environ.items() if key != timing.SCALE_ENV}
    if scale is not None:
        env[timing.SCALE_ENV] = scale
    proc = subprocess.run([sys.executable, "-c", FIGURES], env=env, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def test_the_suite_runs_on_the_scaled_clock():
    # tests/conftest.py set the variable before anything imported fleettop
    assert timing.SCALE == float(os.environ[timing.SCALE_ENV])


def test_without_the_variable_the_protocol_keeps_the_readme_figures():
    assert figures(None) == {"scale": 1.0, **README_FIGURES}


def test_the_scale_shrinks_every_wait_and_no_figure_a_user_sets():
    shown = figures("0.2")
    assert shown == {
        "scale": 0.2,
        "min_interval": 10,
        "retries": 3,
        "retry_waits": pytest.approx([1, 2]),
        "job_heartbeat_limit": pytest.approx(2),
        "sweep_every": pytest.approx(1),
        "reconcile_every": pytest.approx(2),
    }


@pytest.mark.parametrize("value", [None, "", "fast", "0", "-0.5", "1.5", "nan", "inf"])
def test_anything_but_a_factor_in_0_to_1_is_the_real_clock(value: str | None):
    assert timing._scale(value) == 1.0
