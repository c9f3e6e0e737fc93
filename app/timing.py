"""How fast the collection protocol's clock runs: at 1 for everyone, faster in fleettop's own tests.

The protocol is built from real waits: a server's interval, the retry backoffs, a job's
heartbeat and the sweep that re-queues a job whose worker died, the reconcile, a worker's
presence. A test that checks them would wait them out, minutes of a suite. The environment
variable FLEETTOP_TEST_TIME_SCALE, a factor in (0, 1], shrinks them all together, so a test sees
the same sequence in proportion. It is read once, here, when fleettop is imported (a fleettop
subprocess inherits it). What a user configures and reads does not change: an interval is at
least 10 s, the retries wait retry_backoff then twice that; only the seconds slept under them
are fewer. Any other value (unset, not a number, out of range) is 1.
"""

from __future__ import annotations

import os

SCALE_ENV = "FLEETTOP_TEST_TIME_SCALE"


def _scale(value: str | None) -> float:
    try:
        scale = float(value or 1)
    except ValueError:
        return 1.0
    return scale if 0 < scale <= 1 else 1.0  # NaN fails both comparisons


SCALE = _scale(os.environ.get(SCALE_ENV))


def scaled(seconds: float) -> float:
    """`seconds` of the protocol, as seconds of the wall clock."""
    return seconds * SCALE
