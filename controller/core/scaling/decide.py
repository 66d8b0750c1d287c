"""The decision: ``decide(params, observation, state, now) -> Decision``. Pure.

One call decides for every target of one policy at once: signal -> smooth -> propose ->
combine -> stabilize -> limit -> desired, each stage's output kept for the decision records.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import cached_property

import numpy as np

from controller.core.scaling import compiled, hpa_decide, hpa_normalize, signal_compiled, workspace
from controller.core.scaling import forecast as fc
from controller.core.scaling.hpa_propose import HpaProposals, PodSamples, hpa_propose
from controller.core.scaling.normalize import NormResult, NormState, normalize, record_scale_events
from controller.core.scaling.params import PolicyParams, Smoothing
from controller.core.scaling.propose import propose_policy
from controller.core.scaling.ramp import RampState, Ramps, apply_ramps
from controller.core.scaling.recovering import recovering
from controller.core.scaling.saturation import saturated, saturation_floor, saturation_values
from controller.core.scaling.signal import Signal, read_signal
from controller.core.scaling.smooth import SmoothState, smooth
from controller.core.scaling.stabilize import fresh_rows
from controller.model import REASON_CODES, DecisionRecord, direct_init


@direct_init  # one per policy and cycle
@dataclass(frozen=True)
class Observation:
    """What the shell observed for N targets and the policy's M metrics at ``now``.

    current: spec replicas (N,); ready: ready pods (N,); status: existing pods (N,);
    values: (N, M) metric values; present: (N, M) a series was found; sample_age_s: (N, M).
    pods: per-pod samples and pod states for the ``hpa`` preset's per-pod metrics (None: pods
    known only by the counts, each pod standing for the workload value). startup_s: (N,) the
    targets' observed pod start-up delays (s, NaN: not known; None: not observed), used by
    ramps whose lead follows them (core/scaling/startup.py). latest: (N, M) the ramps' latest
    readings (``ramp.latest``), NaN elsewhere; None without. withheld: (N,) spec replicas whose
    pods will not serve (core/scaling/withheld.py), sized on top of the proposals; None: none.
    """

    current: np.ndarray
    ready: np.ndarray
    status: np.ndarray
    values: np.ndarray
    present: np.ndarray
    sample_age_s: np.ndarray
    pods: PodSamples | None = None
    startup_s: np.ndarray | None = None
    #: (N, M) each ramp metric's latest reading (``ramp.latest``: the same rate over a shorter
    #: window; NaN: not read or not usable), None when the policy has none
    latest: np.ndarray | None = None
    withheld: np.ndarray | None = None

    @classmethod
    def of(cls, current, ready, values, present=None, sample_age_s=None, status=None,
           pods: PodSamples | None = None, withheld=None, latest=None) -> "Observation":
        """Build with defaults: every series present and fresh, status = current, none withheld,
        no latest readings (``latest``: (N, M) the ramps' latest readings, NaN: none)."""
        current = np.asarray(current, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64).reshape(current.shape[0], -1)
        return cls(
            current=current,
            ready=np.asarray(ready, dtype=np.float64),
            status=current if status is None else np.asarray(status, dtype=np.float64),
            values=values,
            present=np.ones(values.shape, bool) if present is None else np.asarray(present, bool),
            sample_age_s=np.zeros(values.shape) if sample_age_s is None else np.asarray(sample_age_s, np.float64),
            pods=pods,
            withheld=None if withheld is None else np.asarray(withheld, dtype=np.float64),
            latest=None if latest is None else np.asarray(latest, dtype=np.float64),
        )


@dataclass(frozen=True)
class ScalingState:
    """Everything ``decide`` remembers between cycles for N targets."""

    smooth: SmoothState
    norm: NormState
    forecast: tuple[fc.ForecastState, ...] = ()  # one per forecast metric (params.forecast_metrics)
    ramp: tuple[RampState, ...] = ()  # one per ramp metric (params.ramp_metrics)

    @classmethod
    def empty(cls, n: int, params: PolicyParams) -> "ScalingState":
        return cls(SmoothState.empty(n, len(params.metrics), params), NormState.empty(n, params),
                   tuple(fc.ForecastState.empty(n, params.metrics[j].forecast) for j in params.forecast_metrics),
                   tuple(RampState.empty(n, params.metrics[j].ramp) for j in params.ramp_metrics))

    def take(self, rows: np.ndarray) -> "ScalingState":
        """Reorder to a new target list: rows[i] is the old row of new target i, -1 if new."""
        return ScalingState(self.smooth.take(rows), self.norm.take(rows), tuple(f.take(rows) for f in self.forecast),
                            tuple(r.take(rows) for r in self.ramp))

    def refit(self, params: PolicyParams) -> "ScalingState":
        """This state for another policy's ``params`` over the same targets (an edited policy):
        the normalization memory refit (NormState.refit: recommendations and scale events kept),
        the smoothing, forecast and ramp states kept where their arrays have the shapes
        ``params`` gives them, else started afresh."""
        fresh = ScalingState.empty(self.size, params)
        return ScalingState(_kept(self.smooth, fresh.smooth), self.norm.refit(params),
                            _kept_all(self.forecast, fresh.forecast), _kept_all(self.ramp, fresh.ramp))

    @property
    def size(self) -> int:
        return self.norm.rec_values.shape[0]


def _kept(old, fresh):
    """``old`` when each of its array fields has the shape of ``fresh``'s, else ``fresh``."""
    shapes = [(np.shape(getattr(old, f.name)), np.shape(getattr(fresh, f.name))) for f in fields(fresh)
              if isinstance(getattr(fresh, f.name), np.ndarray)]
    return old if type(old) is type(fresh) and all(a == b for a, b in shapes) else fresh


def _kept_all(old: tuple, fresh: tuple) -> tuple:
    """Each of ``old`` kept as _kept says, when there are as many as ``fresh`` holds; else ``fresh``."""
    return tuple(map(_kept, old, fresh)) if len(old) == len(fresh) else fresh


@dataclass(frozen=True)
class Forecasts:
    """The forecast stage's outputs, (N, M) arrays, NaN (False) for metrics without a forecast.

    point, upper: forecast value and its upper bound one horizon ahead; error: recent MASE;
    trusted: the forecast counted; reactive, predictive: the proposals from the observed value
    and from ``upper`` (predictive NaN where not trusted). ``Decision.proposals`` is their max.
    """

    point: np.ndarray
    upper: np.ndarray
    error: np.ndarray
    trusted: np.ndarray
    reactive: np.ndarray
    predictive: np.ndarray
    columns: tuple[int, ...]  # the forecast metrics


def warm(params: PolicyParams, state: ScalingState, history: np.ndarray, times: np.ndarray) -> ScalingState:
    """The state after learning from history: (N, T, M) metric values (NaN where unknown) at
    times (T,), epoch seconds, before the first cycle. Only forecast metrics use it."""
    history = np.asarray(history, dtype=np.float64)
    states = tuple(fc.warm(params.metrics[j].forecast, f, history[:, :, j], times)
                   for j, f in zip(params.forecast_metrics, state.forecast))
    return replace(state, forecast=states)


def _forecast(params: PolicyParams, obs: Observation, sig: Signal, reactive: np.ndarray, valid: np.ndarray,
              states: tuple, now: float) -> tuple[np.ndarray, Forecasts, tuple]:
    """Run the forecast of every forecast metric; returns (proposals (N, M) = max(reactive,
    predictive) where the forecast is trusted, the outputs, the new states)."""
    shape = sig.values.shape
    point, upper, error = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    trusted = np.zeros(shape, bool)
    new_states = []
    for j, st in zip(params.forecast_metrics, states):
        res, st = fc.forecast_step(params.metrics[j].forecast, st, sig.values[:, j], sig.usable[:, j], now,
                                  obs.startup_s)
        point[:, j], upper[:, j], error[:, j], trusted[:, j] = res.point, res.upper, res.mase, res.trusted
        new_states.append(st)
    trusted &= valid
    pred, pred_ok = propose_policy(params, np.where(trusted, upper, np.nan), obs.current, obs.ready, obs.status,
                                   obs.withheld)
    pred_ok &= trusted
    # the predictive side only ever adds: it can raise a scale-up or hold a scale-down, never cause one
    proposals = np.where(pred_ok, np.fmax(reactive, pred), reactive)
    return proposals, Forecasts(point, upper, error, trusted, np.where(valid, reactive, np.nan),
                                np.where(pred_ok, pred, np.nan), params.forecast_metrics), tuple(new_states)


@direct_init
@dataclass(frozen=True)
class Decision:
    """The outcome for N targets: desired replicas, reasons, and every stage's output.

    ``kept`` is what the next cycle remembers whatever happens to the decision (smoothing,
    recommendations, forecasts); the scale events the changes would cause join it only for the
    changes that were applied: ``state_after(applied)``.
    """

    now: float
    current: np.ndarray  # (N,)
    ready: np.ndarray  # (N,)
    signal: Signal  # raw values and masks, (N, M)
    smoothed: np.ndarray  # (N, M)
    proposals: np.ndarray  # (N, M), NaN where not valid
    valid: np.ndarray  # (N, M)
    norm: NormResult  # combined, stabilized, desired, reasons (N,)
    kept: ScalingState  # the state without this decision's scale events
    params: PolicyParams | None = None
    forecasts: Forecasts | None = None  # when the policy forecasts a metric
    hpa: HpaProposals | None = None  # under preset: hpa, the calculator's result (utilization, errors)
    ramps: Ramps | None = None  # when a metric has a ramp stage
    latest: np.ndarray | None = None  # (N, M) the ramps' latest readings (Observation.latest), as observed
    observed: np.ndarray | None = None  # (N, M) the samples as observed (Observation.values): the records
    # show an implausible one (signal.values holds NaN there)

    def state_after(self, applied: np.ndarray | bool = True, replicas: np.ndarray | None = None) -> ScalingState:
        """The state for the next cycle once the changes of the ``applied`` rows ((N,) bool, or
        one bool for all) took effect: their scale events recorded, nobody else's. ``replicas``
        (N,): the counts actually set, when not ``desired`` (arbitration changed them)."""
        if self.params is not None and self.params.legacy:  # no events kept (record_scale_events): the
            return self.kept  # same state, without its masks (the hpa preset's every cycle)
        applied = np.asarray(applied, bool)  # (N,) or one bool: broadcasts in the masks below
        to = self.norm.desired if replicas is None else np.asarray(replicas, dtype=np.float64)
        if not (applied & (to != self.current)).any():
            return self.kept
        norm = record_scale_events(self.kept.norm, self.params, self.current, to, self.now, applied)
        return self.kept if norm is self.kept.norm else replace(self.kept, norm=norm)  # legacy: no events kept

    @property
    def state(self) -> ScalingState:
        """The state as if every change is applied (pure loops: tests, benches)."""
        return self.state_after(True)

    @property
    def desired(self) -> np.ndarray:
        """(N,) int64 desired replicas."""
        return self.norm.desired.astype(np.int64)

    @property
    def reason(self) -> np.ndarray:
        """(N,) Reason codes."""
        return self.norm.reason

    @property
    def changed(self) -> np.ndarray:
        """(N,) bool: desired differs from current, so the shell must act."""
        return self.norm.desired != self.current

    def record(self, i: int, policy: str, target: str, metric_names: tuple[str, ...]) -> DecisionRecord:
        """The decision record of row i: why each number."""
        def opt(x: float) -> float | None:
            return None if not np.isfinite(x) else float(x)

        n = self.norm
        return DecisionRecord(
            policy=policy, target=target, at=self.now, current=int(self.current[i]), ready=int(self.ready[i]),
            metrics=metric_names,
            raw=tuple(opt(v) for v in self.signal.values[i]),
            smoothed=tuple(opt(v) for v in self.smoothed[i]),
            proposals=tuple(None if not ok else int(p) for p, ok in zip(self.proposals[i], self.valid[i])),
            missing=tuple(bool(not u) for u in self.signal.usable[i]),
            combined=int(n.combined[i]) if np.isfinite(n.combined[i]) else int(self.current[i]),
            stabilized=int(n.stabilized[i]), limited=int(n.desired[i]), desired=int(n.desired[i]),
            reason=REASON_CODES[int(n.reason[i])],
            action="scale" if self.changed[i] else None,
            extra=self._extra_record(i, metric_names),
        )

    def _extra_record(self, i: int, metric_names: tuple[str, ...]) -> dict:
        extra = {}
        if self.forecasts is not None:
            extra["forecast"] = self._forecast_record(i, metric_names)
        if self.ramps is not None:
            extra["ramp"] = self.ramps.record(i, metric_names, float(self.current[i]), self.proposals[i])
        if self.signal.implausible[i].any():
            extra["implausible"] = self.implausible_record(i, metric_names)
        hit = self.saturated_metrics
        if hit is not None and hit[i].any():  # listed only where some metric is
            extra.update(self.saturated_record(i, metric_names))
        return extra

    def saturated_record(self, i: int, metric_names: tuple[str, ...]) -> dict:
        """Row i's saturated metrics (a row where ``saturated_metrics`` has one): ``saturated``, their
        names, and ``saturatedLatest``, those sized on a latest reading above the smoothed one."""
        hit = self.saturated_metrics
        out: dict = {"saturated": [name for j, name in enumerate(metric_names) if hit[i, j]]}
        if self.latest is not None:  # the saturated metrics sized on their latest reading (saturation_values)
            above = {name: float(self.latest[i, j]) for j, name in enumerate(metric_names)
                     if hit[i, j] and self.latest[i, j] > self.smoothed[i, j]}
            if above:
                out["saturatedLatest"] = above
        return out

    def implausible_record(self, i: int, metric_names: tuple[str, ...]) -> dict:
        """Per implausible metric of row i: the sample as observed and the bound it is above (signal.py)."""
        def opt(a: np.ndarray | None, j: int) -> float | None:
            return None if a is None else float(a[j])

        bound = None if self.params is None else self.params.metric_implausible_above
        row = None if self.observed is None else np.asarray(self.observed)[i]
        return {name: {"value": opt(row, j), "above": opt(bound, j)}
                for j, name in enumerate(metric_names) if self.signal.implausible[i, j]}

    @cached_property
    def saturated_metrics(self) -> np.ndarray | None:
        """(N, M) bool: the valid metrics that read at their Ready pods' capacity (saturation.py),
        for the records; None when no metric has a saturation floor. Once per decision."""
        if self.params is None or not self.params.saturation_metrics:
            return None
        return saturated(self.params, saturation_values(self.smoothed, self.latest), self.ready) & self.valid

    def _forecast_record(self, i: int, metric_names: tuple[str, ...]) -> dict:
        """Per forecast metric: the forecast, its bound and error, both proposals, whether it counted."""
        f = self.forecasts

        def opt(x: float) -> float | None:
            return None if not np.isfinite(x) else float(x)

        def count(x: float) -> int | None:
            return None if not np.isfinite(x) else int(x)

        return {name: {"forecast": opt(f.point[i, j]), "upper": opt(f.upper[i, j]), "error": opt(f.error[i, j]),
                       "trusted": bool(f.trusted[i, j]), "reactive": count(f.reactive[i, j]),
                       "predictive": count(f.predictive[i, j])}
                for j, name in enumerate(metric_names) if j in f.columns}

    def records(self, policy: str, targets: list[str], metric_names: tuple[str, ...]) -> list[DecisionRecord]:
        return [self.record(i, policy, t, metric_names) for i, t in enumerate(targets)]


def decide(params: PolicyParams, obs: Observation, state: ScalingState, now: float,
           own_state: bool = False, outputs: hpa_decide.OneCallOutputs | None = None) -> Decision:
    """Decide for every target of one policy. Pure: same inputs, same Decision.

    Runs the compiled kernel (core/scaling/compiled.py) when it covers the policy, else numpy stages
    (for the ``hpa`` preset without behavior, its signal and normalize stages compiled:
    core/scaling/signal_compiled.py, core/scaling/hpa_normalize.py; in the common case every
    stage in one compiled call, core/scaling/hpa_decide.py). ``own_state``: the caller
    gives ``state`` up (it keeps the decision's ``kept`` instead), so the ``hpa`` preset's
    recommendation history may be updated in place rather than copied: the same Decision.
    ``outputs``: the arrays the ``hpa`` preset's one call writes its outputs into (reused from
    cycle to cycle by a caller that reads each decision before the next), else new ones.
    """
    if compiled.enabled() and compiled.supports(params):
        try:
            return _decide_compiled(params, obs, state, now)
        except compiled.KERNEL_ERRORS as exc:
            compiled.mark_broken(exc)
    if compiled.enabled() and hpa_normalize.supports(params):  # the hpa preset: its signal and normalize stages compiled
        one_call = hpa_decide.try_decide(params, obs, state.norm, now, own_state, outputs)  # the common case: one kernel
        if one_call is not None:
            return _hpa_decision(params, obs, state, now, *one_call)
        stage = hpa_normalize.normalize_in_place if own_state else hpa_normalize.normalize_compiled
        return decide_numpy(params, obs, state, now, normalize_stage=stage,
                            signal_stage=signal_compiled.read_signal_fast)
    return decide_numpy(params, obs, state, now)


def _hpa_decision(params: PolicyParams, obs: Observation, state: ScalingState, now: float, sig: Signal,
                  proposals: np.ndarray, valid: np.ndarray, hpa: HpaProposals, result: NormResult,
                  norm_state: NormState) -> Decision:
    """The Decision of the ``hpa`` preset's stages run in one call (core/scaling/hpa_decide.py),
    as decide_numpy makes it of them: no smoothing (the signal's values), no forecast or ramp."""
    return Decision(now, obs.current, obs.ready, sig, sig.values, proposals, valid, result,
                    ScalingState(state.smooth, norm_state, state.forecast, state.ramp), params, None, hpa, None,
                    obs.latest, obs.values)


def _decide_compiled(params: PolicyParams, obs: Observation, state: ScalingState, now: float) -> Decision:
    """The same Decision from the fused kernel (core/scaling/fused.py), run on a workspace holding
    a copy of the state (identical arrays; tests/core/test_compiled.py)."""
    ws = workspace.DecisionWorkspace.from_state(params, state, share_events=True)  # read only: never committed
    workspace.decide_into(params, ws, obs, now)
    kept = ws.state(copy=False)  # the workspace is this call's own
    smooth_state = state.smooth if params.smoothing == Smoothing.NONE else kept.smooth
    return ws.decision(obs, now, ScalingState(smooth_state, kept.norm, kept.forecast, kept.ramp))


def decide_numpy(params: PolicyParams, obs: Observation, state: ScalingState, now: float,
                 normalize_stage=normalize, signal_stage=read_signal) -> Decision:
    """The numpy stages, one after the other: the reference the compiled kernel is tested against.
    ``normalize_stage``: normalize.normalize or a compiled twin (hpa_normalize.normalize_compiled);
    ``signal_stage``: signal.read_signal or its compiled twin (signal_compiled.read_signal_fast)."""
    sig = signal_stage(obs.values, obs.present, obs.sample_age_s, params.stale_after_s, params.metric_nonnegative,
                       params.metric_implausible_above)
    smoothed, smooth_state = smooth(params, sig.values, sig.usable, state.smooth, now)
    hpa = None
    if params.hpa_semantics:
        proposals, valid, hpa = _propose_hpa(params, obs, smoothed, sig.usable)
    else:
        proposals, valid = propose_policy(params, smoothed, obs.current, obs.ready, obs.status, obs.withheld)
        valid &= sig.usable
        proposals = saturation_floor(params, proposals, valid, smoothed, obs.ready, obs.withheld, obs.latest)
    forecasts, forecast_states = None, state.forecast
    if params.forecast_metrics:
        proposals, forecasts, forecast_states = _forecast(params, obs, sig, proposals, valid, state.forecast, now)
    ramps, ramp_states = None, state.ramp
    if params.ramp_metrics:
        proposals, ramps, ramp_states = apply_ramps(params, sig.values, sig.usable, proposals, valid, obs.current,
                                                    obs.ready, obs.status, state.ramp, now, obs.startup_s,
                                                    obs.latest, obs.withheld)
    release = fresh_rows(obs.present, obs.sample_age_s, params.interval_s) if params.scale_down_linear_release else None
    if params.hpa_semantics:  # HPA has no recovery rule: the preset scales as HPA does
        result, norm_state = normalize_stage(params, obs.current, proposals, valid, state.norm, now, release, obs.ready)
    else:  # readings less than a read window after a gap may not lower replicas (core/scaling/recovering.py)
        partial, usable_since = recovering(sig.usable, state.norm.usable_since, params.metric_read_windows, now)
        result, norm_state = normalize_stage(params, obs.current, proposals, valid, state.norm, now, release, obs.ready,
                                             partial=partial)
        norm_state = replace(norm_state, usable_since=usable_since)
    return Decision(now, obs.current, obs.ready, sig, smoothed, np.where(valid, proposals, np.nan), valid, result,
                    ScalingState(smooth_state, norm_state, forecast_states, ramp_states), params, forecasts, hpa, ramps,
                    obs.latest, obs.values)


def _propose_hpa(params: PolicyParams, obs: Observation, values: np.ndarray, usable: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, HpaProposals]:
    """The ``hpa`` preset's propose stage (core/scaling/hpa_propose.py): (proposals (N, M), valid (N, M),
    the calculator's result). A metric read per pod is valid when the calculator found usable
    samples, whatever its workload-level column holds."""
    hpa = hpa_propose(params, obs.current, obs.ready, obs.status, values, usable, obs.pods)
    read_per_pod = np.zeros(values.shape[1], bool) if obs.pods is None else np.asarray(obs.pods.per_pod, bool)
    valid = hpa.valid & (usable | read_per_pod)
    return np.where(valid, hpa.replicas.astype(np.float64), np.nan), valid, hpa
