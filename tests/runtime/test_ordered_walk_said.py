"""What `setpoint explain` says of a StatefulSet walking its replicas (the decisions of
tests/core/test_ordered_walk.py): a restart during the walk up is a restart (RestartFiringPods);
a scale-up check during it and a restart of a pod the scale-down removes say why nothing was done.
Before, the first read `health: scale to 8 [ScaleUpOverloaded]`, the others had no such reason; the
condemned line said "at or above spec.replicas", wrong for a StatefulSet numbered from
spec.ordinals.start: now the ordinals kept, from the record's ``ordinals``."""

from __future__ import annotations

import pytest

from controller.cli.records import _format_record
from controller.core.health.params import Remedy
from tests.core.test_ordered_walk import run

ROWS = {
    # name: (row of tests/core/test_ordered_walk.py, the check's action, lines explain prints)
    "a hung pod restarted during the walk up": (
        "ordered walking up 3 -> 6, web-1 hung stops the walk: restarted, not scaled around", Remedy.RESTART_POD,
        ["    health: restart-pod [RestartFiringPods] trigger not-ready"]),
    "a scale-up check during the walk up": (
        "ordered walking up 3 -> 6, web-1 hung stops the walk: restarted, not scaled around", Remedy.SCALE_UP,
        ["    health: no action [OrderedScaleUpPending] trigger not-ready",
         "    no health scale-up: the StatefulSet (OrderedReady) has not created every pod of its last scale-up yet; "
         "it creates them one at a time, each once every lower pod is Ready, so more replicas would come after those"]),
    "a restart of a pod the scale-down removes": (
        "ordered walking down 6 -> 4, web-5 (condemned) firing: not restarted", Remedy.RESTART_POD,
        ["    health: no action [CondemnedPodNotRestarted] trigger not-ready",
         "    not restarted: the check fires only on pods the StatefulSet's scale-down removes (ordinal 4 or above: "
         "it keeps 0..3, spec.replicas 4; deleted, never recreated)"]),
    # spec.ordinals.start 5: pods web-5..web-10, 4 kept (web-5..8), web-10 firing
    "the same, numbered from spec.ordinals.start 5": (
        "ordered walking down 6 -> 4, web-5 (condemned) firing: not restarted", Remedy.RESTART_POD,
        ["    health: no action [CondemnedPodNotRestarted] trigger not-ready",
         "    not restarted: the check fires only on pods the StatefulSet's scale-down removes (ordinal 9 or above, or "
         "below 5: it keeps 5..8, spec.ordinals.start 5 + spec.replicas 4; deleted, never recreated)"]),
}
START = {"the same, numbered from spec.ordinals.start 5": 5}


@pytest.mark.parametrize("name", list(ROWS))
def test_explain_says_what_the_walk_changed(name):
    row, want, lines = ROWS[name]
    d = run(row, want=want, start=START.get(name, 0))
    health = d.record(0, "web-heal", "StatefulSet/default/web").to_dict()
    current = int(d.current[0])
    record = {"target": "default/web", "at": 900.0, "current": current, "ready": 3, "metrics": {}, "combined": current,
              "stabilized": current, "limited": current, "desired": current, "reason": "NoAction", "health": health}
    text = _format_record(record)
    assert text.splitlines()[1:1 + len(lines)] == lines, text
