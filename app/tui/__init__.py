"""The Textual dashboard. Imported only when the dashboard starts (see fleettop.cli)."""

import enum
from typing import Final, Literal


class _Failed(enum.Enum):
    FAILED = "failed"


# What FleetApp.attempt returns when the call failed (and the error was shown), since None is
# a legitimate answer of several service methods. `result is FAILED` narrows the type.
FAILED: Final = _Failed.FAILED
Failed = Literal[_Failed.FAILED]
