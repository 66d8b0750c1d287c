"""`setpoint status`'s wording, as exact text: the cold-start line, and a pod check's "since" after
its firing pod was restarted.

- The cold line put a target's why in parentheses, and the why has its own: "shop/b (replicas that
  ran unknown over the window (no kube_deployment_spec_replicas: kube-state-metrics?))". Now the
  why follows a colon, per group of targets with the same why.
- A pod check that fired on one pod read "ok ... -" once the pod was restarted: its replacement's
  checks start afresh (a StatefulSet's web-1 under its own name, a Deployment's under a new one),
  with no phase change of their own, and the pod that changed left with its change. Now a pod's
  state start counts as its change: the check reads ok since the replacement was first observed.

Fixed times; the process in the zone XST (UTC+05:30); the health side is the real ``heal``.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from controller.core.health.checks import PodTable
from controller.core.health.heal import HealthObservation, HealthState, heal
from controller.core.health.params import Act, Remedy
from controller.runtime.status import _health_view
from tests.core.healing import pod_check
from tests.core.healing import params as health_params

XST = timezone(timedelta(hours=5, minutes=30))
AT, NOW = 1_796_444_000.0, 1_796_444_120.0  # 2026-12-05 ...; the status read 2 minutes after the start
UNKNOWN = "replicas that ran unknown over the window (no kube_deployment_spec_replicas: kube-state-metrics?)"
YOUNG = "replicas that ran known only from 75s into the 185s window (a workload or Prometheus history younger than the window)"


@pytest.fixture
def local_zone(monkeypatch):
    monkeypatch.setenv("TZ", "XST-05:30")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def start(warm: bool, why: str | None = None) -> dict:
    """A record's warm_start of a target at the controller's start."""
    return {"at": AT, "source": "prometheus P", "window_s": 185.0, "ticks": 37, "warm": warm, "cause": "start",
            **({"why": why} if why else {})}


def clock(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, XST).strftime("%H:%M:%S")


@pytest.mark.parametrize("starts, line", [
    pytest.param({"shop/a": start(True), "shop/b": start(False, UNKNOWN)},
                 "state: started with the controller {at} (2m ago), warm from prometheus P (37 ticks over 185s); "
                 "cold (scale-down held one window): shop/b: " + UNKNOWN, id="one-cold-target"),
    pytest.param({"shop/a": start(False, UNKNOWN), "shop/b": start(False, UNKNOWN)},
                 "state: started with the controller {at} (2m ago); cold (scale-down held one window): "
                 "shop/a, shop/b: " + UNKNOWN, id="two-cold-targets-one-why"),
    # each why said for its own targets (the first one's was said for every one)
    pytest.param({"shop/a": start(False, UNKNOWN), "shop/b": start(False, YOUNG), "shop/c": start(False, UNKNOWN)},
                 "state: started with the controller {at} (2m ago); cold (scale-down held one window): "
                 "shop/a, shop/c: " + UNKNOWN + "; shop/b: " + YOUNG, id="cold-targets-with-two-whys"),
])
def test_the_cold_line_nests_no_parentheses(local_zone, starts, line):
    from controller.cli.records import _warm_start_line

    assert _warm_start_line({k: {"warm_start": w} for k, w in starts.items()}, NOW) == line.format(at=clock(AT))


T0 = AT
CYCLE_S = 5.0
CHECK = health_params(pod_check("mem", for_s=0.0, recovered_for_s=0.0), escalation=(Remedy.RESTART_POD,))


def observe(pods: dict[str, tuple[float, float]], now: float) -> HealthObservation:
    """Pods {name: (created at, mem value)} of one target."""
    values = np.array([[value] for _, value in pods.values()])
    table = PodTable.of([0] * len(pods), [f"shop/{name}" for name in pods], values, checks=1,
                        born=[born for born, _ in pods.values()])
    return HealthObservation.of([len(pods)], [len(pods)], np.full((1, 1), np.nan), checks=1, revision=["1"],
                                pods=table)


def restarted(same_name: bool):
    """web-1 fires from the first cycle and is restarted; its replacement (``same_name``: web-1 as a
    StatefulSet's, else a new name as a Deployment's) is first observed at the next cycle, healthy.
    Returns (that cycle's health record as a dict, when the replacement was first observed)."""
    pods = {"web-0": (T0 - 3600.0, 0.0), "web-1": (T0 - 3600.0, 1.0)}
    state = HealthState.empty(1, CHECK)
    now = T0
    decision = heal(CHECK, observe(pods, now), state, now)
    assert Act(int(decision.action[0])) is Act.RESTART_POD and decision.restart_pods(0) == ("shop/web-1",)
    del pods["web-1"]
    pods["web-1" if same_name else "web-7f9c4-x2k4q"] = (now + 1.0, 0.0)
    now += CYCLE_S
    decision = heal(CHECK, observe(pods, now), decision.state, now)
    return decision.record(0, "web", "shop/web").to_dict(), now


@pytest.mark.parametrize("same_name", [pytest.param(True, id="statefulset-pod-back-under-its-name"),
                                       pytest.param(False, id="deployment-pod-replaced-under-a-new-name")])
def test_a_pod_checks_since_after_its_firing_pod_was_restarted(local_zone, capsys, monkeypatch, same_name):
    from controller.cli.records import _print_status

    record, seen = restarted(same_name)
    assert record["checks"]["mem"]["phase"] == "ok" and record["checks"]["mem"]["since"] == seen
    status = {"current": 2, "desired": 2, "reason": "NoAction", "health": _health_view(record)}
    monkeypatch.setenv("COLUMNS", "100")
    _print_status({"web": {"at": seen, "targets": {"shop/web": status}}}, seen + 60)
    rows = [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]
    assert f"mem ok 0 (0/2 pods) {clock(seen)} (1m ago)" in rows, rows
