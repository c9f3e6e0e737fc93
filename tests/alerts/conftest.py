from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from alert_helpers import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as running:
        yield running
