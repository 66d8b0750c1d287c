"""Per-target series follow the targets a policy selects: a target that leaves the selection, or
whose workload is deleted, loses its series (a deleted Deployment's last "Ready 0" or "healing
held 1" would raise SetpointTargetNotReady or SetpointHealingHeld forever); a cycle that could not
list its targets keeps them all. setpoint_lost_ready_total counts the cycles at which a target
that had Ready pods at its cycle before has none (SetpointReadinessFlapping)."""

from __future__ import annotations

import numpy as np
import pytest

from controller.model import TargetRef
from controller.ports import ClusterView
from controller.runtime.reconciler import CycleResult
from controller.runtime.telemetry import Telemetry

WEB, API = TargetRef("shop", "web"), TargetRef("shop", "api")


def cycle(targets: list[TargetRef], ready: list[int] | None, exists: list[bool] | None = None) -> CycleResult:
    """A cycle that read ``ready`` Ready pods of ``targets`` (None: it got no cluster view)."""
    view = None
    if ready is not None:
        n = len(targets)
        view = ClusterView(spec=np.full(n, 3.0), status=np.full(n, 3.0), ready=np.asarray(ready, np.float64),
                           rollout=np.zeros(n, bool), exists=np.asarray(exists or [True] * n, bool))
    return CycleResult("web", 0.0, targets, view, None)


def ready_series(telemetry: Telemetry) -> dict[str, float]:
    return {s.labels["target"]: s.value for family in telemetry.registry.collect()
            if family.name == "setpoint_ready_replicas" for s in family.samples}


@pytest.mark.parametrize(("cycles", "expected"), [
    pytest.param([([WEB, API], [3, 0], None)], {"shop/web": 3, "shop/api": 0}, id="both read"),
    pytest.param([([WEB, API], [3, 0], None), ([WEB], [2], None)], {"shop/web": 2}, id="api left the selection"),
    pytest.param([([WEB, API], [3, 0], None), ([WEB, API], [3, 0], [True, False])], {"shop/web": 3},
                 id="api's workload deleted"),
    pytest.param([([WEB, API], [3, 0], None), ([], None, None)], {"shop/web": 3, "shop/api": 0},
                 id="a cycle without a view keeps them"),
    pytest.param([([WEB], [1], None), ([API], [4], None), ([WEB, API], [2, 4], None)], {"shop/web": 2, "shop/api": 4},
                 id="a target that comes back is read again"),
])
def test_ready_gauges_follow_the_selected_targets(cycles, expected):
    telemetry = Telemetry()
    for targets, ready, exists in cycles:
        telemetry.observe_cycle(cycle(targets, ready, exists))
    assert ready_series(telemetry) == expected


def test_a_gone_target_loses_its_desired_and_held_series_too():
    telemetry = Telemetry()
    telemetry.observe_cycle(cycle([WEB, API], [3, 0]))
    for gauge in (telemetry.desired, telemetry.held, telemetry.withheld):  # as a decision and healing set them
        gauge.labels("web", "shop/api").set(1)
    telemetry.observe_cycle(cycle([WEB], [3]))
    value = telemetry.registry.get_sample_value
    for name in ("setpoint_desired_replicas", "setpoint_healing_held", "setpoint_withheld_replicas",
                 "setpoint_ready_replicas"):
        assert value(name, {"policy": "web", "target": "shop/api"}) is None, name


def lost_ready(telemetry: Telemetry, target: str = "shop/web") -> float | None:
    return telemetry.registry.get_sample_value("setpoint_lost_ready_total", {"policy": "web", "target": target})


@pytest.mark.parametrize(("ready", "lost"), [
    pytest.param([3, 3, 3], 0, id="always-ready"),
    pytest.param([0, 0, 3], 0, id="dark-from-the-first-cycle-is-not-a-loss"),
    pytest.param([3, 0, 0, 0], 1, id="one-dark-spell"),
    pytest.param([3, 0, 3, 0, 2, 0, 1], 3, id="a-spiral-three-spells"),
    pytest.param([3, 1, 2, 1], 0, id="fewer-but-never-none"),
])
def test_lost_ready_counts_the_cycles_a_lit_target_went_dark(ready, lost):
    telemetry = Telemetry()
    for count in ready:
        telemetry.observe_cycle(cycle([WEB], [count]))
    assert lost_ready(telemetry) == lost


def test_lost_ready_restarts_for_a_target_that_left_and_came_back():
    telemetry = Telemetry()
    for targets, ready in (([WEB], [3]), ([WEB], [0]), ([API], [1]), ([WEB], [0]), ([WEB], [2]), ([WEB], [0])):
        telemetry.observe_cycle(cycle(targets, ready))
    assert lost_ready(telemetry) == 1  # web left at the third cycle: its series restarted, dark first, then lit, dark


def test_errors_and_failed_actions_are_counted_by_where_they_came_from():
    """A cluster read's 403 was counted as source="metrics" (SetpointMetricsSourceFailing sent the
    operator to Prometheus), and a failed rollback as kind="scale"."""
    from controller.runtime.reconciler import FailedAction

    telemetry = Telemetry()
    result = cycle([WEB], [3])
    result.errors = ["metric rps: cannot connect", "withheld replicas: pods not read (HTTP 403)",
                     "start-up delays: pods not read (HTTP 403)", "state: hands-offs: HTTP 403; retried next cycle"]
    result.failed = [FailedAction(WEB, "HTTP 403", "rollback"), FailedAction(WEB, "HTTP 409", "scale")]
    telemetry.observe_cycle(result)
    value = telemetry.registry.get_sample_value
    assert [value("setpoint_errors_total", {"policy": "web", "source": s}) for s in ("metrics", "cluster", "state")] \
        == [1, 2, 1]
    assert [value("setpoint_action_failures_total", {"policy": "web", "kind": k}) for k in ("rollback", "scale")] \
        == [1, 1]


def test_a_removed_policys_failed_state_deletion_is_a_state_error():
    """A delete refused (a Role without the verb after an upgrade: 403) counts in
    setpoint_errors_total{source="state"} (SetpointStateFailing) under the removed policy's name;
    deletions that went through, or were left, do not."""
    from controller.runtime.state_cleanup import TendResult

    telemetry = Telemetry()
    telemetry.state_cleaned(TendResult(deleted=["old"], foreign=["theirs"], failed=["api"], pending=1))
    value = telemetry.registry.get_sample_value
    assert value("setpoint_errors_total", {"policy": "api", "source": "state"}) == 1
    assert value("setpoint_errors_total", {"policy": "old", "source": "state"}) is None
    assert value("setpoint_state_cleanups_total", {"outcome": "deleted"}) == 1
    assert value("setpoint_state_cleanups_pending") == 1
