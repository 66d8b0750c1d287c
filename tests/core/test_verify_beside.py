"""Verification windows (controller/core/health/remediate.py verify, beside_verification): a pod
restart another pod-scope check calls for goes ahead while a pod restart is verified (its own window,
the second), on pods the open window does not judge; target-wide actions wait for every window; and a
hung-pod restart is judged only once its replacement has been seen running for the check's start-up
+ notReadyFor, at most rollout_wait_s (10m) past its window.

Rows at fixed times: 15 s cycles from T0, five pods web-0 .. web-4 created an hour before, the
shipped policy's numbers (policies/setpoint-healing.yaml): hung {notReadyFor: 2m, startup: 5m}
(window 435 s), a memory check (pod, above 0.9 for 30 s: window 120 s), restarts applied (the pod
goes, a replacement created now comes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.arbitrate import ArbitrationInput, arbitrate
from controller.core.health.checks import PodTable
from controller.core.health.heal import HealthObservation, HealthState, heal
from controller.core.health.params import Act, BudgetParams, HealthParams, Remedy
from tests.core.healing import T0, pod_check
from tests.core.test_hung_pods import OLD, hung_check

REPLACEMENT_STARTUP_S = 30.0  # a cured replacement is Ready 30 s after it runs


def shipped(*extra) -> HealthParams:
    """The hung-pod and memory checks of setpoint-healing.yaml (and ``extra`` pod checks)."""
    return HealthParams.of((hung_check(not_ready_for_s=120.0, startup_s=300.0), pod_check("memory", for_s=30.0))
                           + extra, escalation=(Remedy.RESTART_POD, Remedy.ROLLING_RESTART, Remedy.ROLLBACK),
                           verify_window_s=120.0, interval_s=15.0,
                           budgets=BudgetParams(restarts_per_hour=6, rollbacks_per_day=2, max_unavailable_ratio=0.25))


@dataclass
class Pod:
    born: float
    hung: bool = False  # not Ready once it runs (from T0 for the first pods)
    bad: dict = field(default_factory=dict)  # check column -> t (s from T0) it reports 1.0 from
    runs_at: float = -np.inf  # epoch s it leaves Pending
    hangs_at: float = -np.inf  # epoch s from when ``hung`` holds


@dataclass
class Faults:
    """hung: pods not Ready since T0 (hangs_at: from a later t); bad: {pod: {check column: from t}}; again: a hung pod's
    replacement hangs too; pending_s: a replacement stays Pending that long (inf: for ever);
    replacement_bad: {pod: {column: from t}} for the replacement of that pod."""

    hung: tuple = ()
    hangs_at: dict = field(default_factory=dict)  # {pod: t}: not Ready from T0 + t
    bad: dict = field(default_factory=dict)
    again: bool = False
    pending_s: float = 0.0
    replacement_bad: dict = field(default_factory=dict)


def drive(p: HealthParams, f: Faults, until_s: float) -> list:
    """What each cycle said: (t, action, reason, outcome, restarted pods, the windows open after it:
    the record's ``verifying``)."""
    pods = {f"web-{k}": Pod(OLD, f"web-{k}" in f.hung or f"web-{k}" in f.hangs_at, dict(f.bad.get(f"web-{k}", {})),
                            hangs_at=T0 + f.hangs_at.get(f"web-{k}", 0.0)) for k in range(5)}
    state, out = HealthState.empty(1, p), []
    for t in np.arange(0.0, until_s + 1.0, 15.0):
        now = T0 + t
        names = list(pods)
        running = [now >= pods[n].runs_at for n in names]
        hung = [pods[n].hung and now >= pods[n].hangs_at for n in names]
        ready = [r and not h and now - max(pods[n].runs_at, pods[n].born) >= REPLACEMENT_STARTUP_S
                 for n, r, h in zip(names, running, hung)]
        values = np.zeros((5, len(p.checks)))
        for k, n in enumerate(names):
            for col, since in pods[n].bad.items():
                values[k, col] = 1.0 if t >= since else 0.0
        table = PodTable.of([0] * 5, [f"default/{n}" for n in names], values, ready=ready, checks=len(p.checks),
                            born=[pods[n].born for n in names], running=running,
                            not_ready_since=[np.nan if r else max(T0, pods[n].born, pods[n].hangs_at)
                                             for n, r in zip(names, ready)])
        obs = HealthObservation.of([5], [sum(ready)], checks=len(p.checks), revision=["web-2"], pods=table,
                                   revision_since=[T0 - 10_000.0], revisions=[["web-1", "web-2"]])
        d = heal(p, obs, state, now)
        state = d.state
        r = d.record(0, "p", "Deployment/default/web")
        restarted = [k.split("/", 1)[1] for k in r.restart_pods]
        out.append((t, r.action, r.reason, r.outcome, restarted, list(r.verifying)))
        for old in restarted:
            base = old.split(".")[0]
            gone = pods.pop(old)
            pods[f"{base}.{int(t)}"] = Pod(now, gone.hung and f.again, dict(f.replacement_bad.get(base, {})),
                                           runs_at=now + f.pending_s)
    return out


def said(rows: list) -> list:
    """(t, action, reason, outcome, pods) of the cycles that did or concluded something."""
    return [row[:5] for row in rows if row[1] or row[3]]


MEM = 1  # the memory check's column

# web-3 hangs at T0: fired past 2m at 135 s and restarted (window to 570 s)
BESIDE_ROWS = [
    pytest.param(shipped(), Faults(hung=("web-3",), bad={"web-1": {MEM: 200.0}}), 600.0,
                 [(135.0, "restart-pod", "RestartHungPod", None, ["web-3"]),
                  (240.0, "restart-pod", "RestartFiringPods", None, ["web-1"]),
                  (360.0, None, "Verifying", "Verified", []),  # the leak's window; the hung one's still open
                  (570.0, None, "NoAction", "Verified", [])],
                 id="leak-on-another-pod-restarted-at-240s-inside-the-hung-window-not-at-570s"),
    pytest.param(shipped(pod_check("errors", for_s=30.0)),
                 Faults(hung=("web-3",), bad={"web-1": {MEM: 200.0}, "web-2": {2: 250.0}}), 600.0,
                 [(135.0, "restart-pod", "RestartHungPod", None, ["web-3"]),
                  (240.0, "restart-pod", "RestartFiringPods", None, ["web-1"]),
                  (360.0, "restart-pod", "RestartFiringPods", "Verified", ["web-2"]),
                  (480.0, None, "Verifying", "Verified", []),
                  (570.0, None, "NoAction", "Verified", [])],
                 id="a-third-check-waits-for-a-free-window-the-leaks-at-360s-not-the-hung-pods-at-570s"),
]


@pytest.mark.parametrize("p, faults, until_s, expected", BESIDE_ROWS)
def test_a_pod_restart_of_another_check_goes_ahead_beside_a_pod_restart_verification(p, faults, until_s, expected):
    """Before: every health action waited for the hung-pod restart's 435 s window (Verifying to 570 s)."""
    rows = drive(p, faults, until_s)
    assert said(rows) == expected, said(rows)
    assert not any(row[1] in ("rolling-restart", "rollback") for row in rows)


def test_the_records_name_both_windows_while_both_are_open():
    rows = drive(shipped(), Faults(hung=("web-3",), bad={"web-1": {MEM: 200.0}}), 600.0)
    verifying = {row[0]: [w["check"] for w in row[5]] for row in rows}
    assert (verifying[225.0], verifying[240.0], verifying[345.0], verifying[360.0], verifying[570.0]) == (
        ["hung-pod"], ["hung-pod", "memory"], ["hung-pod", "memory"], ["hung-pod"], [])


# what still waits (the same before the change)
WAIT_ROWS = [
    pytest.param(shipped(), Faults(hung=("web-3",), replacement_bad={"web-3": {MEM: 200.0}}), 600.0,
                 [(135.0, "restart-pod", "RestartHungPod", None, ["web-3"]),
                  (570.0, "restart-pod", "RestartFiringPods", "Verified", ["web-3.135"])],
                 id="a-leak-on-the-hung-pods-replacement-is-left-to-its-window"),
    pytest.param(shipped(), Faults(hung=("web-3",), hangs_at={"web-1": 150.0}), 600.0,
                 [(135.0, "restart-pod", "RestartHungPod", None, ["web-3"]),
                  (570.0, "restart-pod", "RestartHungPod", "Verified", ["web-1"])],
                 id="the-same-check-on-another-pod-waits-for-its-window"),
    pytest.param(shipped(), Faults(hung=("web-3",), bad={n: {MEM: 200.0} for n in ("web-0", "web-1", "web-2")}),
                 600.0,
                 [(135.0, "restart-pod", "RestartHungPod", None, ["web-3"]),
                  (570.0, "rolling-restart", "SystemicNoRestart", "Verified", [])],
                 id="a-leak-on-most-pods-its-rolling-restart-waits-for-the-window"),
]


@pytest.mark.parametrize("p, faults, until_s, expected", WAIT_ROWS)
def test_what_a_pod_restart_verification_still_holds_back(p, faults, until_s, expected):
    rows = drive(p, faults, until_s)
    assert said(rows)[:len(expected)] == expected, said(rows)


# the hung pod's replacement stays Pending (unschedulable); window 435 s from 135 s
PENDING_ROWS = [
    pytest.param(Faults(hung=("web-3",), again=True, pending_s=600.0), 800.0,
                 [(135.0, "restart-pod", "RestartHungPod", None, ["web-3"]),
                  (735.0, "restart-pod", "RestartHungPod", "HungPodHungAgain", ["web-3.135"])],
                 id="pending-10m-then-hangs-judged-HungPodHungAgain-when-it-fires-at-735s"),
    pytest.param(Faults(hung=("web-3",), pending_s=300.0), 900.0,
                 [(135.0, "restart-pod", "RestartHungPod", None, ["web-3"]),
                  (855.0, None, "NoAction", "Verified", [])],
                 id="pending-5m-then-ready-verified-420s-after-it-runs-at-855s-not-570s"),
    pytest.param(Faults(hung=("web-3",), pending_s=np.inf), 1200.0,
                 [(135.0, "restart-pod", "RestartHungPod", None, ["web-3"]),
                  (1170.0, None, "NoAction", "HungReplacementNotJudged", [])],
                 id="never-runs-closed-unjudged-10m-past-the-window-at-1170s"),
]


@pytest.mark.parametrize("faults, until_s, expected", PENDING_ROWS)
def test_a_hung_pod_restart_is_judged_only_once_its_replacement_runs(faults, until_s, expected):
    """Before: Verified at 570 s whatever the replacement did (never ran), and a replacement that
    hung once it ran was a fresh RestartHungPod."""
    got = said(drive(shipped(), faults, until_s))
    assert got == expected, got


def test_a_replacement_seen_running_late_is_said_not_yet_judged():
    rows = drive(shipped(), Faults(hung=("web-3",), pending_s=300.0), 600.0)
    at = {row[0]: row for row in rows}
    [before] = at[420.0][5]  # Pending until 435 s: not seen running
    [after] = at[450.0][5]
    assert (before["check"], before["seen"], after["seen"]) == ("hung-pod", None, T0 + 435.0)


# --- target-wide actions never start while a window is open ----------------------------------------

TARGET_WIDE = (int(Act.ROLLBACK), int(Act.ROLLING_RESTART))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({
    "want": st.sampled_from([int(r) for r in Remedy]), "escalated": st.booleans(), "systemic": st.booleans(),
    "suspect": st.booleans(), "new_revision": st.booleans(), "after_rollout": st.booleans(),
    "can_rollback": st.booleans(), "revision_worse": st.booleans(), "overloaded": st.booleans(),
    "rollout": st.booleans(), "restart_room": st.integers(0, 3), "restart_budget": st.integers(0, 6),
    "rollback_budget": st.integers(0, 2), "beside_verification": st.booleans(), "release_worse": st.booleans(),
    "release_explains": st.booleans(), "excused": st.booleans(), "paused": st.booleans()}))
def test_target_wide_actions_never_start_while_a_verification_is_open(inputs):
    arb = arbitrate(ArbitrationInput.of([4], verifying=True, **inputs))
    assert int(arb.action[0]) not in TARGET_WIDE


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hung=st.sets(st.sampled_from([f"web-{k}" for k in range(5)]), max_size=2),
       bad=st.dictionaries(st.sampled_from([f"web-{k}" for k in range(5)]), st.sampled_from([0.0, 120.0, 300.0]),
                           max_size=4),
       again=st.booleans(), pending_s=st.sampled_from([0.0, 200.0, 700.0]))
def test_no_rolling_restart_or_rollback_while_a_window_is_open_over_runs(hung, bad, again, pending_s):
    """Driven cycle by cycle: a rolling restart or rollback is only sent where no window stays open
    (after its cycle, the one it opened is the only one)."""
    rows = drive(shipped(), Faults(hung=tuple(sorted(hung)), bad={n: {MEM: t} for n, t in bad.items()}, again=again,
                                   pending_s=pending_s), 900.0)
    for row in rows:
        if row[1] in ("rolling-restart", "rollback"):
            assert [w["action"] for w in row[5]] == [row[1]], row
