"""The ``hpa`` preset's propose stage (core/scaling/hpa_propose.py): HPA's calculator on what the shell saw.

Rows with pods known only by count are the thin case (one value per workload: every pod stands
for it); rows with per-pod samples show HPA's pod-level rules that one value cannot express.
"""

from __future__ import annotations

import numpy as np
import pytest

from controller.core.scaling import hpa_replicas as hr
from controller.core.scaling.decide import Observation, ScalingState, decide
from controller.core.scaling.hpa_propose import PERCENT_REQUEST_MILLI, PodSamples, hpa_propose
from controller.core.scaling.params import HpaSource, MetricKind, MetricParams, PolicyParams

NOW = 1_000_000.0
Z = hr.ZERO_TIME_AGE_S


def params(kind: MetricKind, target: float, source: HpaSource = HpaSource.DEFAULT) -> PolicyParams:
    return PolicyParams(name="hpa", metrics=(MetricParams("m", kind, target, source=source),), min_replicas=1,
                        max_replicas=100, hpa_semantics=True)


def one(p: PolicyParams, value, current, ready, status, pods: PodSamples | None = None):
    """(replicas, valid) of the single metric of a single target."""
    r = hpa_propose(p, np.array([current], float), np.array([ready], float), np.array([status], float),
                    np.array([[value]], float), np.isfinite(np.array([[value]], float)), pods)
    return int(r.replicas[0, 0]), bool(r.valid[0, 0])


@pytest.mark.parametrize("kind,target,value,current,ready,status,expect", [
    pytest.param(MetricKind.VALUE, 0.2, 0.4, 4, 1, 4, 2, id="external-value-uses-ready-pods"),
    pytest.param(MetricKind.VALUE, 0.2, 0.4, 0, 0, 0, 2, id="external-value-from-zero-is-ceil-ratio"),
    pytest.param(MetricKind.AVERAGE_PER_REPLICA, 100, 1000, 5, 5, 5, 10, id="external-average-total-over-target"),
    pytest.param(MetricKind.AVERAGE_PER_REPLICA, 100, 520, 4, 4, 5, 5, id="external-average-band-keeps-status"),
    pytest.param(MetricKind.UTILIZATION, 50, 100, 4, 4, 4, 8, id="utilization-fast-path"),
    pytest.param(MetricKind.UTILIZATION, 50, 100.9, 4, 4, 4, 8, id="utilization-percent-is-truncated"),
    pytest.param(MetricKind.UTILIZATION, 50, 100, 4, 2, 4, 4, id="pending-pods-count-idle-flip-to-current"),
    pytest.param(MetricKind.UTILIZATION, 50, 200, 4, 2, 4, 8, id="pending-pods-count-idle-scale-up"),
    pytest.param(MetricKind.UTILIZATION, 50, 20, 4, 2, 4, 1, id="scale-down-ignores-pending-pods"),
])
def test_pods_known_by_count_reproduce_the_workload_rules(kind, target, value, current, ready, status, expect):
    assert one(params(kind, target), value, current, ready, status) == (expect, True)


@pytest.mark.parametrize("kind,value,ready", [
    pytest.param(MetricKind.UTILIZATION, 80.0, 0, id="utilization-without-a-ready-pod"),
    pytest.param(MetricKind.UTILIZATION, float("nan"), 3, id="utilization-missing"),
    pytest.param(MetricKind.VALUE, float("nan"), 3, id="external-value-missing"),
    pytest.param(MetricKind.AVERAGE_PER_REPLICA, float("nan"), 3, id="external-average-missing"),
])
def test_no_usable_sample_is_no_proposal(kind, value, ready):
    assert one(params(kind, 50.0), value, 3, ready, 3)[1] is False


def pods(*rows: dict) -> PodSamples:
    """One target's pods: dicts of pct (sample, None = none), ready, start (age s), since (ready age s)."""
    table = hr.PodTable.of(np.zeros(len(rows), np.int64),
                           ready=[hr.Readiness.TRUE if r.get("ready", True) else hr.Readiness.FALSE for r in rows],
                           start_age_s=[r.get("start", Z) for r in rows],
                           ready_transition_age_s=[r.get("since", Z) for r in rows],
                           request_milli=np.full(len(rows), PERCENT_REQUEST_MILLI), metric_age_s=np.zeros(len(rows)),
                           metric_window_s=np.full(len(rows), 60.0))
    usage = np.array([[int((r.get("pct") or 0) * 1000)] for r in rows], np.int64).reshape(-1, 1)
    has = np.array([[r.get("pct") is not None] for r in rows]).reshape(-1, 1)
    return PodSamples(table, usage, has, np.array([True]))


@pytest.mark.parametrize("pod_rows,current,aggregated,expect", [
    pytest.param([dict(pct=90), dict(pct=90), dict(pct=90, start=100, since=20)], 3, 6, 4,
                 id="pod-ready-20s-ago-its-sample-predates-readiness-counts-idle-on-scale-up"),
    pytest.param([dict(pct=20), dict(pct=20), dict(pct=20), dict(pct=None)], 4, 2, 4,
                 id="missing-sample-counts-at-100pct-on-scale-down"),
    pytest.param([dict(pct=90), dict(pct=90), dict(pct=90, start=400, since=200)], 3, 6, 6,
                 id="pod-past-the-cpu-initialization-period-counts"),
    pytest.param([dict(pct=30), dict(pct=150)], 2, 4, 4, id="uneven-pods-average-like-the-workload"),
])
def test_per_pod_samples_follow_hpa_pod_rules(pod_rows, current, aggregated, expect):
    p = params(MetricKind.UTILIZATION, 50.0)
    ready_pods = [r for r in pod_rows if r.get("pct") is not None]
    mean = sum(r["pct"] for r in ready_pods) / len(ready_pods)
    assert one(p, mean, current, current, current) == (aggregated, True)  # what one workload value gives
    assert one(p, np.nan, current, current, current, pods(*pod_rows)) == (expect, True)


def test_batched_equals_row_by_row_with_pods():
    p = params(MetricKind.UTILIZATION, 50.0)
    rows = [[dict(pct=90), dict(pct=90), dict(pct=90, start=100, since=20)], [dict(pct=20), dict(pct=None)],
            [dict(pct=70)]]
    alone = [one(p, np.nan, len(r), len(r), len(r), pods(*r))[0] for r in rows]
    parts = [pods(*r) for r in rows]
    target = np.concatenate([np.full(x.pods.size, i) for i, x in enumerate(parts)])
    table = hr.PodTable(**{k: (target if k == "target" else
                               (() if k == "names" else np.concatenate([getattr(x.pods, k) for x in parts])))
                           for k in parts[0].pods.__dict__})
    batch = PodSamples(table, np.vstack([x.usage_milli for x in parts]), np.vstack([x.has_sample for x in parts]),
                       np.array([True]))
    n = np.array([len(r) for r in rows], float)
    r = hpa_propose(p, n, n, n, np.full((3, 1), np.nan), np.zeros((3, 1), bool), batch)
    assert r.replicas[:, 0].tolist() == alone


def test_decide_routes_the_hpa_preset_through_the_calculator():
    p = params(MetricKind.UTILIZATION, 50.0)
    obs = Observation.of([3.0], [3.0], [[np.nan]], present=[[False]],
                         pods=pods(dict(pct=90), dict(pct=90), dict(pct=90, start=100, since=20)))
    d = decide(p, obs, ScalingState.empty(1, p), NOW)
    assert d.hpa is not None and int(d.hpa.utilization[0, 0]) == 90
    assert d.valid[0, 0] and d.proposals[0, 0] == 4 and d.desired[0] == 4


def utilization_policy(resource_line: str) -> PolicyParams:
    """A ``preset: hpa`` policy's parameters: one utilization metric at 50 % read by (namespace, pod),
    with ``resource_line`` under it ('' for none)."""
    from controller.policy import load_policy_text

    text = ("apiVersion: setpoint/v1\nkind: Policy\nmetadata: {name: web}\nspec:\n  preset: hpa\n"
            "  targets: {namespace: shop, name: web}\n  replicas: {min: 1, max: 100}\n  scaling:\n    metrics:\n"
            "      - name: m\n        query: sum by (namespace, pod) (x)\n        target: {utilization: 50%}\n"
            + (f"        {resource_line}\n" if resource_line else ""))
    (policy,) = load_policy_text(text, "web.yaml")
    return policy.params


STARTING = dict(pct=90, ready=False, start=20, since=20)  # started 20 s ago, not Ready yet
JUST_READY = dict(pct=90, start=100, since=20)  # Ready 20 s ago: its sample's window predates readiness


@pytest.mark.parametrize("resource_line,starting,expect", [
    # cpu: the starting pod's sample is left out and counts idle on a scale-up: (90 + 90 + 0) / 3
    # = 60 % -> ceil(1.2 x 3) = 4; memory: it counts, 90 % -> ceil(1.8 x 3) = 6
    pytest.param("", STARTING, 4, id="unspecified-is-cpu-starting-pod-left-out"),
    pytest.param("resource: cpu", STARTING, 4, id="cpu-starting-pod-left-out"),
    pytest.param("resource: memory", STARTING, 6, id="memory-starting-pod-counts"),
    pytest.param("resource: cpu", JUST_READY, 4, id="cpu-sample-predating-readiness-left-out"),
    pytest.param("resource: memory", JUST_READY, 6, id="memory-sample-predating-readiness-counts"),
])
def test_the_starting_pod_rule_is_cpu_only_as_in_hpa(resource_line, starting, expect):
    """``groupPods`` leaves out a not-yet-Ready pod's sample for cpu only (replica_calculator.go)."""
    p = utilization_policy(resource_line)
    assert p.metrics[0].resource == (resource_line.split(": ")[1] if resource_line else "cpu")
    assert one(p, np.nan, 3, 3, 3, pods(dict(pct=90), dict(pct=90), starting)) == (expect, True)


def test_a_pending_pod_is_left_out_for_memory_too():
    """Pending pods are unready for every resource: counted idle on a scale-up, 60 % -> 4."""
    p = utilization_policy("resource: memory")
    table = pods(dict(pct=90), dict(pct=90), dict(pct=90))
    table = PodSamples(hr.PodTable(**{**table.pods.__dict__,
                                      "phase": np.array([hr.Phase.RUNNING, hr.Phase.RUNNING, hr.Phase.PENDING])}),
                       table.usage_milli, table.has_sample, table.per_pod)
    assert one(p, np.nan, 3, 3, 3, table) == (4, True)


# --- Resource AverageValue: an averagePerReplica metric with its resource, read pod by pod ----------

MI = 2**20  # bytes in a MiB
BY_POD_MEMORY = "sum by (namespace, pod) (container_memory_working_set_bytes{container!=\"\"})"
BY_POD_CPU = "sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{container!=\"\"}[2m]))"


def average_policy(query: str, target: float, resource_line: str) -> PolicyParams:
    """A ``preset: hpa`` policy's parameters: one ``averagePerReplica: target`` metric read by
    ``query``, with ``resource_line`` under it ('' for none)."""
    from controller.policy import load_policy_text

    text = ("apiVersion: setpoint/v1\nkind: Policy\nmetadata: {name: web}\nspec:\n  preset: hpa\n"
            "  targets: {namespace: shop, name: web}\n  replicas: {min: 1, max: 100}\n  scaling:\n    metrics:\n"
            f"      - name: m\n        query: '{query}'\n        target: {{averagePerReplica: {target!r}}}\n"
            + (f"        {resource_line}\n" if resource_line else ""))
    (policy,) = load_policy_text(text, "web.yaml")
    return policy.params


def sampled(*rows: dict) -> PodSamples:
    """One target's pods: dicts of v (its sample in the metric's unit, None = none), ready, start
    (age s), since (Ready age s), pending."""
    table = hr.PodTable.of(np.zeros(len(rows), np.int64),
                           phase=[hr.Phase.PENDING if r.get("pending") else hr.Phase.RUNNING for r in rows],
                           ready=[hr.Readiness.TRUE if r.get("ready", True) else hr.Readiness.FALSE for r in rows],
                           start_age_s=[r.get("start", Z) for r in rows],
                           ready_transition_age_s=[r.get("since", Z) for r in rows],
                           request_milli=np.full(len(rows), PERCENT_REQUEST_MILLI), metric_age_s=np.zeros(len(rows)),
                           metric_window_s=np.full(len(rows), 60.0))
    usage = np.array([round((r.get("v") or 0) * 1000) for r in rows], np.int64).reshape(-1, 1)
    has = np.array([r.get("v") is not None for r in rows]).reshape(-1, 1)
    return PodSamples(table, usage, has, np.array([True]))


def mem(mib: float | None, **kw) -> dict:
    return dict(v=None if mib is None else mib * MI, **kw)


STARTING_POD = dict(ready=False, start=20, since=20)  # started 20 s ago, not Ready yet


# HPA's numbers, by hand from replica_calculator.go (calcPlainMetricReplicas, groupPods; tolerance
# 0.1): ratio = (sum of the ready pods' samples / their count) / target; with no missing pod and no
# unready one on a scale-up, ceil(ratio x ready pods) outside the band, else current; else missing
# pods count 0 (ratio > 1) or the target (ratio < 1), unready pods 0 on a scale-up, and the new
# ratio decides over all of them (current if within the band or the direction flips).
@pytest.mark.parametrize("query,target,resource,pod_rows,current,expect", [
    # 768 Mi over 3 pods -> 1.5; the 4th counts 0: 2304 / 4 = 576 Mi -> 1.125 -> ceil(1.125 x 4) = 5
    pytest.param(BY_POD_MEMORY, 512 * MI, "memory", [mem(768), mem(768), mem(768), mem(None)], 4, 5,
                 id="memory-missing-pod-counts-0-on-scale-up"),
    # 256 Mi -> 0.5; the 4th counts at the target: (768 + 512) / 4 = 320 Mi -> 0.625 -> ceil(2.5) = 3
    pytest.param(BY_POD_MEMORY, 512 * MI, "memory", [mem(256), mem(256), mem(256), mem(None)], 4, 3,
                 id="memory-missing-pod-at-target-on-scale-down"),
    # memory keeps a starting pod's sample: 600 Mi on 3 ready pods -> 2.4 -> ceil(7.2) = 8
    pytest.param(BY_POD_MEMORY, 250 * MI, "memory", [mem(600), mem(600), mem(600, **STARTING_POD)], 3, 8,
                 id="memory-starting-pod-kept"),
    # cpu leaves it out: 0.6 on 2 ready pods -> 2.4, a scale-up with an unready pod: it counts 0,
    # (0.6 + 0.6 + 0) / 3 = 0.4 -> 1.6 -> ceil(1.6 x 3) = 5
    pytest.param(BY_POD_CPU, 0.25, "cpu", [dict(v=0.6), dict(v=0.6), dict(v=0.6, **STARTING_POD)], 3, 5,
                 id="cpu-starting-pod-left-out"),
    # the same pod Ready long ago counts for cpu too: 2.4 -> 8
    pytest.param(BY_POD_CPU, 0.25, "cpu", [dict(v=0.6), dict(v=0.6), dict(v=0.6)], 3, 8,
                 id="cpu-ready-pods-all-count"),
    # a Pending pod is unready for memory too: 600 Mi on 2 -> 2.4, it counts 0: 400 Mi -> 1.6 -> 5
    pytest.param(BY_POD_MEMORY, 250 * MI, "memory", [mem(600), mem(600), mem(None, pending=True)], 3, 5,
                 id="memory-pending-pod-counts-0-on-scale-up"),
    # (540 + 550 + 560) / 3 = 550 Mi -> 1.074, within 0.1: current
    pytest.param(BY_POD_MEMORY, 512 * MI, "memory", [mem(540), mem(550), mem(560)], 3, 3,
                 id="memory-within-tolerance-keeps-current"),
    # 560 Mi -> 1.094 with a missing pod: it counts 0 (ratio > 1), 420 Mi -> 0.82: the direction flips,
    # current
    pytest.param(BY_POD_MEMORY, 512 * MI, "memory", [mem(560), mem(560), mem(560), mem(None)], 4, 4,
                 id="memory-missing-pod-flips-direction-keeps-current"),
])
def test_resource_average_value_follows_hpa_pod_rules(query, target, resource, pod_rows, current, expect):
    """``GetRawResourceReplicas``: a per-pod average over the pods with a sample, not the
    workload's total over its replicas (which the same pods read by the workload give no sample of)."""
    p = average_policy(query, target, f"resource: {resource}")
    assert one(p, np.nan, current, current, current, sampled(*pod_rows)) == (expect, True)
    assert p.metrics[0].hpa_source == HpaSource.RESOURCE and p.metrics[0].per_pod


@pytest.mark.parametrize("query,resource_line", [
    pytest.param(BY_POD_MEMORY, "", id="no-resource-is-a-pods-object-or-external-metric"),
    pytest.param("sum by (namespace, deployment) (label_replace(container_memory_working_set_bytes, "
                 "\"deployment\", \"$1\", \"pod\", \"(.+)-[a-z0-9]+-[a-z0-9]{5}\"))", "resource: memory",
                 id="a-workload-total-is-no-per-pod-average"),
])
def test_other_average_metrics_stay_external(query, resource_line):
    """Without ``resource``, or with a query that sums the pods away, the workload's total over
    its status replicas, as before: 2304 Mi / (512 Mi x 4) = 1.125 -> ceil(2304 / 512) = 5."""
    p = average_policy(query, 512 * MI, resource_line)
    assert one(p, 2304 * MI, 4, 4, 4) == (5, True)
    assert p.metrics[0].hpa_source == HpaSource.EXTERNAL and not p.metrics[0].per_pod
