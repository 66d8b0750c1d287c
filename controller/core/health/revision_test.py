"""Sequential comparison of a new revision with the stable one, for many targets at once.

During a rolling update the new revision's pods and the stable revision's pods serve the same
traffic side by side; comparing them tells a bad release long before the workload as a whole
breaches its SLO. Each revision check runs one sequential probability ratio test per target
(Wald's SPRT with Ville's bound):

    H0: the new revision is no worse (ratio of the error rates, or of the median latencies, 1)
    H1: the new revision is worse by the stated effect size ``worse_by`` (e.g. 2 = twice)

The log likelihood ratio (LLR) of H1 against H0 is summed over cycles. Under H0 the
likelihood ratio is a non-negative martingale, so by Ville's inequality the probability that
it *ever* reaches 1/alpha is at most alpha: the verdict BAD at ``llr >= log(1/alpha)`` has a
false-rollback rate of at most ``false_rate`` per rollout, however long it is watched. GOOD at
``llr <= log(miss_rate)`` (by the same bound under H1, a revision worse by ``worse_by`` is
called good with probability at most ``miss_rate``). A verdict is final for that pair of
revisions: more evidence never flips BAD to GOOD. Until the new revision has served
``min_requests`` requests the verdict stays UNDECIDED, never BAD.

Ratio (errors / requests). The stable revision's error rate is not assumed known: it has a
posterior from its recorded baseline, E0 errors in N0 requests (its recent traffic before the
rollout, forgotten with a half-life, plus its pods' traffic during it). The statistic is the
predictive likelihood ratio of the new revision's totals, e1 errors in n1 requests, with that
rate integrated out (Poisson errors, a Gamma(E0, N0) posterior):

    LLR = e1 log r + (E0 + e1) log((N0 + n1) / (N0 + r n1))

It is a ratio of two mixture likelihoods of the same data, hence a martingale under H0, and the
baseline's own noise is accounted for (a small baseline limits the evidence, a long one makes
the comparison nearly one with a known rate: ~2.5 times the information of the side-by-side
pods alone in a rollout of a few minutes). This holds while the baseline still describes the
present. It does not when the stable revision's own pods, serving beside the new ones, have
drifted from it (errors rising for every pod: a dependency, an overload): once their totals
against their baseline reach a quarter of the evidence of a verdict (LLR >= log(1/alpha) / 4;
final for the test), only the side-by-side comparison counts, summed per cycle where both
revisions served: given the total errors of both revisions, the new revision's share is
binomial with p = r*n1 / (r*n1 + n0), which needs no estimate of the stable error rate at all;
plus the comparison with the baseline of the new revision's totals after the stable one stopped
serving (as above). The guard is a race between two noisy sums: when every pod's error rate
jumps at the release, the new revision can reach its verdict first; tests/core/test_revision_test.py measures that false-rollback rate at
up to ~3.5 times the configured one (1.5x to 4x jumps), against ~10 times without the guard. A
stable revision whose errors hold steady (the simulator's; most releases) keeps the full gain.

Latency (one sample per pod, e.g. each pod's p95). Per cycle, the difference of the two
revisions' mean log latencies d is normal with variance s^2 (1/m1 + 1/m0) (s^2 the pooled
variance of the log samples, floored at ``sigma_floor``^2); H1 shifts it by log(worse_by).
Only cycles with pods of both revisions count (no baseline after the rollout: a latency shift
then could be the load).

Shapes: N targets, C revision checks. Sufficient statistics per revision and cycle are (N, C, 3):
ratio: (requests, errors, 0); latency: (pods, sum of log latency, sum of squared log latency).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import numpy as np

from controller.core.history import take_rows
from controller.model import CodeEnum


class Verdict(CodeEnum):
    UNDECIDED = 0
    BAD = 1
    GOOD = 2


class Measure(CodeEnum):
    RATIO = 0  # errors / requests
    LATENCY = 1  # one latency sample per pod


@dataclass(frozen=True)
class RevisionTestParams:
    """One revision check, compiled.

    worse_by: the effect size that matters, a ratio > 1 (2.0: twice the error ratio or twice
    the median latency). false_rate: the false-rollback rate accepted per rollout (alpha).
    miss_rate: the chance of calling a revision worse by ``worse_by`` good (beta).
    min_requests: requests the new revision must have served before any verdict; the default
    (None) is the fewest that can carry the evidence, ceil(log(1/alpha) / log(worse_by)).
    sigma_floor: the least standard deviation of log latency assumed (a floor on the pooled
    estimate, so a few near-identical pods cannot make a tiny difference significant).
    rollback: a BAD verdict rolls back (else it is only recorded).
    baseline_half_life_s: the current revision's totals, the baseline its successor is compared
    with, forget older traffic with this half-life (recent behaviour, not the whole history).
    hold_max_s: hold the rollout (pause it) while this check is undecided, for at most this long
    (None: never hold; see controller/core/health/rollout_hold.py).
    """

    name: str
    measure: Measure = Measure.RATIO
    worse_by: float = 2.0
    false_rate: float = 0.01
    miss_rate: float = 0.05
    min_requests: float | None = None
    sigma_floor: float = 0.05
    rollback: bool = True
    baseline_half_life_s: float = 600.0
    hold_max_s: float | None = None

    def __post_init__(self) -> None:
        if not self.worse_by > 1.0:
            raise ValueError(f"revision check {self.name}: worse_by must be > 1, got {self.worse_by}")
        if not 0.0 < self.false_rate < 1.0 or not 0.0 < self.miss_rate < 1.0:
            raise ValueError(f"revision check {self.name}: false_rate and miss_rate must be in (0, 1)")

    @property
    def bad_at(self) -> float:
        """LLR at or above which the new revision is BAD: log(1/alpha)."""
        return math.log(1.0 / self.false_rate)

    @property
    def good_at(self) -> float:
        """LLR at or below which the new revision is GOOD: log(beta)."""
        return math.log(self.miss_rate)

    @property
    def least_requests(self) -> float:
        """min_requests, or its statistical default (see the class docstring)."""
        if self.min_requests is not None:
            return float(self.min_requests)
        return float(math.ceil(self.bad_at / math.log(self.worse_by)))


def _column(checks: tuple[RevisionTestParams, ...], attr: str) -> np.ndarray:
    """(C,) ``attr`` of each check, built once per tuple of checks (read-only: shared between cycles)."""
    return _column_of(tuple(checks), attr)


@functools.lru_cache(maxsize=256)
def _column_of(checks: tuple[RevisionTestParams, ...], attr: str) -> np.ndarray:
    column = np.asarray([getattr(c, attr) for c in checks], dtype=np.float64)
    column.flags.writeable = False
    return column


@functools.lru_cache(maxsize=64)
def _kinds(checks: tuple[RevisionTestParams, ...]) -> np.ndarray:
    """(C,) each check's Measure as an int, built once per tuple of checks (read-only)."""
    kind = np.asarray([int(c.measure) for c in checks])
    kind.flags.writeable = False
    return kind


@dataclass(frozen=True)
class RevisionTestState:
    """Per target and check (N, C) unless noted; plain arrays (serialisable).

    revision: (N,) object, the new revision under test ('' none); llr: the log likelihood
    ratio (the statistic); during: its part from cycles where both revisions served; new / old:
    (N, C, 3) the summed sufficient statistics of each revision (old: the stable revision's
    baseline); after: (N, C, 3) the new revision's since the stable one stopped serving;
    verdict: int8 Verdict; decided_at: epoch s (NaN); base: (N, C, 3) the current revision's
    recent totals (decayed), the baseline of the next revision's test; stable: (N, C, 3) the
    stable revision's pods' own totals during the test (``old`` minus its baseline); drifted:
    (N, C) bool, they have drifted from that baseline (then it is not used; final for the test).
    """

    revision: np.ndarray
    llr: np.ndarray
    during: np.ndarray
    new: np.ndarray
    old: np.ndarray
    after: np.ndarray
    verdict: np.ndarray
    decided_at: np.ndarray
    base: np.ndarray
    stable: np.ndarray
    drifted: np.ndarray

    @classmethod
    def empty(cls, n: int, c: int) -> "RevisionTestState":
        return cls(np.full(n, "", dtype=object), np.zeros((n, c)), np.zeros((n, c)), np.zeros((n, c, 3)),
                   np.zeros((n, c, 3)), np.zeros((n, c, 3)), np.zeros((n, c), np.int8), np.full((n, c), np.nan),
                   np.zeros((n, c, 3)), np.zeros((n, c, 3)), np.zeros((n, c), bool))

    def take(self, rows: np.ndarray) -> "RevisionTestState":
        fills = dict(revision="", verdict=0, decided_at=np.nan, drifted=False)
        return RevisionTestState(**{k: take_rows(getattr(self, k), rows, fills.get(k, 0.0))
                                    for k in self.__dataclass_fields__})

    def reset(self, rows: np.ndarray, revision: np.ndarray) -> "RevisionTestState":
        """Start over for ``rows`` (N,) bool, now testing ``revision`` (N,)."""
        fresh = RevisionTestState.empty(*self.llr.shape)
        out = {}
        for k in self.__dataclass_fields__:
            a = getattr(self, k)
            m = rows.reshape((-1,) + (1,) * (a.ndim - 1))
            out[k] = np.where(m, getattr(fresh, k), a).astype(a.dtype)
        out["revision"] = np.where(rows, revision, self.revision).astype(object)
        return RevisionTestState(**out)


def ratio_llr(new: np.ndarray, old: np.ndarray, worse_by: np.ndarray) -> np.ndarray:
    """(N, C) LLR increment of one cycle for ratio checks, from the cycles where both revisions
    served. new, old: (N, C, 3) this cycle's (requests, errors, _) of each revision; worse_by: (C,)."""
    r = np.broadcast_to(worse_by, new.shape[:2])
    n1, e1 = np.maximum(new[..., 0], 0.0), np.maximum(new[..., 1], 0.0)
    n0, e0 = np.maximum(old[..., 0], 0.0), np.maximum(old[..., 1], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p0 = n1 / (n1 + n0)
        p1 = r * n1 / (r * n1 + n0)
        side = e1 * np.log(p1 / p0) + e0 * (np.log1p(-p1) - np.log1p(-p0))
    return np.where((n1 > 0) & (n0 > 0), np.nan_to_num(side), 0.0)


def baseline_llr(after: np.ndarray, baseline: np.ndarray, worse_by: np.ndarray) -> np.ndarray:
    """(N, C) LLR of the new revision's totals ``after`` (N, C, 3) since the stable revision
    stopped serving, against that revision's recorded totals ``baseline`` (N, C, 3)."""
    r = np.broadcast_to(worse_by, after.shape[:2])
    n1, e1 = after[..., 0], after[..., 1]
    n0, e0 = baseline[..., 0], baseline[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = e1 * np.log(r) + (e0 + e1) * (np.log(n0 + n1) - np.log(n0 + r * n1))
    return np.where((n1 > 0) & (n0 > 0), np.nan_to_num(out), 0.0)


def latency_llr(new: np.ndarray, old: np.ndarray, worse_by: np.ndarray, sigma_floor: np.ndarray) -> np.ndarray:
    """(N, C) LLR increment of one cycle for latency checks.

    new, old: (N, C, 3) this cycle's (pods, sum log latency, sum squared log latency). Zero
    unless both revisions have pods and there are at least three samples.
    """
    m1, m0 = new[..., 0], old[..., 0]
    ok = (m1 >= 1) & (m0 >= 1) & (m1 + m0 >= 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu1, mu0 = new[..., 1] / m1, old[..., 1] / m0
        ss = (new[..., 2] - m1 * mu1 ** 2) + (old[..., 2] - m0 * mu0 ** 2)
        s2 = np.maximum(ss / (m1 + m0 - 2), sigma_floor ** 2)
        var = s2 * (1.0 / m1 + 1.0 / m0)
        delta = np.log(worse_by)
        inc = (delta * (mu1 - mu0) - delta ** 2 / 2.0) / var
    return np.where(ok, np.nan_to_num(inc), 0.0)


def step_tests(checks: tuple[RevisionTestParams, ...], state: RevisionTestState, revision: np.ndarray,
               active: np.ndarray, new: np.ndarray, old: np.ndarray, now: float,
               interval_s: float = 15.0) -> RevisionTestState:
    """One cycle of every revision check for every target; pure.

    revision: (N,) the current (newest) revision; active: (N,) bool, the comparison runs (a
    rollout is in progress or within the rollback window after it, the revision not a known
    healthy one); new, old: (N, C, 3) this cycle's statistics of the new and the stable
    revision's pods (zeros where there are none: missing data never moves the test).
    A target whose revision changed starts over, with the previous revision's recent totals
    (``base``, forgotten with ``baseline_half_life_s``) as the stable revision's baseline.
    Decided checks keep their verdict.
    """
    revision = np.asarray(revision, dtype=object)
    changed = revision != state.revision
    if changed.any():  # most cycles no revision changes: nothing starts over
        previous = state.base
        state = state.reset(changed, revision)
        state = replace(state, old=np.where(changed[:, None, None], previous, state.old))
    if not checks:
        return state
    kind = _kinds(tuple(checks))
    is_ratio = (kind == Measure.RATIO)[None, :]
    # counts are never negative; log-latency sums may be
    clip = lambda a: np.where(is_ratio[..., None], np.maximum(a, 0.0), a)  # noqa: E731
    keep = np.exp(-math.log(2.0) * interval_s / _column(checks, "baseline_half_life_s"))[None, :, None]
    base = state.base * keep + clip(new)  # the current revision's recent totals
    open_ = active[:, None] & (state.verdict == Verdict.UNDECIDED)
    if not open_.any():  # no test runs (no rollout, or all decided): only the recent totals move
        return RevisionTestState(state.revision, state.llr, state.during, state.new, state.old, state.after,
                                 state.verdict.astype(np.int8, copy=False), state.decided_at, base, state.stable,
                                 state.drifted)
    state = replace(state, base=base)
    worse_by = _column(checks, "worse_by")
    both = (new[..., 0] > 0) & (old[..., 0] > 0)
    inc = np.where(is_ratio, ratio_llr(new, old, worse_by),
                   latency_llr(new, old, worse_by, _column(checks, "sigma_floor")))
    during = np.where(open_, state.during + inc, state.during)
    acc = open_[..., None]
    tot_new = np.where(acc, state.new + clip(new), state.new)
    tot_old = np.where(acc, state.old + clip(old), state.old)
    stable = np.where(acc, state.stable + clip(old), state.stable)
    alone = (open_ & is_ratio & ~both & (new[..., 0] > 0))[..., None]
    after = np.where(alone, state.after + clip(new), state.after)
    bad_at = _column(checks, "bad_at")
    side_by_side = during + baseline_llr(after, tot_old, worse_by)
    # the stable pods against their own baseline: has the present drifted from it?
    drifted = state.drifted | (open_ & is_ratio & (baseline_llr(stable, tot_old - stable, worse_by) >= bad_at / 4.0))
    pooled = np.where(drifted, side_by_side, baseline_llr(tot_new, tot_old, worse_by))
    llr = np.where(open_, np.where(is_ratio, pooled, during), state.llr)
    # requests (ratio) or pod samples (latency) the new revision has contributed
    enough = tot_new[..., 0] >= np.where(kind == Measure.RATIO, _column(checks, "least_requests"), 1.0)
    bad = open_ & enough & (llr >= bad_at)
    good = open_ & enough & (llr <= _column(checks, "good_at"))
    verdict = np.where(bad, Verdict.BAD, np.where(good, Verdict.GOOD, state.verdict)).astype(np.int8)
    decided_at = np.where(bad | good, now, state.decided_at)
    return RevisionTestState(state.revision, llr, during, tot_new, tot_old, after, verdict, decided_at, state.base,
                             stable, drifted)


def summary_values(checks: tuple[RevisionTestParams, ...], state: RevisionTestState) -> tuple[np.ndarray, np.ndarray]:
    """(new value, stable value), each (N, C): the error ratio of each revision's requests so far,
    or the geometric mean latency of its pod samples (s). NaN without data."""
    kind = np.asarray([int(c.measure) for c in checks])[None, :] if checks else np.zeros((1, 0), np.int64)

    def value(s: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(s[..., 0] > 0, s[..., 1] / s[..., 0], np.nan)
            latency = np.where(s[..., 0] > 0, np.exp(s[..., 1] / s[..., 0]), np.nan)
        return np.where(kind == Measure.RATIO, ratio, latency)

    return value(state.new), value(state.old)


def ratio_stats(requests, errors) -> np.ndarray:
    """(..., 3) ratio statistics from requests and errors of the same shape."""
    requests = np.asarray(requests, np.float64)
    return np.stack([requests, np.asarray(errors, np.float64), np.zeros_like(requests)], axis=-1)


def latency_stats(latency_s, mask=None) -> np.ndarray:
    """(..., 3) latency statistics from samples (..., K) in seconds; ``mask`` (..., K) bool
    selects the samples that count (default: the finite, positive ones)."""
    x = np.asarray(latency_s, np.float64)
    ok = np.isfinite(x) & (x > 0) if mask is None else np.asarray(mask, bool) & np.isfinite(x) & (x > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        lx = np.where(ok, np.log(np.where(ok, x, 1.0)), 0.0)
    return np.stack([ok.sum(axis=-1).astype(np.float64), lx.sum(axis=-1), (lx ** 2).sum(axis=-1)], axis=-1)
