"""Warm start (issue #10 item 5): a controller restarted in the middle of a run rebuilds its
smoothing, stabilization and rate-limit history from a real Prometheus and then decides as one
that never stopped; without history it starts cold and never scales down earlier.

The run: two workloads whose load steps up (the scale-up rate limit binds for minutes) and down
(the stabilization window, then the scale-down rate limit hold the replicas). Controller A runs
the whole 40 minutes; the replicas it ran are written to Prometheus as kube-state-metrics would
(``kube_deployment_spec_replicas``, sampled before each tick's decision), beside the load
(``app_rps``), at fixed times, with promtool. Controller B starts at a restart time with A's
replicas at that time and a fresh Reconciler warm-started from that Prometheus; both query the
same Prometheus (instant queries at the tick times) through the real PrometheusSource.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from controller.adapters.prometheus import PrometheusConfig, PrometheusSource
from controller.model import TargetRef
from controller.policy import load_policy_text
from controller.runtime.backtest import ReplayCluster, time_grid
from controller.runtime.reconciler import Reconciler, RuntimePolicy, cycle_records
from controller.runtime.warm_start import forward_filled, warm_window_s
from tests.runtime.backtest_data import START
from tests.support.prometheus_server import free_port, prometheus_server

STEP_S = 15.0
MINUTES = 40
NAMES = ["api", "web"]

POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {{name: warm}}
spec:
  targets: {{namespace: {namespace}, names: [api, web]}}
  interval: 15s
  replicas: {{min: 2, max: 30}}
  scaling:
    metrics:
      - {{name: rps, query: 'app_rps{{namespace="{namespace}"}}', target: {{averagePerReplica: 100}}}}
    smoothing: {{ewma: {{halfLife: 30s}}}}
    tolerance: 0.05
    behavior:
      scaleUp: {{stabilizationWindow: 0s, policies: [{{type: Pods, value: 2, period: 1m}}]}}
      scaleDown: {{stabilizationWindow: 3m, policies: [{{type: Percent, value: 20, period: 1m}}]}}
"""


def load(t: np.ndarray) -> np.ndarray:
    """(T, 2) rps: api 500 -> 200 at 15 min -> 800 at 25 min; web 300 -> 1500 at 10 min -> 400 at 20 min."""
    minute = (t - START) / 60.0
    api = np.where(minute < 15, 500.0, np.where(minute < 25, 200.0, 800.0))
    web = np.where(minute < 10, 300.0, np.where(minute < 20, 1500.0, 400.0))
    return np.round(np.column_stack([api, web]) + 7.0 * np.sin(minute[:, None] * 3.1), 3)


#: namespace "handover": what another writer ran (a previous leader, the HPA a policy takes over
#: from), not what this policy decides: low load all along, web held at 15 then scaled to 12 at
#: minute 20 (20 %, the policy's whole scale-down budget for a minute), api at 2.
HANDOVER_DROP_MIN = 20.0


def handover_load(t: np.ndarray) -> np.ndarray:
    return np.full((t.size, 2), 150.0)


def handover_replicas(t: np.ndarray) -> np.ndarray:
    minute = (t - START) / 60.0
    return np.column_stack([np.full(t.size, 2.0), np.where(minute < HANDOVER_DROP_MIN, 15.0, 12.0)])


def targets(namespace: str) -> list[TargetRef]:
    return [TargetRef(namespace, n) for n in NAMES]


def policy(namespace: str) -> RuntimePolicy:
    (loaded,) = load_policy_text(POLICY.format(namespace=namespace))
    return RuntimePolicy.of(loaded)


def run(reconciler: Reconciler, cluster: ReplayCluster, ticks: np.ndarray) -> tuple[np.ndarray, list]:
    """(K, N) spec replicas after each tick's decision, and the first cycle's result."""
    out, first = [], None
    for t in ticks:
        result = reconciler.cycle(float(t))
        first = first or result
        out.append(cluster.spec.copy())
    return np.array(out), first


def openmetrics(family: str, t: np.ndarray, columns: dict[str, np.ndarray]) -> str:
    """OpenMetrics text of one gauge family: {namespace: (T, N) values} at times t."""
    lines, stamps = [f"# TYPE {family} gauge"], [f"{x:.0f}" for x in t]
    for ns, values in columns.items():
        for j, name in enumerate(NAMES):
            lines += [f'{family}{{namespace="{ns}",deployment="{name}"}} {v!r} {s}'
                      for v, s in zip(values[:, j].tolist(), stamps)]
    return "\n".join(lines) + "\n# EOF\n"


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """A real Prometheus holding the load and the replicas the uninterrupted controller A ran,
    and A's replicas after each tick (K, N)."""
    t = time_grid(START, START + MINUTES * 60 - STEP_S, STEP_S)
    rps = load(t)
    start = np.array([5.0, 3.0])
    with prometheus_server([], workdir=tmp_path_factory.mktemp("prom-warm"), retention="3650d",
                           history=openmetrics("app_rps", t, {"shop": rps, "bare": rps,
                                                              "handover": handover_load(t)})) as server:
        with PrometheusSource(PrometheusConfig.from_url(server.url, timeout_s=10)) as source:
            cluster = ReplayCluster(targets("shop"), start)
            a, _ = run(Reconciler(policy("shop"), source, cluster), cluster, t)
        # what A ran, as kube-state-metrics would have seen it before each tick's decision (in
        # namespace shop only: "bare" has no kube-state-metrics), in a second block
        pre = np.vstack([start, a[:-1]])
        server.stop()
        server.load_openmetrics(openmetrics("kube_deployment_spec_replicas", t,
                                            {"shop": pre, "handover": handover_replicas(t)}))
        server.start()
        yield server, t, a, pre


def restarted(server, namespace: str, t: np.ndarray, a: np.ndarray, at_min: float, warm_url: str | None):
    """Controller B from ``at_min`` minutes on: (tick index of the restart, its replicas (K, N),
    its first cycle's result)."""
    r = int(at_min * 60 / STEP_S)
    with PrometheusSource(PrometheusConfig.from_url(server.url, timeout_s=10)) as source, \
            PrometheusSource(PrometheusConfig.from_url(warm_url or server.url, timeout_s=2, retries=0)) as warm_source:
        cluster = ReplayCluster(targets(namespace), a[r - 1].copy())
        reconciler = Reconciler(policy(namespace), source, cluster, warm_from=warm_source)
        b, first = run(reconciler, cluster, t[r:])
    return r, b, first


@pytest.mark.parametrize("at_min, what", [
    pytest.param(12.5, "web's scale-up is rate limited (2 pods a minute)", id="mid-rate-limited-scale-up"),
    pytest.param(21.0, "web's load dropped a minute ago: inside the 3 m stabilization window", id="mid-stabilization"),
    pytest.param(24.5, "web scales down 20 % a minute; api's load dropped 9.5 min ago", id="mid-rate-limited-scale-down"),
    pytest.param(26.0, "api scales up again right after its drop", id="after-reversal"),
])
def test_restarted_controller_decides_as_the_uninterrupted_one(history, at_min, what):
    server, t, a, _ = history
    r, b, first = restarted(server, "shop", t, a, at_min, None)
    assert np.abs(b - a[r:]).max() <= 1, f"{what}: restarted {b[:12, :].T} vs uninterrupted {a[r:r + 12].T}"
    assert np.array_equal(b, a[r:]), "with the whole history in Prometheus the decisions are the same"
    info = first.warm_start
    assert info.warm == ["shop/api", "shop/web"] and info.cold == [] and info.error is None
    assert info.ticks == warm_window_s(policy("shop").params) // STEP_S
    records = [r.to_dict() for r in cycle_records(first, first.metric_names)]
    assert records[0]["warm_start"]["warm"] and records[0]["warm_start"]["source"].startswith("prometheus http://127")


@pytest.mark.parametrize("at_min", [pytest.param(12.5, id="mid-rate-limit"), pytest.param(21.0, id="mid-window")])
def test_cold_start_differs_where_the_history_matters(history, at_min):
    """Without warm start (HPA after a restart) the decisions differ from the uninterrupted run:
    the rate limit forgets the pods added in the last minute, the stabilization window forgets the
    high recommendations, and seeds it with the current replicas instead."""
    server, t, a, _ = history
    r = int(at_min * 60 / STEP_S)
    with PrometheusSource(PrometheusConfig.from_url(server.url, timeout_s=10)) as source:
        cluster = ReplayCluster(targets("shop"), a[r - 1].copy())
        cold, _ = run(Reconciler(policy("shop"), source, cluster), cluster, t[r:])
    assert not np.array_equal(cold, a[r:])
    if at_min == 12.5:  # the cold one adds 2 pods at once although 2 were added less than a minute ago
        assert (cold[:4, 1] > a[r:r + 4, 1]).any()


@pytest.mark.parametrize("namespace, warm_url, why", [
    pytest.param("bare", None, "replicas that ran unknown", id="no-kube-state-metrics"),
    pytest.param("shop", "unreachable", "history unavailable", id="prometheus-unreachable"),
])
def test_without_history_it_starts_cold_and_never_scales_down_earlier(history, namespace, warm_url, why):
    """Restarted one minute after web's load dropped: the uninterrupted controller still holds
    (the window has 2 minutes to go); a cold start holds for a whole window from the restart:
    never below the uninterrupted one while that one still holds, and the records say why."""
    server, t, a, _ = history
    url = f"http://127.0.0.1:{free_port()}" if warm_url else None
    r, b, first = restarted(server, namespace, t, a, 21.0, url)
    window = int(180 / STEP_S)
    assert (b[:window] >= a[r:r + window]).all(), "a cold start scaled down earlier than the running controller"
    assert (b[:window, 1] == a[r - 1, 1]).all(), "web holds for one whole window after the restart"
    info = first.warm_start
    assert info.warm == [] and info.cold == [f"{namespace}/api", f"{namespace}/web"]
    record = cycle_records(first, first.metric_names)[1].to_dict()["warm_start"]
    assert record["warm"] is False and why in record["why"]


@pytest.mark.parametrize("kind, series", [
    pytest.param("Deployment", "no kube_deployment_spec_replicas", id="deployment"),
    # a StatefulSet's were blamed on kube_deployment_spec_replicas, a series it never has
    pytest.param("StatefulSet", "no kube_statefulset_replicas", id="statefulset"),
])
def test_a_target_without_kube_state_metrics_is_said_with_its_kinds_series(history, kind, series):
    from controller.runtime.warm_start import warm_start

    server, t, _, _ = history
    with PrometheusSource(PrometheusConfig.from_url(server.url, timeout_s=10)) as source:
        _, info = warm_start(policy("bare"), source, [TargetRef("bare", "api", kind)], float(t[int(21 * 60 / STEP_S)]))
    assert info.cold == ["bare/api"] and series in info.for_target("bare/api")["why"], info.for_target("bare/api")


def test_a_history_younger_than_the_window_is_said_as_such(history):
    """Restarted 2 minutes after the history begins, with kube-state-metrics there: the records
    blamed a missing kube-state-metrics ("no kube-state-metrics?"), now the history's age."""
    server, t, a, _ = history
    assert warm_window_s(policy("shop").params) > 120.0
    _, _, first = restarted(server, "shop", t, a, 2.0, None)
    info = first.warm_start
    assert info.warm == [] and info.cold == ["shop/api", "shop/web"]
    why = cycle_records(first, first.metric_names)[1].to_dict()["warm_start"]["why"]
    assert why.startswith("replicas that ran known only from ") and "younger than the window" in why, why
    assert "kube-state-metrics" not in why


class DarkCluster(ReplayCluster):
    """A ReplayCluster whose targets have no Ready pod (a dependency every readiness probe checks
    is down when the controller restarts)."""

    def observe(self, targets, with_pods=None):
        return dataclasses.replace(super().observe(targets, with_pods), ready=np.zeros(len(targets)))


@pytest.mark.parametrize("namespace, held", [
    pytest.param("shop", True, id="warm-the-replay-saw-ready-pods-so-the-scale-up-is-held"),
    pytest.param("bare", False, id="cold-never-seen-ready-so-it-scales-up-as-before"),
])
def test_restarted_during_an_outage_holds_a_scale_up_only_when_warm(history, namespace, held):
    """Restarted at 12.5 min, while web's load rises (the uninterrupted controller adds pods), with
    no pod Ready. The warm start replays the last minutes with every replica Ready (it has no
    readiness history), so the rebuilt state knows the targets had Ready pods: the TargetNotReady
    hold applies from the first live cycle. Without kube-state-metrics ("bare") the targets are
    cold, never seen Ready, and scale up as before."""
    server, t, a, _ = history
    r = int(12.5 * 60 / STEP_S)
    with PrometheusSource(PrometheusConfig.from_url(server.url, timeout_s=10)) as source:
        cluster = DarkCluster(targets(namespace), a[r - 1].copy())
        reconciler = Reconciler(policy(namespace), source, cluster, warm_from=source)
        b, first = run(reconciler, cluster, t[r:r + 8])
    assert (first.warm_start.warm != []) == held
    reasons = [rec.to_dict()["reason"] for rec in cycle_records(first, first.metric_names)]
    if held:
        assert (b == a[r - 1]).all() and reasons[1] == "TargetNotReady"  # web's rise; api within tolerance
    else:
        assert b[-1, 1] > a[r - 1, 1] and "TargetNotReady" not in reasons[1:]


def test_forward_filled_keeps_leading_gaps():
    a = np.array([[np.nan, 1.0], [2.0, np.nan], [np.nan, np.nan], [3.0, 4.0]])
    assert np.array_equal(forward_filled(a), [[np.nan, 1], [2, 1], [2, 1], [3, 4]], equal_nan=True)


def test_becoming_leader_warm_starts_again_and_status_and_explain_say_so(history):
    """restore() (the service calls it when this replica becomes leader) rebuilds the state
    again at the next cycle; `setpoint status` and `setpoint explain` show where it came from."""
    from controller.cli.records import _format_record, _warm_start_line
    from controller.model import jsonable
    from controller.runtime.status import book_from_records

    server, t, a, _ = history
    r = int(21 * 60 / STEP_S)
    with PrometheusSource(PrometheusConfig.from_url(server.url, timeout_s=10)) as source:
        cluster = ReplayCluster(targets("shop"), a[r - 1].copy())
        reconciler = Reconciler(policy("shop"), source, cluster, warm_from=source)
        results = [reconciler.cycle(float(x)) for x in t[r:r + 3]]
        reconciler.restore()
        results.append(reconciler.cycle(float(t[r + 3])))
    assert [x.warm_start is not None for x in results] == [True, False, False, True]
    assert np.array_equal(cluster.spec, a[r + 3])
    records = [jsonable(rec.to_dict()) for x in results for rec in cycle_records(x, x.metric_names)]
    assert "warm-started from prometheus http://127.0.0.1" in _format_record(records[0])
    assert "warm" not in _format_record(records[2])
    line = _warm_start_line(book_from_records(records).view()["warm"]["targets"], float(t[r + 3]))
    assert "warm from prometheus http://127.0.0.1" in line and "435s" in line and "cold" not in line


def test_the_service_warm_starts_from_its_prometheus_only_when_asked(history, tmp_path):
    from controller.runtime.service import ControllerService, ServiceOptions
    from controller.runtime.telemetry import Telemetry

    server, *_ = history
    (tmp_path / "warm.yaml").write_text(POLICY.format(namespace="shop"))
    with PrometheusSource(PrometheusConfig.from_url(server.url, timeout_s=10)) as source:
        cluster = ReplayCluster(targets("shop"), np.array([3.0, 3.0]))
        for asked in (True, False):
            service = ControllerService([tmp_path / "warm.yaml"], source, cluster, Telemetry(),
                                        ServiceOptions(warm_start=asked))
            assert (service.reconcilers["warm"].warm_from is source) is asked


@pytest.mark.parametrize("at_min, held_ticks", [
    # a failover 45 s after the old leader's 16 -> 14 (10 % a minute) scaled to 12 at once in a drill:
    # the replay kept its own decisions (which nothing applied) as the scale events, not the changes
    pytest.param(20.5, 2, id="restart-30s-after-another-writers-scale-down-waits-out-its-period"),
    pytest.param(21.5, 0, id="restart-a-period-after-it-scales-down-at-once"),
])
def test_the_scale_events_rebuilt_are_the_changes_of_the_replicas_that_ran(history, at_min, held_ticks):
    """Another writer scaled web 15 -> 12 at minute 20 (the policy's 20 % for the minute). Restarted
    (warm) after it, the policy may scale down again only once that minute has passed: the change
    counts in its rate limit as if it had made it, from the first tick that saw it (never earlier: the
    replay did not decide it, so when it was made between two ticks is not known)."""
    server, t, _, _ = history
    r = int(at_min * 60 / STEP_S)
    with PrometheusSource(PrometheusConfig.from_url(server.url, timeout_s=10)) as source:
        cluster = ReplayCluster(targets("handover"), np.array([2.0, 12.0]))
        reconciler = Reconciler(policy("handover"), source, cluster, warm_from=source)
        b, first = run(reconciler, cluster, t[r:r + 6])
    assert first.warm_start.warm == ["handover/api", "handover/web"]
    web = b[:, 1].tolist()
    assert web[:held_ticks] == [12.0] * held_ticks, f"scaled down within a minute of the other writer's 20 %: {web}"
    assert web[held_ticks] == 9.0, f"then 20 % a minute (12 -> 9), neither held longer nor more: {web}"
    seen_s = START + HANDOVER_DROP_MIN * 60  # the first tick that sees 12
    assert t[r + held_ticks] >= seen_s + 60, "not before the other writer's change left the 1-minute period"


AT, NOW = 1_796_444_000.0, 1_796_444_120.0
STARTED_COLD = {"at": AT, "source": "prometheus P", "window_s": 185.0, "ticks": 37, "warm": False, "cause": "start",
                "why": "replicas that ran known only from 75s into the 185s window"}
STARTED_WARM = {**STARTED_COLD, "warm": True, "why": None}
JOINED_WARM = {**STARTED_WARM, "at": AT + 110, "joined": True}
JOINED_COLD = {**STARTED_COLD, "at": AT + 110, "joined": True, "why": "no kube-state-metrics for it"}


@pytest.mark.parametrize("starts, says, not_says", [
    pytest.param({"shop/a": STARTED_WARM, "shop/b": STARTED_COLD},
                 ["state: started with the controller ", "(2m ago), warm from prometheus P (37 ticks over 185s); "
                  "cold (scale-down held one window): shop/b: replicas that ran"], ["taken over"],
                 id="a-start-warm-and-cold"),
    # a policy that started cold and took a workload over warm later did not start warm
    pytest.param({"shop/a": STARTED_COLD, "shop/c": JOINED_WARM},
                 ["state: started", "; cold (scale-down held one window): shop/a: replicas",
                  "\nshop/c: taken over warm from prometheus P (37 ticks over 185s), "],
                 [", warm from"], id="a-cold-start-then-a-warm-take-over"),
    pytest.param({"shop/a": STARTED_WARM, "shop/c": JOINED_COLD},
                 [", warm from prometheus P", "\nshop/c: taken over cold (scale-down held one window): no "
                  "kube-state-metrics for it, "], ["cold (scale-down held one window): shop/c"],
                 id="a-warm-start-then-a-cold-take-over"),
    pytest.param({"shop/c": JOINED_WARM}, ["shop/c: taken over warm from prometheus P"], ["state: started"],
                 id="only-a-take-over"),
    # a reload that changed the policy (a target added) rebuilt every target's state: not the controller's start
    pytest.param({"shop/a": {**STARTED_WARM, "cause": "reload"}, "shop/b": {**STARTED_WARM, "cause": "reload"}},
                 ["state: rebuilt at a policy reload ", "(2m ago), warm from prometheus P"], ["started"],
                 id="a-reload-rebuilt-it"),
    pytest.param({"shop/a": {**STARTED_COLD, "cause": "leader"}},
                 ["state: rebuilt when this replica became leader ", "(2m ago); cold"], ["started"],
                 id="a-new-leader-rebuilt-it"),
    # an older controller's record says no cause: neither start nor reload is claimed
    pytest.param({"shop/a": {k: v for k, v in STARTED_WARM.items() if k != "cause"}},
                 ["state: rebuilt ", "(2m ago), warm from"], ["started", "reload", "leader"],
                 id="an-older-record-says-no-cause"),
])
def test_status_tells_a_take_over_from_the_start(starts, says, not_says):
    from controller.cli.records import _warm_start_line

    line = _warm_start_line({k: {"warm_start": w} for k, w in starts.items()}, NOW)
    for text in says:
        assert text in line, line
    for text in not_says:
        assert text not in line, line


def test_a_warm_target_whose_metrics_read_nothing_is_said_so(history):
    """The replicas that ran are known (kube-state-metrics) but the query reads no series of the
    targets (here a metric that is not there; in a walkthrough, a StatefulSet's query grouped by
    the other kind's label): the log said "2 target(s) rebuilt from N ticks" as if the history had
    been replayed."""
    from controller.runtime.warm_start import UNREAD_WHY, warm_start

    server, t, _, _ = history
    (loaded,) = load_policy_text(POLICY.format(namespace="shop").replace("app_rps", "app_rps_not_exported"))
    with PrometheusSource(PrometheusConfig.from_url(server.url, timeout_s=10)) as source:
        _, info = warm_start(RuntimePolicy.of(loaded), source, targets("shop"), float(t[int(21 * 60 / STEP_S)]))
    assert info.warm == ["shop/api", "shop/web"] and info.unread == ["shop/api", "shop/web"]
    assert info.summary().endswith(f"; 2 of them (shop/api, shop/web) {UNREAD_WHY}"), info.summary()
    assert info.for_target("shop/web")["why"] == UNREAD_WHY
    from controller.cli.records import _format_warm_start  # explain's line for the record
    assert _format_warm_start(info.for_target("shop/web")).endswith(f"s): {UNREAD_WHY}")
    with PrometheusSource(PrometheusConfig.from_url(server.url, timeout_s=10)) as source:  # read: nothing said
        _, read = warm_start(policy("shop"), source, targets("shop"), float(t[int(21 * 60 / STEP_S)]))
    assert read.warm == ["shop/api", "shop/web"] and read.unread == [] and "metric sample" not in read.summary()
