"""A target with no Ready pod does not scale down, nor up once it had Ready pods
(normalize._missing_data, the fused kernel alike).

What such a target's load metric reads is what nothing served, not its demand: a dependency down
or every pod failing its readiness probe leaves a request rate near zero (read at the pods) or
whatever the load balancer counts. A scale-down then would meet the load's return with too few
pods, a start-up late. A target whose pods all turned unready together has a cause of its own (a
dependency down): new pods would not get Ready either, so a scale-up on that reading (a load
balancer's count swollen by client retries) only runs it towards replicas.max; and for one
metric window after a spell at least that long, its readings still average the spell. Rows name the
situation; each runs the default policy's stages on numpy and on the kernel, a target per row,
over 20 minutes of 15 s cycles (past the 15-minute window).
"""

from __future__ import annotations

import pytest

from controller.core.scaling import compiled
from controller.core.scaling.decide import Observation, ScalingState, decide_numpy
from controller.model import Reason
from controller.policy import load_policies
from tests.core.helpers import T0
from tests.core.test_compiled import compiled_decide
from tests.simulators.conftest_paths import POLICIES

# (spec replicas, Ready pods, rps read, desired after 20 minutes, whether every cycle is held as
# TargetNotReady; otherwise no cycle is)
ROWS = [
    pytest.param(10, 0, 0.0, 10, True, id="no-ready-pod-no-load-read-holds"),
    pytest.param(10, 0, 600.0, 10, True, id="no-ready-pod-load-at-the-balancer-holds"),
    pytest.param(10, 1, 0.0, 2, False, id="one-ready-pod-scales-down-as-before"),
    pytest.param(4, 0, 1200.0, 15, False, id="no-ready-pod-may-still-scale-up"),
    pytest.param(0, 0, 0.0, 0, False, id="scaled-to-zero-is-left-alone"),
]


def run(path, spec: float, ready: float, rps: float, minutes: float = 20.0) -> tuple[float, list[Reason]]:
    """The desired replicas after ``minutes`` of cycles, each applied, and every cycle's reason."""
    params = load_policies([POLICIES / "setpoint-default.yaml"])[0].params
    state, reasons = ScalingState.empty(1, params), []
    for k in range(int(minutes * 60 / params.interval_s)):
        obs = Observation.of([spec], [min(ready, spec)], [[rps]])
        decision = path(params, obs, state, T0 + k * params.interval_s)
        state, spec = decision.state, float(decision.norm.desired[0])
        reasons.append(Reason(int(decision.norm.reason[0])))
    return spec, reasons


@pytest.mark.parametrize("spec, ready, rps, desired, held", ROWS)
@pytest.mark.parametrize("path", ["numpy", "compiled"])
def test_no_scale_down_without_a_ready_pod(path, spec, ready, rps, desired, held):
    if path == "compiled" and not compiled.enabled():
        pytest.skip("numba unavailable")
    final, reasons = run(decide_numpy if path == "numpy" else compiled_decide, spec, ready, rps)
    assert final == desired
    assert [r == Reason.TARGET_NOT_READY for r in reasons] == [held] * len(reasons)


def test_the_hpa_preset_scales_as_hpa_does():
    """The ``hpa`` preset keeps HPA's behaviour: a total metric over spec replicas scales down."""
    from controller.policy.counterpart import hpa_counterpart

    hpa = hpa_counterpart(load_policies([POLICIES / "setpoint-default.yaml"])[0]).params
    state, spec = ScalingState.empty(1, hpa), 10.0
    for k in range(40):
        decision = decide_numpy(hpa, Observation.of([spec], [0.0], [[100.0]]), state, T0 + 15.0 * k)
        state, spec = decision.state, float(decision.norm.desired[0])
    assert spec < 10.0


# (Ready pods before, rps before, minutes before; rps after, Ready pods after from which minute
# (None: never); spec 0 at minute 3 and 4 again at 3.25, by hand (switched off, then on again);
# desired at the end; the minutes whose cycles are all TargetNotReady (the others are none))
DARK_ROWS = [
    pytest.param(4, 300.0, 2, 1200.0, None, False, 4, (2, 20), id="went-dark-under-a-retry-burst-holds-both-ways"),
    pytest.param(4, 300.0, 2, 0.0, None, False, 4, (2, 20), id="went-dark-reading-nothing-holds"),
    # the last dark cycle 6.75: its readings hold the spell a 1-minute window and a 15 s interval on;
    # then 4 -> 12 (the rate limit), where 12 Ready pods read 100 rps each, their capacity: sized with
    # the headroom once more (saturation.py), 17, not the 15 that 1,200 / 85 asks for
    pytest.param(4, 300.0, 2, 1200.0, 7, False, 17, (2, 8), id="dark-5-minutes-then-ready-waits-a-window-then-scales"),
    pytest.param(4, 300.0, 2, 1200.0, 2.5, False, 17, (2, 2.5), id="dark-for-two-cycles-then-ready-scales-at-once"),
    pytest.param(4, 300.0, 2, 1200.0, None, True, 15, (2, 3), id="switched-off-and-on-is-not-dark"),
]


def run_schedule(path, ready_before: float, rps_before: float, minutes_before: float, rps_after: float,
                 ready_from: float | None, switched_off: bool, minutes: float = 20.0):
    """Spec 4 with ``ready_before`` Ready pods at ``rps_before`` for ``minutes_before``, then no Ready
    pod at ``rps_after`` until minute ``ready_from``, when every pod of the spec is Ready; each decision
    applied. Returns the final desired replicas and the minute of every TargetNotReady cycle."""
    params = load_policies([POLICIES / "setpoint-default.yaml"])[0].params
    state, spec, held = ScalingState.empty(1, params), 4.0, []
    for k in range(int(minutes * 60 / params.interval_s)):
        minute = k * params.interval_s / 60
        if minute < minutes_before:
            ready, rps = ready_before, rps_before
        else:
            ready, rps = (spec if ready_from is not None and minute >= ready_from else 0.0), rps_after
        if switched_off and minute in (3.0, 3.25):  # scaled to 0 by hand, then back to 4: new pods start
            spec = 0.0 if minute == 3.0 else 4.0
        decision = path(params, Observation.of([spec], [min(ready, spec)], [[rps]]), state,
                        T0 + k * params.interval_s)
        state, spec = decision.state, float(decision.norm.desired[0])
        if Reason(int(decision.norm.reason[0])) == Reason.TARGET_NOT_READY:
            held.append(minute)
    return spec, held


@pytest.mark.parametrize("ready_before, rps_before, minutes_before, rps_after, ready_from, switched_off, desired, "
                         "held_minutes", DARK_ROWS)
@pytest.mark.parametrize("path", ["numpy", "compiled"])
def test_a_target_that_lost_every_ready_pod_does_not_scale_up(path, ready_before, rps_before, minutes_before,
                                                               rps_after, ready_from, switched_off, desired,
                                                               held_minutes):
    if path == "compiled" and not compiled.enabled():
        pytest.skip("numba unavailable")
    final, held = run_schedule(decide_numpy if path == "numpy" else compiled_decide, ready_before, rps_before,
                               minutes_before, rps_after, ready_from, switched_off)
    assert final == desired
    start, end = held_minutes
    assert held == [k * 0.25 for k in range(int(start * 4), int(end * 4))]


SHORT_WINDOW_POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: web}
spec:
  targets: {namespace: default, names: [web]}
  interval: 15s
  replicas: {min: 1, max: 20}
  scaling:
    metrics:
      - name: rps
        query: sum(rate(http_requests_total[1m]))
        target: {averagePerReplica: 75}
    behavior:
      scaleDown: {stabilizationWindow: 0s}
"""


@pytest.mark.parametrize("path", ["numpy", "compiled"])
def test_a_rate_refilling_after_a_long_spell_does_not_scale_down(path):
    """A rate read at the pods reads 0 through a 3-minute outage and refills over the window once
    they are Ready (100, 200, then 300 rps for 4 pods at 75 per pod). With no stabilization window
    the first readings would scale 4 -> 2; the hold after a spell as long as the window waits the
    window and an interval (to minute 6: the last dark cycle 4.75 + 75 s), then the rate reads the
    load again."""
    if path == "compiled" and not compiled.enabled():
        pytest.skip("numba unavailable")
    from controller.policy import load_policy_text

    params = load_policy_text(SHORT_WINDOW_POLICY, "web.yaml")[0].params
    assert params.read_window_s == 60.0
    decide_path = decide_numpy if path == "numpy" else compiled_decide
    state, spec, seen = ScalingState.empty(1, params), 4.0, []
    for k in range(40):  # 10 minutes
        minute = k * 0.25
        ready = 0.0 if 2 <= minute < 5 else spec
        rps = 0.0 if 2 <= minute < 5 else (300.0 if minute < 2 else min(300.0, 100.0 * (1 + 4 * (minute - 5))))
        decision = decide_path(params, Observation.of([spec], [ready], [[rps]]), state, T0 + 15.0 * k)
        state, spec = decision.state, float(decision.norm.desired[0])
        seen.append((minute, spec, Reason(int(decision.norm.reason[0]))))
    assert {s for _, s, _ in seen} == {4.0}
    held = [m for m, _, r in seen if r == Reason.TARGET_NOT_READY]
    # 2.0 to 4.75 dark; 5.0 and 5.25 read 100 and 200 rps (a scale-down, held); from 5.5 the rate reads 300
    assert held == [k * 0.25 for k in range(8, 22)]
