"""Each test's start (monotonic s), wall and CPU time, one JSON line per test, when ``SETPOINT_TEST_CPU_LOG`` names
a file (every xdist worker appends to it): to find where the suite's time goes, module by module.

CPU counts this process and the children it has waited for (the servers and ``setpoint`` processes
a test starts and stops); a module-scoped server's CPU lands on the test whose teardown stops it.
Summarise with ``python -m tests.support.cpu_log FILE``.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import time

import pytest

LOG = os.environ.get("SETPOINT_TEST_CPU_LOG")


def _cpu_s() -> tuple[float, float]:
    t = os.times()
    return t.user + t.system, t.children_user + t.children_system


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if not LOG:
        yield
        return
    wall0, (own0, kids0) = time.monotonic(), _cpu_s()
    yield
    own1, kids1 = _cpu_s()
    line = {"id": item.nodeid, "start": round(wall0, 3), "wall": round(time.monotonic() - wall0, 3), "cpu": round(own1 - own0, 3),
            "children": round(kids1 - kids0, 3), "worker": os.environ.get("PYTEST_XDIST_WORKER", "main")}
    with open(LOG, "a") as f:
        f.write(json.dumps(line) + "\n")


def summary(path: str, top: int = 60) -> str:
    """Per module: CPU (own + children), wall, tests; the top ``top`` by CPU, and the totals."""
    rows = [json.loads(line) for line in open(path)]
    by = collections.defaultdict(lambda: [0.0, 0.0, 0.0, 0])
    for r in rows:
        m = by[r["id"].split("::")[0]]
        m[0] += r["cpu"]
        m[1] += r["children"]
        m[2] += r["wall"]
        m[3] += 1
    out = [f"{'cpu s':>8} {'own':>8} {'kids':>8} {'wall s':>8} {'tests':>6}  module"]
    for mod, (own, kids, wall, n) in sorted(by.items(), key=lambda kv: -(kv[1][0] + kv[1][1]))[:top]:
        out.append(f"{own + kids:8.1f} {own:8.1f} {kids:8.1f} {wall:8.1f} {n:6d}  {mod}")
    own, kids, wall = (sum(r[k] for r in rows) for k in ("cpu", "children", "wall"))
    out.append(f"{own + kids:8.1f} {own:8.1f} {kids:8.1f} {wall:8.1f} {len(rows):6d}  all")
    return "\n".join(out)


if __name__ == "__main__":
    print(summary(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 60))
