"""Refresh tests/probe/data/local-*.txt: this machine's probe output through the local transport.

Run: python tests/probe/capture_fixtures.py
"""

import asyncio
from pathlib import Path

from fleettop.probe.local import run_local

DATA = Path(__file__).parent / "data"


async def main() -> None:
    (DATA / "local-first.txt").write_text(await run_local("localhost", True, 10))
    (DATA / "local-next.txt").write_text(await run_local("localhost", False, 10))


if __name__ == "__main__":
    asyncio.run(main())
