"""The warm start counts each scale the old leader made once, however late kube-state-metrics
shows it.

The replay reads the replicas that ran from kube-state-metrics' samples, which show a scale a
scrape after it was written (15-30 s scrape intervals are common), while the controller that
made it read its own write from the API server at its next cycle. A replay that trusted the
samples alone re-decided the step at each tick until they caught up, and its rate-limit history
counted it each time: +4 rebuilt where +2 happened. The rate limits compute the count a period
started at as current - added + removed (HPA's rule), so an over-counted addition loosens the
scale-down limit (and an over-counted removal the scale-up limit) by as much: with "1 pod a
minute down", the new leader removed 5 pods at once. The replay now counts the changes of the
replicas that ran (warm_start.observed_scale_events), and the first live cycle the change since the
replay's last tick (events_since_replay): a step the samples show within the window is the
replay's, one they show later is the first cycle's, each once.

The old leader's run: 4 replicas at 400 rps (100 per replica); the load changes at T0 + 300 s and
the old leader scales at its cycle 5 s later; kube-state-metrics shows it ``lag_s`` after that.
The new leader's first cycle is at T0 + 357.5 s (its grid is 7.5 s out of phase with the old
leader's, as two processes' are: the replay re-decides the step at T0 + 312.5 s). A fake Prometheus answers the range queries, exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from controller.adapters.prometheus import RangeSeries
from controller.model import Reason, TargetRef
from controller.policy import load_policy_text
from controller.runtime.backtest import ReplayCluster
from controller.runtime.reconciler import Reconciler, RuntimePolicy

T0 = 1_765_000_000.0
STEP_AT = T0 + 305.0  # the old leader's scale
NOW = T0 + 357.5  # the new leader's first cycle: the step is 52.5 s old, inside the 1 m periods
WEB = TargetRef("shop", "web")

POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: web}
spec:
  targets: {kind: Deployment, namespace: shop, names: [web]}
  interval: 15s
  replicas: {min: 1, max: 20}
  scaling:
    metrics:
      - {name: rps, query: demand, target: {averagePerReplica: 100}}
    tolerance: 0.05
    behavior:
      scaleUp: {stabilizationWindow: 0s, policies: [{type: Pods, value: 4, period: 1m}]}
      scaleDown: {stabilizationWindow: 0s, policies: [{type: %s, value: %d, period: 1m}]}
"""


class History:
    """Prometheus' answers to the warm start's range queries: ``demand`` and the replicas as
    kube-state-metrics showed them, each as (from time, value) steps."""

    def __init__(self, rps: list[tuple[float, float]], replicas: list[tuple[float, float]]):
        self.rps, self.replicas = rps, replicas

    @staticmethod
    def _at(steps: list[tuple[float, float]], t: float) -> float:
        known = [v for since, v in steps if since <= t]
        return known[-1] if known else float("nan")

    def query_range(self, expr, lo, hi, step_s, **_) -> list[RangeSeries]:
        times = np.arange(lo, hi + step_s / 2, step_s)
        steps = self.replicas if "kube_deployment_spec_replicas" in expr else self.rps
        return [RangeSeries({"namespace": "shop", "deployment": "web"}, times,
                            np.array([self._at(steps, t) for t in times]))]


def policy(scale_down: tuple[str, int] = ("Pods", 1)) -> RuntimePolicy:
    [loaded] = load_policy_text(POLICY % scale_down, "web.yaml")
    return RuntimePolicy.of(loaded)


class Steady:
    """The live reading at the new leader's first cycle: ``rps`` for every target."""

    def __init__(self, rps: float):
        self.rps = rps

    def query(self, expr, targets, at, *, labels=None):
        from controller.ports import Samples
        n = len(targets)
        return Samples(np.full(n, self.rps), np.ones(n, bool), np.zeros(n), np.zeros(n, bool))


def rebuilt_events(rp: RuntimePolicy, history: History, rps: float, current: float) -> dict[str, list[tuple[float, float]]]:
    """The rate-limit history after the new leader's first cycle at NOW (warm-started from
    ``history``, no state store, seeing ``current`` replicas and ``rps``, which ask for no change):
    {"up"/"down": [(s after T0, change)]}. A step the samples show before the replay's window ends
    is rebuilt by the replay; one they show later (or not yet) by the first cycle, from the
    replicas it sees (warm_start.events_since_replay)."""
    cluster = ReplayCluster([WEB], np.array([current]))
    reconciler = Reconciler(rp, Steady(rps), cluster, warm_from=history)
    result = reconciler.cycle(NOW)
    assert result.warm_start.warm == ["shop/web"], result.warm_start.summary()
    assert not result.actions, "the reading asks for no change"
    norm = reconciler._state.norm
    return {side: [(float(t) - T0, float(c)) for t, c in zip(getattr(norm, f"{side}_times")[0],
                                                              getattr(norm, f"{side}_changes")[0])
                   if np.isfinite(t) and c > 0]
            for side in ("up", "down")}


@pytest.mark.parametrize("lag_s", [
    pytest.param(5.0, id="shown-before-the-replays-next-tick"),
    pytest.param(20.0, id="shown-a-tick-late-15s-scrapes"),
    pytest.param(40.0, id="shown-three-ticks-late"),
    pytest.param(80.0, id="not-shown-before-the-window-ends-the-replays-own-decision-once"),
])
@pytest.mark.parametrize("rps, before, after, side, scale_down", [
    pytest.param(600.0, 4, 6, "up", ("Pods", 1), id="up-2-pods"),
    pytest.param(150.0, 4, 2, "down", ("Percent", 50), id="down-2-pods"),
])
def test_a_scale_kube_state_metrics_shows_late_is_counted_once(lag_s, rps, before, after, side, scale_down):
    history = History([(T0, 400.0), (T0 + 300.0, rps)], [(T0, before), (STEP_AT + lag_s, after)])
    events = rebuilt_events(policy(scale_down), history, rps, after)
    assert len(events[side]) == 1 and events[side][0][1] == abs(after - before), events
    # never dated before the step could have been made (one interval of the replay's grid), nor after
    # the cycle that first saw it: late dating binds the limit longer, never shorter
    assert STEP_AT - T0 - 15.0 < events[side][0][0] <= NOW - T0, events
    assert events["up" if side == "down" else "down"] == [], events


@pytest.mark.parametrize("lag_s", [
    pytest.param(5.0, id="shown-at-once"),
    pytest.param(40.0, id="shown-three-ticks-late-it-went-to-the-minimum"),
])
def test_after_a_late_shown_scale_up_the_scale_down_limit_counts_from_the_periods_start(lag_s):
    """The old leader added 2 pods (4 -> 6) 52.5 s before the new leader's first cycle, and the
    load is gone: "1 pod a minute down" counts from the period's start (HPA's rule), 6 - 2 = 4
    replicas, so the new leader may go to 3; with the addition counted twice the start was
    6 - 4 = 2 and it went to 1, the minimum, at once."""
    rp = policy()
    history = History([(T0, 400.0), (T0 + 300.0, 600.0)], [(T0, 4.0), (STEP_AT + lag_s, 6.0)])

    class Gone:
        def query(self, expr, targets, at, *, labels=None):
            from controller.ports import Samples
            n = len(targets)
            return Samples(np.full(n, 50.0), np.ones(n, bool), np.zeros(n), np.zeros(n, bool))

    cluster = ReplayCluster([WEB], np.array([6.0]))
    reconciler = Reconciler(rp, Gone(), cluster, warm_from=history)
    result = reconciler.cycle(NOW)
    assert result.warm_start.warm == ["shop/web"]
    assert int(cluster.spec[0]) == 3 and result.decision.norm.reason[0] == Reason.RATE_LIMITED_DOWN
