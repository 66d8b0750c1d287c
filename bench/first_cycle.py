"""How long `setpoint run` takes to govern: its first cycle against `setpoint sim serve` and a real
Prometheus, and the steady cycle after it, optionally A/B against another checkout.

One world for all runs: sim serve (the pod-hang e2e scenario's web, 4 pods, clock held at t=0) and
Prometheus (/usr/bin/prometheus) scraping it every second. Each run spawns `python -m controller.cli
run` with the checkout's own code (PYTHONPATH and cwd = the checkout) and a policy (default: the
shipped healing policy, policies/setpoint-healing.yaml, 15 s interval), and measures
- first cycle: wall seconds from the spawn until /metrics counts a finished cycle;
- its duration (the run's own `duration_s`) and the second cycle's (steady), from its debug log;
- the child's CPU seconds (resource, RUSAGE_CHILDREN) over the whole run.
With --base DIR the two checkouts take turns, run by run, the order swapped every round. Prints
each run and each side's median; the target (first cycle within FIRST_CYCLE_TARGET_S of the spawn,
median) as met / NOT met. Say the load when quoting figures (printed: /proc/loadavg).

Run: python bench/first_cycle.py [--base /path/to/main] [--rounds 3] [--policy FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.support and the e2e scenario of this checkout

from tests.e2e.test_live_loop import cycles_run, serve_scenario  # noqa: E402
from tests.e2e.test_pod_hang_live import SCENARIO  # noqa: E402
from tests.support.prometheus_server import ScrapeTarget, free_port, prometheus_server  # noqa: E402

#: the first cycle should end this soon after `setpoint run` is spawned (s, median): its start-up
#: (imports, the kubernetes client) plus a cycle, not a whole interval more
FIRST_CYCLE_TARGET_S = 10.0
#: longest wait for a cycle (s): one interval of the healing policy, its jitter and a loaded machine
CYCLE_WAIT_S = 60.0


def wait_cycles(port: int, count: int, since: float) -> float:
    """Seconds from ``since`` (monotonic) until ``count`` cycles are done (NaN: not within CYCLE_WAIT_S)."""
    while time.monotonic() - since < CYCLE_WAIT_S * count:
        if cycles_run(f"http://127.0.0.1:{port}") >= count:
            return time.monotonic() - since
        time.sleep(0.05)
    return float("nan")


def one_run(checkout: Path, policy: Path, world: dict, work: Path) -> dict:
    """Spawn `setpoint run` of ``checkout`` until its second cycle: its figures."""
    port, log = free_port(), work / "run.log"
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log, "w") as out:
        spawned = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "controller.cli", "run", "--policies", str(policy),
                                 "--prometheus", world["prom"], "--kubeconfig", str(world["kubeconfig"]),
                                 "--listen", f"127.0.0.1:{port}", "--records", str(work / "records.jsonl"),
                                 "--log-level", "debug"], stdout=out, stderr=subprocess.STDOUT, cwd=checkout, env=env,
                                start_new_session=True)
        try:
            first = wait_cycles(port, 1, spawned)
            wait_cycles(port, 2, spawned)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    durations = [json.loads(line)["duration_s"] for line in log.read_text().splitlines() if '"message":"cycle"' in line]
    return {"first_s": first, "first_cycle_s": durations[0] if durations else float("nan"),
            "steady_cycle_s": durations[1] if len(durations) > 1 else float("nan"),
            "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)}


@contextlib.contextmanager
def world(work: Path):
    """sim serve (clock held) and Prometheus scraping it; yields the kubeconfig and Prometheus' URL."""
    procs: list = []
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: [p.stop() for p in reversed(procs)])
        kubeconfig, metrics_port = serve_scenario(work, SCENARIO, procs, "--start-paused")
        prom = stack.enter_context(prometheus_server([ScrapeTarget.of(f"127.0.0.1:{metrics_port}")],
                                                     scrape_interval="1s"))
        yield {"kubeconfig": kubeconfig, "prom": prom.url}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", type=Path, help="another checkout to take turns with (A)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--policy", type=Path, default=REPO / "policies" / "setpoint-healing.yaml")
    args = ap.parse_args()
    sides = {"base": args.base.resolve(), "this": REPO} if args.base else {"this": REPO}
    print(f"load before: {Path('/proc/loadavg').read_text().strip()}")
    results: dict[str, list[dict]] = {name: [] for name in sides}
    with tempfile.TemporaryDirectory(prefix="setpoint-first-cycle-") as tmp, world(Path(tmp)) as w:
        time.sleep(8)  # Prometheus' first scrapes: every run sees a series
        for r in range(args.rounds):
            order = list(sides) if r % 2 == 0 else list(reversed(sides))
            for name in order:
                got = one_run(sides[name], args.policy, w, Path(tmp))
                results[name].append(got)
                print(f"round {r + 1} {name:>4}: first cycle done {got['first_s']:.2f}s after the spawn (it ran "
                      f"{got['first_cycle_s']:.3f}s), steady cycle {got['steady_cycle_s']:.3f}s, CPU {got['cpu_s']:.2f}s",
                      flush=True)
    print(f"load after: {Path('/proc/loadavg').read_text().strip()}")
    for name, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        verdict = "met" if med["first_s"] <= FIRST_CYCLE_TARGET_S else "NOT met"
        print(f"{name} ({sides[name]}), median of {len(runs)}: first cycle {med['first_s']:.2f}s after the spawn "
              f"(target <= {FIRST_CYCLE_TARGET_S:g}s: {verdict}), first cycle ran {med['first_cycle_s']:.3f}s, "
              f"steady cycle {med['steady_cycle_s']:.3f}s, CPU {med['cpu_s']:.2f}s")


if __name__ == "__main__":
    main()
