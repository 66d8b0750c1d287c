"""A StatefulSet's canary judged by a record revision check: said, not acted on.

A StatefulSet cannot be rolled back by setpoint, so a policy for StatefulSets names no rollback and
its revision checks say ``record``. Before, a record check's verdict reached nothing but the
record's ``revision_checks``: the reason read NoAction, and a pod check firing on the canary's pods
restarted them, which recreated them on the same bad revision. Now the target reads
RevisionWorseRecorded (trigger: the revision check), the canary's pods are not restarted for it (the
stable pods below the partition still are), and a canary held at its partition is judged for as
long as it is held (not only for rollbackWindow after its pods came up). A Deployment's record check
is the same (a team watching what a rollback check would do before trusting it): before, its verdict
was in the records only (NoAction) and the revision it judged worse could become known healthy; a
rollback check, or another check's rollback, is unchanged.

The world at fixed times (T0 + s, 15 s cycles): StatefulSet web, 5 pods, revision 1 alone for
10 minutes; then revision 2 on web-2..web-4 (partition 2), serving 3/5 of 900 requests a cycle.
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
STABLE_RATIO = 0.002


def _params(rollback: bool = False, **kw) -> HealthParams:
    kw.setdefault("rollback_window_s", 600.0)
    return HealthParams.of((pod_check("pod-errors", for_s=30.0),),
                           revision_checks=(RevisionTestParams("canary-errors", rollback=rollback),),
                           healthy_after_s=300.0, **kw)


def _observe(revision: str, canary: bool, canary_ratio: float, canary_requests: float, firing: set[str],
             kind: str, partitioned: bool, accepted: str = "") -> HealthObservation:
    """One cycle's observation: the canary's pods (web-2..4 when ``canary``) on ``revision``, the
    others on revision 1; ``firing``: the pods whose pod check reads bad; ``accepted``: web's
    setpoint.io/accept-revision annotation ('' none)."""
    on_new = np.array([not canary or k >= 2 for k in range(5)])
    values = np.array([[1.0 if p in firing else 0.0] for p in PODS])
    pods = PodTable.of(np.zeros(5, np.int64), PODS, values, checks=1, new_revision=on_new)
    n1 = canary_requests if canary else 900.0
    n0 = 900.0 - n1 if canary else 0.0
    new = ratio_stats([[n1]], [[n1 * (canary_ratio if canary else STABLE_RATIO)]])
    old = ratio_stats([[n0]], [[n0 * STABLE_RATIO]])
    supported = {"StatefulSet": False, "Deployment": True, "unknown": None}[kind]
    return HealthObservation.of([5], checks=1, revision=[revision], pods=pods, revision_new=new, revision_old=old,
                                rollback_supported=None if supported is None else [supported],
                                partitioned=[partitioned], accepted=[accepted])


def _run(*, canary: bool = True, canary_ratio: float = 0.05, kind: str = "StatefulSet", rollback: bool = False,
         partitioned: bool = True, firing: set[str] = frozenset(PODS[2:]), fire_from_s: float = 600.0,
         serves_from_s: float = 600.0, canary_requests: float = 540.0, minutes: int = 20,
         accept: tuple[float, str] | None = None, **kw):
    """Revision 1 alone for 10 min, then (``canary``) revision 2 on web-2..4, serving
    ``canary_requests`` of the 900 requests a cycle from ``serves_from_s``. Returns the decisions
    from 600 s on. ``accept``: (from s, revision), web's accept-revision annotation from then on."""
    p = _params(rollback, **kw)
    state = HealthState.empty(1, p)
    out = []
    for k in range(minutes * 4):
        t = 15.0 * k
        on = canary and t >= 600.0
        requests = canary_requests if t >= serves_from_s else 0.0
        obs = _observe("2" if on else "1", on, canary_ratio, requests, set(firing) if t >= fire_from_s else set(),
                       kind, partitioned and on, accept[1] if accept is not None and t >= accept[0] else "")
        d = heal(p, obs, state, T0 + t)
        state = d.state
        if t >= 600.0:
            out.append(d)
    return out


def _reasons(ds) -> list[str]:
    return [d.record(0, "p", "default/web").reason for d in ds]


ROWS = {
    # name: (run arguments, a cycle says RevisionWorseRecorded, the health actions sent)
    "canary worse: said, its firing pods not restarted": (dict(), True, set()),
    "canary equal: quiet": (dict(canary_ratio=STABLE_RATIO, firing=set()), False, set()),
    "no partition, no second revision: quiet": (dict(canary=False, firing=set()), False, set()),
    "canary worse, no pod check firing: said": (dict(firing=set()), True, set()),
    # a Deployment's new ReplicaSet (no partition): a record check's verdict is said as a canary's
    "deployment, record check: said, its pods not restarted": (dict(kind="Deployment", partitioned=False,
                                                                     firing=set()), True, set()),
    # the pod check's episode began with the release: its timing still blames the release (rule 3
    # comes before the record check's), the verdict said until then
    "deployment, record check, release-timed pod check: said, then rolled back": (
        dict(kind="Deployment", partitioned=False), True, {"rollback"}),
    "deployment, rollback check: rolled back as before": (dict(kind="Deployment", rollback=True, firing=set(),
                                                               partitioned=False), False, {"rollback"}),
    "kind unknown: as a deployment": (dict(kind="unknown", firing=set(), partitioned=False), True, set()),
}


@pytest.mark.parametrize("name", list(ROWS))
def test_a_canary_judged_worse_by_a_record_check_is_said_not_acted_on(name):
    args, said, actions = ROWS[name]
    ds = _run(**args)
    reasons = _reasons(ds)
    assert ("RevisionWorseRecorded" in reasons) == said, reasons
    assert {Act(int(d.action[0])).word for d in ds if d.action[0] != Act.NONE} == actions, reasons
    if said:
        d = ds[reasons.index("RevisionWorseRecorded")]
        rec = d.record(0, "p", "default/web").to_dict()
        assert (rec["trigger"], rec["revision"], rec["action"]) == ("canary-errors", "2", None), rec
        rc = rec["revision_checks"]["canary-errors"]
        assert rc["verdict"] == "bad" and rc["new_value"] == pytest.approx(0.05), rc
        assert bool(d.revision_recorded[0])
        # said from then on, while the canary is held (or until a rollback another check asks for)
        said_until = next((k for k, d in enumerate(ds) if d.action[0] != Act.NONE), len(ds))
        assert reasons[reasons.index("RevisionWorseRecorded"):said_until] == ["RevisionWorseRecorded"] * (
            said_until - reasons.index("RevisionWorseRecorded")), reasons
    else:
        assert not any(bool(d.revision_recorded[0]) for d in ds)


def test_a_leaking_stable_pod_is_restarted_beside_a_canary_judged_worse():
    """web-0 (below the partition, the stable revision) leaks beside the bad canary: it is
    restarted; the canary's firing pods are not."""
    ds = _run(firing={PODS[0], *PODS[2:]})
    restarted = {pod for d in ds for pod in d.restart_pods(0)}
    assert restarted == {PODS[0]}, restarted
    assert "RevisionWorseRecorded" in _reasons(ds)


@pytest.mark.parametrize("partitioned, said", [
    pytest.param(True, True, id="held-at-its-partition: judged when it serves"),
    pytest.param(False, False, id="not-partitioned: the comparison ended rollbackWindow after the rollout"),
])
def test_a_canary_is_judged_for_as_long_as_its_partition_holds_it(partitioned, said):
    """The canary takes no traffic for 15 minutes (rollbackWindow 10 minutes), then serves badly."""
    ds = _run(firing=set(), serves_from_s=1500.0, minutes=40)
    ds_alt = ds if partitioned else _run(firing=set(), serves_from_s=1500.0, minutes=40, partitioned=False)
    assert ("RevisionWorseRecorded" in _reasons(ds_alt)) == said, _reasons(ds_alt)


def test_a_canary_judged_worse_never_becomes_known_healthy():
    """No check fires on the canary's pods, only the record revision check judges it: it is not a
    revision known healthy after healthyAfter (5 min) either (else, undone and put out again under
    the same ControllerRevision name, it would be trusted and never compared again)."""
    ds = _run(firing=set())
    assert "RevisionWorseRecorded" in _reasons(ds)
    assert str(ds[-1].state.revisions.healthy[0]) == "1", ds[-1].state.revisions
    equal = _run(canary_ratio=STABLE_RATIO, firing=set())
    assert str(equal[-1].state.revisions.healthy[0]) == "2"  # a canary no worse is, as before


@pytest.mark.parametrize("kind, partitioned", [
    pytest.param("Deployment", False, id="deployment: its new ReplicaSet judged worse"),
    pytest.param("StatefulSet", True, id="statefulset: its canary judged worse"),
])
def test_a_new_revision_judged_worse_by_a_record_check_is_never_known_healthy(kind, partitioned):
    """A Deployment's revision so judged would otherwise be known healthy after healthyAfter (5 min),
    and so a rollback target for a later release."""
    ds = _run(firing=set(), kind=kind, partitioned=partitioned)
    assert "RevisionWorseRecorded" in _reasons(ds)
    assert str(ds[-1].state.revisions.healthy[0]) == "1", ds[-1].state.revisions


def _latency_run(firing: set[str] | dict[str, float], canary_pods: int = 3, minutes: int = 12):
    """The canary judged by a latency record check (its pods' p95 300 ms against 100 ms, worse by
    2x), a not-ready pod check (restart-pod) firing on ``firing`` from 630 s (a dict: pod -> from
    when): a crash loop, which the latency judgement says nothing of. ``canary_pods``: the pods at
    or above the partition."""
    from controller.core.health.revision_test import Measure, latency_stats

    p = HealthParams.of((pod_check("not-ready", for_s=30.0),),
                        revision_checks=(RevisionTestParams("canary-p95", measure=Measure.LATENCY, rollback=False),),
                        healthy_after_s=300.0, rollback_window_s=600.0)
    state, out = HealthState.empty(1, p), []
    for k in range(minutes * 4):
        t = 15.0 * k
        on = t >= 600.0
        on_new = np.array([on and k >= 5 - canary_pods for k in range(5)])
        starts = firing if isinstance(firing, dict) else dict.fromkeys(firing, 630.0)
        values = np.array([[1.0 if on and t >= starts.get(pod, np.inf) else 0.0] for pod in PODS])
        pods = PodTable.of(np.zeros(5, np.int64), PODS, values, checks=1, new_revision=on_new)
        latency = np.where(on_new, 0.3, 0.1) * (1.0 + 0.01 * np.arange(5))
        new = latency_stats(latency[None, :], on_new[None, :])
        old = latency_stats(latency[None, :], ~on_new[None, :])
        obs = HealthObservation.of([5], checks=1, revision=["2" if on else "1"], pods=pods, revision_new=new,
                                   revision_old=old, rollback_supported=[False], partitioned=[on])
        d = heal(p, obs, state, T0 + t)
        state = d.state
        if on:
            out.append(d)
    return out


HOLD_ROWS = {
    # name: (pods firing, canary pods, the pods restarted)
    # beside the stable pods, a check firing on the canary's pods and none of the stable ones is the
    # release's: they would come back on it, whatever the judgement measured (here latency)
    "all three canary pods crash-looping: held": (set(PODS[2:]), 3, set()),
    # one pod is how a bad release begins too (its pods cross the check's `for` one by one): restarting
    # it would fail its verification as the next ones fire and open the circuit breaker (Held) on a
    # canary the Event already names; a pod's own crash loop waits for the canary's end (undo, or
    # rolled out: then it runs alone and is restarted), the kubelet restarting its container meanwhile
    "one of three crash-looping, the others fine: held too": ({PODS[4]}, 3, set()),
    "a one-pod canary's pod: held": ({PODS[4]}, 1, set()),
}


@pytest.mark.parametrize("name", list(HOLD_ROWS))
def test_which_pods_of_a_canary_judged_worse_are_restarted(name):
    """The restart hold, reviewed with a latency judgement and a crash-looping (not-ready) pod: held
    while the stable pods serve beside the canary and do not fire (a guard: as the previous session
    left it; a variant that restarted a minority of the canary's pods tripped the circuit breaker
    end to end, see test_a_bad_canary_s_first_failing_pod_does_not_trip_the_breaker)."""
    firing, canary_pods, restarted = HOLD_ROWS[name]
    ds = _latency_run(firing, canary_pods)
    assert all(bool(d.revision_recorded[0]) for d in ds[4:]), _reasons(ds)  # judged within a minute
    sent = {pod for d in ds for pod in d.restart_pods(0)}
    assert sent == restarted, (sent, _reasons(ds))
    assert not any(d.action[0] not in (Act.NONE, Act.RESTART_POD) for d in ds), _reasons(ds)
    if not restarted:
        assert "RevisionWorseRecorded" == _reasons(ds)[-1]


def test_a_bad_canary_s_first_failing_pod_does_not_trip_the_breaker():
    """A bad canary's pods cross the per-pod check one by one (web-4 from 630 s, web-3 and web-2
    from 660 s): none is restarted and the target is never held; the judgement is said throughout."""
    ds = _latency_run({PODS[4]: 630.0, PODS[3]: 660.0, PODS[2]: 660.0}, minutes=14)
    assert not any(d.restart_pods(0) for d in ds), _reasons(ds)
    assert not any(bool(d.held[0]) for d in ds) and _reasons(ds)[-1] == "RevisionWorseRecorded", _reasons(ds)


VERDICT_ROWS = {
    # name: (run arguments, the pods restarted, a cycle says RestartWaitsForRevisionVerdict, the last reason)
    # The canary serves 30 of 900 requests a cycle: its verdict takes a few cycles, and the pod check
    # (for: 30 s) fires on its pods before it. Before: the first firing pod was restarted then
    # (RestartFiringPods, the verdict still undecided); it came back on the same revision, failed its
    # verification as the verdict came, and the target was held (the circuit breaker) on a canary
    # the Event names. End to end, the restart came the cycle after the canary's last pod got Ready
    # (max-unavailable's room), and kubectl rollout status read "Waiting for 1 pods to be ready".
    "a bad canary's first firing pod, before the verdict: waits, then said": (
        dict(firing={PODS[4]}, canary_requests=30.0), set(), True, "RevisionWorseRecorded"),
    "a bad canary's pods all firing before the verdict: wait, then said": (
        dict(canary_requests=30.0), set(), True, "RevisionWorseRecorded"),
    # a stable pod firing beside the canary is restarted as ever (its own fault: no verdict to wait
    # for), the canary's firing pod is not picked for it
    "a stable pod firing beside a canary not judged yet: restarted, the canary's not": (
        dict(firing={PODS[0], PODS[4]}, canary_requests=30.0), {PODS[0]}, False, None),
    # a canary found no worse (at 780 s here): its firing pod is one pod's fault, restarted then
    "a canary no worse, its one firing pod: restarted once the verdict is in": (
        dict(firing={PODS[4]}, canary_ratio=STABLE_RATIO), {PODS[4]}, True, None),
    # a canary that has served nothing gives the comparison no evidence (a crash loop never gets
    # Ready): no verdict to wait for, its firing pod restarted as before
    "a canary that never served: its firing pod restarted as before": (
        dict(firing={PODS[4]}, serves_from_s=1e9), {PODS[4]}, False, None),
}


@pytest.mark.parametrize("name", list(VERDICT_ROWS))
def test_a_canary_s_firing_pods_wait_for_its_record_check_s_verdict(name):
    """A record revision check still comparing a StatefulSet's canary with its stable pods (no
    verdict yet, the canary has served): a pod check firing only on the canary's pods waits for the
    verdict (RestartWaitsForRevisionVerdict, nothing sent), as it is held once the canary is judged
    worse (they would come back on the same revision); judged no worse, they are restarted."""
    args, restarted, waited, last = VERDICT_ROWS[name]
    ds = _run(**args)
    reasons = _reasons(ds)
    sent = {pod for d in ds for pod in d.restart_pods(0)}
    assert sent == restarted, (sent, reasons)
    assert ("RestartWaitsForRevisionVerdict" in reasons) == waited, reasons
    if not restarted:  # nothing failed a verification: the target is never held
        assert not any(bool(d.held[0]) for d in ds), reasons
    if last is not None:
        assert reasons[-1] == last, reasons
    if waited:  # it waits only until the verdict: never once the canary is judged worse
        judged = [k for k, d in enumerate(ds) if bool(d.revision_recorded[0])]
        assert all(reasons[k] != "RestartWaitsForRevisionVerdict" for k in judged), reasons
        from controller.cli.records import _format_health

        rec = ds[reasons.index("RestartWaitsForRevisionVerdict")].record(0, "p", "default/web").to_dict()
        assert (rec["action"], rec["revision_checks"]["canary-errors"]["verdict"]) == (None, "undecided"), rec
        assert "not restarted yet: the check fires only on pods of the new revision" in _format_health(rec)


def test_a_hung_canary_pod_is_restarted_without_waiting_for_the_verdict():
    """A hung-pod check's restart is one pod's fault (a stuck process: the hung check never blames a
    release): a canary's hung pod (web-4, never Ready since it was made at 600 s; startup 5 min,
    notReadyFor 2 min) is restarted while the record check has no verdict yet (a canary no worse, at
    100 requests a cycle: undecided for the whole run), not held for it."""
    from tests.core.test_hung_pods import OLD, hung_check

    p = HealthParams.of((hung_check(),), revision_checks=(RevisionTestParams("canary-errors", rollback=False),),
                        healthy_after_s=300.0, rollback_window_s=600.0)
    state, reasons, sent = HealthState.empty(1, p), [], []
    for k in range(20 * 4):
        t = 15.0 * k
        on = t >= 600.0
        on_new = [on and j >= 2 for j in range(5)]
        hung = [on and j == 4 for j in range(5)]
        pods = PodTable.of(np.zeros(5, np.int64), PODS, np.zeros((5, 1)), ready=[not h for h in hung], checks=1,
                           born=[T0 + 600.0 if n else OLD for n in on_new], new_revision=on_new,
                           not_ready_since=[T0 + 600.0 if h else np.nan for h in hung], running=[True] * 5)
        n1 = 100.0 if on else 900.0
        n0 = 800.0 if on else 0.0
        obs = HealthObservation.of([5], [5 - sum(hung)], checks=1, revision=["2" if on else "1"], pods=pods,
                                   revision_new=ratio_stats([[n1]], [[n1 * STABLE_RATIO]]),
                                   revision_old=ratio_stats([[n0]], [[n0 * STABLE_RATIO]]),
                                   rollback_supported=[False], partitioned=[on])
        d = heal(p, obs, state, T0 + t)
        state = d.state_after(False)  # nothing applied: web-4 stays hung
        reasons.append(d.record(0, "p", "default/web").reason)
        sent += [(t, pod) for pod in d.restart_pods(0)]
    assert int(state.revision_tests.verdict[0, 0]) == 0, "the verdict came: the row tests nothing"
    assert sent and sent[0][1] == PODS[4] and 1020.0 <= sent[0][0] <= 1080.0, (sent, reasons)
    assert "RestartHungPod" in reasons and "RestartWaitsForRevisionVerdict" not in reasons, reasons
