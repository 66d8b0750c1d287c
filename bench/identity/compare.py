"""Byte-identity check for speed work: ``setpoint simulate`` on a set of scenarios, in two checkouts
(a base commit and a branch), with the compiled kernels on and off; result.json and decisions.jsonl
must be equal byte for byte (the checkout's own path replaced by ``<checkout>`` first, as the
policy file's path names it).

Scenarios: the bundled flash-crowd (with the HPA frontier), diurnal, step, node-loss, crash-loop,
bad-rollout, memory-leak, metrics-outage (without the frontier), and the 16- and 30-service mixes
beside this file (four load shapes, every fault kind). Each checkout runs its own code
(PYTHONPATH=checkout). Run: python bench/identity/compare.py --base /path/to/base/checkout
[--branch .] [--out DIR] [--only flash-crowd,mix-16] [--paths 1,0] [--policy FILE] [--scenario-set PATH=VALUE ...]

``--policy`` runs every scenario under another policy than the bundled default, e.g.
policies/setpoint-healing.yaml for the healing paths (its health checks act on the fault scenarios).
``--scenario-set`` (repeatable) passes the same field change to every run, e.g. the binding a policy's
pod checks need: ``--policy policies/statefulset-healing.yaml --scenario-set
spec.metrics.pod_errors=pod_error_ratio`` (a scenario without that field's parent refuses it: use ``--only``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: (scenario name or file, with the HPA frontier)
SCENARIOS = [("flash-crowd", True)] + [(name, False) for name in (
    "diurnal", "step", "node-loss", "crash-loop", "bad-rollout", "memory-leak", "metrics-outage")] + [
    (str(HERE / "mix-16.yaml"), False), (str(HERE / "mix-30.yaml"), False)]
FILES = ("result.json", "decisions.jsonl")


def run(checkout: Path, scenario: str, frontier: bool, compiled: str, out: Path, policy: str | None = None,
        scenario_sets: tuple[str, ...] = ()) -> None:
    """``simulate`` of ``scenario`` with ``checkout``'s code into ``out`` (under ``policy``, a file, when given;
    each of ``scenario_sets`` a ``--scenario-set PATH=VALUE``)."""
    env = dict(os.environ, PYTHONPATH=str(checkout), SETPOINT_COMPILED=compiled)
    cmd = [sys.executable, "-m", "controller.cli", "simulate", scenario, "-o", str(out), "--no-report",
           "--frontier" if frontier else "--no-frontier"] + (["--policy", policy] if policy else [])
    cmd += [arg for change in scenario_sets for arg in ("--scenario-set", change)]
    done = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{checkout}: {' '.join(cmd)} failed:\n{done.stderr[-2000:]}")


def normalized(path: Path, checkout: Path) -> bytes:
    return path.read_bytes().replace(str(checkout).encode(), b"<checkout>")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, type=Path, help="checkout of the base commit")
    ap.add_argument("--branch", default=HERE.parents[1], type=Path, help="checkout of the branch (default: this one)")
    ap.add_argument("--out", type=Path, default=None, help="folder for the outputs (default: a temporary one)")
    ap.add_argument("--only", default="", help="comma-separated scenario names (default: all)")
    ap.add_argument("--paths", default="1,0", help="SETPOINT_COMPILED values, comma-separated")
    ap.add_argument("--policy", default=None, help="a policy file for every run (default: setpoint simulate's own)")
    ap.add_argument("--scenario-set", action="append", default=[], metavar="PATH=VALUE",
                    help="a scenario field change for every run (repeatable), as setpoint simulate takes it")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="identity-"))
    out.mkdir(parents=True, exist_ok=True)
    only = set(filter(None, args.only.split(",")))
    checkouts = {"base": args.base.resolve(), "branch": args.branch.resolve()}
    # one copy of the policy outside both checkouts: results name its path, which must read the same in both
    policy = str(shutil.copy(args.policy, out / Path(args.policy).name)) if args.policy else None
    failed = 0
    for scenario, frontier in SCENARIOS:
        name = Path(scenario).stem
        if only and name not in only:
            continue
        for compiled in args.paths.split(","):
            dirs = {}
            for label, checkout in checkouts.items():
                dirs[label] = out / f"{name}-{compiled}-{label}"
                run(checkout, scenario, frontier, compiled, dirs[label], policy, tuple(args.scenario_set))
            same = [normalized(dirs["base"] / f, checkouts["base"]) == normalized(dirs["branch"] / f, checkouts["branch"])
                    for f in FILES]
            sizes = ", ".join(f"{f} {(dirs['branch'] / f).stat().st_size} B" for f in FILES)
            verdict = "identical" if all(same) else "DIFFERENT: " + ", ".join(f for f, s in zip(FILES, same) if not s)
            failed += not all(same)
            print(f"{name:>15} SETPOINT_COMPILED={compiled}{' (frontier)' if frontier else ''}: {verdict} ({sizes})",
                  flush=True)
    print(f"outputs in {out}; {'all identical' if not failed else f'{failed} DIFFERENT'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
