"""The rollout hold with the live Reconciler over the simulated cluster (policies/setpoint-healing.yaml,
whose release-errors check holds for at most 10 minutes): a healthy release is paused and then
resumed even by a controller restarted mid-hold (the durable state says the pause is ours); a
Deployment someone else paused is never resumed; dry-run pauses nothing and says it would.
"""

from __future__ import annotations

import numpy as np
import pytest

from controller.errors import StateStoreError
from controller.model import ActionKind
from controller.policy import load_policies
from controller.runtime.dryrun import DryRunCluster
from controller.model import jsonable
from controller.runtime.reconciler import Reconciler, cycle_records
from controller.runtime.status import book_from_records
from controller.runtime.telemetry import Telemetry
from simulators.cluster import SimCluster
from simulators.runner import MemoryStateStore, _policy_reconciler
from simulators.scenario import load_scenario_text
from simulators.workload import RevisionProps
from tests.simulators.conftest_paths import POLICIES

SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: hold}
spec:
  duration: 20m
  tick: 5s
  seed: 3
  slo: {latency: {percentile: 95, below: 250ms}, errorRatio: 0.01}
  services:
    - name: web
      capacityPerPod: 100
      initialReplicas: 10
      maxPods: 40
      errorRatio: 0.002
      load: [{constant: {rps: 600}}]
"""
RELEASE_S = 600.0  # revision 1 has served for 10 minutes (its baseline) and is known healthy


class SavesFailAfterRelease(MemoryStateStore):
    """A store that cannot be written once the release is out (the ConfigMap became unwritable)."""

    broken = False

    def save(self, policy: str, payload: dict, part: str = "") -> None:
        if self.broken:
            raise StateStoreError("configmap: 503")
        super().save(policy, payload, part)


def drive(*, restart_every_s: float | None = None, human_pause: bool = False, dry_run: bool = False,
          multiplier: float = 1.0, store: MemoryStateStore | None = None, failed: list | None = None,
          observe=None):
    """Run the healing policy over the scenario, releasing revision 2 at RELEASE_S (``multiplier``
    times the errors); ``observe(result)`` sees every cycle's result. Returns (the actions applied
    or, in dry-run, that would be, as (t_s, kind, reason)), the cluster)."""
    sc = load_scenario_text(SCENARIO, "hold.yaml")
    policy = load_policies([POLICIES / "setpoint-healing.yaml"])[0]
    cluster = SimCluster(sc.cluster, np.random.default_rng(sc.seed), faults=())
    store = MemoryStateStore() if store is None else store
    reconciler, metrics, _ = _policy_reconciler(sc, policy, cluster, False, store)
    if dry_run:
        reconciler.cluster = DryRunCluster(reconciler.cluster)
    offered, out = sc.offered(), []
    next_cycle, next_health, next_restart = sc.start_s, np.inf, sc.start_s + (restart_every_s or np.inf)
    for k, now in enumerate(sc.times().tolist()):
        t = now - sc.start_s
        if t == RELEASE_S:
            if human_pause:
                cluster.set_paused(0, True, now)
            cluster.rollout(0, RevisionProps(error_ratio_multiplier=multiplier), now)
            if isinstance(store, SavesFailAfterRelease):
                store.broken = True
        cluster.step(now, sc.tick_s, offered[k])
        metrics.push(cluster.signals())
        if now >= next_restart:  # a new controller process: same cluster, same durable state
            reconciler = Reconciler(reconciler.policy, metrics, reconciler.cluster, state_store=store)
            next_restart += restart_every_s
        result = None
        if now >= next_cycle:
            result = reconciler.cycle(now)
            next_cycle += policy.params.interval_s
            next_health = now + reconciler.rollout_interval_s
        elif reconciler.rollout_in_progress and now >= next_health:
            result = reconciler.health_cycle(now)
            next_health += reconciler.rollout_interval_s
        if result is not None and failed is not None:
            failed += result.failed
        if result is not None and observe is not None:
            observe(result, reconciler)
        if result is not None and not dry_run:
            out += [(t, a.kind, a.reason) for a in result.actions if a.kind is not ActionKind.SCALE]
    if dry_run:
        out = [(None, a.kind, a.reason) for a in reconciler.cluster.would_apply if a.kind is not ActionKind.SCALE]
    return out, cluster


@pytest.mark.parametrize("restart_every_s", [
    pytest.param(None, id="one-controller"),
    pytest.param(20.0, id="restarted-every-20s-mid-hold"),
])
def test_a_healthy_release_is_held_then_resumed_and_never_left_paused(restart_every_s):
    actions, cluster = drive(restart_every_s=restart_every_s)
    kinds = [k for _, k, _ in actions]
    assert kinds == [ActionKind.PAUSE, ActionKind.RESUME], actions
    (paused_at, _, _), (resumed_at, _, reason) = actions
    assert reason == "RolloutResumedGood" and resumed_at - paused_at < 600.0
    assert not cluster.paused[0] and not cluster.rollout_in_progress[0]


def test_a_subtly_bad_release_is_held_and_rolled_back_while_paused():
    actions, cluster = drive(multiplier=1.5)
    assert [k for _, k, _ in actions] == [ActionKind.PAUSE, ActionKind.ROLLBACK], actions
    assert not cluster.paused[0]  # the rollback resumed it
    assert cluster.current_revision(0).props.error_ratio_multiplier == 1.0


def test_a_deployment_someone_else_paused_is_neither_resumed_nor_paused():
    actions, cluster = drive(human_pause=True)
    assert not [a for a in actions if a[1] in (ActionKind.PAUSE, ActionKind.RESUME)], actions
    assert cluster.paused[0] and cluster.rollout_in_progress[0]  # still theirs, still held


def test_dry_run_says_it_would_pause_and_pauses_nothing():
    actions, cluster = drive(dry_run=True)
    assert any(k is ActionKind.PAUSE and r == "RolloutPausedForEvidence" for _, k, r in actions), actions
    assert not cluster.paused[0] and not cluster.rollout_in_progress[0]


def test_no_pause_goes_out_unless_the_record_that_it_is_ours_is_saved():
    """Write-ahead: a pause whose durable record cannot be written is not sent (a successor could
    not tell it from someone else's pause and would leave the Deployment paused)."""
    failed: list = []
    actions, cluster = drive(store=SavesFailAfterRelease(), failed=failed)
    assert not [a for a in actions if a[1] is ActionKind.PAUSE]
    assert any("pause not sent, the hold could not be saved" in f.why and f.kind == "pause" for f in failed), failed
    assert not cluster.paused[0] and not cluster.rollout_in_progress[0]  # the rollout went on unheld


def test_status_and_metrics_show_the_hold_while_it_lasts_and_its_end():
    """`setpoint status` (the status book) and /metrics (setpoint_rollout_held) say the rollout is
    paused by setpoint from the pause to the resume, with the time it started; after the resume
    the status keeps the last resume and its reason, and the gauge is 0."""
    telemetry, records, seen = Telemetry(), [], []

    def observe(result, reconciler):
        telemetry.observe_cycle(result)
        records.extend(jsonable(r.to_dict()) for r in cycle_records(result, reconciler.policy.params.metric_names))
        held = telemetry.registry.get_sample_value("setpoint_rollout_held", {"policy": result.policy,
                                                                              "target": "default/web"})
        view = book_from_records(records).view()[result.policy]["targets"]["default/web"]
        seen.append((result.now, held, view["health"]["rollout"]))

    actions, _ = drive(observe=observe)
    (paused_at, _, _), (resumed_at, _, _) = actions
    start = seen[0][0]  # the first cycle runs at the scenario's start
    during = [(at, held, rollout) for at, held, rollout in seen if paused_at <= at - start < resumed_at]
    assert during and all(held == 1 and rollout["held"] for _, held, rollout in during), during
    assert {rollout["since"] for _, _, rollout in during} == {during[0][0]}  # since the pause, not each cycle
    assert during[0][2]["last"]["action"] == "pause"
    at, held, rollout = seen[-1]
    assert held == 0 and not rollout["held"] and rollout["since"] is None
    assert (rollout["last"]["action"], rollout["last"]["reason"]) == ("resume", "RolloutResumedGood")
    before = [(held, rollout) for at, held, rollout in seen if at - start < paused_at]
    assert before and all(held == 0 and rollout is None for held, rollout in before)


def test_the_status_table_says_the_rollout_is_paused_by_setpoint():
    from controller.cli.records import _health_cell, _rollout_line

    health = {"held": False, "checks": [], "rollout": {"held": True, "since": 100.0,
                                                      "last": {"action": "pause", "at": 100.0,
                                                               "reason": "RolloutPausedForEvidence"}}}
    assert "ROLLOUT PAUSED" in _health_cell(health)
    assert "paused by setpoint since t+1m" in _rollout_line("default/web", health["rollout"], 400.0)
    over = {"held": False, "since": None, "last": {"action": "resume", "at": 160.0, "reason": "RolloutResumedGood"}}
    assert "ROLLOUT PAUSED" not in _health_cell(dict(health, rollout=over))
    assert _rollout_line("default/web", over, 400.0) == "default/web rollout: last resume t+2m (RolloutResumedGood)"
    assert _rollout_line("default/web", None, 400.0) == ""
