"""State records what happened: the reconciler commits scale events, budget use and verification
windows only for actions that were applied; a failed write or a dry run commits none of them.

Behavioural: a phantom scale event would rate-limit the next cycle's retry of the same change to
nothing; a phantom restart would spend the one-per-hour budget (or open a verification window)
so that the next cycle held or waited instead of restarting. The durable store keeps the
write-ahead rule: the budget is saved (reserved) before the action, and released when it failed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from controller.errors import ConflictError, PermanentError, TemporaryError
from controller.model import Action, ActionKind, TargetRef, TargetSelector, TargetStatus
from controller.policy import load_policy_text
from controller.ports import ClusterView, Samples, state_name
from controller.runtime.actuate import RetryPolicy
from controller.runtime.dryrun import DryRunCluster, DryRunStateStore
from controller.runtime.reconciler import Reconciler, RuntimePolicy
from simulators.ports import MemoryStateStore

T0 = 1_700_000_000.0
WEB = TargetRef("shop", "web")

SCALING = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: web}
spec:
  targets: {kind: Deployment, namespace: shop, names: [web]}
  interval: 15s
  replicas: {min: 1, max: 20}
  scaling:
    metrics:
      - name: rps
        query: rps
        target: {averagePerReplica: 100}
    behavior:
      scaleUp: {stabilizationWindow: 0s, policies: [{type: Pods, value: 1, period: 60s}]}
"""

HEALING = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: web-heal}
spec:
  targets: {kind: Deployment, namespace: shop, names: [web]}
  interval: 15s
  replicas: {min: 1, max: 20}
  health:
    checks:
      - name: errors
        query: error_ratio
        unhealthy: {above: 0.5, for: 0s}
        recovered: {below: 0.1, for: 0s}
        action: rolling-restart
    budgets: {restartsPerHour: 1, rollbacksPerDay: 1}
"""


class FakeCluster:
    """One Deployment; ``apply`` raises ``fail`` (an ActuationError class) while it is set."""

    def __init__(self, replicas: int = 2):
        self.spec = replicas
        self.fail: type | None = None
        self.sent: list[Action] = []

    def resolve(self, selector: TargetSelector) -> list[TargetRef]:
        return [WEB]

    def observe(self, targets, with_pods=None) -> ClusterView:
        status = TargetStatus(WEB, self.spec, self.spec, self.spec, revision="1", revisions=("1",))
        return ClusterView.from_statuses(targets, {WEB: status})

    def apply(self, action: Action) -> None:
        self.sent.append(action)
        if self.fail is not None:
            raise self.fail(f"{action.kind.word} refused", target=str(action.target))
        if action.kind is ActionKind.SCALE:
            self.spec = action.replicas


class FixedMetrics:
    """Every query answers ``values[expr]`` for every target."""

    def __init__(self, values: dict[str, float]):
        self.values = values

    def query(self, expr, targets, at, *, labels=None) -> Samples:
        n = len(targets)
        return Samples(np.full(n, self.values[expr]), np.ones(n, bool), np.zeros(n), np.zeros(n, bool))


class RecordingStore(MemoryStateStore):
    def __init__(self):
        super().__init__()
        self.payloads: list[dict] = []

    def save(self, policy: str, payload: dict, part: str = "") -> None:
        super().save(policy, payload, part)
        self.payloads.append(json.loads(self._texts[state_name(policy, part)]))


def reconciler(text: str, cluster, metrics, store=None) -> Reconciler:
    [policy] = load_policy_text(text, "p.yaml")
    never_sleeps = RetryPolicy(deadline_s=0.0, max_attempts=3)  # conflicts retried at once, nothing waited
    return Reconciler(RuntimePolicy.of(policy), metrics, cluster, retry=never_sleeps, state_store=store,
                      sleep=lambda s: pytest.fail("a unit test must not sleep"))


FAILURES = [
    pytest.param(ConflictError, id="conflict-every-attempt"),
    pytest.param(TemporaryError, id="temporary"),
    pytest.param(PermanentError, id="permanent"),
]


@pytest.mark.parametrize("fail", FAILURES)
def test_a_failed_scale_records_no_scale_event(fail):
    """400 rps at 100 per replica wants 4; the rate limit allows +1 per minute: 2 -> 3. The write
    fails; 15 s later the same +1 is allowed again (no event of a change that never happened)."""
    cluster = FakeCluster(2)
    rec = reconciler(SCALING, cluster, FixedMetrics({"rps": 400.0}))
    cluster.fail = fail
    first = rec.cycle(T0)
    assert [a.replicas for a in cluster.sent] == [3] * len(cluster.sent) and first.failed and not first.actions
    cluster.fail = None
    second = rec.cycle(T0 + 15)
    assert [(a.from_replicas, a.replicas) for a in second.actions] == [(2, 3)]
    assert cluster.spec == 3


def test_an_applied_scale_records_its_event():
    """The control row: once 2 -> 3 went through, the +1 per minute is spent."""
    cluster = FakeCluster(2)
    rec = reconciler(SCALING, cluster, FixedMetrics({"rps": 400.0}))
    assert [a.replicas for a in rec.cycle(T0).actions] == [3]
    second = rec.cycle(T0 + 15)
    assert second.actions == [] and second.decision.records("web", ["shop/web"], ("rps",))[0].reason == "RateLimitedUp"


def test_a_dry_run_commits_no_scale_event():
    cluster = FakeCluster(2)
    dry = DryRunCluster(cluster)
    rec = reconciler(SCALING, dry, FixedMetrics({"rps": 400.0}))
    first, second = rec.cycle(T0), rec.cycle(T0 + 15)
    assert first.rehearsal and second.rehearsal and cluster.spec == 2
    assert [(a.from_replicas, a.replicas) for a in dry.would_apply] == [(2, 3), (2, 3)]  # not rate-limited to nothing


@pytest.mark.parametrize("fail", FAILURES)
def test_a_failed_restart_spends_no_budget_and_opens_no_verification(fail):
    """restartsPerHour 1: a rolling restart that failed leaves the budget whole, so the next
    cycle restarts (not RestartBudgetExhausted, not Verifying)."""
    cluster, store = FakeCluster(3), RecordingStore()
    rec = reconciler(HEALING, cluster, FixedMetrics({"error_ratio": 0.9}), store)
    cluster.fail = fail
    first = rec.cycle(T0)
    assert first.failed and not first.actions and cluster.sent[0].kind is ActionKind.ROLLING_RESTART
    # write-ahead: the budget was saved (reserved) before the restart was sent, then released
    reserved, released = store.payloads[-2]["targets"], store.payloads[-1]["targets"]
    assert reserved["shop/Deployment/web"]["budgets"]["restarts"] != []
    assert released["shop/Deployment/web"]["budgets"]["restarts"] == []
    assert released["shop/Deployment/web"]["verification"] is None
    cluster.fail = None
    second = rec.cycle(T0 + 15)
    assert [a.kind for a in second.actions] == [ActionKind.ROLLING_RESTART]
    assert not second.healing.held[0]
    assert store.payloads[-1]["targets"]["shop/Deployment/web"]["budgets"]["restarts"] != []


def test_an_applied_restart_spends_the_budget():
    cluster = FakeCluster(3)
    rec = reconciler(HEALING, cluster, FixedMetrics({"error_ratio": 0.9}), RecordingStore())
    assert [a.kind for a in rec.cycle(T0).actions] == [ActionKind.ROLLING_RESTART]
    second = rec.cycle(T0 + 15)
    assert second.actions == [] and second.healing.record(0, "web-heal", "shop/web").reason == "Verifying"


def test_a_dry_run_spends_no_budget():
    """Under dry-run every cycle would restart again: nothing was restarted, nothing is charged."""
    cluster = FakeCluster(3)
    dry = DryRunCluster(cluster)
    store = DryRunStateStore(MemoryStateStore())
    rec = reconciler(HEALING, dry, FixedMetrics({"error_ratio": 0.9}), store)
    results = [rec.cycle(T0 + 15 * k) for k in range(3)]
    assert [a.kind for a in dry.would_apply] == [ActionKind.ROLLING_RESTART] * 3
    assert not any(r.healing.held[0] for r in results) and cluster.sent == []
    assert store.would_save["web-heal"]["targets"]["shop/Deployment/web"]["budgets"]["restarts"] == []
