"""From firing checks to health proposals, and the memory behind them: revisions, budgets,
verification with an escalation ladder, and the circuit breaker (held targets).

Shapes: N targets, C checks, P pods. Every function is pure and vectorized over targets.

Revisions. The core remembers per target the current revision and when it became current,
when its rollout completed, and the two most recent *known-healthy* revisions: a revision
becomes known-healthy once its rollout is complete and no check has fired for
``healthy_after_s``. A revision the health side rolled back to (or rolling-restarted) inherits
the healthiness of the revision it came from, so revision numbers that change on a rollback
(Deployments) do not make a known-good template look new.

Blame. A firing check whose action is disruptive (restart-pod, rolling-restart, rollback) is
*explained by the current revision* when that revision was not already known healthy when it
became current (a rollback target, or a rolling restart of a known-good revision, is never
blamed; a new revision stays blamable for its windows even once it has proven healthy), the
check's episode began after the revision became current, and either within
``new_revision_window_s`` of that (new revision) or within ``rollback_window_s`` of the rollout
completing (the guard). For pod-scope checks, any firing pod whose episode began in the window
counts.

Verification. A restart, rolling restart or rollback opens a window of ``verify_window_s``
(a hung-pod check's action: at least its start-up + notReadyFor + a cycle, when its replacement
pod could first be judged hung; extended while a rollout is in progress, by at most ``rollout_wait_s``). A workload-scope
trigger passes as soon as it is back to OK, or at the deadline when it is not firing; one that
is clearing at the deadline (its recovered condition holding, inside its recovered ``for``) is
judged when that ``for`` ends (OK by then, or it fails). A
pod-scope trigger passes at the deadline when none of the pods that appeared since the action
(the replacements), nor a restarted pod that kept its name, fires it. An action without a
triggering check (a rollback a revision check called for) passes at the deadline. A failure escalates to
the ladder's next step or, at the top, holds the target (circuit open); a failed restart a hung-pod
check called for never escalates (HungPodHungAgain): the check restarts the pod again, within the
restart budget (spent: held, HungPodRestartsExhausted). A hung-pod restart is judged only once its
replacement has been seen running for the check's start-up + notReadyFor (+ for): a replacement stuck
Pending keeps the window open, at most rollout_wait_s past its deadline (then it closes unjudged,
HungReplacementNotJudged). While a window is open no other health action is taken on that target,
but for one: a pod restart another pod-scope check calls for on pods the window does not judge
(``beside_verification``), verified in a second window; target-wide actions wait for both.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from controller.core import history
from controller.core.health.checks import CheckView, PodState, firing_pod_mask
from controller.core.health.params import (Act, Direction, HealthParams, HealthReason, Phase, Remedy, Scope,
                                           hung_verify_window_s)

HOUR_S = 3600.0
DAY_S = 86400.0
_FIRING, _OK = int(Phase.FIRING), int(Phase.OK)
_NONE = int(Remedy.NONE)
_DISRUPTIVE = np.asarray([int(Remedy.RESTART_POD), int(Remedy.ROLLING_RESTART), int(Remedy.ROLLBACK)])



def as_strings(values, n: int) -> np.ndarray:
    """(n,) object array of str ('' for None)."""
    if values is None:
        return np.full(n, "", dtype=object)
    out = np.empty(n, dtype=object)
    values = np.asarray(values, dtype=object).reshape(-1)
    if values.size == n and set(map(type, values.tolist())) <= {str}:  # the common case: str already (str(v) is v)
        out[:] = values
    else:
        out[:] = ["" if v is None else str(v) for v in values]
    return out


# --- revisions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RevisionState:
    """Per target (N,): revision ids are str ('' = none), times epoch seconds (NaN = unknown).

    current / since: the current revision and when it became current; rollout_done_at: when
    its rollout was first seen complete; clean_since: since when it has been complete with no
    firing check; healthy / older_healthy: the two most recent known-healthy revisions;
    rolled_back_to / restarted: set by a rollback / rolling restart until its verification ends;
    trusted: bool, the current revision was already known healthy when it became current (a
    return to a known-good revision), so nothing is blamed on it.
    """

    current: np.ndarray
    since: np.ndarray
    rollout_done_at: np.ndarray
    clean_since: np.ndarray
    healthy: np.ndarray
    older_healthy: np.ndarray
    rolled_back_to: np.ndarray
    restarted: np.ndarray
    trusted: np.ndarray

    @classmethod
    def empty(cls, n: int) -> "RevisionState":
        s = lambda: np.full(n, "", dtype=object)  # noqa: E731
        f = lambda: np.full(n, np.nan)  # noqa: E731
        return cls(s(), f(), f(), f(), s(), s(), s(), s(), np.zeros(n, bool))

    def take(self, rows: np.ndarray) -> "RevisionState":
        def fill(a: np.ndarray):
            return "" if a.dtype == object else (False if a.dtype == bool else np.nan)
        return RevisionState(*(history.take_rows(getattr(self, k), rows, fill(getattr(self, k)))
                               for k in self.__dataclass_fields__))

    @property
    def rollback_target(self) -> np.ndarray:
        """(N,) the known-healthy revision to roll back to, '' when there is none (whether or not
        the cluster still has it: see ``rollback_choice``)."""
        return self.rollback_choice(None)[0]

    def rollback_choice(self, available: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(target, gone), each (N,) str: the known-healthy revision to roll back to among those
        the cluster still lists (``available``, see ``listed``), '' when none; and the
        known-healthy revision that would have been the target had the cluster kept it, '' unless
        the target is '' because of that (its ReplicaSet trimmed by revisionHistoryLimit)."""
        h, o, cur = self.healthy, self.older_healthy, self.current
        h_ok = (h != "") & (h != cur)
        o_ok = (o != "") & (o != cur)
        h_in, o_in = h_ok & listed(h, available), o_ok & listed(o, available)
        target = np.where(h_in, h, np.where(o_in, o, "")).astype(object)
        gone = np.where(target != "", "", np.where(h_ok, h, np.where(o_ok, o, ""))).astype(object)
        return target, gone

    @property
    def suspect(self) -> np.ndarray:
        """(N,) bool: the current revision is not known healthy."""
        return (self.current != self.healthy) & (self.current != self.older_healthy)


def listed(revision: np.ndarray, available: np.ndarray | None) -> np.ndarray:
    """(N,) bool: ``revision`` (N,) str is among its target's revisions on the cluster.

    available: (N, K) str, the revisions each target's cluster lists (its ReplicaSets), ''
    padding; None, or a row that lists none, is unknown (a source that does not say): True.
    """
    if available is None or available.shape[1] == 0:
        return np.ones(revision.shape, bool)
    unknown = (available == "").all(axis=1)
    return unknown | (available == revision[:, None]).any(axis=1)


def update_revisions(params: HealthParams, rs: RevisionState, revision: np.ndarray, revision_since: np.ndarray,
                     rollout: np.ndarray, any_firing: np.ndarray, now: float,
                     any_breaching: np.ndarray | None = None, fired_until: np.ndarray | None = None) -> RevisionState:
    """Track revision changes, rollout completion and healthiness for one cycle.

    revision: (N,) the current (newest) revision of each target; revision_since: (N,) epoch s
    since when it has been current with its rollout complete if the cluster knows (NaN
    otherwise), read only on a target's first sight (no revision remembered): it then counts as
    current, complete and clean since then (else since now); rollout: (N,) bool; any_firing:
    (N,) bool, some check fires on the target; any_breaching: (N,) bool, some check's condition
    holds (pending inside its ``for``, or firing; None: as any_firing): on first sight it voids
    the cluster's "clean since" (the revision may already be failing, its check not yet fired);
    fired_until: (N,) the last time a check fired before first sight (the checks' history), NaN
    none, +inf unknown (None: no history read): on first sight the revision is clean only since
    then, and from now if the history could not be read.
    """
    first = rs.current == ""
    changed = revision != rs.current
    if changed.any() or first.any():
        healthy, older, since, done, clean, trusted = _revision_changes(rs, revision, revision_since, first, changed,
                                                                        any_firing, any_breaching, fired_until, now)
    else:  # the common cycle: every target's revision is the one it had (nothing first seen)
        healthy, older, since, done, clean, trusted = (rs.healthy, rs.older_healthy, rs.since, rs.rollout_done_at,
                                                       rs.clean_since, rs.trusted)
    done = np.where(rollout, np.nan, np.where(np.isnan(done), now, done))
    clean = np.where((changed & ~first) | rollout | any_firing, now, clean)
    mark = (revision != "") & ~rollout & ~any_firing & (now - clean >= params.healthy_after_s) & (revision != healthy)
    older = np.where(mark, healthy, older)
    healthy = np.where(mark, revision, healthy)
    keep = lambda a: np.where(changed, "", a).astype(object)  # noqa: E731
    return RevisionState(revision.astype(object), since, done, clean, healthy.astype(object),
                         older.astype(object), keep(rs.rolled_back_to), keep(rs.restarted), trusted.astype(bool))


def _revision_changes(rs: RevisionState, revision: np.ndarray, revision_since: np.ndarray, first: np.ndarray,
                      changed: np.ndarray, any_firing: np.ndarray, any_breaching: np.ndarray | None,
                      fired_until: np.ndarray | None, now: float) -> tuple[np.ndarray, ...]:
    """``update_revisions``' (healthy, older healthy, since, rollout done at (before this cycle's
    rollout), clean since (before this cycle's firing), trusted), each (N,), where a target's revision
    ``changed`` (N,) or is seen ``first`` (N,): what carries over from a rollback or rolling
    restart of ours, and when the revision became current and clean."""
    src = np.where(rs.rolled_back_to != "", rs.rolled_back_to, rs.restarted)
    carried = changed & ~first & (src != "")
    from_h = carried & (src == rs.healthy)
    from_o = carried & (src == rs.older_healthy) & ~from_h
    healthy = np.where(from_h | from_o, revision, rs.healthy)
    # back to the older healthy one: a rollback leaves a failing revision behind (forget it), a
    # rolling restart of the older one keeps both
    older = np.where(from_o, np.where(rs.rolled_back_to != "", "", rs.healthy), rs.older_healthy)
    same_code = carried & (rs.restarted != "") & (rs.restarted == rs.current)  # our rolling restart
    # A later revision is dated by its first sight, never by revision_since: the shell's is when the
    # rollout completed (Progressing condition), later than when it became current, so blame
    # windows counted from it would miss episodes of the rollout; and a revision changed while the
    # controller was away would have its new-revision window closed by a completion long past.
    known = first & np.isfinite(revision_since)
    revision_since = np.minimum(revision_since, now)  # a time to come (clock skew): since now
    since = np.where(changed, np.where(same_code, rs.since, np.where(known, revision_since, now)), rs.since)
    done = np.where(changed, np.where(known, revision_since, np.nan), rs.rollout_done_at)
    breaching = any_firing if any_breaching is None else any_breaching | any_firing
    # a check pending at first sight: the cluster's completion time says nothing of whether the
    # revision was clean, so it counts as clean from now (marked after healthyAfter of no firing);
    # one that fired and recovered before first sight (the checks' history): clean from then on
    clean_from = revision_since if fired_until is None else np.minimum(np.fmax(revision_since, fired_until), now)
    clean = np.where(first, np.where(known & ~breaching, clean_from, now), rs.clean_since)
    trusted = np.where(changed, (revision != "") & ((revision == healthy) | (revision == older)), rs.trusted)
    return healthy, older, since, done, clean, trusted


# --- budgets ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetState:
    """Per target histories (N, S) of pods restarted and rollbacks done, with their times."""

    restarts: np.ndarray
    restart_at: np.ndarray
    rollbacks: np.ndarray
    rollback_at: np.ndarray

    @classmethod
    def empty(cls, n: int, params: HealthParams) -> "BudgetState":
        return cls(*history.empty_history(n, params.restart_slots), *history.empty_history(n, params.rollback_slots))

    def take(self, rows: np.ndarray) -> "BudgetState":
        take = history.take_rows
        return BudgetState(take(self.restarts, rows, 0.0), take(self.restart_at, rows, np.nan),
                           take(self.rollbacks, rows, 0.0), take(self.rollback_at, rows, np.nan))

    def restarts_used(self, now: float) -> np.ndarray:
        """(N,) pods restarted in the last hour (an event exactly an hour old no longer counts)."""
        return _used(self.restarts, self.restart_at, now, HOUR_S)

    def rollbacks_used(self, now: float) -> np.ndarray:
        """(N,) rollbacks in the last day."""
        return _used(self.rollbacks, self.rollback_at, now, DAY_S)

    def record(self, restarted: np.ndarray, rolled_back: np.ndarray, now: float) -> "BudgetState":
        """Remember ``restarted`` (N,) pods and ``rolled_back`` (N,) bool at ``now``."""
        r, rt, b, bt = self.restarts, self.restart_at, self.rollbacks, self.rollback_at
        if (restarted > 0).any():
            r, rt = history.write_slot(r, rt, restarted, now, HOUR_S, rows=restarted > 0)
        if rolled_back.any():
            b, bt = history.write_slot(b, bt, np.ones(rolled_back.shape), now, DAY_S, rows=rolled_back)
        return BudgetState(r, rt, b, bt)


def _used(values: np.ndarray, times: np.ndarray, now: float, window_s: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.where(now - times < window_s, values, 0.0).sum(axis=1).astype(np.int64)


# --- verification, escalation, hold ----------------------------------------------------------


@dataclass(frozen=True)
class RemedyState:
    """Per target (N,): the action under verification and the circuit breaker.

    verify_action: Remedy under verification (NONE = no window open); verify_check: its
    triggering check (-1); verify_started / verify_until: the window (epoch s); verify_seen: when
    a hung-pod restart's replacement (a pod listed since the restart) was first seen running (NaN:
    not yet, so the restart is not yet judged: see ``verify``).
    pod_verify_check / pod_verify_started / pod_verify_until / pod_verify_seen: a second window,
    always a pod restart (its action), that a pod-scope check called for on other pods while the
    first window judged another pod-scope check's pod restart (check -1: none open). Target-wide
    actions wait for both (``verifying``).
    escalation: a Remedy the ladder calls for, not yet taken (NONE); escalation_check: its check.
    held: the circuit is open; held_reason: HealthReason (-1); held_at: epoch s.
    floor / floor_until: a replica floor from a health scale-up; cooldown_until: no new health
    scale-up before this time.
    """

    verify_action: np.ndarray
    verify_check: np.ndarray
    verify_started: np.ndarray
    verify_until: np.ndarray
    escalation: np.ndarray
    escalation_check: np.ndarray
    held: np.ndarray
    held_reason: np.ndarray
    held_at: np.ndarray
    floor: np.ndarray
    floor_until: np.ndarray
    cooldown_until: np.ndarray
    verify_seen: np.ndarray
    pod_verify_check: np.ndarray
    pod_verify_started: np.ndarray
    pod_verify_until: np.ndarray
    pod_verify_seen: np.ndarray

    @classmethod
    def empty(cls, n: int) -> "RemedyState":
        i = lambda v: np.full(n, v, dtype=np.int64)  # noqa: E731
        f = lambda: np.full(n, np.nan)  # noqa: E731
        return cls(i(0), i(-1), f(), f(), i(0), i(-1), np.zeros(n, bool), i(-1), f(), i(0), f(), f(),
                   f(), i(-1), f(), f(), f())

    @property
    def verifying(self) -> np.ndarray:
        """(N,) bool: some verification window is open."""
        return (self.verify_action != Remedy.NONE) | (self.pod_verify_check >= 0)

    def windows(self) -> tuple["Window", "Window"]:
        """The two verification windows: the first (any action) and the pod-restart one."""
        second = np.where(self.pod_verify_check >= 0, int(Remedy.RESTART_POD), int(Remedy.NONE))
        return (Window(self.verify_action, self.verify_check, self.verify_started, self.verify_until,
                       self.verify_seen),
                Window(second, self.pod_verify_check, self.pod_verify_started, self.pod_verify_until,
                       self.pod_verify_seen))

    def take(self, rows: np.ndarray) -> "RemedyState":
        fills = dict(verify_check=-1, escalation_check=-1, held_reason=-1, pod_verify_check=-1)
        out = {}
        for k in self.__dataclass_fields__:
            a = getattr(self, k)
            fill = fills.get(k, np.nan if a.dtype.kind == "f" else (False if a.dtype == bool else 0))
            out[k] = history.take_rows(a, rows, fill)
        return RemedyState(**out)


@dataclass(frozen=True)
class Window:
    """One verification window per target, each (N,): action (Remedy, NONE: closed), check (-1),
    started / until / seen (epoch s, as RemedyState's fields)."""

    action: np.ndarray
    check: np.ndarray
    started: np.ndarray
    until: np.ndarray
    seen: np.ndarray

    @property
    def open(self) -> np.ndarray:
        return self.action != Remedy.NONE


def rearm(rem: RemedyState, rows: np.ndarray) -> tuple[RemedyState, np.ndarray]:
    """Close the circuit of ``rows`` (N,) bool: held targets act again. Budget history is kept.

    Returns (state, outcome (N,) REARMED or -1).
    """
    outcome = np.where(rows, int(HealthReason.REARMED), -1)
    if not rows.any():  # the common cycle: nothing to re-arm
        return rem, outcome
    return replace(rem, held=rem.held & ~rows, held_reason=np.where(rows, -1, rem.held_reason),
                   held_at=np.where(rows, np.nan, rem.held_at), escalation=np.where(rows, 0, rem.escalation),
                   escalation_check=np.where(rows, -1, rem.escalation_check)), outcome


def replaced_revisions(rev: RevisionState, revision: np.ndarray) -> np.ndarray:
    """(N,) bool: the observed ``revision`` replaces the current one, and not by this controller's
    own rollback or rolling restart (``rev`` before this cycle's update): a deploy, a rollback by
    hand."""
    ours = (rev.rolled_back_to != "") | (rev.restarted != "")
    return (revision != rev.current) & (rev.current != "") & (revision != "") & ~ours


def verify(params: HealthParams, rem: RemedyState, rev: RevisionState, view: CheckView, pods: PodState,
           pod_row: np.ndarray, rollout: np.ndarray, now: float, revision_replaced: np.ndarray | None = None,
           running: np.ndarray | None = None) -> tuple[RemedyState, RevisionState, np.ndarray]:
    """Resolve the verification windows that are due (both of them: ``RemedyState.windows``).
    Returns (state, revisions, outcome (N,)).

    outcome: VERIFIED, VERIFY_FAILED_ESCALATING, VERIFY_FAILED_HELD, HUNG_POD_HUNG_AGAIN (a hung-pod
    restart failed: no escalation, the check restarts the pod again), HUNG_REPLACEMENT_NOT_JUDGED (a
    hung-pod restart's replacement never ran in time to be judged), VERIFY_SUPERSEDED, or -1; where
    both windows close in one cycle, the graver outcome (a failure before a pass).
    revision_replaced: (N,) someone else replaced the revision (``replaced_revisions``): the windows
    close unjudged, as what they verify is no longer running. running: (P,) bool, the pod runs
    (``PodTable.running``; None: every pod does).
    """
    n = rem.verify_action.size
    if not _any_window_open(rem):  # the common cycle: nothing to resolve, the state as it was
        return rem, rev, np.full(n, -1, np.int64)
    # A revision someone else put in place while the window is open (a deploy, a kubectl rollout
    # undo back to the bad release) is no longer the action's doing: judged against the window,
    # it kept every health action off the new revision for up to the window plus rollout_wait_s
    # (a rollout hold keeps it in progress), then held the target; it is judged as a release.
    replaced = np.zeros(n, bool) if revision_replaced is None else np.asarray(revision_replaced, bool)
    running = np.ones(pod_row.size, bool) if running is None else np.asarray(running, bool)
    first, second = rem.windows()
    a = _judge(params, first, view, pods, pod_row, running, rollout, replaced, now)
    b = _judge(params, second, view, pods, pod_row, running, rollout, replaced, now)
    outcome = np.where(_GRAVITY[a.outcome + 1] >= _GRAVITY[b.outcome + 1], a.outcome, b.outcome)
    escalate = a.escalate | b.escalate
    nxt = np.where(a.escalate, a.next, b.next)
    esc_check = np.where(a.escalate, first.check, second.check)
    stop = a.stop | b.stop
    rem = replace(
        rem, verify_action=np.where(a.done, 0, rem.verify_action), verify_check=np.where(a.done, -1, rem.verify_check),
        verify_started=np.where(a.done, np.nan, rem.verify_started),
        verify_until=np.where(a.done, np.nan, rem.verify_until), verify_seen=np.where(a.done, np.nan, a.seen),
        pod_verify_check=np.where(b.done, -1, rem.pod_verify_check),
        pod_verify_started=np.where(b.done, np.nan, rem.pod_verify_started),
        pod_verify_until=np.where(b.done, np.nan, rem.pod_verify_until),
        pod_verify_seen=np.where(b.done, np.nan, b.seen),
        escalation=np.where(escalate, nxt, rem.escalation),
        escalation_check=np.where(escalate, esc_check, rem.escalation_check),
        held=rem.held | stop, held_reason=np.where(stop, int(HealthReason.VERIFY_FAILED_HELD), rem.held_reason),
        held_at=np.where(stop, now, rem.held_at))
    # only the first window holds a rolling restart or a rollback (their markers)
    rev = replace(rev, rolled_back_to=np.where(a.done, "", rev.rolled_back_to).astype(object),
                  restarted=np.where(a.done, "", rev.restarted).astype(object))
    return rem, rev, outcome


def _any_window_open(rem: RemedyState) -> bool:
    """Some target has a verification window open (either of ``RemedyState.windows``)."""
    return bool((rem.verify_action != _NONE).any() or (rem.pod_verify_check >= 0).any())


_R = HealthReason
# how grave each outcome is (indexed by outcome + 1: -1 is none), where both windows close at once
_GRAVITY = np.zeros(max(HealthReason) + 2, np.int64)
for _rank, _code in enumerate((_R.VERIFY_SUPERSEDED, _R.VERIFIED, _R.HUNG_REPLACEMENT_NOT_JUDGED, _R.HUNG_POD_HUNG_AGAIN,
                               _R.VERIFY_FAILED_ESCALATING, _R.VERIFY_FAILED_HELD), start=1):
    _GRAVITY[int(_code) + 1] = _rank


@dataclass(frozen=True)
class _Judgement:
    """One window's resolution this cycle, each (N,): outcome (HealthReason, -1), done (closed),
    escalate to ``next`` (Remedy), stop (held), seen (the window's ``seen`` updated)."""

    outcome: np.ndarray
    done: np.ndarray
    escalate: np.ndarray
    next: np.ndarray
    stop: np.ndarray
    seen: np.ndarray


def _judge(params: HealthParams, w: Window, view: CheckView, pods: PodState, pod_row: np.ndarray,
           running: np.ndarray, rollout: np.ndarray, replaced_revision: np.ndarray, now: float) -> _Judgement:
    """Resolve one window (see ``verify`` and the module docstring)."""
    n = w.action.size
    superseded = w.open & replaced_revision
    active = w.open & ~superseded
    chk = np.maximum(w.check, 0)
    phase = view.phase[np.arange(n), chk] if view.phase.shape[1] else np.zeros(n, np.int8)
    is_pod = params.scopes[chk] == Scope.POD if params.scopes.size else np.zeros(n, bool)
    # the pods this window judges: the replacements (listed since the action), or restarted in place
    judged = replaced_pods(w, pods, pod_row)
    hung = _hung_restart(params, w)
    seen = _replacement_seen(w, hung & active, judged & running, pod_row, now)
    trig = np.where(active & is_pod, w.check, -1)
    bad_new = firing_pod_mask(params, pods, pod_row, trig) & judged
    new_firing = np.bincount(pod_row[bad_new], minlength=n)[:n] if bad_new.any() else np.zeros(n, np.int64)
    # A hung-pod restart is judged once its replacement has run for the check's start-up +
    # notReadyFor (+ for), counted from when it was first seen running, or once it fires: a
    # replacement stuck Pending (unschedulable) past the window was never judged, and passed it. Not
    # yet seen: not due, up to rollout_wait_s past the window (then closed unjudged,
    # HUNG_REPLACEMENT_NOT_JUDGED).
    unseen = hung & (new_firing == 0)
    judge_at = np.where(unseen, np.maximum(w.until, seen + _hung_judge_s(params, chk)), w.until)
    unjudged = active & unseen & np.isnan(seen) & (now >= w.until + params.rollout_wait_s)
    due = active & (now >= judge_at) & (~rollout | (now >= judge_at + params.rollout_wait_s))
    # A workload trigger already clearing at the deadline (back on its recovered side, inside its
    # recovered `for`) is judged when that `for` ends: the action worked, but the query's range
    # window and the action's own rollout lag the reading, and failing it there held a target
    # whose rollback had cured it. Bounded: missing data freezes the clear, judged at its end.
    recovered_for = np.asarray([c.recovered_for_s for c in params.checks] or [0.0])[chk]
    clearing_since = view.recovering_since[np.arange(n), chk] if view.phase.shape[1] else np.full(n, np.nan)
    with np.errstate(invalid="ignore"):
        clearing = active & ~is_pod & (w.check >= 0) & (now < clearing_since + recovered_for)
    due = due & ~clearing
    # no triggering check (a rollback a revision check called for: back to a known-healthy
    # revision): nothing to wait for but the window itself
    none = w.check < 0
    passed = none | np.where(is_pod, new_firing == 0, phase != _FIRING)
    success = active & ~unjudged & ((~is_pod & ~none & (phase == _OK)) | (due & passed))
    fail = due & ~success & ~unjudged
    # a hung-pod restart that did not cure the pod is one pod's fault still: the check restarts it
    # again (restartsPerHour bounds it, then holds: HungPodRestartsExhausted), never climbing the
    # ladder to a rolling restart of every pod or a rollback of a release it never blames
    again = fail & hung
    fail = fail & ~again
    nxt = params.escalation_next[w.action]
    escalate, stop = fail & (nxt != Remedy.NONE), fail & (nxt == Remedy.NONE)
    outcome = np.select([success, escalate, stop, again, unjudged, superseded],
                        [int(_R.VERIFIED), int(_R.VERIFY_FAILED_ESCALATING), int(_R.VERIFY_FAILED_HELD),
                         int(_R.HUNG_POD_HUNG_AGAIN), int(_R.HUNG_REPLACEMENT_NOT_JUDGED), int(_R.VERIFY_SUPERSEDED)],
                        -1)
    done = success | fail | again | unjudged | superseded
    return _Judgement(outcome.astype(np.int64), done, escalate, nxt, stop, seen)


def replaced_pods(w: Window, pods: PodState, pod_row: np.ndarray) -> np.ndarray:
    """(P,) bool: the pods window ``w`` judges: listed since its action (its replacements, and any
    pod created since), or restarted in place since (a StatefulSet's, under the same name)."""
    started = _at(np.where(w.open, w.started, np.nan), pod_row)
    return (pods.first_seen > started) | (pods.restarted_at >= started)


def beside_verification(params: HealthParams, rem: RemedyState, pods: PodState, pod_row: np.ndarray,
                        trigger: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(may (N,) bool, unjudged (P,) bool): a pod restart the pod-scope check ``trigger`` (N,) (-1:
    none) calls for may go ahead while a window is open: every open window verifies a pod restart
    another pod-scope check called for, one of the two windows is free, and the check fires on a
    pod no window judges; and those pods (``replaced_pods``: a window's replacements are left to it).

    A pod-scope check's verification judges the pods that replaced the restarted ones, nothing else
    of the workload, so another pod's restart neither disturbs it nor needs to wait for it (a leak
    beside a hung pod's 7-minute window would OOM meanwhile). Target-wide actions wait for both
    windows (arbitration, rule 2)."""
    n = trigger.size
    if not (trigger >= 0).any() and not _any_window_open(rem):  # no pod restart wanted, no window judges a pod
        return np.zeros(n, bool), np.ones(pod_row.size, bool)
    first, second = rem.windows()
    judged = replaced_pods(first, pods, pod_row) | replaced_pods(second, pods, pod_row)
    if not params.checks:
        return np.zeros(n, bool), ~judged
    pod_check = lambda c: (c >= 0) & (params.scopes[np.maximum(c, 0)] == Scope.POD)  # noqa: E731

    def allows(w: Window) -> np.ndarray:
        return ~w.open | ((w.action == Remedy.RESTART_POD) & pod_check(w.check) & (w.check != trigger))

    fires = firing_pod_mask(params, pods, pod_row, trigger) & ~judged
    free_pods = np.bincount(pod_row[fires], minlength=n)[:n] > 0 if fires.any() else np.zeros(n, bool)
    may = pod_check(trigger) & (~first.open | ~second.open) & allows(first) & allows(second) & free_pods
    return may, ~judged


def _replacement_seen(w: Window, watch: np.ndarray, judged_running: np.ndarray, pod_row: np.ndarray,
                      now: float) -> np.ndarray:
    """(N,) window ``w``'s ``seen``, set to ``now`` where it is watched (``watch`` (N,)), not seen
    yet, and one of its judged pods runs (``judged_running`` (P,))."""
    n = w.action.size
    runs = np.bincount(pod_row[judged_running], minlength=n)[:n] > 0 if judged_running.any() else np.zeros(n, bool)
    return np.where(watch & np.isnan(w.seen) & runs, now, w.seen)


def _hung_judge_s(params: HealthParams, check: np.ndarray) -> np.ndarray:
    """(N,) seconds a hung-pod ``check`` (N,) needs to judge a pod from when it runs: its start-up +
    notReadyFor + for (its window less the cycle after: a replacement is seen a cycle after the
    restart at the earliest); 0 for another check."""
    return np.asarray([hung_verify_window_s(c, 0.0) for c in params.checks] or [0.0])[check]


def verify_window_for(params: HealthParams, check: np.ndarray) -> np.ndarray:
    """(N,) seconds the verification of an action triggered by ``check`` (N,) (-1: none) stays open:
    the check's window (a hung-pod check's covers its replacement's start-up + notReadyFor)."""
    check = np.asarray(check, np.int64)
    if not params.checks:
        return np.full(check.size, params.verify_window_s)
    return np.where(check >= 0, params.verify_windows_s[np.maximum(check, 0)], params.verify_window_s)


def _hung_restart(params: HealthParams, w: Window) -> np.ndarray:
    """(N,) bool: the action under verification in ``w`` is a pod restart a hung-pod check called for."""
    if not params.checks:
        return np.zeros(w.action.size, bool)
    return (w.action == Remedy.RESTART_POD) & (w.check >= 0) & params.hung[np.maximum(w.check, 0)]


def _at(per_target: np.ndarray, pod_row: np.ndarray) -> np.ndarray:
    """(P,) the target value of each pod (NaN comparisons are False)."""
    return per_target[pod_row] if pod_row.size else np.zeros(0)


# --- proposals -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proposal:
    """What the firing checks ask for, per target (N,).

    want: Remedy (NONE when nothing fires); trigger: the check behind it (-1); escalated: want
    comes from the ladder; systemic; new_revision / after_rollout: a disruptive check is
    explained by the current revision; blamed_check: the first such check (-1).
    """

    want: np.ndarray
    trigger: np.ndarray
    escalated: np.ndarray
    systemic: np.ndarray
    new_revision: np.ndarray
    after_rollout: np.ndarray
    blamed_check: np.ndarray


def _blame(firing: np.ndarray, began: np.ndarray, since: np.ndarray, done: np.ndarray, params: HealthParams,
           disruptive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(new_revision, after_rollout), each (R, C) bool, for rows with their revision times (R,)."""
    with np.errstate(invalid="ignore"):
        blamed = firing & disruptive & (began >= since[:, None])
        return (blamed & (began - since[:, None] <= params.new_revision_window_s),
                blamed & (began - done[:, None] <= params.rollback_window_s))


def _first(mask: np.ndarray) -> np.ndarray:
    """(N,) index of the first True column, -1 where none."""
    if mask.shape[1] == 0:
        return np.full(mask.shape[0], -1, dtype=np.int64)
    return np.where(mask.any(axis=1), mask.argmax(axis=1), -1)


def still_bad(params: HealthParams, smoothed: np.ndarray) -> np.ndarray:
    """(N, C) bool: the smoothed value (the worst pod's for pod checks) meets the unhealthy
    condition now; NaN (missing) never does."""
    if not params.checks:
        return np.zeros(smoothed.shape, bool)
    threshold = np.array([c.unhealthy for c in params.checks])
    above = np.array([c.direction == Direction.ABOVE for c in params.checks])
    with np.errstate(invalid="ignore"):
        return np.where(above, smoothed > threshold, smoothed < threshold)


def propose(params: HealthParams, view: CheckView, pods: PodState, pod_row: np.ndarray, rem: RemedyState,
            rev: RevisionState) -> tuple[Proposal, RemedyState]:
    """The strongest remedy the firing checks ask for (ties: the first check), the pending
    escalation taking precedence while its check still fires, and the revision blame.

    Returns the proposal and the state with stale escalations (check no longer firing) dropped.
    """
    n, c = view.phase.shape
    if not (view.phase == _FIRING).any() and not (rem.escalation != _NONE).any():
        return _nothing_proposed(n, rem)
    # Act only on a check that is firing AND still bad now: a firing check on its way back
    # (between the thresholds, waiting out its clear duration) asks for nothing new. Without
    # this, a latency check fired by an overload that scaling has already absorbed would
    # restart pods a minute later.
    firing = (view.phase == _FIRING) & still_bad(params, view.smoothed)
    eff = params.effective_actions
    score = np.where(firing, eff * (c + 1) + (c - np.arange(c)), -1)
    trigger = np.where(firing.any(axis=1), score.argmax(axis=1), -1) if c else np.full(n, -1, np.int64)
    want = np.where(trigger >= 0, eff[np.maximum(trigger, 0)] if c else 0, int(Remedy.NONE))

    esc_chk = np.maximum(rem.escalation_check, 0)
    live = (rem.escalation != Remedy.NONE) & (firing[np.arange(n), esc_chk] if c else False)
    esc_want = rem.escalation
    if c:
        workload = params.scopes[esc_chk] == Scope.WORKLOAD
        esc_want = np.where(workload & (esc_want == Remedy.RESTART_POD), int(Remedy.ROLLING_RESTART), esc_want)
    want = np.where(live, esc_want, want)
    trigger = np.where(live, rem.escalation_check, trigger)
    rem = replace(rem, escalation=np.where(live, rem.escalation, 0),
                  escalation_check=np.where(live, rem.escalation_check, -1))

    # a hung-pod check is never the release's doing: most pods of the pod's own revision are Ready
    disruptive = np.isin(params.actions, _DISRUPTIVE) & ~params.hung
    blamable = ~rev.trusted & (rev.current != "")
    new_rev, after = _blame(firing & blamable[:, None], view.active_since, rev.since, rev.rollout_done_at, params,
                            disruptive)
    if params.pod_columns.size and pod_row.size:  # per pod: any firing pod whose episode is blamed
        pc = params.pod_columns
        p_firing = (pods.table.phase == _FIRING) & blamable[pod_row][:, None]
        p_new, p_after = _blame(p_firing, pods.table.active_since, rev.since[pod_row], rev.rollout_done_at[pod_row],
                                params, disruptive[pc])
        for j, col in enumerate(pc):
            new_rev[:, col] = np.bincount(pod_row[p_new[:, j]], minlength=n)[:n] > 0
            after[:, col] = np.bincount(pod_row[p_after[:, j]], minlength=n)[:n] > 0
    blamed_check = np.where(_first(new_rev) >= 0, _first(new_rev), _first(after))

    t = np.maximum(trigger, 0)
    # a hung-pod check's own rule (most of the pod's peers Ready) is its systemic guard: a share of
    # firing pods at the systemic bar (2 of 4) is still pods hung among Ready ones, for their restart
    systemic = ((want == Remedy.RESTART_POD) & (trigger >= 0) & (params.scopes[t] == Scope.POD if c else False)
                & (~params.hung[t] if c else False)
                & (view.share_firing[np.arange(n), t] >= params.systemic_share if c else False)
                & (view.firing[np.arange(n), t] >= params.systemic_min_pods if c else False))
    return Proposal(want.astype(np.int64), trigger.astype(np.int64), live, systemic, new_rev.any(axis=1),
                    after.any(axis=1), blamed_check.astype(np.int64)), rem


def _nothing_proposed(n: int, rem: RemedyState) -> tuple[Proposal, RemedyState]:
    """``propose`` where no check fires and no escalation is pending (a pod check fires on a target
    only where one of its pods does): nothing wanted, nothing blamed, no escalation kept."""
    none, no = (lambda: np.full(n, -1, np.int64)), (lambda: np.zeros(n, bool))  # noqa: E731 (own arrays each)
    return (Proposal(np.full(n, _NONE, np.int64), none(), no(), no(), no(), no(), none()),
            replace(rem, escalation=np.zeros_like(rem.escalation), escalation_check=np.full_like(rem.escalation_check,
                                                                                                    -1)))


# --- pods to restart -------------------------------------------------------------------------


def restart_room(params: HealthParams, pods: PodState, pod_row: np.ndarray, pod_ready: np.ndarray,
                 trigger: np.ndarray, current: np.ndarray, ready: np.ndarray, budget_left: np.ndarray,
                 eligible: np.ndarray | None = None) -> np.ndarray:
    """(N,) pods restart-pod may restart now: the firing pods of the trigger check, not-ready ones
    first (restarting them disrupts nothing more), ready ones only while fewer than
    max-unavailable pods are unavailable (current - ready counts), and never beyond the budget.
    eligible: (P,) bool, the pods that may be restarted at all (None: every pod).
    """
    n = current.size
    if not (trigger >= 0).any():  # no pod restart wanted: no pod to count
        return np.zeros(n, np.int64)
    mask = firing_pod_mask(params, pods, pod_row, trigger)
    if eligible is not None:
        mask &= eligible
    unready = np.bincount(pod_row[mask & ~pod_ready], minlength=n)[:n] if mask.any() else np.zeros(n, np.int64)
    ready_f = np.bincount(pod_row[mask & pod_ready], minlength=n)[:n] if mask.any() else np.zeros(n, np.int64)
    unavailable = np.maximum(0, np.asarray(current, np.int64) - np.asarray(ready, np.int64))
    room = np.maximum(0, params.budgets.max_unavailable(current) - unavailable)
    return np.maximum(0, np.minimum(budget_left, unready + np.minimum(ready_f, room))).astype(np.int64)


def pick_pods(params: HealthParams, pods: PodState, pod_row: np.ndarray, pod_ready: np.ndarray,
              trigger: np.ndarray, count: np.ndarray, eligible: np.ndarray | None = None) -> np.ndarray:
    """(P,) bool: for each target, its first ``count`` firing pods of the trigger check, not-ready
    first, then the earliest to fire, then by key; only ``eligible`` (P,) pods (None: any)."""
    if not (trigger >= 0).any():  # no pod restart wanted
        return np.zeros(pod_row.size, bool)
    mask = firing_pod_mask(params, pods, pod_row, trigger) & (count[pod_row] > 0 if pod_row.size else False)
    if eligible is not None:
        mask &= eligible
    if not mask.any():
        return np.zeros(pod_row.size, bool)
    pod_col = np.full(len(params.checks) + 1, 0, dtype=np.int64)
    pod_col[params.pod_columns] = np.arange(params.pod_columns.size)
    cand = np.flatnonzero(mask)
    fired = pods.table.fired_at[cand, pod_col[trigger[pod_row[cand]]]]
    order = cand[np.lexsort((pods.keys[cand], fired, pod_ready[cand], pod_row[cand]))]
    rows = pod_row[order]
    starts = np.r_[0, np.flatnonzero(np.diff(rows)) + 1]
    rank = np.arange(rows.size) - np.repeat(starts, np.diff(np.r_[starts, rows.size]))
    chosen = np.zeros(pod_row.size, bool)
    chosen[order[rank < count[rows]]] = True
    return chosen


# --- after arbitration -----------------------------------------------------------------------

def remember(params: HealthParams, rem: RemedyState, rev: RevisionState, budgets: BudgetState, action: np.ndarray,
             from_health: np.ndarray, hold: np.ndarray, hold_reason: np.ndarray, replicas: np.ndarray,
             restarted: np.ndarray, check: np.ndarray, rollback_to: np.ndarray, now: float
             ) -> tuple[RemedyState, RevisionState, BudgetState]:
    """Update the memory with the chosen actions (assumed applied): budgets, verification
    windows, rollback/restart markers, scale-up floors and holds. All arguments are (N,)."""
    rollback = action == Act.ROLLBACK
    rolling = action == Act.ROLLING_RESTART
    verified = rollback | rolling | (action == Act.RESTART_POD)
    took = from_health | hold
    if not took.any() and not verified.any():
        return rem, rev, budgets  # no health action, no hold (a scaling change alone): nothing to remember
    # a pod restart taken while the first window is open (beside it: ``beside_verification``) opens
    # the second; every other action finds both closed (arbitration) and opens the first
    second = verified & (rem.verify_action != Remedy.NONE)
    first = verified & ~second
    until = now + verify_window_for(params, check)
    health_scale = from_health & (action == Act.SCALE)
    budgets = budgets.record(np.where(rolling, 1, np.where(action == Act.RESTART_POD, restarted, 0)), rollback, now)
    rem = replace(
        rem,
        verify_action=np.where(first, action, rem.verify_action),  # one type: the action is the remedy
        verify_check=np.where(first, check, rem.verify_check),
        verify_started=np.where(first, now, rem.verify_started),
        verify_until=np.where(first, until, rem.verify_until), verify_seen=np.where(first, np.nan, rem.verify_seen),
        pod_verify_check=np.where(second, check, rem.pod_verify_check),
        pod_verify_started=np.where(second, now, rem.pod_verify_started),
        pod_verify_until=np.where(second, until, rem.pod_verify_until),
        pod_verify_seen=np.where(second, np.nan, rem.pod_verify_seen),
        escalation=np.where(took, 0, rem.escalation), escalation_check=np.where(took, -1, rem.escalation_check),
        held=rem.held | hold, held_reason=np.where(hold, hold_reason, rem.held_reason),
        held_at=np.where(hold, now, rem.held_at),
        floor=np.where(health_scale, replicas, rem.floor),
        floor_until=np.where(health_scale, now + params.scale_up_hold_s, rem.floor_until),
        cooldown_until=np.where(health_scale, now + params.verify_window_s, rem.cooldown_until))
    rev = replace(rev, rolled_back_to=np.where(rollback, rollback_to, rev.rolled_back_to).astype(object),
                  restarted=np.where(rolling, rev.current, rev.restarted).astype(object))
    return rem, rev, budgets
