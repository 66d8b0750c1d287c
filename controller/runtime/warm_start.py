"""Warm start: rebuild a policy's scaling state from Prometheus when the controller starts (or
becomes leader), so a restart neither scales down at once nor freezes for a whole window.

Issue #10 item 5. The state ``decide`` keeps between cycles (smoothing, the recommendation
history of the stabilization windows, the scale events of the rate limits, forecasts) is a
function of the metrics and replicas of the last few minutes. Prometheus has both, so the state
is rebuilt by replaying that window through the same Reconciler the backtest uses (no second
decision path): range queries (``PrometheusSource.query_range``, chunked) for every policy
metric and for the replicas that ran (kube-state-metrics), on the grid ``now - K x interval,
..., now - interval`` (the ticks an uninterrupted controller would have run, in phase with the
first live cycle at ``now``). Each replayed tick observes the replicas that actually ran, not a
counterfactual: the rebuilt history is what a controller that never stopped would hold.

Missing history never causes a scale-down. A target whose replica count is unknown at the start
of the window (no kube-state-metrics, a new workload, Prometheus unreachable, a query error)
stays cold: its first live cycle seeds the recommendation history with the current replicas
(what HPA does after a restart), so scale-down waits one whole stabilization window and the
rate-limit history is empty (a scale-up may use a whole period's budget again, as after an HPA
restart). The rate limits' scale events are the changes of the replicas that ran, whoever made
them (a previous leader, the HPA a policy takes over from), not the replay's own decisions (which
nothing applied). Metrics missing inside the window replay as they would have run live: the missing-data
hold remembers the current replicas, so a gap never lowers the window's maximum.

A take-over is the same replay for fewer rows: a target that joins a policy already running (its
HPA deleted during a migration, a label added so the selector matches it) is replayed alone, over
the window that ends at its first cycle, and its rows are written into the policy's state
(core/scaling/rows.py), the other targets' untouched (Reconciler._warm_joiners). Its WarmStart is
``joined``; without history it stays cold, as at a start, and the records and the log say why.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from controller.core.scaling.decide import ScalingState
from controller.core.scaling.normalize import NormState, record_scale_events
from controller.core.scaling.params import PolicyParams, Smoothing
from controller.errors import MetricsUnavailable
from controller.model import Action, TargetRef
from controller.policy.summary import plural
from controller.ports import ClusterView
from controller.runtime.backtest import (PER_REPLICA_KINDS, ReplayData, ReplayMetrics, backtest_policy, grid_values,
                                         plan_queries, range_answers, target_labels_of, time_grid)

#: Why a policy's whole state was rebuilt (WarmStart.cause): the controller's start (its first
#: cycle of the policy), a reload that loaded the policy new or changed (a fresh state for every
#: target, the ones it had too), or this replica becoming the leader. A take-over is ``joined``.
START, RELOAD, LEADER = "start", "reload", "leader"
#: How the log line and the records say each cause, after "warm start" / "cold start".
CAUSE_WORDS = {START: "", RELOAD: " at a policy reload", LEADER: " on becoming leader"}

#: EWMA smoothing remembers forever; after this many half-lives the value before the window
#: weighs 2^-6 < 2 % of the smoothed value.
EWMA_HALF_LIVES = 6.0


def warm_window_s(params: PolicyParams) -> float:
    """Seconds of history the policy's state depends on, plus one interval.

    The scale events of the last rate-limit period P were decided by cycles that each looked
    back over a stabilization window W at smoothed values that each looked back over the
    smoothing span S: the state at ``now`` depends on the metrics since ``now - (P + W + S)``.
    """
    window = max(params.scale_up.window_s, params.scale_down.window_s)
    period = 0.0 if params.legacy else max(params.scale_up.longest_period_s, params.scale_down.longest_period_s)
    span = 0.0
    if params.smoothing == Smoothing.EWMA:
        span = EWMA_HALF_LIVES * params.half_life_s
    elif params.smoothing != Smoothing.NONE:
        span = params.window_s
    return period + window + span + params.interval_s


#: What is said of a warm target whose metrics had no sample over the warm-up window.
UNREAD_WHY = "had no metric sample in the window: only the replicas that ran were replayed"


@dataclass
class WarmStart:
    """What one warm start did, for the decision records, the log and ``setpoint status``.

    ``from_s``/``to_s``: the first and last replayed tick (epoch seconds); ``warm``/``cold``:
    target keys rebuilt from history / left to start empty; ``error``: why nothing was rebuilt."""

    at: float
    source: str
    window_s: float
    from_s: float
    to_s: float
    ticks: int = 0
    warm: list[str] = field(default_factory=list)
    cold: list[str] = field(default_factory=list)
    error: str | None = None
    #: per cold target with replicas known later in the window: the first time they are (epoch s)
    known_from: dict[str, float] = field(default_factory=dict)
    #: (N,) per target row: the replicas that ran at the last replayed tick and what the replay
    #: decided there (NaN: cold, or no decision); see :func:`events_since_replay`
    last_replicas: np.ndarray | None = None
    last_decided: np.ndarray | None = None
    #: a take-over: these targets joined a policy already running (the others kept their state)
    joined: bool = False
    #: why the whole state was rebuilt (not a take-over): START, RELOAD or LEADER
    cause: str = START
    #: the target keys that are StatefulSets: their replicas that ran are kube_statefulset_replicas
    statefulsets: set[str] = field(default_factory=set)
    #: warm target keys whose metrics had no sample in the window: only their replicas that ran
    #: were replayed (the recommendations held nothing; a query that reads nothing, e.g. by labels
    #: the targets are not matched by)
    unread: list[str] = field(default_factory=list)

    def keys(self) -> set[str]:
        """The targets this warm start was for (warm or cold)."""
        return {*self.warm, *self.cold}

    def for_target(self, key: str) -> dict:
        """The record entry of one target: how its state started."""
        out = {"at": self.at, "source": self.source, "window_s": self.window_s, "from": self.from_s,
               "to": self.to_s, "ticks": self.ticks, "warm": key in self.warm}
        if self.joined:
            out["joined"] = True
        else:
            out["cause"] = self.cause
        if key not in self.warm:
            out["why"] = self.error or self._cold_why(key)
        elif key in self.unread:
            out["why"] = UNREAD_WHY
        return out

    def _cold_why(self, key: str) -> str:
        if key in self.known_from:  # kube-state-metrics is there: the history is younger than the window
            return (f"replicas that ran known only from {self.known_from[key] - self.from_s:.0f}s into the "
                    f"{self.window_s:.0f}s window (a workload or Prometheus history younger than the window)")
        series = "kube_statefulset_replicas" if key in self.statefulsets else "kube_deployment_spec_replicas"
        return f"replicas that ran unknown over the window (no {series}: kube-state-metrics?)"

    def summary(self) -> str:
        """One log line: what was rebuilt, from where, and what stayed cold."""
        if self.joined:
            return self._take_over_summary()
        when = CAUSE_WORDS.get(self.cause, "")
        if self.error:
            return f"cold start{when} ({self.error})"
        return (f"warm start{when} from {self.source}: {plural(len(self.warm), 'target')} rebuilt from "
                f"{plural(self.ticks, 'tick')} "
                f"over {self.window_s:.0f}s" + (f", {len(self.cold)} cold" if self.cold else "") + self._unread_said())

    def _unread_said(self) -> str:
        """The log line's part for warm targets whose metrics read nothing ('' when none)."""
        if not self.unread:
            return ""
        return f"; {len(self.unread)} of them ({', '.join(self.unread[:5])}{', ...' if self.unread[5:] else ''}) {UNREAD_WHY}"

    def _take_over_summary(self) -> str:
        """The log line of a take-over: the joiners rebuilt warm, and those left cold and why."""
        parts = []
        if self.warm:
            parts.append(f"warm take-over of {', '.join(self.warm)} (joined the running policy): state rebuilt from "
                         f"{self.source} over {self.ticks} ticks ({self.window_s:.0f}s){self._unread_said()}")
        if self.cold:
            parts.append(f"cold take-over of {', '.join(self.cold)} (joined the running policy; scale-down held one "
                         f"stabilization window): {self.error or self._cold_why(self.cold[0])}")
        return "; ".join(parts)


class ObservedCluster:
    """The replicas that ran, as a Cluster for the replay: ``spec`` is set per tick by the
    replay (the last known count); actions are not applied (the real cluster already did)."""

    def __init__(self, targets: Sequence[TargetRef]):
        self.targets = list(targets)
        self.spec = np.zeros(len(self.targets))
        self._ones = np.ones(len(self.targets), bool)

    def resolve(self, selector) -> list[TargetRef]:
        return self.targets

    def observe(self, targets: Sequence[TargetRef], with_pods: bool | None = None) -> ClusterView:
        # no readiness history: every replica replays as Ready, so the rebuilt state knows each
        # replayed target had Ready pods (a restart during an outage keeps the TargetNotReady
        # hold on scale-ups from the first live cycle; tests/runtime/test_warm_start.py)
        spec = self.spec.copy()
        return ClusterView(spec=spec, status=spec, ready=spec, rollout=~self._ones, exists=self._ones)

    def apply(self, action: Action) -> None:
        pass


def forward_filled(a: np.ndarray) -> np.ndarray:
    """(T, N) with each NaN replaced by the last finite value above it (NaN before the first)."""
    idx = np.where(np.isfinite(a), np.arange(a.shape[0])[:, None], 0)
    np.maximum.accumulate(idx, axis=0, out=idx)
    out = a[idx, np.arange(a.shape[1])]
    return out


def replay_state(policy, data: ReplayData) -> tuple[ScalingState, np.ndarray, np.ndarray, np.ndarray]:
    """Replay ``data`` (one tick per grid point) through a Reconciler observing the replicas
    that ran. Returns (the scaling state after the last tick, (N,) bool rows rebuilt, (N,) the
    replicas that ran at the last tick and (N,) what the replay decided there, NaN where none); the
    rows whose replicas were unknown at the first tick come back empty (cold)."""
    from controller.runtime.reconciler import Reconciler  # the reconciler imports this module

    policy = backtest_policy(policy)
    n = len(data.targets)
    actual = forward_filled(data.actual) if data.t_s.size else np.zeros((0, n))
    warm = np.isfinite(actual[0]) if data.t_s.size else np.zeros(n, bool)
    if not warm.any():
        return ScalingState.empty(n, policy.params), warm, np.full(n, np.nan), np.full(n, np.nan)
    actual = np.where(np.isfinite(actual), actual, 0.0)  # cold rows: current 0 (scaling disabled), reset below
    cluster = ObservedCluster(data.targets)
    per_replica = {q for q, m in zip(policy.queries, policy.params.metrics) if m.kind in PER_REPLICA_KINDS}
    metrics = ReplayMetrics(data, cluster, per_replica)
    reconciler = Reconciler(policy, metrics, cluster)
    reconciler.with_conditions = False
    decided = np.full_like(actual, np.nan)  # (T, N) what the replay decided at each tick
    for k in range(data.t_s.size):
        metrics.index = k
        cluster.spec = actual[k]
        result = reconciler.cycle(float(data.t_s[k]))
        if result.decision is not None:
            decided[k] = result.decision.norm.desired
    state = reconciler._state
    state = dataclasses.replace(state, norm=observed_scale_events(state.norm, policy.params, actual, decided,
                                                                  data.t_s))
    rows = np.where(warm, np.arange(n), -1)
    last = np.where(warm, actual[-1], np.nan)
    return state.take(rows), warm, last, np.where(warm, decided[-1], np.nan)


def events_since_replay(norm: NormState, params: PolicyParams, info: WarmStart, spec: np.ndarray,
                        now: float) -> NormState:
    """``norm`` with the change of each warm target's replicas between the replay's last tick and
    the first live cycle at ``now`` (``spec`` (N,), the replicas it sees) as a scale event.

    kube-state-metrics shows a change a scrape or two after it was made, so the old leader's last
    step is often in no replayed sample: its event was missed and the new leader could take the
    same step again at once (4 pods added within a minute under a 4-a-minute limit, after 2). Dated
    as :func:`observed_scale_events` dates a change: at the last tick when the replay decided it
    there (a previous leader in phase), else at ``now``, never before it was made."""
    if params.legacy or info.last_replicas is None:
        return norm
    last, decided = info.last_replicas, info.last_decided
    with np.errstate(invalid="ignore"):
        moved = np.isfinite(last) & (np.asarray(spec, np.float64) != last)
    if not moved.any():
        return norm
    foreseen = moved & (decided == spec)
    for rows, when in ((foreseen, info.to_s), (moved & ~foreseen, now)):
        if rows.any():
            norm = record_scale_events(norm, params, np.where(rows, last, spec), np.asarray(spec, np.float64),
                                       float(when), applied=rows)
    return norm


def observed_scale_events(norm: NormState, params: PolicyParams, actual: np.ndarray, decided: np.ndarray,
                          t_s: np.ndarray) -> NormState:
    """``norm`` with the rate policies' scale events made of the changes of the replicas that ran
    (``actual`` (T, N) at the ticks ``t_s`` (T,)) instead of the replay's own decisions
    (``decided`` (T, N), NaN where none).

    The replay decides on the replicas that ran but applies nothing, so its decisions are not
    what happened: where whoever scaled (the previous leader, the HPA a policy just took over
    from) decided otherwise, the events it kept were phantom ones (a decision the cluster never
    took, at every tick it repeated) and it missed the real ones. In a drill, a failover 45 s after
    the old leader's 16 -> 14 (10 % a minute) let the new one scale to 12 at once: 25 % in under a
    minute. A change first seen at tick k is dated at tick k - 1 when the replay decided it there
    (a previous leader in phase with this grid: its events exactly), else at tick k, never before
    it was made (the sample that shows it is at most tick k's): a rate limit then allows no more
    than the policy, at the cost of up to one interval of waiting. Legacy policies keep no events."""
    if params.legacy or t_s.size < 2:
        return norm
    empty = NormState.empty(norm.rec_values.shape[0], params)
    out = dataclasses.replace(norm, up_changes=empty.up_changes, up_times=empty.up_times,
                              down_changes=empty.down_changes, down_times=empty.down_times)
    for k in range(1, t_s.size):
        moved = actual[k] != actual[k - 1]
        if not moved.any():
            continue
        foreseen = moved & (decided[k - 1] == actual[k])
        for rows, when in ((foreseen, t_s[k - 1]), (moved & ~foreseen, t_s[k])):
            if rows.any():
                out = record_scale_events(out, params, actual[k - 1], actual[k], float(when), applied=rows)
    return out


def warm_start(policy, source, targets: Sequence[TargetRef], now: float) -> tuple[ScalingState | None, WarmStart]:
    """Rebuild the scaling state of ``targets`` (in that row order) at ``now`` from ``source``
    (``query_range`` as PrometheusSource's). Returns (the state, or None when nothing could be
    rebuilt, and what was done). Never raises for a Prometheus failure: the targets stay cold."""
    params = policy.params
    interval = max(params.interval_s, 1.0)
    ticks = int(np.ceil(warm_window_s(params) / interval))
    lo, hi = now - ticks * interval, now - interval
    name = getattr(getattr(source, "config", None), "safe_url", type(source).__name__)
    info = WarmStart(at=now, source=f"prometheus {name}", window_s=ticks * interval, from_s=lo, to_s=hi)
    keys = [t.key for t in targets]
    info.statefulsets = {t.key for t in targets if t.kind == "StatefulSet"}
    if not targets or not policy.queries:
        info.cold, info.error = keys, "no scaling metrics" if targets else None
        return None, info
    try:
        data = fetch_window(policy, source, targets, lo, hi, interval)
    except MetricsUnavailable as exc:
        info.cold, info.error = keys, f"history unavailable: {exc}"
        return None, info
    except ValueError as exc:  # e.g. an interval of a fraction of a second: no range query for it
        info.cold, info.error = keys, f"history not queried: {exc}"
        return None, info
    state, warm, info.last_replicas, info.last_decided = replay_state(policy, data)
    info.ticks = data.t_s.size
    info.warm = [k for k, w in zip(keys, warm) if w]
    info.cold = [k for k, w in zip(keys, warm) if not w]
    read = np.zeros(len(keys), bool)
    for values in data.metrics.values():
        read |= np.isfinite(values).any(axis=0)
    info.unread = [k for k, w, r in zip(keys, warm, read.tolist()) if w and not r]
    known = np.isfinite(data.actual)
    info.known_from = {k: float(data.t_s[np.argmax(known[:, i])]) for i, k in enumerate(keys)
                       if not warm[i] and known[:, i].any()}
    return (state if warm.any() else None), info


def fetch_window(policy, source, targets: Sequence[TargetRef], lo: float, hi: float, step_s: float) -> ReplayData:
    """Range queries for the policy's metrics and the replicas that ran, on the grid lo..hi."""
    labels = target_labels_of(source)
    queries, replicas_expr, replica_labels = plan_queries([policy], labels)
    t_s = time_grid(lo, hi, step_s)
    *answers, replicas = range_answers(source, [*queries, replicas_expr], lo, hi, step_s)
    metrics = {q: grid_values(a, targets, t_s, step_s, labels) for q, a in zip(queries, answers)}
    actual = grid_values(replicas, targets, t_s, step_s, replica_labels)
    return ReplayData(list(targets), t_s, step_s, metrics, actual)

