"""parallel-ssh's round on the bench sshd, run by the peers' venv's python (tests/bench/peers.py; not fleettop's venv):
`peer_pssh.py PORT USER KEY_FILE HOSTS REPEATS` prints one JSON line per repetition:
{"first": s, "second": s, "ok": n} -- first round with a new client (connections
opened), second round with the same client (connections reused)."""

from __future__ import annotations

import json
import sys
import time

from pssh.clients import ParallelSSHClient

COMMAND = "cat /proc/loadavg"


def one_round(client: ParallelSSHClient) -> tuple[float, int]:
    started = time.perf_counter()
    output = client.run_command(COMMAND)
    client.join(output)
    elapsed = time.perf_counter() - started
    ok = 0
    for host_output in output:
        lines = list(host_output.stdout or [])
        if host_output.exception is None and host_output.exit_code == 0 and lines and len(lines[0].split()) == 5:
            ok += 1
    return elapsed, ok


def main(port: int, user: str, key_file: str, hosts: int, repeats: int) -> None:
    for _ in range(repeats):
        # parallel-ssh (libssh2) does not check host keys at all: it has no known_hosts option.
        client = ParallelSSHClient(
            ["127.0.0.1"] * hosts,
            user=user,
            port=port,
            pkey=key_file,
            num_retries=1,
            timeout=30,
            pool_size=100,
            allow_agent=False,
        )
        first, ok1 = one_round(client)
        second, ok2 = one_round(client)
        print(json.dumps({"first": first, "second": second, "ok": min(ok1, ok2)}), flush=True)
        del client  # closes its connections


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
