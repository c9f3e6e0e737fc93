"""What one collection costs a host, shell side: `python tests/bench/probe_cost.py [SHELL ...]`.

Runs app/probe/script.sh on this machine as the SSH transport does, with no sshd in
between: `SHELL -s -- 0 serve` fed the script, then N request lines, each answer read to
its end marker ("kept", what a kept connection costs per collection); and a new
`SHELL -s -- 0` per answer ("one-shot", the session-per-collection protocol before).
Prints the median latency per answer and the host CPU per answer (the shell and its
children: utime+stime from /proc, and wait4 for the one-shot processes). SHELL defaults
to /bin/sh; dash, bash and `busybox sh` are worth comparing where installed.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = (ROOT / "app" / "probe" / "script.sh").read_bytes()
END = b"\n@@FLEETTOP-END@@\n"
ANSWERS = 200
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    """utime+stime of the process and its reaped children (df), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / CLK_TCK


def _read_answer(stdout: int) -> None:
    buffer = b""
    while END not in buffer:
        data = os.read(stdout, 65536)
        if not data:
            raise RuntimeError(f"the shell ended before an answer's end: {buffer[-200:]!r}")
        buffer += data


def kept(shell: list[str]) -> tuple[float, float]:
    process = subprocess.Popen(
        [*shell, "-s", "--", "0", "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
    )
    process.stdin.write(SCRIPT)
    _read_answer(process.stdout.fileno())
    cpu0, latencies = _cpu(process.pid), []
    for _ in range(ANSWERS):
        started = time.perf_counter()
        process.stdin.write(b"0\n")
        _read_answer(process.stdout.fileno())
        latencies.append(time.perf_counter() - started)
    cpu = _cpu(process.pid) - cpu0
    process.stdin.close()
    process.wait(10)
    return statistics.median(latencies), cpu / ANSWERS


def one_shot(shell: list[str]) -> tuple[float, float]:
    latencies, cpu = [], 0.0
    for _ in range(ANSWERS):
        started = time.perf_counter()
        process = subprocess.Popen([*shell, "-s", "--", "0"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        process.stdin.write(SCRIPT)
        process.stdin.close()
        _, _, usage = os.wait4(process.pid, 0)
        process.returncode = 0
        latencies.append(time.perf_counter() - started)
        cpu += usage.ru_utime + usage.ru_stime
    return statistics.median(latencies), cpu / ANSWERS


def main(argv: list[str]) -> int:
    shells = argv or ["/bin/sh"]
    print(f"{'shell':<12} {'mode':<9} {'latency/answer':>15} {'host CPU/answer':>16}  ({ANSWERS} answers)")
    for name in shells:
        shell = name.split()
        for mode, measure in (("kept", kept), ("one-shot", one_shot)):
            latency, cpu = measure(shell)
            print(f"{name:<12} {mode:<9} {latency * 1e3:>12.2f} ms {cpu * 1e3:>13.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
