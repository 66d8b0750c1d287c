"""A run's action log (simulators.result.ActionLog) keeps a cycle's kept scales as arrays and makes
their events only when read: the same events, in the same order, as making each at once did."""

from __future__ import annotations

import gc
import pickle

import pytest

from controller.core.scaling import compiled
from controller.model import REASON_CODES, ScaleActions, TargetRef
from simulators.result import ActionEvent, ActionLog
from simulators.runner import ControllerSpec, run_controllers
from simulators.scenario import load_scenario_text
from tests.simulators.test_lockstep import SCENARIO, policy

TARGETS = [TargetRef("shop", name) for name in ("web", "api", "db")]
UP, DOWN = REASON_CODES.index("ScaleUp"), REASON_CODES.index("ScaleDown")
RESTART = ActionEvent(30.0, "api", "restart-pod", None, None, "crash loop (api-0)", "heal")


def scales(rows, replicas, froms, codes) -> ScaleActions:
    return ScaleActions.of(TARGETS, rows, replicas, froms, codes, "scaler")


def event(t_s, name, f, n, code) -> ActionEvent:
    return ActionEvent(t_s, name, "scale", f, n, REASON_CODES[code], "scaler")


@pytest.mark.parametrize("parts, expected", [
    pytest.param([(15.0, scales([0, 2], [4, 1], [3, 2], [UP, DOWN]), [0, 1])],
                 [event(15.0, "web", 3, 4, UP), event(15.0, "db", 2, 1, DOWN)], id="a-cycle-kept-whole"),
    pytest.param([(15.0, scales([0, 1, 2], [4, 5, 1], [3, 4, 2], [UP, UP, DOWN]), [0, 2])],
                 [event(15.0, "web", 3, 4, UP), event(15.0, "db", 2, 1, DOWN)], id="some-columns-kept"),
    pytest.param([(15.0, scales([1], [5], [4], [UP]), [])], [], id="none-kept"),
    pytest.param([(15.0, scales([1], [5], [4], [UP]), [0]), [RESTART], (45.0, scales([0], [2], [4], [DOWN]), [0])],
                 [event(15.0, "api", 4, 5, UP), RESTART, event(45.0, "web", 4, 2, DOWN)],
                 id="events-between-scales-in-order"),
])
def test_the_log_reads_as_the_events_made_at_once(parts, expected):
    log = ActionLog()
    for part in parts:
        if isinstance(part, list):
            log.extend(part)
        else:
            log.add_scales(*part)
    assert len(log) == len(expected)  # counted before any is made
    assert log == expected and list(log) == expected and log[-1:] == expected[-1:]
    assert all(a is b for a, b in zip(log, log))  # made once: every read sees the same objects
    assert pickle.loads(pickle.dumps(log)) == expected


def test_the_logged_columns_are_the_logs_own():
    """A cycle's arrays may be reused once its actions are applied: the log keeps a copy."""
    actions = scales([0], [4], [3], [UP])
    log = ActionLog()
    log.add_scales(15.0, actions, [0])
    actions.scales[:] = 0
    assert list(log) == [event(15.0, "web", 3, 4, UP)]


def test_a_wide_run_makes_its_scale_events_only_when_they_are_read(monkeypatch):
    """More services than the per-service plots (one budget key per category: ScaleActions'
    arrays straight to the log): no event is made during the run; reading its actions makes them."""
    monkeypatch.setattr(compiled, "switch", "1")
    sc = load_scenario_text(SCENARIO.format(duration="20m").replace("count: 3", "count: 12"))
    gc.collect()
    before = sum(isinstance(o, ActionEvent) for o in gc.get_objects())
    [(run, _)] = run_controllers(sc, [ControllerSpec("policy", "policy", "", policy=policy("setpoint-default.yaml"))])
    scale_count = len(run.actions)
    assert sum(isinstance(o, ActionEvent) for o in gc.get_objects()) - before == 0
    events = list(run.actions)
    assert scale_count == len(events) > 5 and {a.kind for a in events} == {"scale"}
    assert sum(isinstance(o, ActionEvent) for o in gc.get_objects()) - before == len(events)
