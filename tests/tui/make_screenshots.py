"""Write the README's pictures to screenshots/*.svg: `python tests/tui/make_screenshots.py`.

They are the snapshot-test scenes (scenes.py): a fixed fleet at a fixed time.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from scenes import SCENES  # noqa: E402

OUTPUT = HERE.parent.parent / "screenshots"


async def shoot(name: str) -> Path:
    scene = SCENES[name]
    app = scene.app()
    async with app.run_test(size=scene.size) as pilot:
        for key in scene.keys:
            await pilot.press(key)
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
        path = OUTPUT / f"{name}.svg"
        path.write_text(app.export_screenshot(title=f"fleettop — {name}"), encoding="utf-8")
    return path


async def main() -> None:
    os.environ["TZ"] = "UTC"  # as the snapshot tests: the same picture on every machine
    time.tzset()
    OUTPUT.mkdir(exist_ok=True)
    for name in SCENES:
        print(await shoot(name))


if __name__ == "__main__":
    asyncio.run(main())
