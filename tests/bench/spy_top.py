"""Summarise a py-spy `--format raw` profile (collapsed stacks):
`python tests/bench/spy_top.py FILE [N] [--grep TEXT] [--stack TEXT]` prints the functions with the
most samples inclusive (on the stack) and self (at the top), as % of all samples."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def short(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match["file"]
    for marker in ("site-packages/", "/lib/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['func']} ({path})"


def summarise(path: Path, top: int = 25, grep: str | None = None, stack_has: str | None = None) -> str:
    """`grep`: show only functions whose name contains it; `stack_has`: count only stacks
    with a frame containing it (e.g. "main (app/cli.py)": the main thread of a --idle profile)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        if stack_has and stack_has not in stack:
            continue
        total += samples
        frames = [short(frame) for frame in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += samples
        own[frames[-1]] += samples
    if not total:
        return f"{path}: no samples"
    lines = [f"{path.name}: {total} samples"]
    for title, counter in (("inclusive", inclusive), ("self", own)):
        lines.append(f"  top {top} {title}:")
        shown = 0
        for frame, samples in counter.most_common():
            if grep and grep not in frame:
                continue
            lines.append(f"    {100 * samples / total:5.1f}%  {frame}")
            shown += 1
            if shown >= top:
                break
    return "\n".join(lines)


if __name__ == "__main__":
    args = sys.argv[1:]
    options = {}
    for flag in ("--grep", "--stack"):
        if flag in args:
            index = args.index(flag)
            options[flag] = args[index + 1]
            del args[index : index + 2]
    print(
        summarise(Path(args[0]), int(args[1]) if len(args) > 1 else 25, options.get("--grep"), options.get("--stack"))
    )
