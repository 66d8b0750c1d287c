"""How long a removed policy's state matters: the longest period any of its memory is in force,
read from the policy's own parameters (controller/runtime/state_expiry.py). Pure: policies
compiled from text, times as arguments."""

from __future__ import annotations

import pytest

from controller.core.health.params import HealthParams
from controller.policy import load_policy_text
from controller.runtime.reconciler import RuntimePolicy
from controller.runtime.state_expiry import cleanup_due, health_memory_s, memory_periods_s, state_keep
from controller.runtime.state_index import IndexEntry
from tests.core.test_hung_pods import hung_check

HEAD = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: web}
spec:
  targets: {kind: Deployment, namespace: shop, names: [web]}
  interval: 15s
"""
SCALING = """\
  replicas: {min: 1, max: 20}
  scaling:
    metrics:
      - name: rps
        query: demand
        target: {averagePerReplica: 30}
"""
HEALTH = """\
  health:
    checks:
      - name: errors
        query: errors
        scope: workload
        unhealthy: {above: 0.05, for: 1m}
        recovered: {below: 0.02, for: 2m}
        action: rollback
"""
HOUR, DAY = 3600.0, 86400.0


def policy(*blocks: str) -> RuntimePolicy:
    [loaded] = load_policy_text(HEAD + "".join(blocks), "web.yaml")
    return RuntimePolicy.of(loaded)


@pytest.mark.parametrize("text, keep_s, why", [
    # a hands-off of 30 minutes (the default): a fight is counted over an hour plus twice that
    pytest.param(SCALING, HOUR + 2 * 1800, "the external-scale fight window", id="scaling-defaults-fight-window"),
    pytest.param(SCALING + "    onExternalScale: {handsOff: 0s}\n", HOUR, "the external-scale fight window",
                 id="no-hands-off-still-counts-fights-an-hour"),
    pytest.param(SCALING + "    onExternalScale: {handsOff: 6h}\n", HOUR + 12 * HOUR,
                 "the external-scale fight window", id="long-hands-off"),
    # rate-limit periods (at most 30m) and stabilization windows (at most 1h) never outlast the fight
    # window of a policy that scales; at 1h they tie with it
    pytest.param(SCALING + "    onExternalScale: {handsOff: 0s}\n"
                 "    behavior: {scaleDown: {stabilizationWindow: 1h}}\n",
                 HOUR, "scaleDown.stabilizationWindow", id="stabilization-window-ties-the-fight-window"),
    pytest.param(HEALTH, DAY, "budgets.rollbacksPerDay's window", id="health-only-rollback-budget-a-day"),
    pytest.param(HEALTH + "    budgets: {rollbacksPerDay: 0}\n", HOUR, "budgets.restartsPerHour's window",
                 id="no-rollbacks-restart-budget-an-hour"),
    pytest.param(HEALTH + "    budgets: {rollbacksPerDay: 0, restartsPerHour: 0}\n", 1800.0,
                 "the rollback window", id="no-budgets-revision-windows"),
    pytest.param(HEALTH + "    budgets: {rollbacksPerDay: 0, restartsPerHour: 0}\n    rollbackWindow: 5h\n",
                 5 * HOUR, "the rollback window", id="long-rollback-window"),  # the new-revision window too
    pytest.param(SCALING + HEALTH, DAY, "budgets.rollbacksPerDay's window", id="scaling-and-health-the-longest"),
])
def test_the_keep_is_the_longest_memory_period(text, keep_s, why):
    assert state_keep(policy(text)) == (keep_s, why)


def test_every_period_is_read_from_the_policy():
    behavior = ("    behavior: {scaleUp: {stabilizationWindow: 2m, policies: [{type: Pods, value: 4, period: 20m}]},\n"
                "               scaleDown: {stabilizationWindow: 40m, policies: [{type: Pods, value: 1, period: 30m}]}}\n"
                "    onExternalScale: {handsOff: 45m}\n")
    periods = memory_periods_s(policy(SCALING + behavior + HEALTH + "    healthyAfter: 7m\n"))
    assert {k: periods[k] for k in ("scaleUp.stabilizationWindow", "scaleDown.stabilizationWindow",
                                    "scaleUp rate-limit period", "scaleDown rate-limit period",
                                    "onExternalScale.handsOff", "the external-scale fight window",
                                    "budgets.restartsPerHour's window", "healthyAfter")} == {
        "scaleUp.stabilizationWindow": 120.0, "scaleDown.stabilizationWindow": 2400.0,
        "scaleUp rate-limit period": 1200.0, "scaleDown rate-limit period": 1800.0,
        "onExternalScale.handsOff": 2700.0, "the external-scale fight window": HOUR + 5400.0,
        "budgets.restartsPerHour's window": HOUR, "healthyAfter": 420.0}
    # the verification window: twice the longest for (2m), plus the wait for a rollout (10m)
    assert periods["the verification window"] == 240.0 + 600.0 and all(v >= 0 for v in periods.values())


def test_a_revision_checks_rollout_hold_counts():
    hold = HEALTH.replace("checks:\n", "checks:\n      - name: release\n        scope: revision\n"
                                       "        errors: e\n        requests: r\n"
                                       "        compare: {worseBy: 1.5x, falseRollbackRate: 0.5%}\n"
                                       "        hold: {maxDuration: 30h}\n        action: rollback\n")
    assert state_keep(policy(hold)) == (30 * HOUR, "a revision check's rollout hold")


T0 = 1_700_000_000.0


@pytest.mark.parametrize("removed_at, keep_s, newest_save, due", [
    pytest.param(T0, HOUR, None, T0 + HOUR, id="from-the-removal"),
    pytest.param(T0, HOUR, T0 - 600, T0 + HOUR, id="saved-before-the-removal"),
    pytest.param(T0, HOUR, T0 + 600, T0 + 600 + HOUR, id="saved-after-the-removal-restarts-the-count"),
    pytest.param(T0, 0.0, None, T0, id="nothing-kept"),
])
def test_cleanup_is_due_keep_after_the_later_of_removal_and_last_save(removed_at, keep_s, newest_save, due):
    assert cleanup_due(removed_at, keep_s, newest_save) == due


@pytest.mark.parametrize("entry, due", [
    pytest.param(IndexEntry(T0, HOUR), None, id="loaded-never-due"),
    pytest.param(IndexEntry(T0, HOUR, removed_at=T0 + 60), T0 + 60 + HOUR, id="removed"),
    pytest.param(IndexEntry(T0, HOUR, removed_at=T0 - DAY), T0 + HOUR, id="removal-before-last-seen-is-not-believed"),
])
def test_an_index_entry_is_due_keep_after_it_stopped_running(entry, due):
    assert entry.due() == due


def test_a_hung_pod_restarts_window_counts_the_wait_for_its_replacement_to_run():
    """The shipped hung check (window 435 s): 10m for its replacement to run, 420 s to judge it once it
    runs, then the wait for a rollout in progress (10m)."""
    health = HealthParams.of((hung_check(not_ready_for_s=120.0, startup_s=300.0),), verify_window_s=120.0,
                             interval_s=15.0)
    assert health_memory_s(health)["the verification window"] == 435.0 + 600.0 + 420.0 + 600.0
