"""Hold a rollout while its revision test is undecided: pause the Deployment, resume on a verdict.

A rolling update can complete before the new revision has served the requests its sequential
test needs (a subtly bad release, 1.5x the errors, needs tens of thousands), and then the
rollback comes after every pod runs the bad release. Like an Argo Rollouts / Flagger analysis
step, a revision check with ``hold_max_s`` pauses the rollout (``spec.paused``) once the new
revision serves enough of the traffic to decide soon, and resumes it as soon as the test says
GOOD; a BAD verdict rolls back as before (the rollback resumes the Deployment in the same
write); after ``hold_max_s`` the rollout resumes and the test goes on (rollback window).

Where to hold. The new revision's requests carry the evidence; at a traffic share f of R
requests/s it gathers them at f*R per second. The requests still needed are estimated from
the test's state: the distance of its statistic to each threshold over the expected increment
per request (the Kullback-Leibler drift of the ratio test with the stable error rate p0 of the
baseline: p0 (r log r - r + 1) per request towards BAD under H1, p0 (r - 1 - log r) towards GOOD
under H0), the larger of the two. The rollout is held at the first share f at which that takes
at most half of ``hold_max_s`` (half: a slower-than-expected verdict still fits): the least
traffic exposed to a possibly bad release that still decides within the hold. (The bad
requests served before a verdict are about the same at any share; the share sets how many
users meet them at once and how long the hold lasts.) A stable error rate not known yet
(no baseline) or a latency check holds at the first pods serving; past half the traffic the
rollout is held whatever the estimate (its remaining waves may complete it before the next step).

Ownership. ``since`` records that *this controller* paused the Deployment (durable: a
restarted controller keeps or ends the hold). A Deployment paused by someone else is never
resumed nor paused again by us; a hold someone else ended (resumed) is not taken again for
that revision. A hold ends when the revision is no longer under test (no rollout, a rollback,
a trusted revision), so no Deployment is left paused by us after we stop caring.

Shapes: N targets, C revision checks. Pure: no clock, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from controller.core.health.params import HealthReason
from controller.core.health.revision_test import Measure, RevisionTestParams, RevisionTestState, Verdict
from controller.core.history import take_rows
from controller.model import ActionKind

#: Past this share of the traffic the rollout is held whatever the estimate says.
LATEST_HOLD_SHARE = 0.5


@dataclass(frozen=True)
class HoldState:
    """Per target (N,): revision: the revision the hold concerns ('' none); since: epoch s this
    controller paused the Deployment (NaN: we hold nothing); over: the hold of this revision
    ended (resumed by us or by someone else): it is not taken again."""

    revision: np.ndarray
    since: np.ndarray
    over: np.ndarray

    @classmethod
    def empty(cls, n: int) -> "HoldState":
        return cls(np.full(n, "", dtype=object), np.full(n, np.nan), np.zeros(n, bool))

    def take(self, rows: np.ndarray) -> "HoldState":
        return HoldState(take_rows(self.revision, rows, ""), take_rows(self.since, rows, np.nan),
                         take_rows(self.over, rows, False))

    @property
    def ours(self) -> np.ndarray:
        """(N,) bool: this controller paused the Deployment and has not resumed it."""
        return np.isfinite(self.since)

    def released(self, rows: np.ndarray) -> "HoldState":
        """The hold of ``rows`` (N,) bool ended (resumed, or a rollback resumed it)."""
        return HoldState(self.revision, np.where(rows, np.nan, self.since), self.over | rows)


@dataclass(frozen=True)
class HoldStep:
    """One step: ``state`` with the actions applied, ``kept`` without them (bookkeeping only);
    action: (N,) ActionKind NONE, PAUSE or RESUME; reason: (N,) HealthReason, -1 for none."""

    state: HoldState
    kept: HoldState
    action: np.ndarray
    reason: np.ndarray


def hold_checks(checks: tuple[RevisionTestParams, ...]) -> np.ndarray:
    """(C,) bool: the checks that hold the rollout (a hold and a rollback)."""
    return np.asarray([c.hold_max_s is not None and c.rollback for c in checks], bool)


def requests_to_verdict(checks: tuple[RevisionTestParams, ...], tests: RevisionTestState) -> np.ndarray:
    """(N, C) requests the new revision is expected to serve before a ratio check decides (0 when
    the stable error rate is not known yet, inf when it is 0: no errors, no evidence)."""
    worse_by = np.asarray([c.worse_by for c in checks], np.float64)
    bad_at = np.asarray([c.bad_at for c in checks], np.float64)
    good_at = np.asarray([c.good_at for c in checks], np.float64)
    least = np.asarray([c.least_requests for c in checks], np.float64)
    n0, e0 = tests.old[..., 0], tests.old[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        p0 = np.where(n0 > 0, e0 / n0, np.nan)
        toward_bad = p0 * (worse_by * np.log(worse_by) - worse_by + 1.0)  # per request, under H1
        toward_good = p0 * (worse_by - 1.0 - np.log(worse_by))  # per request, under H0
        need = np.maximum(np.maximum((bad_at - tests.llr) / toward_bad, (tests.llr - good_at) / toward_good),
                          least - tests.new[..., 0])
    return np.where(np.isnan(p0), 0.0, np.where(p0 > 0, np.maximum(need, 0.0), np.inf))


def hold_share(checks: tuple[RevisionTestParams, ...], tests: RevisionTestState, new: np.ndarray, old: np.ndarray,
               interval_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(share, need), each (N,): the new revision's share of this step's traffic (requests, or pods
    for latency) and the share at which the rollout is held (see the module docstring).

    new, old: (N, C, 3) this step's statistics of each revision."""
    hc = hold_checks(checks)
    n = tests.llr.shape[0]
    if not hc.any():
        return np.zeros(n), np.full(n, np.inf)
    n1, n0 = new[..., 0], old[..., 0]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # inf: no hold needed yet
        share_c = np.where(n1 + n0 > 0, n1 / (n1 + n0), 0.0)
        rate = (n1 + n0) / max(interval_s, 1e-9)  # requests/s of the whole workload
        max_s = np.asarray([c.hold_max_s if c.hold_max_s is not None else math.inf for c in checks])
        need_c = requests_to_verdict(checks, tests) / (rate * max_s / 2.0)
    is_ratio = np.asarray([c.measure == Measure.RATIO for c in checks], bool)
    need_c = np.where(is_ratio[None, :], np.nan_to_num(need_c, nan=np.inf), 0.0)
    undecided = (tests.verdict == Verdict.UNDECIDED) & hc[None, :]
    need = np.where(undecided, np.minimum(need_c, LATEST_HOLD_SHARE), 0.0).max(axis=1)
    share = np.where(hc[None, :], share_c, 0.0).max(axis=1)
    return share, need


def step_hold(checks: tuple[RevisionTestParams, ...], hold: HoldState, tests: RevisionTestState,
              revision: np.ndarray, rollout: np.ndarray, paused: np.ndarray | None, active: np.ndarray,
              new: np.ndarray, old: np.ndarray, interval_s: float, now: float) -> HoldStep:
    """Pause, keep, or resume each target's rollout; pure.

    revision: (N,) the current revision; rollout: (N,) a rollout is in progress; paused: (N,) the
    Deployment's spec.paused as observed (None: unknown, then nothing is paused nor resumed);
    active: (N,) the revision test runs; tests: its state after this step; new, old: (N, C, 3)
    this step's statistics (the traffic share)."""
    n = len(revision)
    none = np.full(n, int(ActionKind.NONE), np.int64)
    hc = hold_checks(checks)
    revision = np.asarray(revision, dtype=object)
    changed = revision != hold.revision
    # a new revision: a fresh hold decision (a hold we keep on the Deployment restarts its clock)
    hold = HoldState(revision.copy(), np.where(changed & hold.ours, now, hold.since), hold.over & ~changed)
    testing = np.asarray(rollout, bool) & np.asarray(active, bool)
    if paused is None or not hc.any() or not (testing.any() or hold.ours.any()):
        # nothing to hold or resume: no test runs during a rollout and we hold nothing
        return HoldStep(hold, hold, none, np.full(n, -1, np.int64))
    share, need = hold_share(checks, tests, new, old, interval_s)
    paused = np.asarray(paused, bool)
    # someone else resumed our hold: theirs to decide now, not taken again for this revision
    kept = hold.released(hold.ours & ~paused)
    verdict = tests.verdict[:, hc]
    undecided, bad = (verdict == Verdict.UNDECIDED).any(axis=1), (verdict == Verdict.BAD).any(axis=1)
    max_s = min(c.hold_max_s for c, h in zip(checks, hc) if h)
    with np.errstate(invalid="ignore"):
        expired = kept.ours & (now - kept.since >= max_s)
    good = testing & ~undecided & ~bad
    resume = kept.ours & (expired | ~testing | good)
    reason = np.where(~testing, int(HealthReason.ROLLOUT_RESUMED_NOT_TESTED),
                      np.where(good, int(HealthReason.ROLLOUT_RESUMED_GOOD),
                               int(HealthReason.ROLLOUT_RESUMED_MAX_HOLD)))
    pause = (~kept.ours & ~paused & testing & undecided & ~bad & ~kept.over & (share > 0) & (share >= need))
    state = kept.released(resume)
    state = HoldState(state.revision, np.where(pause, now, state.since), state.over)
    action = np.where(pause, int(ActionKind.PAUSE), np.where(resume, int(ActionKind.RESUME), none))
    reason = np.where(pause, int(HealthReason.ROLLOUT_PAUSED_FOR_EVIDENCE), np.where(resume, reason, -1))
    return HoldStep(state, kept, action.astype(np.int64), reason.astype(np.int64))
