"""In-place decisions: the state and outputs of one policy's N targets in preallocated arrays.

``decide`` is pure: every call copies the state and allocates a Decision. A loop that decides
the same targets cycle after cycle (the simulator, the benches) can instead keep a
:class:`DecisionWorkspace` and call :func:`decide_into`: one fused compiled kernel
(core/scaling/fused.py) reads the observation, writes the outputs into the workspace's arrays
and updates its state in place, without allocating.

Scale events follow ``Decision.state_after``: they join the state only for the changes that
were applied. ``decide_into`` leaves them pending (the current counts of the cycle); the caller
calls :meth:`DecisionWorkspace.commit` with the rows whose change was applied (and the counts
actually set). A cycle not committed records no event; the next ``decide_into`` drops it.

Only policies the kernel covers (``compiled.supports``; ``decide`` keeps the numpy stages for
the others) and only with numba (``compiled.available()``); the SETPOINT_COMPILED switch is
``decide``'s, a caller of this API chose the kernel. A new target list: round-trip through
``ws.state().take(rows)`` and ``from_state``. Shapes: N targets, M metrics.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from controller.core.scaling import compiled, fused
from controller.core.scaling.forecast_compiled import CompiledForecasts
from controller.core.scaling.normalize import NormResult, NormState
from controller.core.scaling.params import PolicyParams, Smoothing
from controller.core.scaling.ramp import RampState, Ramps
from controller.core.scaling.signal import Signal
from controller.core.scaling.smooth import SmoothState


@dataclass(eq=False)
class DecisionWorkspace:
    """State (carried between cycles, updated in place) and outputs (overwritten by each
    ``decide_into``) of one policy's N targets, in a few packed arrays (the kernel's arguments:
    each costs its call ~0.15 us) of which the named fields are views. The per-target arrays
    are C-ordered for the per-target kernel; the histories of recommendations (the kernel scans
    them slot by slot across targets) and scale events are stored (slot, target), so that their
    (N, slots) views are Fortran-ordered as in ScalingState.

    State: ewma, ewma_at (N, M); samples, sample_at (N, M, W); ramp_values, ramp_times (R, N, K)
    for the R ramp metrics (K: the longest; each metric uses its own slot count); rec_values,
    rec_times (N, H); up/down changes and times (N, E); missing_since (N,). Derived (the kernel
    keeps them; only it changes rec_times, sample_at and ramp_times): rows (H + 1 + 3W + 1 +
    R(2K + 1),) the times common to most targets' recommendation slots and a flag (0.0: not known
    yet), the _F_LOCK row of vf (1.0: the target's times are those), so that the window pass tests
    each slot's time once (fused._recommendation_windows); then the same for the window samples
    (fused._sample_pattern; plane 6 of out_b flags the series on it) and for each ramp's samples
    (fused._ramp_plan; plane 7 of out_b, in the ramp's column); the _F_LAST_EVENT row of vf: each target's latest
    scale event time (taken from the events on the first decide_into, then kept by commit), which
    bounds the others' (the rate limits skip the sums when it is outside their period).
    Outputs: out_f2 (3, N, M) signal values, smoothed, proposals (NaN where not valid); out_b2
    (9, N, M) missing, stale, nonfinite, negative, usable, valid (planes 6 and 7: state, see rows),
    implausible;
    ramp_out (3, N, M) slope, ahead, ramp proposal (NaN outside ramp metrics); out_f1 (4, N)
    combined, proposal, stabilized, desired; out_i1 (2, N) limit reason, reason; active (N,).
    Pending: the cycle's current (N,) and time, until ``commit``; all_rows: (N,) True (commit's
    default). Deferred: ``commit()`` of every change to desired (the common case) records its
    events in the next ``decide_into``'s kernel call (its time in ``deferred_at``, NaN: none),
    or when the events are read first (up_changes, up_times, down_changes, down_times, state(),
    :meth:`flush`): read the raw up, down and vf arrays only after a flush.
    Packed (fused.fused_kernel's arguments): em (4, N, M) negated EWMA weights, ewma, ewma_at, usable_since
    (NormState.usable_since: recovering.py); win
    (2, N, M, W); ramp (2, R, N, K); rec (2, H, N); rows; up, down (2, E, N); vf (16, N) and vi (3, N)
    (fused._F_* and _I_* rows); out_f (6, N, M) out_f2 then ramp_out; pv the parameters
    (fused.pack_params).
    """

    params: PolicyParams
    pv: np.ndarray
    em: np.ndarray
    win: np.ndarray
    ramp: np.ndarray
    rec: np.ndarray
    rows: np.ndarray
    up: np.ndarray
    down: np.ndarray
    vf: np.ndarray
    vi: np.ndarray
    out_f: np.ndarray
    out_b2: np.ndarray
    active: np.ndarray
    buf: np.ndarray
    all_rows: np.ndarray
    pending_at: float | None = None
    no_startup: np.ndarray | None = None  # (N,) NaN: the start-up delays of an observation without them
    no_latest: np.ndarray | None = None  # (N, M) NaN: the ramps' latest readings of an observation without them
    no_withheld: np.ndarray | None = None  # (N,) zeros: the withheld replicas of an observation without them
    # the forecast stage's state and outputs (forecast_compiled.py), None without forecast metrics;
    # floor (N, M): its predictive proposals for the fused kernel (all NaN without forecasts)
    forecast: CompiledForecasts | None = None
    floor: np.ndarray | None = None
    # (3,) the age every EWMA series shared last cycle, the half-life and numpy's expm1 of their
    # exponent; (N * M,) int64 scratch: the series of other ages (_ewma_alpha_into)
    ewma_memo: np.ndarray = dataclasses.field(default_factory=lambda: np.full(3, np.nan))
    ewma_odd: np.ndarray | None = None
    # the time of a commit of every change to desired not recorded yet (NaN: none; see commit),
    # and the number of events it records (the kernel's count, for commit's answer)
    deferred_at: float = math.nan
    events_if_all: int = 0
    # decision(copy=False)'s outputs, views of the arrays above made on its first call (~13 us a
    # cycle for 1,000 targets and 2 metrics): the views do not change, their values do
    _views: tuple | None = None

    def __post_init__(self) -> None:
        self.alpha, self.ewma, self.ewma_at, self.usable_since = self.em
        self.samples, self.sample_at = self.win
        self.ramp_values, self.ramp_times = self.ramp
        self.rec_values, self.rec_times = self.rec[0].T, self.rec[1].T
        self.missing_since, self.pending_current = self.vf[fused._F_MISSING_SINCE], self.vf[fused._F_PENDING]
        self.out_f1 = self.vf[:4]
        self.out_i1 = self.vi[:2]
        self.out_f2, self.ramp_out = self.out_f[:3], self.out_f[3:]
        self._desired, self._reason = self.vf[fused._F_DESIRED], self.vi[fused._I_REASON]  # made once: ~0.5 us a view

    @classmethod
    def from_state(cls, params: PolicyParams, state, share_events: bool = False) -> "DecisionWorkspace":
        """A workspace holding a copy of ``state`` (a ScalingState of ``params``). Raises
        ValueError for a policy the kernel does not cover (compiled.supports).
        ``share_events``: the events are copied (packed) anyway; the forecasts' seasonal profiles
        are shared with ``state`` until a cycle writes them (then copied: ``state`` is never changed)."""
        if not compiled.supports(params):
            raise ValueError(f"policy {params.name!r} is not covered by the compiled kernel (the hpa preset, "
                             f"median or percentile smoothing): use decide()")
        n, m = state.size, len(params.metrics)
        sm, nm = state.smooth, state.norm
        em = np.empty((4, n, m))
        em[0], em[1], em[2] = -1.0, sm.ewma, sm.ewma_at
        em[3] = np.nan if nm.usable_since is None or nm.usable_since.shape != (n, m) else nm.usable_since
        win = np.empty((2, *sm.samples.shape))
        win[0], win[1] = sm.samples, sm.sample_at
        k = max((r.values.shape[1] for r in state.ramp), default=0)
        ramp = np.empty((2, len(state.ramp), n, k))
        ramp[0], ramp[1] = 0.0, np.nan
        for r, st in enumerate(state.ramp):
            ramp[0, r, :, :st.values.shape[1]], ramp[1, r, :, :st.times.shape[1]] = st.values, st.times

        def slotted(values, times) -> np.ndarray:  # (N, E) pair -> (2, E, N)
            out = np.empty((2, values.shape[1], n))
            out[0], out[1] = values.T, times.T
            return out

        vf = np.full((fused._F_ROWS, n), np.nan)
        vf[fused._F_MISSING_SINCE] = nm.missing_since
        vf[fused._F_LIT_AT], vf[fused._F_DARK_SINCE], vf[fused._F_HOLD_UNTIL] = nm.lit_at, nm.dark_since, nm.hold_until
        if state.ramp:  # every ramp keeps the same times (ramp.apply_ramps)
            vf[fused._F_DARK_AT] = state.ramp[0].dark_at
        vf[fused._F_PENDING] = 0.0
        vf[fused._F_LOCK] = 0.0
        forecast = (CompiledForecasts.from_states(params, state.forecast, n, share=share_events)
                    if params.forecast_metrics else None)
        rec = slotted(nm.rec_values, nm.rec_times)
        # the flags 0.0: patterns not known yet (recommendations, window samples, each ramp's)
        rows = np.zeros(rec.shape[1] + 1 + 3 * win.shape[3] + 1 + ramp.shape[1] * (2 * k + 1))
        return cls(params, fused.pack_params(params), em, win, ramp, rec, rows,
                   slotted(nm.up_changes, nm.up_times), slotted(nm.down_changes, nm.down_times), vf,
                   np.zeros((fused._I_ROWS, n), np.int64), out_f=np.full((6, n, m), np.nan),
                   out_b2=np.zeros((9, n, m), np.bool_), active=np.zeros(n, np.bool_),
                   buf=np.empty(sm.samples.shape[2]), all_rows=np.ones(n, np.bool_),
                   no_startup=np.full(n, np.nan), no_latest=np.full((n, m), np.nan), no_withheld=np.zeros(n),
                   forecast=forecast,
                   ewma_odd=np.empty(n * m, np.int64),
                   floor=np.full((n, m), np.nan) if forecast is None else forecast.floor)

    @classmethod
    def empty(cls, params: PolicyParams, n: int) -> "DecisionWorkspace":
        from controller.core.scaling.decide import ScalingState  # noqa: PLC0415 (decide imports this module)

        return cls.from_state(params, ScalingState.empty(n, params))

    @property
    def size(self) -> int:
        return self.missing_since.shape[0]

    # -- scale events (N, E) views, a deferred commit recorded first
    @property
    def up_changes(self) -> np.ndarray:
        return self.flush().up[0].T

    @property
    def up_times(self) -> np.ndarray:
        return self.flush().up[1].T

    @property
    def down_changes(self) -> np.ndarray:
        return self.flush().down[0].T

    @property
    def down_times(self) -> np.ndarray:
        return self.flush().down[1].T

    def flush(self) -> "DecisionWorkspace":
        """Record a deferred commit (see commit) now; returns the workspace."""
        at = self.deferred_at
        if at == at:
            fused.commit_all_kernel(self.vf, at, self.up, self.down, self.pv)
            self.deferred_at = math.nan
        return self

    # -- outputs (views, overwritten by the next decide_into)
    @property
    def desired(self) -> np.ndarray:
        """(N,) float desired replicas of the last cycle."""
        return self._desired

    @property
    def reason(self) -> np.ndarray:
        """(N,) Reason codes of the last cycle."""
        return self._reason

    def signal(self) -> Signal:
        return _signal(self.out_f2[0], self.out_b2)

    def norm_result(self) -> NormResult:
        return NormResult(*self.out_f1, *self.out_i1, self.active)

    def ramps(self) -> Ramps | None:
        if not self.params.ramp_metrics:
            return None
        return Ramps(*self.ramp_out, self.params.ramp_metrics)

    def decision(self, obs, now: float, kept=None, copy: bool = False):
        """The Decision of the last ``decide_into`` of ``obs`` at ``now``: ``kept`` the state it
        leaves (None: still held by this workspace, see commit); ``copy``: outputs copied, for a
        decision that outlives the next ``decide_into``."""
        from controller.core.scaling.decide import Decision  # noqa: PLC0415 (decide imports this module)

        if copy:
            sig, smoothed, proposals, valid, norm, ramps = self._outputs(lambda a: a.copy())
        else:  # the workspace's own arrays: the same views every cycle, made once
            if self._views is None:
                self._views = self._outputs(lambda a: a)
            sig, smoothed, proposals, valid, norm, ramps = self._views
        forecasts = None if self.forecast is None else self.forecast.forecasts(copy)
        return Decision(now, obs.current, obs.ready, sig, smoothed, proposals, valid, norm, kept, self.params,
                        forecasts=forecasts, ramps=ramps, latest=getattr(obs, "latest", None),
                        observed=obs.values)

    def _outputs(self, out) -> tuple:
        """The last cycle's outputs as a Decision holds them, each array passed through ``out``
        (a copy, or the array itself): (signal, smoothed, proposals, valid, norm result, ramps)."""
        f2, b2 = out(self.out_f2), out(self.out_b2)
        sig = _signal(f2[0], b2)
        smoothed = sig.values if self.params.smoothing == Smoothing.NONE else f2[1]
        ramps = Ramps(*out(self.ramp_out), self.params.ramp_metrics) if self.params.ramp_metrics else None
        norm = NormResult(*out(self.out_f1), *out(self.out_i1), out(self.active))
        return sig, smoothed, f2[2], b2[5], norm, ramps

    # -- state
    def commit(self, applied: np.ndarray | bool = True, replicas: np.ndarray | None = None) -> int:
        """Record the pending scale events of the ``applied`` rows ((N,) bool, or one bool for
        all): |replicas - current| per direction, ``replicas`` (N,) the counts actually set
        (default: desired). Decision.state_after's rule, in place; a second commit of the same
        cycle records nothing. Returns the number of events recorded.

        Every change to desired (the defaults, the common case) is recorded by the next
        ``decide_into``'s kernel, before it reads the events (or by :meth:`flush` when they are
        read first): the same events, without a kernel call of its own."""
        at, self.pending_at = self.pending_at, None
        if at is None or self.params.legacy or applied is False:  # legacy policies keep no events
            return 0
        if applied is True and replicas is None:  # the common case: every change, to desired
            self.deferred_at = at
            return self.events_if_all
        if applied is True:
            rows = self.all_rows
        else:
            rows = np.ascontiguousarray(np.broadcast_to(np.asarray(applied, np.bool_), self.all_rows.shape))
        to = self.desired if replicas is None else np.ascontiguousarray(replicas, dtype=np.float64)
        return int(fused.commit_kernel(self.pending_current, to, rows, at, self.up, self.down, self.pv,
                                       self.vf[fused._F_LAST_EVENT]))

    def state(self, copy: bool = True):
        """The state as a ScalingState (Fortran-ordered histories like the numpy stages'),
        without the pending scale events. ``copy=False``: views where the layout allows, for a
        workspace nobody decides into again (decide's)."""
        from controller.core.scaling.decide import ScalingState  # noqa: PLC0415

        self.flush()

        def f(a) -> np.ndarray:
            return np.array(a, order="F") if copy else np.asfortranarray(a)

        def c(a) -> np.ndarray:
            return a.copy() if copy else a

        smooth = SmoothState(c(self.ewma), c(self.ewma_at), c(self.samples), c(self.sample_at))
        norm = NormState(f(self.rec_values), f(self.rec_times), f(self.up_changes), f(self.up_times),
                         f(self.down_changes), f(self.down_times), c(self.missing_since),
                         c(self.vf[fused._F_LIT_AT]), c(self.vf[fused._F_DARK_SINCE]), c(self.vf[fused._F_HOLD_UNTIL]),
                         c(self.usable_since))
        ramps = tuple(RampState(np.array(self.ramp_values[r, :, :k], order="F"),
                                np.array(self.ramp_times[r, :, :k], order="F"), self.vf[fused._F_DARK_AT].copy())
                      for r, k in enumerate(self._ramp_slots()))
        forecast = () if self.forecast is None else self.forecast.states(copy)
        return ScalingState(smooth, norm, forecast, ramps)

    def _ramp_slots(self) -> list[int]:
        return [self.params.metrics[j].ramp.slots for j in self.params.ramp_metrics]


def _ewma_alpha_into(out: np.ndarray, ewma_at: np.ndarray, now: float, half_life_s: float,
                     memo: np.ndarray | None = None, odd: np.ndarray | None = None) -> None:
    """The negated EWMA weights expm1(-ln2 max(now - ewma_at, 0) / half_life_s) into ``out``
    (-1 for half_life_s <= 0): smooth.ewma_alpha's operations, numpy's expm1, bit for bit; the
    kernel negates them. ``memo`` (3,) (the workspace's ewma_memo): an age, a half-life and the
    weight numpy's expm1 gave them; the series of that age get it without expm1 and the others'
    exponents go through numpy's expm1 (see fused.ewma_exponent_into). ``odd`` (N * M,) int64:
    scratch (the workspace's ewma_odd)."""
    if memo is None:
        memo = np.full(3, np.nan)
    if odd is None:
        odd = np.empty(out.size, np.int64)
    count = fused.ewma_exponent_into(out, ewma_at, now, float(half_life_s), memo, odd)
    if count == 0:
        return
    flat = out.reshape(-1)  # a view: out is C-contiguous
    if count == flat.shape[0]:  # no weight from the memo, no series never sampled: in place
        np.expm1(flat, out=flat)
    else:  # elementwise: a value's expm1 does not depend on its place in the array (nor its length)
        at = odd[:count]
        flat[at] = np.expm1(flat[at])
    if memo[2] != memo[2]:  # the memo took the first other series' age: its weight
        memo[2] = flat[odd[0]]


_F64, _BOOL = np.dtype(np.float64), np.dtype(np.bool_)
_contiguous = np.ascontiguousarray  # the observation's arrays as the kernels take them (no copy when they are)


def decide_into(params: PolicyParams, ws: DecisionWorkspace, obs, now: float) -> DecisionWorkspace:
    """Decide for the workspace's N targets at ``now`` (epoch s) from ``obs`` (an Observation,
    or anything with its current, ready, status (N,) and values, present, sample_age_s (N, M)):
    outputs overwritten, state updated in place, this cycle's scale events pending until
    ``ws.commit``. Raises ValueError for a workspace of another policy or size, or arrays of
    other shapes (before the state is touched). Called once per policy and cycle, so its Python
    is kept short (no helper calls: ~4 -> ~2.5 us around the kernel's own call, one target)."""
    if not compiled.available():  # also loads numba: the kernels are compiled (or read from the cache) on first use
        raise RuntimeError("compiled kernels unavailable (numba missing or broken): use decide()")
    if ws.params is not params:
        raise ValueError(f"workspace of policy {ws.params.name!r}, not {params.name!r}")
    values, current = _contiguous(obs.values, _F64), _contiguous(obs.current, _F64)
    shape, size = values.shape, current.shape
    if shape != ws.ewma.shape or size != ws.missing_since.shape:
        raise ValueError(f"observation of shape {shape}, workspace for {ws.ewma.shape}")
    startup = getattr(obs, "startup_s", None)  # (N,) observed start-up delays, for leads that follow them
    if startup is None:
        startup = ws.no_startup if ws.no_startup is not None else np.full(size, np.nan)
    else:
        startup = _contiguous(startup, _F64)
    latest = getattr(obs, "latest", None)  # (N, M) the ramps' latest readings (ramp.latest)
    if latest is None:  # no readings: the window slopes
        latest = ws.no_latest if ws.no_latest is not None else np.full(shape, np.nan)
    else:
        latest = _contiguous(latest, _F64)
    present, age = _contiguous(obs.present, _BOOL), _contiguous(obs.sample_age_s, _F64)
    ready, status = _contiguous(obs.ready, _F64), _contiguous(obs.status, _F64)
    withheld = getattr(obs, "withheld", None)  # (N,) spec replicas whose pods will not serve (withheld.py)
    if withheld is None:
        withheld = ws.no_withheld if ws.no_withheld is not None else np.zeros(size)
    else:
        withheld = _contiguous(withheld, _F64)
    # every array checked before the state is touched: the kernels do not check bounds, and a
    # workspace kept across cycles must not be left half-stepped by a bad observation
    if latest.shape != shape:
        raise ValueError(f"observation latest of shape {latest.shape}, values {shape}")
    if (present.shape != shape or age.shape != shape
            or not size == ready.shape == status.shape == startup.shape == withheld.shape):
        raise ValueError(f"observation arrays of shapes values {shape}, present {present.shape}, "
                         f"sample_age_s {age.shape}, current {size}, ready {ready.shape}, "
                         f"status {status.shape}, startup_s {startup.shape}, withheld {withheld.shape}")
    if params.smoothing == Smoothing.EWMA:
        _ewma_alpha_into(ws.alpha, ws.ewma_at, now, params.half_life_s, ws.ewma_memo, ws.ewma_odd)
    now = float(now)
    forecast = ws.forecast
    if forecast is not None:  # the forecast stage first: its predictive proposals are the kernel's floor
        forecast.step(values, present, age, current, ready, status, withheld, startup, now)
    ws.events_if_all = fused.fused_kernel(values, present, age, current, ready, status, withheld, startup, ws.floor,
                                          ws.pv, now, ws.deferred_at, ws.em, ws.win, ws.ramp, ws.rec, ws.rows, ws.up,
                                          ws.down, ws.vf, ws.out_f, ws.out_b2, ws.vi, ws.active, ws.buf, latest)
    ws.deferred_at = math.nan  # recorded by the kernel, first
    if forecast is not None:
        forecast.finish(ws.out_f[1], ws.out_b2[5], latest, current, ready, status, withheld)
    ws.pending_at = now
    return ws


def _signal(values: np.ndarray, planes: np.ndarray) -> Signal:
    """The Signal of the kernel's outputs: ``values`` (N, M) and its (9, N, M) bool planes (fused_kernel's out_b)."""
    return Signal(values, *planes[:4], planes[8], planes[4])
