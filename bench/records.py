"""Benchmark decision records: a cycle's records made into JSON lines, the per-record path vs cycle_lines.

Runs --services (1,000) under each --policy (default: the default policy and web-forecast) for
--minutes (20) of simulated time with records kept in memory, then turns the same cycles into
decisions.jsonl lines both ways, in alternating blocks of cycles (each block timed per path,
CPU time of this process: the figure that holds on a shared machine):
- per record: ``reconciler.cycle_records`` (one DecisionRecord per target), ``to_dict``,
  ``jsonable``, ``json.dumps`` (what CycleLog wrote before session 38);
- cycle_lines: ``record_lines.cycle_lines`` (a cycle's lines from its arrays in one pass).
Both must give the same bytes (checked on every block). Prints records per CPU-second each way
(median of the blocks), their ratio against the 10x target ("met" / "NOT met"), and the file size
per target-day and per 1,000 services and day (the mean line at 5,760 cycles a day: 15 s interval).

Run: python bench/records.py [--services 1000] [--minutes 20] [--blocks 6] [--policy FILE ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's code, not the editable install's

from controller.model import jsonable
from controller.policy import load_policies
from controller.runtime.reconciler import cycle_records
from simulators.runner import ControllerSpec, run_controllers
from simulators.scenario import load_scenario_text
from sim_speed import SCENARIO  # 1,000 diurnal services (bench/ is first on the path)

REPO = Path(__file__).resolve().parents[1]
#: records per CPU-second, cycle_lines over the per-record path
TARGET_RATIO = 10.0



def per_record_lines(cycle, metric_names, start_s) -> list[str]:
    """The lines as CycleLog wrote them before cycle_lines: one record object per target."""
    return [json.dumps(jsonable(r.to_dict()), separators=(",", ":"))
            for r in cycle_records(cycle, metric_names, start_s)]


def new_lines(cycle, metric_names, start_s) -> list[str]:
    from controller.runtime.record_lines import cycle_lines
    return cycle_lines(cycle, metric_names, start_s)


def timed(make, cycles, metric_names, start_s) -> tuple[float, list[list[str]]]:
    """CPU seconds to make every cycle's lines, and the lines."""
    c = time.process_time()
    out = [make(cycle, metric_names, start_s) for cycle in cycles]
    return time.process_time() - c, out


def bench_policy(path: str, services: int, minutes: int, blocks: int, paths: list[str]) -> None:
    policy = load_policies([path])[0]
    sc = load_scenario_text(SCENARIO.format(n=services, hours=minutes / 60, services=f"{services} services",
                                            span=f"{minutes} minutes"))
    (run, log), = run_controllers(sc, [ControllerSpec("policy", "policy", "", policy=policy)], keep_records=True)
    log.in_memory_records = 1 << 62  # keep every cycle (the run itself held them until RECORDS_IN_MEMORY)
    if log.spilled:
        print(f"  {policy.name}: the log spilled {log.spilled} records to its file; use fewer --minutes")
        return
    cycles, names, start = log.cycles, log.metric_names, log.start_s
    size = max(1, len(cycles) // blocks)
    rates: dict[str, list[float]] = {p: [] for p in paths}
    nbytes = nlines = 0
    makers = {"per-record": per_record_lines, "cycle_lines": new_lines}
    for b in range(0, len(cycles), size):
        block = cycles[b:b + size]
        got = {}
        order = paths if (b // size) % 2 == 0 else paths[::-1]  # alternate which goes first
        for p in order:
            cpu, got[p] = timed(makers[p], block, names, start)
            count = sum(map(len, got[p]))
            rates[p].append(count / max(cpu, 1e-9))
        lines = next(iter(got.values()))
        if len(got) == 2 and got["per-record"] != got["cycle_lines"]:
            raise SystemExit(f"{policy.name}: the two paths' lines differ in cycles {b}-{b + len(block) - 1}")
        nlines += sum(map(len, lines))
        nbytes += sum(len(line) + 1 for cycle in lines for line in cycle)
    per_line = nbytes / max(nlines, 1)
    cycles_a_day = 86_400.0 / policy.params.interval_s
    print(f"  {policy.name}: {len(cycles)} cycles, {nlines:,} records, {per_line:.0f} B a line; "
          f"{per_line * cycles_a_day / 2**20:.2f} MiB per target-day, "
          f"{per_line * cycles_a_day * 1000 / 2**30:.1f} GiB per 1,000 services and day")
    for p in paths:
        print(f"    {p:12s} {statistics.median(rates[p]):>12,.0f} records per CPU-second "
              f"(blocks: {', '.join(f'{r:,.0f}' for r in rates[p])})")
    if len(paths) == 2:
        ratio = statistics.median(rates["cycle_lines"]) / statistics.median(rates["per-record"])
        print(f"    cycle_lines / per-record: x{ratio:.1f} records per CPU-second "
              f"(target >= x{TARGET_RATIO:.0f}: {'met' if ratio >= TARGET_RATIO else 'NOT met'}); the same bytes")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--minutes", type=int, default=20)
    ap.add_argument("--blocks", type=int, default=6)
    ap.add_argument("--policy", action="append",
                    help="policy file (repeatable; default: setpoint-default.yaml and web-forecast.yaml)")
    ap.add_argument("--paths", default="per-record,cycle_lines", help="per-record, cycle_lines or both")
    args = ap.parse_args()
    policies = args.policy or [str(REPO / "policies" / "setpoint-default.yaml"),
                               str(REPO / "policies" / "web-forecast.yaml")]
    print(f"load: {Path('/proc/loadavg').read_text().split()[:3]}")
    for path in policies:
        bench_policy(path, args.services, args.minutes, args.blocks, args.paths.split(","))
    print(f"load: {Path('/proc/loadavg').read_text().split()[:3]}")


if __name__ == "__main__":
    main()
