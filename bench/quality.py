"""Benchmark decision quality: the default policy against HPA at equal cost, on real traces.

Same service model and SLO for every controller. For each trace scenario in simulators/scenarios
(NASA July and August 1995, World Cup 1998 tournament, NYC taxi, Twitter AAPL, ELB request
count) and for the bundled flash-crowd, diurnal and step scenarios, runs the policy, the `hpa`
preset and the oracle, then HPA's frontier (the preset swept over CPU targets, same scenario and
seed; simulators/frontier.py) and prints per scenario: the policy's SLO-violation minutes, HPA's
interpolated at the policy's replica-hours ("HPA @ equal cost"), their ratio, replica-hours over
the oracle's, and replica changes over HPA's (the preset at its own target). Then each target of
issue #9 with "met" / "NOT met":

- summed over the trace scenarios, the policy's violation minutes <= 1/3 of HPA @ equal cost;
- on no single trace worse than HPA @ equal cost;
- median replica-hours <= 1.25x the oracle's; median replica changes <= 0.5x HPA's (traces);
- flash-crowd, diurnal and step: fewer violation minutes than HPA at no more replica-hours
  (a 0 against 0 tie is not fewer).

Other inputs than the bundled ones (the figures are checked on unseen windows): --start-offset
shifts every trace window later, --peak-scale multiplies the traces' peak rate (above 1 it scales
the services' maxPods and the policies' replicas.max too, policy and HPA alike: a cap the load
outgrows measures the cap, not the controllers), --startup-delay
sets every service's pod start-up delay (all scenarios). The traces are read from
$SETPOINT_TRACES_DIR or ../shared/data/traces.

Run: python bench/quality.py [--policy policies/setpoint-default.yaml] [--jobs 2]
     [--targets 40,50,60,70,80] [--start-offset 1d] [--peak-scale 1.5] [--startup-delay 90s]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import math
import os
import pickle
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's code: `python bench/x.py` puts bench/ first, and the editable install may point at another checkout

REPO = Path(__file__).resolve().parents[1]
TRACES = ["trace-nasa-july", "trace-nasa-august", "trace-wc98-tournament", "trace-nyc-taxi", "trace-twitter-aapl",
          "trace-elb-requests"]
#: Where the policy must have fewer violation minutes than HPA at no more replica-hours.
DEMOS = ["flash-crowd", "diurnal", "step"]


@dataclass(frozen=True)
class Variation:
    """How the bundled scenarios are changed: seconds added to each trace window's start, a
    factor on each trace's peak rate, every service's start-up delay (s; None: as is), and the
    sigma of log-normal noise drawn every tick on each trace (0: none; the traces are 1- to
    30-minute data interpolated linearly, so without it a short-window reading is noiseless).
    ``rps_at_pods``: bind every scenario's ``rps`` metric to what the pods served
    (``served_per_second``, as an app's own ``http_requests_total`` counts) instead of what the load
    balancer was offered (the scenarios' default): a rate that, like CPU, stops at capacity.
    """

    start_offset_s: float = 0.0
    peak_scale: float = 1.0
    startup_delay_s: float | None = None
    noise_sigma: float = 0.0
    rps_at_pods: bool = False

    def describe(self) -> str:
        parts = []
        if self.start_offset_s:
            parts.append(f"trace windows +{self.start_offset_s:g} s")
        if self.peak_scale != 1.0:
            parts.append(f"trace peaks x{self.peak_scale:g}"
                         + (" (maxPods and replicas.max too)" if self.peak_scale > 1.0 else ""))
        if self.startup_delay_s is not None:
            parts.append(f"start-up delay {self.startup_delay_s:g} s")
        if self.noise_sigma:
            parts.append(f"per-tick noise sigma {self.noise_sigma:g}")
        if self.rps_at_pods:
            parts.append("rps read at the pods (served)")
        return ", ".join(parts) or "as bundled"


def varied_text(text: str, v: Variation) -> str:
    """The scenario YAML ``text`` with ``v`` applied (trace start, peakRps, startupDelay, a noise
    term every tick on each service with a trace)."""
    from controller.policy.durations import format_duration, parse_duration

    doc = yaml.safe_load(text)
    for service in doc["spec"]["services"]:
        if v.startup_delay_s is not None:
            service["startupDelay"] = format_duration(v.startup_delay_s)
        for term in service["load"]:
            trace = term.get("trace")
            if trace is None:
                continue
            if v.start_offset_s:
                trace["start"] = format_duration(parse_duration(trace.get("start", "0s")) + v.start_offset_s)
            if v.peak_scale != 1.0:
                if "peakRps" in trace:
                    trace["peakRps"] = trace["peakRps"] * v.peak_scale
                else:
                    trace["multiplier"] = trace.get("multiplier", 1.0) * v.peak_scale
        if v.peak_scale > 1.0 and "maxPods" in service and replays_trace(service):
            service["maxPods"] = math.ceil(service["maxPods"] * v.peak_scale)
        if v.noise_sigma and replays_trace(service):
            service["load"].append({"noise": {"sigma": v.noise_sigma, "every": doc["spec"].get("tick", "5s")}})
    if v.rps_at_pods:
        doc["spec"]["metrics"] = {**(doc["spec"].get("metrics") or {}), "rps": "served_per_second"}
    return yaml.safe_dump(doc, sort_keys=False)


def cap_scale(scenario_text: str, v: Variation) -> float:
    """The factor on the policies' ``replicas.max`` for a scenario varied by ``v``: the peak scale
    when it is above 1 and the scenario replays a trace (the only load it scales), else 1."""
    if v.peak_scale <= 1.0:
        return 1.0
    services = yaml.safe_load(scenario_text)["spec"]["services"]
    return v.peak_scale if any(replays_trace(s) for s in services) else 1.0


def replays_trace(service: dict) -> bool:
    """Whether a scenario service's load (its YAML mapping) replays a trace."""
    return any("trace" in term for term in service["load"])


def varied_policy(policy_file: str | Path, scale: float = 1.0):
    """(the first policy of ``policy_file``, the text it was loaded from) with ``replicas.max``
    multiplied by ``scale`` (rounded up; :func:`cap_scale`).

    With trace peaks scaled up, the caps scale with them, as the scenarios' ``maxPods`` do in
    :func:`varied_text`: a team whose peak doubles raises its cap, and a cap the load outgrows
    makes every controller's violation minutes the cap's (at peaks x2 NYC taxi needs 28 pods;
    the policy and HPA at max 20 both had ~1,400 minutes, which swamped the summed comparison).
    Policy and HPA are scaled alike; a scale of 1 leaves the file as it is."""
    from controller.policy import load_policy_text

    text = Path(policy_file).read_text(encoding="utf-8")
    if scale > 1.0:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
        for doc in docs:
            replicas = (doc.get("spec") or {}).get("replicas") or {}
            if isinstance(replicas.get("max"), int):
                replicas["max"] = math.ceil(replicas["max"] * scale)
        text = yaml.safe_dump_all(docs, sort_keys=False)
    return load_policy_text(text, str(policy_file))[0], text


def score_scenario(args: tuple[str, str, str, tuple[float, ...], Variation, str | None]) -> dict:
    """Scores of policy, hpa and oracle and the policy's equal-cost comparison on one scenario
    (runs in a worker process). An invalid varied scenario gives ``{"error": message}``.
    With a cache directory, the hpa and oracle runs and HPA's frontier points are taken from it
    when the same varied scenario, HPA policy and targets were run before (see ``--hpa-cache``)."""
    name, policy_file, hpa_file, targets, variation, cache_dir = args
    from controller.errors import ScenarioError
    from simulators.hpa_sweep import sweep_frontier
    from simulators.runner import simulate, standard_controllers
    from simulators.scenario import load_scenario_text, resolve_scenario_path

    began = time.monotonic()
    path = resolve_scenario_path(name)
    text = varied_text(path.read_text(encoding="utf-8"), variation)
    try:
        scenario = load_scenario_text(text, str(path), folder=path.parent)
    except ScenarioError as exc:
        return {"error": "; ".join(str(e) for e in exc.errors)}
    scale = cap_scale(path.read_text(encoding="utf-8"), variation)
    (policy, _), (hpa, hpa_text) = varied_policy(policy_file, scale), varied_policy(hpa_file, scale)
    cache = baseline_cache_path(cache_dir, text, hpa_text, targets)
    cached = pickle.loads(cache.read_bytes()) if cache is not None and cache.is_file() else None
    baselines = [] if cached else ["hpa", "oracle"]
    result, _ = simulate(scenario, standard_controllers(policy, baselines, hpa, 20), keep_records=False)
    scores = {c: r.scores for c, r in result.runs.items()} | (cached["scores"] if cached else {})
    frontier = sweep_frontier(scenario, result, hpa, targets, known=cached["points"] if cached else ())
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        baseline = {c: scores[c] for c in ("hpa", "oracle")}
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(pickle.dumps({"scores": baseline, "points": frontier.points}))
        tmp.replace(cache)
    return {"scores": {c: scores[c] for c in ("policy", "hpa", "oracle")},
            "equal": frontier.equal_cost["policy"], "points": frontier.points, "seconds": time.monotonic() - began}


#: score_scenario as defined here (main_with_variant rebinds the name to a variant's wrapper)
plain_score_scenario = score_scenario


def baseline_cache_path(cache_dir: str | None, scenario_text: str, hpa_text: str,
                        targets: tuple[float, ...]) -> Path | None:
    """Where the baseline runs of one varied scenario are cached; None without a cache.

    Keyed on the scenario and HPA policy texts, the targets and the code the runs go through
    (:func:`code_digest`): exploring policy files reuses the runs, and any change to the
    simulator or the controller's code makes new ones (a stale baseline would be silently wrong)."""
    if not cache_dir:
        return None
    parts = [scenario_text, hpa_text, repr(targets), code_digest()]
    key = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]
    return Path(cache_dir) / f"{key}.pickle"


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """A digest of every Python file of controller/ and simulators/ (paths and contents)."""
    h = hashlib.sha256()
    for path in sorted(p for d in ("controller", "simulators") for p in (REPO / d).rglob("*.py")):
        h.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def ratio(a: float, b: float) -> float | None:
    """a / b; None when b is 0 (a tie when a is 0 too: see the verdicts)."""
    return a / b if b else None


def fmt_ratio(r: float | None, a: float = 1.0) -> str:
    return f"{r:.2f}x" if r is not None else ("tie 0/0" if a == 0 else "inf")


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def print_rows(results: dict[str, dict]) -> None:
    head = (f"{'scenario':<22} {'policy min':>10} {'HPA@eq min':>10} {'ratio':>8} {'verdict':>8} {'policy rh':>10} "
            f"{'rh/oracle':>9} {'hpa rh/or':>9} {'changes/hpa':>11} {'hpa min':>8} {'HPA sweep: target rh/min':<0}")
    print(head)
    for name, r in results.items():
        if "error" in r:
            print(f"{name:<22} error: {r['error']}")
            continue
        s, e = r["scores"], r["equal"]
        p, h, o = s["policy"], s["hpa"], s["oracle"]
        hpa_eq = "-" if e.hpa_slo_violation_minutes is None else f"{e.hpa_slo_violation_minutes:g}" + ("*" if e.extrapolated else "")
        sweep = " ".join(f"{pt.target_pct:g}%:{pt.replica_hours:.0f}/{pt.slo_violation_minutes:g}" for pt in r["points"])
        print(f"{name:<22} {p['slo_violation_minutes']:>10g} {hpa_eq:>10} {fmt_ratio(e.ratio, p['slo_violation_minutes']):>8} "
              f"{e.verdict:>8} {p['replica_hours']:>10.1f} {fmt_ratio(ratio(p['replica_hours'], o['replica_hours'])):>9} "
              f"{fmt_ratio(ratio(h['replica_hours'], o['replica_hours'])):>9} "
              f"{fmt_ratio(ratio(p['replica_changes'], h['replica_changes']), p['replica_changes']):>11} "
              f"{h['slo_violation_minutes']:>8g} {sweep}")
    print("* HPA @ equal cost extrapolated flat: the policy's replica-hours lie outside the swept targets")


def target_figures(results: dict[str, dict]) -> dict:
    """Issue #9's figures of one input set's results (the traces and demos among them): summed
    violation minutes of the policy and of HPA @ equal cost, the traces lost, median replica-hours
    / oracle (and HPA's at its own target), median changes / HPA, and per demo its comparison
    (frontier.EqualCost); each target's verdict under ``ok``."""
    traces = {n: r for n, r in results.items() if n in TRACES and "error" not in r}
    out: dict = {"traces": len(traces), "ok": {}, "demos": {}}
    if traces:
        policy_sum = sum(r["scores"]["policy"]["slo_violation_minutes"] for r in traces.values())
        hpa_sum = sum(r["equal"].hpa_slo_violation_minutes or 0.0 for r in traces.values())
        rh = [ratio(r["scores"]["policy"]["replica_hours"], r["scores"]["oracle"]["replica_hours"]) for r in traces.values()]
        med_rh = float(np.median([x for x in rh if x is not None])) if any(x is not None for x in rh) else float("nan")
        hpa_rh = float(np.median([ratio(r["scores"]["hpa"]["replica_hours"], r["scores"]["oracle"]["replica_hours"]) or 0.0
                                  for r in traces.values()]))
        ch = [ratio(r["scores"]["policy"]["replica_changes"], r["scores"]["hpa"]["replica_changes"]) for r in traces.values()]
        med_ch = float(np.median([x if x is not None else float("inf") for x in ch]))
        losses = [n for n, r in traces.items() if r["equal"].verdict == "loss"]
        out |= {"policy_sum": policy_sum, "hpa_sum": hpa_sum, "share": ratio(policy_sum, hpa_sum), "losses": losses,
                "median_rh": med_rh, "hpa_median_rh": hpa_rh, "median_changes": med_ch}
        out["ok"] |= {"third": policy_sum <= hpa_sum / 3 + 1e-9, "none_lost": not losses,
                      "rh": med_rh <= 1.25, "changes": med_ch <= 0.5}
    for name in DEMOS:
        r = results.get(name)
        if r is not None and "error" not in r:
            out["demos"][name] = r["equal"]
            out["ok"][name] = r["equal"].verdict == "win"
    return out


def print_targets(results: dict[str, dict]) -> None:
    f = target_figures(results)
    print(f"\ntargets (issue #9; trace figures over {f['traces']} traces):")
    if f["traces"]:
        ok = f["ok"]
        print(f"  summed violation minutes, policy / HPA @ equal cost: {f['policy_sum']:g} / {f['hpa_sum']:g} = "
              f"{fmt_ratio(f['share'], f['policy_sum'])}   target <= 0.33 -> {verdict(ok['third'])}")
        print(f"  traces worse than HPA @ equal cost: {', '.join(f['losses']) or 'none'}   target none -> "
              f"{verdict(ok['none_lost'])}")
        print(f"  median replica-hours / oracle: {f['median_rh']:.2f}x (hpa at its own target: {f['hpa_median_rh']:.2f}x)"
              f"   target <= 1.25 -> {verdict(ok['rh'])}")
        print(f"  median replica changes / HPA: {f['median_changes']:.2f}x   target <= 0.50 -> {verdict(ok['changes'])}")
    for name, e in f["demos"].items():
        print(f"  {name}: policy {e.slo_violation_minutes:g} min vs HPA at no more replica-hours "
              f"{e.hpa_slo_violation_minutes:g}{' (extrapolated)' if e.extrapolated else ''} min ({e.verdict})   "
              f"target fewer -> {verdict(f['ok'][name])}")


def add_variation_args(ap: argparse.ArgumentParser) -> None:
    """The options that vary every trace scenario (:class:`Variation`), shared by the trace benches."""
    ap.add_argument("--start-offset", default="0s", help="shift every trace window later by this duration (e.g. 1d)")
    ap.add_argument("--peak-scale", type=float, default=1.0, help="multiply every trace's peak rate (above 1 also the services' maxPods and "
                    "the policies' replicas.max, rounded up)")
    ap.add_argument("--startup-delay", default=None, help="every service's pod start-up delay (e.g. 90s)")
    ap.add_argument("--noise", type=float, default=0.0, metavar="SIGMA",
                    help="multiply every trace by log-normal noise drawn every tick (e.g. 0.05)")
    ap.add_argument("--rps-at-pods", action="store_true",
                    help="read the policies' rps at the pods (served_per_second, an app's own request counter) instead "
                         "of at the load balancer (offered): it stops at capacity, as CPU does")


def variation_of(args: argparse.Namespace) -> Variation:
    """The :class:`Variation` of the options :func:`add_variation_args` added; exits naming a bad one."""
    from controller.policy.durations import parse_duration

    if args.peak_scale <= 0:
        sys.exit(f"--peak-scale must be > 0, got {args.peak_scale}")
    if not 0 <= args.noise <= 2:
        sys.exit(f"--noise must be a sigma from 0 to 2, got {args.noise}")
    try:
        return Variation(parse_duration(args.start_offset), args.peak_scale,
                         parse_duration(args.startup_delay) if args.startup_delay else None, args.noise,
                         args.rps_at_pods)
    except ValueError as exc:
        sys.exit(str(exc))


def scenario_names(text: str) -> list[str]:
    """The names of a comma-separated ``--scenarios`` value (blanks dropped)."""
    return [n.strip() for n in text.split(",") if n.strip()]


def main_with_variant(env_name: str, install) -> None:
    """main() with ``--variant NAME`` taken off the command line and put in ``env_name``, each
    scenario scored by :func:`score_with_variant` (``install(NAME)`` once per worker process: a
    variant bench's rule wrapped around the numpy stages, then score_scenario). The compiled
    kernels are off (SETPOINT_COMPILED=0): the variants wrap the numpy stages."""
    global score_scenario
    os.environ["SETPOINT_COMPILED"] = "0"
    argv = sys.argv[1:]
    variant = "none"
    if "--variant" in argv:
        i = argv.index("--variant")
        variant = argv[i + 1]
        del argv[i:i + 2]
    os.environ[env_name] = variant
    sys.argv = [sys.argv[0]] + argv
    print(f"variant: {variant}")
    score_scenario = functools.partial(score_with_variant, install, variant)
    main()


#: The variant installed in this process (score_with_variant), None before the first scenario.
_installed_variant: str | None = None


def score_with_variant(install, variant: str, args):
    """score_scenario(args) with ``install(variant)`` done first, once per process."""
    global _installed_variant
    if _installed_variant is None:
        _installed_variant = variant
        install(variant)
    return plain_score_scenario(args)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", default=str(REPO / "policies" / "setpoint-default.yaml"))
    ap.add_argument("--hpa-policy", default=str(REPO / "policies" / "hpa-cpu.yaml"))
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (scenarios run in parallel)")
    ap.add_argument("--targets", default=None, help="HPA CPU targets of the frontier (percent; default 40,50,60,70,80)")
    ap.add_argument("--scenarios", default=",".join(TRACES + DEMOS), help="comma-separated scenario names")
    add_variation_args(ap)
    ap.add_argument("--hpa-cache", default=None, metavar="DIR",
                    help="reuse the hpa/oracle runs and HPA's frontier from DIR when the same inputs, HPA "
                         "policy and code (controller/, simulators/) were run before (for exploring policies)")
    args = ap.parse_args()
    from simulators.frontier import DEFAULT_TARGETS_PCT, parse_targets
    from simulators.load import traces_dir

    names = scenario_names(args.scenarios)
    if any(n in TRACES for n in names) and not traces_dir().is_dir():  # the demos need none
        sys.exit(f"traces not found in {traces_dir()}: set SETPOINT_TRACES_DIR")
    try:
        targets = tuple(parse_targets(args.targets)) if args.targets else DEFAULT_TARGETS_PCT
    except ValueError as exc:
        sys.exit(str(exc))
    variation = variation_of(args)
    began = time.monotonic()
    with ProcessPoolExecutor(args.jobs) as pool:
        jobs = [(n, args.policy, args.hpa_policy, targets, variation, args.hpa_cache) for n in names]
        results = dict(zip(names, pool.map(score_scenario, jobs)))
    print(f"policy: {args.policy}\nbaseline: {args.hpa_policy} swept over CPU targets {', '.join(f'{t:g}%' for t in targets)}"
          f"\ninputs: {variation.describe()}\n")
    print_rows(results)
    print_targets(results)
    print(f"\n{time.monotonic() - began:.0f} s with {args.jobs} worker(s)")


if __name__ == "__main__":
    main()
