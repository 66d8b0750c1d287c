"""The live reconciler decides in place (issue #13: ScalingMemory's workspace, owned by the
runtime shell): its records, actions and scaling state are the pure path's, cycle for cycle,
for several policies (forecast ones included) at irregular times, through missing metrics,
failed writes, cycles that fail before, in or after the decision, and target lists that change
(targets appearing, disappearing, listed in another order); a policy reload rebuilds or keeps
each reconciler's workspace and never mixes state between targets or policies; becoming leader
again starts from the same state on both paths.

The components are real (the simulated cluster and its metrics, the controller service, a real
Prometheus for the warm start); wrappers inject only what they cannot produce on demand: an
unexpected exception from the metrics source or from a write, an observation of the wrong size.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from controller.bundled import bundled_policy
from controller.adapters.prometheus import PrometheusConfig, PrometheusSource
from controller.core.scaling import compiled
from controller.errors import MetricsUnavailable, PermanentError
from controller.model import TargetRef, jsonable
from controller.policy import load_policies, load_policy_text
from controller.ports import ClusterView
from controller.runtime.backtest import ReplayCluster
from controller.runtime.reconciler import Reconciler, RuntimePolicy, cycle_records
from controller.runtime.service import ControllerService, ServiceOptions
from controller.runtime.telemetry import Telemetry
from simulators.cluster import SimCluster
from simulators.ports import SimMetrics, SimTargets
from simulators.runner import policy_bindings
from simulators.scenario import load_scenario_text
from simulators.workload import ServiceConfig
from tests.runtime.test_scaling_memory import assert_same_state, default_with_forecast
from tests.runtime.test_warm_start import STEP_S as WARM_STEP_S
from tests.runtime.test_warm_start import history  # noqa: F401 (fixture: a real Prometheus with a run's history)
from tests.runtime.test_warm_start import policy as warm_policy
from tests.runtime.test_warm_start import targets as warm_targets

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba unavailable: nothing is decided in place")

#: Eight services (five, three at the edge): a flash crowd on a diurnal base, with noise; the
#: edge's metrics fail (an outage, then stale series), then the core's go NaN.
FAULTY_CROWD = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: faulty-crowd, description: "eight services, a flash crowd, metric faults"}
spec:
  duration: 2h
  tick: 5s
  seed: 3
  slo: {latency: {percentile: 95, below: 250ms}, errorRatio: 0.01}
  services:
    - name: svc
      count: 5
      capacityPerPod: 100
      startupDelay: 30s
      initialReplicas: 4
      maxPods: 30
      load:
        - diurnal: {mean: 500, amplitude: 0.6, peakHour: 2}
        - flashCrowd: {at: 15m, peak: 900, rise: 2m, decay: 10m}
        - noise: {sigma: 0.1}
    - name: edge
      count: 3
      capacityPerPod: 100
      startupDelay: 20s
      initialReplicas: 3
      maxPods: 30
      load:
        - diurnal: {mean: 400, amplitude: 0.5, peakHour: 1}
        - noise: {sigma: 0.15}
  faults:
    - {name: outage, kind: metrics-outage, at: 12m, duration: 3m, services: [edge]}
    - {name: stuck, kind: stale-metrics, at: 24m, duration: 2m, services: [edge]}
    - {name: nan, kind: nan-metrics, at: 33m, duration: 2m, services: [svc]}
"""


def web_rps_with(smoothing: str | None = None, forecast: str | None = None):
    """policies/web-rps.yaml (EWMA) with another smoothing line, or a forecast on its metric."""
    text = bundled_policy("web-rps.yaml").read_text()
    anchor = "    smoothing: {ewma: {halfLife: 45s}}\n"
    assert anchor in text
    if smoothing is not None:
        text = text.replace(anchor, f"    smoothing: {smoothing}\n")
    if forecast is not None:
        metric_anchor = "        target: {averagePerReplica: "
        line = next(x for x in text.splitlines(keepends=True) if x.startswith(metric_anchor))
        text = text.replace(line, line + f"        forecast: {forecast}\n")
    return load_policy_text(text)[0]


POLICIES = {
    "default-ramp": lambda: load_policies([bundled_policy("setpoint-default.yaml")])[0],
    "default-with-forecast": default_with_forecast,
    "ewma-with-forecast": lambda: web_rps_with(forecast="{horizon: 45s, seasonality: [10m], minHistory: 20m}"),
    "ewma": lambda: load_policies([bundled_policy("web-rps.yaml")])[0],
    "window-mean": lambda: web_rps_with(smoothing="{window: {length: 1m, aggregate: mean}}"),
    "healing": lambda: load_policies([bundled_policy("setpoint-healing.yaml")])[0],
    "hpa-preset (not compiled: pure on both)": lambda: load_policies([bundled_policy("hpa-cpu.yaml")])[0],
}


class LiveTargets(SimTargets):
    """The simulated cluster as a live one changes under the controller: the listing (which
    services, in which order) is ``listing`` (set per cycle); every fourth write is refused (a
    failed write: not applied); writes in ``explode_at``, and the next one once ``armed``, raise
    an exception no adapter maps (the cycle fails after its decision, some actions maybe out);
    ``short_view`` observes one row
    short (a broken adapter: the decision fails before it touches the state)."""

    def __init__(self, cluster, services):
        super().__init__(cluster, services, with_statuses=True)
        self.listing: list[TargetRef] = []
        self.writes = 0
        self.applied: list[tuple[int, object]] = []  # (write number, action) of the writes that went out
        self.explode_at: set[int] = set()
        self.armed = False
        self.spare = 0  # a write never refused
        self.short_view = False

    def resolve(self, selector) -> list[TargetRef]:
        return self.listing

    def observe(self, targets, with_pods=None) -> ClusterView:
        view = super().observe(targets, with_pods)
        if self.short_view:
            view = ClusterView(view.spec, view.status, view.ready[:-1], view.rollout, view.exists, view.statuses,
                               view.paused)
        return view

    def apply(self, action) -> None:
        self.writes += 1
        if self.writes in self.explode_at or self.armed:
            self.armed = False
            raise RuntimeError("stand-in: an exception no adapter maps")
        if self.writes % 4 == 0 and self.writes != self.spare:
            raise PermanentError("refused")
        super().apply(action)
        self.applied.append((self.writes, action))


class LiveMetrics:
    """The simulated metrics, failing on demand: ``outage`` (MetricsUnavailable: every metric
    unknown, the cycle decides on missing metrics) or ``broken`` (an exception the source does
    not map: the cycle fails before its decision)."""

    def __init__(self, source: SimMetrics):
        self.source, self.outage, self.broken = source, False, False

    def query(self, expr, targets, at, labels=None):
        if self.broken:
            raise ConnectionResetError("stand-in: connection reset")
        if self.outage:
            raise MetricsUnavailable("stand-in: prometheus down")
        return self.source.query(expr, targets, at, labels)

    def __getattr__(self, name):  # query_pods and the other capabilities: the simulated source's
        return getattr(self.source, name)


def listings(names: list[str]) -> dict[str, list[TargetRef]]:
    """The target lists of the run, built once (each list object lives for the whole run)."""
    refs = [TargetRef("default", n) for n in names]
    return {"all": refs, "every-other": refs[::2], "reversed": refs[::-1],
            "rotated-without-two": refs[3:] + refs[:1], "all-again": list(refs)}


def listing_at(k: int) -> str:
    """Targets disappear (100), come back in reverse order (160), rotate with two gone (220),
    then all are listed again (280)."""
    return ("all" if k < 100 else "every-other" if k < 160 else "reversed" if k < 220
            else "rotated-without-two" if k < 280 else "all-again")


#: Cycle -> what goes wrong in it (write-explodes: its second write; armed: the next write, from
#: that cycle on, whichever cycle makes it). Cycle 52 writes at least twice on every policy.
FAULTS = {37: "metrics-outage", 52: "write-explodes", 61: "metrics-broken", 62: "metrics-broken", 95: "short-view",
          140: "short-view", 200: "armed"}


def run_live(policy_name: str, in_place: bool, cycles: int = 330):
    """Per cycle (its records as JSON, actions, failed writes, the exception it raised, the
    scaling state after it) of one Reconciler over its own simulated cluster, the cycles at
    irregular times (5 to 30 s apart, a seeded draw), with FAULTY_CROWD's metric faults and
    FAULTS. The service catches a cycle's exception (ControllerService.run_cycle): so does this."""
    scenario = load_scenario_text(FAULTY_CROWD, "faulty-crowd.yaml")
    rp = RuntimePolicy.of(POLICIES[policy_name]())
    cluster = SimCluster(scenario.cluster, np.random.default_rng(scenario.seed), faults=scenario.faults)
    targets = LiveTargets(cluster, scenario.services)
    sim_metrics = SimMetrics(cluster, policy_bindings(scenario, rp), scenario.metrics_window_s, scenario.tick_s)
    sim_metrics.attach(targets)
    metrics = LiveMetrics(sim_metrics)
    lists = listings(scenario.services)
    rec = Reconciler(rp, metrics, targets)
    rec.in_place = in_place
    offered, times = scenario.offered(), scenario.times()
    gaps = np.random.default_rng(7).integers(1, 7, cycles)  # ticks between cycles: 5 s to 30 s
    due = np.cumsum(gaps)
    out, k = [], 0
    for tick in range(int(due[-1]) + 1):
        cluster.step(times[tick], scenario.tick_s, offered[tick])
        sim_metrics.push(cluster.signals())
        if tick != due[k]:
            continue
        fault = FAULTS.get(k)
        targets.listing = lists[listing_at(k)]
        metrics.outage, metrics.broken = fault == "metrics-outage", fault == "metrics-broken"
        targets.short_view = fault == "short-view"
        if fault == "write-explodes":
            targets.spare, targets.explode_at = targets.writes + 1, {targets.writes + 2}  # after one went out
        elif fault == "armed":
            targets.armed = True
        now = float(times[tick]) + 0.25 * (k % 3)  # off the tick grid too
        try:
            result = rec.cycle(now)
            records = cycle_records(result, rp.params.metric_names)
            row = ([json.dumps(jsonable(r.to_dict()), sort_keys=True) for r in records],
                   [(a.target.name, a.kind.word, a.replicas) for a in result.actions], result.failed, None)
        except Exception as exc:  # noqa: BLE001 (the service's catch-all: a failed cycle)
            row = (None, None, None, type(exc).__name__)
        out.append((*row, rec._scaling.snapshot(), rec._scaling.keeper, now, targets.writes))
        k += 1
        if k == cycles:
            break
    return out, rec


@pytest.fixture(scope="module")
def live_runs():
    """``run_live(policy_name, in_place)`` of the whole script, each made once for the module's
    tests (which only read it): the equivalence test, the commit test and the fault tests below
    look at the same runs (a shorter run is the start of the whole one, cycle for cycle)."""
    return functools.cache(lambda policy_name, in_place: run_live(policy_name, in_place))


@pytest.mark.parametrize("policy_name", list(POLICIES))
def test_the_live_reconciler_in_place_is_the_pure_path_cycle_for_cycle(policy_name, live_runs):
    pure, _ = live_runs(policy_name, False)
    fast, rec = live_runs(policy_name, True)
    assert len(fast) == len(pure)
    errors = {k: row[3] for k, row in enumerate(pure) if row[3] is not None}
    # the faults happened as planned: the metric source's and the bad view's before or in the
    # decision, the unmapped write's after it; a metrics outage is a cycle that decides
    sprung = min(k for k, e in errors.items() if k >= 200)
    if compiled.supports(rec.policy.params):
        assert errors == {52: "RuntimeError", 61: "ConnectionResetError", 62: "ConnectionResetError", 95: "ValueError",
                          140: "ValueError", sprung: "RuntimeError"}, errors
    else:  # the hpa preset reads its metric per pod (not through query): the short view is refused all the same
        assert errors == {52: "RuntimeError", 95: "ValueError", 140: "ValueError", sprung: "RuntimeError"}, errors
    assert any(row[1] for row in pure) and any(row[2] for row in pure)  # scaled, and some writes failed
    if rec.policy.params.forecast_metrics:  # forecasts that counted
        assert any('"trusted": true' in r for records, *_ in pure if records for r in records)
    for k, (a, b) in enumerate(zip(pure, fast)):
        assert a[:4] == b[:4], f"cycle {k} ({listing_at(k)}, {FAULTS.get(k, 'no fault')})"
        assert_same_state(a[4], b[4])
    covered = compiled.supports(rec.policy.params)
    assert all(row[5] is None for row in pure)  # the pure path never keeps a workspace
    # in place, a workspace holds the state from the first cycle on (a compiled policy), through
    # the failed cycles; it is rebuilt for each new target list, never reused across lists
    assert all((row[5] is not None) == covered for row in fast)
    spaces: dict[str, set[int]] = {}
    for k, row in enumerate(fast):
        spaces.setdefault(listing_at(k), set()).add(id(row[5]))
    assert all(len(ids) == 1 for ids in spaces.values()), "one workspace per target list"
    if covered:
        assert len({i for ids in spaces.values() for i in ids}) == 5


def test_a_failed_cycle_before_the_decision_leaves_the_workspace_untouched(live_runs):
    """A metrics source failing (not an outage: an exception it does not map) and a view of the
    wrong size fail the cycle before the state is touched: the workspace is the same object with
    the same arrays, and the next cycle decides from it (the equivalence test: as the pure path)."""
    fast, _ = live_runs("default-with-forecast", True)
    for k in (61, 62, 95):
        assert fast[k][3] is not None and fast[k][5] is fast[k - 1][5], k
        assert_same_state(fast[k - 1][4], fast[k][4])


def test_a_cycle_failing_after_its_decision_keeps_the_scale_events_of_the_writes_that_went_out(live_runs):
    """The write exception no adapter maps comes after the cycle's first write went out: its
    scale event is in the state (the rate limits count it), on both paths alike (the
    equivalence test); the cycle's recommendations are remembered as a decided cycle's."""
    fast, rec = live_runs("default-ramp", True)
    (_, before), (failed, after) = [(row[4], row[7]) for row in fast[51:53]]
    assert fast[52][3] == "RuntimeError"
    now = fast[52][6]
    went_out = [a for w, a in rec.cluster.applied if before < w <= after]
    assert len(went_out) == 1, "the failing cycle's first write went out, its second raised"
    row = listings(load_scenario_text(FAULTY_CROWD).services)[listing_at(52)].index(went_out[0].target)
    events = failed.norm.up_times[row].tolist() + failed.norm.down_times[row].tolist()
    assert now in events and now not in fast[51][4].norm.up_times.tolist() + fast[51][4].norm.down_times.tolist()
    assert now in failed.norm.rec_times.ravel().tolist()
    assert fast[53][3] is None


# ---------------------------------------------------------------------------------------- the service
POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {{name: {name}}}
spec:
  targets: {{kind: Deployment, namespace: default, names: [{names}]}}
  interval: 15s
  replicas: {{min: 2, max: 40}}
  scaling:
    metrics:
      - name: rps
        query: {query}
        target: {{averagePerReplica: {target}}}
{forecast}    behavior:
      scaleUp: {{policies: [{{type: Percent, value: 100, period: 15s}}]}}
      scaleDown: {{stabilizationWindow: 1m, policies: [{{type: Percent, value: 20, period: 30s}}]}}
"""
FORECAST = "        forecast: {horizon: 45s, seasonality: [10m], minHistory: 10m}\n"
NAMES = ["web", "api", "cart", "search", "shop"]
T0 = 1_700_000_000.0


def write(folder, name: str, names: str, target: int = 100, forecast: str = FORECAST, query: str = "rps_query"):
    (folder / f"{name}.yaml").write_text(POLICY.format(name=name, names=names, target=target, forecast=forecast,
                                                       query=query))


def remove(folder, name: str):
    (folder / f"{name}.yaml").unlink()


#: Reload scripts: {cycle: file change, or "standby" / "leader"}, and per change the policies
#: whose reconciler (and workspace) the reload (or the hand-over) keeps.
RELOADS = {
    "unchanged-policies-keep-their-workspaces": ({20: lambda d: write(d, "extra", "batch", forecast="")},
                                                 {20: {"front", "back"}}),
    "changed-target-value-starts-fresh": ({20: lambda d: write(d, "front", "web, api", target=80)}, {20: {"back"}}),
    "targets-added-reordered-and-dropped": ({15: lambda d: write(d, "front", "shop, web, api"),
                                             30: lambda d: write(d, "front", "api")}, {15: {"back"}, 30: {"back"}}),
    "forecast-removed-then-added": ({15: lambda d: write(d, "front", "web, api", forecast=""),
                                     30: lambda d: write(d, "front", "web, api")}, {15: {"back"}, 30: {"back"}}),
    "policy-removed-then-added": ({15: lambda d: remove(d, "front"), 25: lambda d: write(d, "front", "web, api")},
                                  {15: {"back"}, 25: {"back"}}),
    "targets-swap-between-policies": ({20: lambda d: (write(d, "front", "cart, search"),
                                                      write(d, "back", "web, api", target=60, query="rps_query_b"))},
                                      {20: set()}),
    # no cycle while standby; becoming leader (restore(): no warm start without a Prometheus)
    # continues from the state in memory, as the pure path does
    "standby-then-leader-again": ({15: "standby", 22: "leader"}, {22: {"front", "back"}}),
}


class PureService(ControllerService):
    """The same service with reconcilers that call the pure ``decide`` each cycle."""

    def _reconciler(self, policy, cause="start"):
        rec = super()._reconciler(policy, cause)
        rec.in_place = False
        return rec


def run_service(tmp_path, cls, script: dict, cycles: int = 60):
    """Per cycle {policy: [records as JSON]} and {policy: scaling state} of a service over its own
    simulated cluster (five workloads, loads that change), with ``script``'s changes applied
    (a reload at once) before the cycle they are keyed by."""
    folder = tmp_path / cls.__name__
    folder.mkdir()
    write(folder, "front", "web, api")
    write(folder, "back", "cart, search", target=60, query="rps_query_b")
    cluster = SimCluster([ServiceConfig(n, capacity_rps=100, initial_replicas=3, max_pods=40) for n in NAMES], rng=1)
    metrics = SimMetrics(cluster, {"rps_query": "offered_rps", "rps_query_b": "offered_rps"}, window_s=60, tick_s=5)
    targets = SimTargets(cluster, NAMES, match_selectors=True)
    metrics.attach(targets)
    now, leader = [T0], [True]
    service = cls([folder], metrics, targets, Telemetry(), ServiceOptions(reload_every_s=3600, reload_settle_s=0), clock=lambda: now[0],
                  is_leader=lambda: leader[0])
    rng = np.random.default_rng(11)
    out = []
    for k in range(cycles):
        change = script.get(k)
        if change in ("standby", "leader"):
            leader[0] = change == "leader"
        elif change is not None:
            change(folder)
            service._fingerprint = ()  # the file's mtime may not have moved within the test's second
            assert service.reload_if_changed() is True
        for _ in range(int(rng.integers(2, 6))):  # 10 to 25 s of load between cycles
            minute = (now[0] - T0) / 60
            load = np.array([900 + 600 * np.sin(minute), 400 + 50 * k, 700 - 10 * k, 300 + 200 * (k % 7 == 0),
                             500 + 300 * np.cos(minute)])
            cluster.step(now[0], 5.0, load)
            metrics.push(cluster.signals())
            now[0] += 5.0
        results = service.run_all_once()
        out.append(({r.policy: [json.dumps(jsonable(x.to_dict()), sort_keys=True)
                                 for x in cycle_records(r, r.metric_names)] for r in results},
                    {n: rec._scaling.snapshot() for n, rec in service.reconcilers.items()},
                    {n: rec._scaling.keeper for n, rec in service.reconcilers.items()},
                    dict(service.reconcilers)))
    service.stop()
    return out


@pytest.mark.parametrize("script", list(RELOADS))
def test_a_reloaded_service_in_place_is_the_pure_one_cycle_for_cycle(tmp_path, script):
    changes, kept = RELOADS[script]
    pure = run_service(tmp_path, PureService, changes)
    fast = run_service(tmp_path, ControllerService, changes)
    assert any('"trusted": true' in r for records, *_ in pure for rs in records.values() for r in rs)
    for k, ((records_a, states_a, spaces_a, _), (records_b, states_b, spaces_b, recs_b)) in enumerate(zip(pure, fast)):
        assert records_a == records_b, f"cycle {k}"
        assert states_a.keys() == states_b.keys()
        for name in states_a:
            assert_same_state(states_a[name], states_b[name])
        assert all(w is None for w in spaces_a.values())
        for name in records_b:  # the policies that cycled: a workspace each, for its targets and only them
            ws = spaces_b[name]
            assert ws is not None and ws.size == len(recs_b[name]._targets), (k, name)
            assert ws.params is recs_b[name].policy.params, (k, name)
    assert len({id(w) for _, _, spaces, _ in fast for w in spaces.values() if w is not None}) == \
        len({(id(r), tuple(r._targets)) for *_, recs in fast for r in recs.values()}), "one workspace per reconciler"
    for k, names in kept.items():  # a reload keeps the unchanged policies' reconcilers and workspaces only
        (_, _, spaces_0, recs_0), (_, _, spaces_1, recs_1) = fast[k - 1], fast[k]
        assert {n for n in recs_1 if recs_1[n] is recs_0.get(n)} == names
        assert {n for n in spaces_1 if spaces_1[n] is spaces_0.get(n)} == names


# ---------------------------------------------------------------------------------------- hand-over
@pytest.mark.parametrize("restore_at", [pytest.param(4, id="leader-again-after-4-cycles"),
                                        pytest.param(9, id="leader-again-after-9-cycles")])
def test_becoming_leader_warm_starts_the_same_state_on_both_paths(history, restore_at):  # noqa: F811 (fixture)
    """Restarted mid-run with a warm start from a real Prometheus, then restore() (becoming
    leader again): both paths rebuild the state from the history at the next cycle and decide
    the same; in place, the workspace is rebuilt then (from the warm state) and kept otherwise."""
    server, t, a, _ = history
    r = int(21 * 60 / WARM_STEP_S)
    runs = {}
    for in_place in (False, True):
        with PrometheusSource(PrometheusConfig.from_url(server.url, timeout_s=10)) as source:
            cluster = ReplayCluster(warm_targets("shop"), a[r - 1].copy())
            rec = Reconciler(warm_policy("shop"), source, cluster, warm_from=source)
            rec.in_place = in_place
            out = []
            for i, x in enumerate(t[r:r + 12]):
                if i == restore_at:
                    rec.restore()
                result = rec.cycle(float(x))
                out.append(([json.dumps(jsonable(d.to_dict()), sort_keys=True) for d in
                             cycle_records(result, result.metric_names)], rec._scaling.snapshot(),
                            rec._scaling.keeper, cluster.spec.copy()))
        runs[in_place] = out
    for k, (a_, b_) in enumerate(zip(runs[False], runs[True])):
        assert a_[0] == b_[0], f"cycle {k}"
        assert_same_state(a_[1], b_[1])
        assert np.array_equal(a_[3], b_[3])
    assert sum('"warm": true' in records[0] for records, *_ in runs[True]) == 2
    spaces = [w for _, _, w, _ in runs[True]]
    assert all(w is not None for w in spaces) and all(w is None for _, _, w, _ in runs[False])
    assert [i for i in range(1, len(spaces)) if spaces[i] is not spaces[i - 1]] == [restore_at]


@pytest.mark.parametrize("in_place", [pytest.param(True, id="in-place"), pytest.param(False, id="pure")])
@pytest.mark.parametrize("policy_name", ["default-ramp", "ewma", "healing", "hpa-preset (not compiled: pure on both)"])
def test_committing_every_change_is_committing_each_action(policy_name, in_place, monkeypatch, live_runs):
    """A cycle whose scale actions are all the decision's own, each applied, commits them as
    every change to desired (Reconciler._proposed_all: no per-action lookups, the workspace's
    deferred commit): the same records and scaling state, cycle for cycle, as committing each
    applied action's row and count, through refused writes, failed cycles and changing lists."""
    taken: list[bool] = []
    fast, rec = live_runs(policy_name, in_place)  # made before the patch below (or by another test)
    proposed_all = Reconciler._proposed_all
    monkeypatch.setattr(Reconciler, "_proposed_all", lambda self, d, a: taken.append(proposed_all(self, d, a)) and False)
    each, _ = run_live(policy_name, in_place=in_place)
    if rec.policy.health is None:  # the fast path would have run, and some cycles could not take it
        assert True in taken and False in taken
    else:  # arbitration's actions are not the decision's own: each is committed
        assert taken and True not in taken
    for k, (a, b) in enumerate(zip(each, fast, strict=True)):
        assert a[:4] == b[:4], f"cycle {k} ({listing_at(k)}, {FAULTS.get(k, 'no fault')})"
        assert_same_state(a[4], b[4])
