"""A revision judged worse by a record check stays judged worse for as long as it runs.

Before, the judgement lived only while the comparison ran (a rollout, then rollbackWindow): past it,
``revision_recorded`` (the gauge setpoint_revision_worse, the reason, status's REVISION WORSE) went
back to nothing while the worse revision still ran and nobody had rolled it back; an on-call
engineer read the resolved alert as "fixed". And the same flag held the restarts of that
revision's pods while the window was open, even once it ran alone (nothing else to run, no
comparison to explain a pod's firing). Now the judgement holds until the revision is rolled back or
replaced (the verdict is final for the pair); while it runs alone, a firing pod of it is restarted
as any revision's, a rolling restart of it still is not (a new revision of the same code: the
judgement would start over against its own traffic and pass it).

The world at fixed times (T0 + s, 15 s cycles): Deployment web, 5 pods, revision 1 alone (0.2 %
errors of 900 requests a cycle) until 600 s; its rollout of revision 2 (5 % errors) with web-2..4
on it until 900 s, then all five on it (the old ReplicaSet at 0); rollbackWindow 600 s, so the
comparison ends at 1500 s (and a pod check's timing no longer blames the release: newRevisionWindow
10 min). From 1800 s, per row: nothing, a rollback to revision 1, a release of
revision 3 (0.2 %), a pod of revision 2 leaking, most of them leaking.
"""

from __future__ import annotations

import numpy as np
import pytest

from controller.core.health.checks import PodTable
from controller.core.health.heal import HealthObservation, HealthState, heal
from controller.core.health.params import Act, HealthParams
from controller.core.health.revision_test import RevisionTestParams, ratio_stats
from tests.core.healing import T0, pod_check

PODS = [f"default/web-{k}" for k in range(5)]
GOOD, BAD = 0.002, 0.05
RELEASE_S, DONE_S, WINDOW_END_S, THEN_S = 600.0, 900.0, 1500.0, 1800.0


def _params() -> HealthParams:
    return HealthParams.of((pod_check("pod-mem", for_s=30.0),),
                           revision_checks=(RevisionTestParams("errors", rollback=False),),
                           healthy_after_s=300.0, rollback_window_s=WINDOW_END_S - DONE_S,
                           new_revision_window_s=600.0)


def _world(t: float, then: str, leak_from_s: float) -> tuple[str, bool, np.ndarray, float, set[str]]:
    """(revision, rollout in progress, (5,) pods on it, its error ratio, leaking pods) at T0 + t."""
    leaking = {"leak": set(PODS[:1]), "systemic leak": set(PODS[:4])}.get(then, set()) if t >= leak_from_s else set()
    if t < RELEASE_S:
        return "1", False, np.ones(5, bool), GOOD, set()
    if t >= THEN_S and then in ("rollback", "release 3"):
        revision = "1" if then == "rollback" else "3"
        return revision, t < THEN_S + 60.0, np.ones(5, bool), GOOD, set()
    if t < DONE_S:
        return "2", True, np.arange(5) >= 2, BAD, set()
    return "2", False, np.ones(5, bool), BAD, leaking


def _observe(t: float, then: str, leak_from_s: float, kind: str) -> HealthObservation:
    revision, rollout, on_new, ratio, leaking = _world(t, then, leak_from_s)
    values = np.array([[1.0 if p in leaking else 0.0] for p in PODS])
    pods = PodTable.of(np.zeros(5, np.int64), PODS, values, checks=1, new_revision=on_new)
    n1 = 900.0 * on_new.sum() / 5
    new = ratio_stats([[n1]], [[n1 * ratio]])
    old = ratio_stats([[900.0 - n1]], [[(900.0 - n1) * GOOD]])
    return HealthObservation.of([5], checks=1, revision=[revision], rollout=[rollout], pods=pods,
                                revision_new=new, revision_old=old, rollback_supported=[kind == "Deployment"])


def _run(then: str = "nothing", leak_from_s: float = THEN_S, until_s: float = 2400.0, kind: str = "Deployment"
         ) -> dict[float, object]:
    """The decisions by time (s after T0); ``kind``: a StatefulSet cannot be rolled back (its
    rolling update without a partition is the same world)."""
    p = _params()
    state = HealthState.empty(1, p)
    out = {}
    for k in range(int(until_s // 15) + 1):
        t = 15.0 * k
        d = heal(p, _observe(t, then, leak_from_s, kind), state, T0 + t)
        state = d.state
        out[t] = d
    return out


def _worse(d) -> bool:
    return bool(d.revision_recorded[0])


ROWS = {
    # name: (what happens from 1800 s, at 2400 s: still judged worse, the reason, the pods restarted from 1800 s)
    "window passed, revision 2 still running: still worse, said": ("nothing", True, "RevisionWorseRecorded", set()),
    "rolled back to revision 1: no longer": ("rollback", False, "NoAction", set()),
    "revision 3 rolled out: no longer (judged on its own)": ("release 3", False, "NoAction", set()),
    # revision 2 runs alone: nothing else to run and nothing to compare its pods with; the restart is
    # verified as any (a failed one climbs the ladder); the judgement stands
    "a pod of revision 2 leaking after the window: restarted, still worse": ("leak", True, None, {PODS[0]}),
    # most of its pods: a rolling restart, a new revision of the same code, is not sent
    "most of its pods leaking after the window: no rolling restart": ("systemic leak", True, "RevisionWorseRecorded",
                                                                       set()),
}


@pytest.mark.parametrize("name", list(ROWS))
def test_a_revision_judged_worse_stays_so_until_rolled_back_or_replaced(name):
    then, worse_at_end, reason_at_end, restarted = ROWS[name]
    ds = _run(then)
    judged_at = min(t for t, d in ds.items() if _worse(d))
    assert RELEASE_S <= judged_at < DONE_S, judged_at  # judged during the rollout
    past_window = ds[WINDOW_END_S + 195.0]
    rec = past_window.record(0, "p", "default/web").to_dict()
    assert not past_window.revision_active[0], rec  # the comparison has ended ...
    assert _worse(past_window) and rec["revision_worse"] is True, rec  # ... its verdict stands
    assert (rec["reason"], rec["trigger"], rec["revision"]) == ("RevisionWorseRecorded", "errors", "2"), rec
    assert rec["revision_checks"]["errors"]["verdict"] == "bad", rec
    end = ds[2400.0]
    assert _worse(end) == worse_at_end, end.record(0, "p", "default/web")
    if reason_at_end is not None:
        assert end.record(0, "p", "default/web").reason == reason_at_end
    assert "revision_worse" not in end.record(0, "p", "default/web").to_dict() or worse_at_end
    sent = {pod for t, d in ds.items() if t >= THEN_S for pod in d.restart_pods(0)}
    assert sent == restarted, sent
    assert not any(d.action[0] == Act.ROLLING_RESTART for d in ds.values())
    assert not any(d.action[0] == Act.ROLLBACK for d in ds.values())  # a record check rolls nothing back
    # judged worse from the verdict on, without a gap, while revision 2 runs
    worse_times = [t for t, d in ds.items() if _worse(d)]
    assert worse_times == [t for t in ds if judged_at <= t and _world(t, then, THEN_S)[0] == "2"], worse_times


def test_a_pod_of_a_statefulset_rolled_onto_a_worse_revision_is_restarted_inside_the_window_too():
    """A StatefulSet (never rolled back by setpoint) rolled out in full onto revision 2 (no partition,
    no stable pod left), web-0 leaking from 1000 s, inside rollbackWindow: restarted. Before, it was
    held for the window (its pods come back on it), although no stable pod served beside them to
    tell the release from the pod, and nothing else could run. (A Deployment's pod check that
    begins inside the window is the release's by its timing: a rollback, as before.)"""
    ds = _run("leak", leak_from_s=1000.0, until_s=1400.0, kind="StatefulSet")
    sent = [(t, pod) for t, d in ds.items() for pod in d.restart_pods(0)]
    assert [pod for _, pod in sent] == [PODS[0]] and all(t < WINDOW_END_S for t, _ in sent), sent
    assert all(_worse(d) for t, d in ds.items() if t >= DONE_S)


def test_the_worse_revision_never_becomes_known_healthy_past_the_window():
    """Clean for far longer than healthyAfter (5 min) after the window: still not a revision known
    healthy (a rollback target), as the gauge says."""
    ds = _run("nothing", until_s=3600.0)
    assert str(ds[3600.0].state.revisions.healthy[0]) == "1", ds[3600.0].state.revisions
    assert _worse(ds[3600.0])
