"""Healing an OrderedReady StatefulSet while it walks its replicas up or down, through ``heal``.

The StatefulSet controller (podManagementPolicy OrderedReady, the default) creates a scale-up's
pods one at a time, lowest ordinal first, each once every lower pod is Ready, and removes a
scale-down's highest ordinal first, never recreating it (kubernetes pkg/controller/statefulset,
stateful_set_control.go: processReplica waits on the first pod not Running and Ready;
processCondemned). Before: the pods not created yet read as pods still starting, the overload
that trades a restart for a scale-up (ScaleUpOverloaded: more replicas, created after those and
never while a hung pod stops the walk), and a restart of a pod the scale-down removes was sent
(its removal, charged to the budget). Now the walk's restart goes to the restart rules, and a
condemned pod is not restarted (CondemnedPodNotRestarted). A Deployment and a Parallel StatefulSet
(ordered False: their pods are created at once) are as before.

Rows at fixed times (T0 + s, 5 s cycles): spec.replicas and the pods listed (web-0..); the firing
pods bad from T0 (a not-ready check, for 30 s: it fires at 30 s); the decision at 30 s.
"""

from __future__ import annotations

import numpy as np
import pytest

from controller.core.health.checks import PodTable
from controller.core.health.heal import HealthObservation, HealthState, heal
from controller.core.health.params import Act, BudgetParams, Remedy
from tests.core.healing import T0, params, pod_check

# name: (spec, pods listed, {firing pod: Ready}, ordered, overloaded, policy scales,
#        (action, reason, replicas, restarted pods) at 30 s)
ROWS = {
    "ordered walking up 3 -> 6, web-1 hung stops the walk: restarted, not scaled around": (
        6, 4, {"web-1": False}, True, True, True, ("restart-pod", "RestartFiringPods", 6, ["default/web-1"])),
    "the same, a health-only policy: restarted, not left waiting for the walk": (
        6, 4, {"web-1": False}, True, True, False, ("restart-pod", "RestartFiringPods", 6, ["default/web-1"])),
    "ordered walking up, web-1 Ready and leaking: waits for max-unavailable room, no scale-up": (
        6, 4, {"web-1": True}, True, True, True, (None, "MaxUnavailable", 6, [])),
    "ordered, every pod created (web-5 starting): a scale-up instead, as before": (
        6, 6, {"web-1": False}, True, True, True, ("scale", "ScaleUpOverloaded", 8, [])),
    "Parallel StatefulSet, pods not all listed yet: a scale-up instead, as before": (
        6, 4, {"web-1": False}, False, True, True, ("scale", "ScaleUpOverloaded", 8, [])),
    "Deployment, pods not all created yet: a scale-up instead, as before": (
        6, 4, {"web-1": False}, False, True, True, ("scale", "ScaleUpOverloaded", 8, [])),
    "ordered walking down 6 -> 4, web-5 (condemned) firing: not restarted": (
        4, 6, {"web-5": False}, True, False, True, (None, "CondemnedPodNotRestarted", 4, [])),
    "Parallel walking down, web-5 (condemned) firing: not restarted": (
        4, 6, {"web-5": False}, False, False, True, (None, "CondemnedPodNotRestarted", 4, [])),
    "ordered walking down, web-1 (kept) firing: restarted": (
        4, 6, {"web-1": False}, True, False, True, ("restart-pod", "RestartFiringPods", 4, ["default/web-1"])),
    "ordered walking down, web-1 and web-5 firing: only web-1": (
        4, 6, {"web-1": False, "web-5": False}, True, False, True,
        ("restart-pod", "RestartFiringPods", 4, ["default/web-1"])),
}


def observe(p, spec: int, listed: int, firing: dict, ordered: bool, overloaded: bool, statefulset: bool,
            gone: str | None = None, start: int = 0) -> HealthObservation:
    """web's pods web-0..listed-1: the firing ones bad (Ready as ``firing`` says), the highest one
    starting (not Ready) while walking up; condemned at or above ``spec`` (a StatefulSet's).
    ``gone``: that pod deleted, not recreated yet (status.replicas one less; the pods still reach
    ``listed``, runtime/healing.py walk_reach). ``start``: spec.ordinals.start (pods web-start..;
    ``firing`` names them as if from 0)."""
    names = [f"web-{k}" for k in range(listed)]
    c = len(p.checks)
    values = np.array([[1.0 if n in firing else 0.0] for n in names])
    starting = names[-1] if listed <= spec else None
    ready = [firing.get(n, n != starting) for n in names]
    condemned = [statefulset and k >= spec for k in range(listed)]
    kept = [n != gone for n in names]
    names, values = [n for n, k in zip(names, kept) if k], values[kept]
    ready, condemned = [r for r, k in zip(ready, kept) if k], [x for x, k in zip(condemned, kept) if k]
    names = [f"web-{start + int(n.rpartition('-')[2])}" for n in names]
    table = PodTable.of([0] * len(names), [f"default/{n}" for n in names], values, ready=ready, checks=c,
                        born=[T0 - 600.0] * len(names), condemned=condemned)
    return HealthObservation.of([spec], [sum(ready)], np.full((1, c), np.nan), checks=c, revision=["web-good"],
                                pods=table, overloaded=[overloaded], rollback_supported=[not statefulset],
                                ordered=[ordered], created=[len(names)], reached=[listed], ordinal_start=[start])


def run(name: str, want: Remedy = Remedy.RESTART_POD, gone: str | None = None, start: int = 0):
    """The decision at 30 s for row ``name``; ``want``: the check's action; ``gone``: a pod deleted
    and not recreated yet, ``start`` spec.ordinals.start (``observe``)."""
    spec, listed, firing, ordered, overloaded, scales, _ = ROWS[name]
    budgets = BudgetParams(restarts_per_hour=6, rollbacks_per_day=2, max_unavailable_ratio=0.25)
    p = params(pod_check("not-ready", action=want, for_s=30.0), budgets=budgets, scales=scales, max_replicas=8)
    statefulset = not name.startswith("Deployment")
    state = HealthState.empty(1, p)
    for t in range(0, 35, 5):
        d = heal(p, observe(p, spec, listed, firing, ordered, overloaded, statefulset, gone, start), state, T0 + t)
        state = d.state
        if t < 30:
            assert d.action[0] == Act.NONE, (t, d.record(0, "p", "t"))
    return d


@pytest.mark.parametrize("name", list(ROWS))
def test_an_ordered_statefulset_walking_gets_restarts_not_replicas(name):
    *_, (action, reason, replicas, restarted) = ROWS[name]
    record = run(name).record(0, "p", "StatefulSet/default/web")
    assert (record.action, record.reason, record.replicas, list(record.restart_pods)) == (
        action, reason, replicas, restarted), record


SCALE_UP_ROWS = {
    # name: (row of ROWS, (action, reason, replicas) of a scale-up check firing at 30 s)
    "ordered walking up: a scale-up check adds nothing": (
        "ordered walking up 3 -> 6, web-1 hung stops the walk: restarted, not scaled around",
        (None, "OrderedScaleUpPending", 6)),
    "ordered, every pod created: scaled up as before": (
        "ordered, every pod created (web-5 starting): a scale-up instead, as before", ("scale", "ScaleUpCheck", 8)),
    "Parallel: scaled up as before": (
        "Parallel StatefulSet, pods not all listed yet: a scale-up instead, as before", ("scale", "ScaleUpCheck", 8)),
}


@pytest.mark.parametrize("name", list(SCALE_UP_ROWS))
def test_a_scale_up_check_while_an_ordered_statefulset_walks_up(name):
    row, (action, reason, replicas) = SCALE_UP_ROWS[name]
    record = run(row, want=Remedy.SCALE_UP).record(0, "p", "StatefulSet/default/web")
    assert (record.action, record.reason, record.replicas) == (action, reason, replicas), record


#: web at its count, 6 pods (web-0..5: web-5 starting, web-1 firing and not Ready, the others Ready),
#: overloaded, one pod deleted (restarted) and not recreated yet: status.replicas 5
STEADY = "ordered, every pod created (web-5 starting): a scale-up instead, as before"
RECREATE_ROWS = {
    # name: (row of ROWS, the check's action, pod gone, (action, reason, replicas, restarted pods) at 30 s)
    "web-3 deleted, being recreated, a scale-up check: scaled up, not a walk": (
        STEADY, Remedy.SCALE_UP, "web-3", ("scale", "ScaleUpCheck", 8, [])),
    "web-3 deleted, being recreated, overloaded, web-1 hung: restarted (web-3 waits for it)": (
        STEADY, Remedy.RESTART_POD, "web-3", ("restart-pod", "RestartFiringPods", 6, ["default/web-1"])),
    "a real walk up (web-4, web-5 never created), a scale-up check: OrderedScaleUpPending": (
        "ordered walking up 3 -> 6, web-1 hung stops the walk: restarted, not scaled around", Remedy.SCALE_UP, None,
        (None, "OrderedScaleUpPending", 6, [])),
}


@pytest.mark.parametrize("name", list(RECREATE_ROWS))
def test_a_pod_deleted_and_recreated_under_its_name_is_no_walk_up(name):
    """A pod deleted below the top (by setpoint's restart or anyone) and not recreated yet lowers
    status.replicas; before, that read as a walk up: a scale-up check got OrderedScaleUpPending
    though nothing scales. A restart under overload still goes to the restart rules: the
    StatefulSet creates that pod before any a scale-up would add, once every lower one is Ready."""
    row, want, gone, (action, reason, replicas, restarted) = RECREATE_ROWS[name]
    record = run(row, want=want, gone=gone).record(0, "p", "StatefulSet/default/web")
    assert (record.action, record.reason, record.replicas, list(record.restart_pods)) == (
        action, reason, replicas, restarted), record
