"""``sim serve`` after a pause (SIGSTOP, a debugger, a suspend, an engine slower than the speed):
the engine driver catches up at most MAX_CATCH_UP_S of wall time's ticks and skips the rest,
instead of replaying the missed minutes in one burst; the simulated clock shifts so that objects'
times stay in line with the wall clock, and times of objects from before the pause do not change.

A real SIGSTOP or suspend cannot be had cheaply on demand, so the driver runs on fake clocks
(``EngineDriver(world, monotonic=..., wall=...)``) over a real SimWorld, stepped by
``step_due``: no thread, no sleep, no timed assertion.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest

from simulators.kubeapi import objects as K
from simulators.kubeapi.server import MAX_CATCH_UP_S, EngineDriver, SimWorld
from simulators.kubeapi.store import SimTime
from tests.adapters.kube_helpers import kube_scenario

WALL_START_S = 1_700_000_000.0  # the wall clock when the world starts (epoch s)
MONO_START_S = 500.0  # the monotonic clock then
SPEED = 20.0  # 5 s ticks every 0.25 wall s: MAX_CATCH_UP_S (1 s) is 4 ticks


class FakeClocks:
    """A monotonic clock (``now``) and a wall clock the test moves by hand: the wall clock runs
    with the monotonic one, and alone during a suspend (``suspended_s``), as on Linux and macOS."""

    def __init__(self):
        self.now = MONO_START_S
        self.suspended_s = 0.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return WALL_START_S + self.now - MONO_START_S + self.suspended_s


def paced_world() -> tuple[SimWorld, EngineDriver, FakeClocks]:
    """The kube test scenario at SPEED, its driver on fake clocks."""
    world = SimWorld(kube_scenario(), speed=SPEED, wall_start_s=WALL_START_S)
    clocks = FakeClocks()
    return world, EngineDriver(world, monotonic=clocks.monotonic, wall=clocks.wall), clocks


def pod_times(world: SimWorld) -> dict[str, str]:
    """Pod name -> creationTimestamp of the web pods."""
    return {p["metadata"]["name"]: p["metadata"]["creationTimestamp"]
            for p in world.store.list_pods("shop", lambda labels: labels.get("app") == "web", lambda o: True)}


@dataclass(frozen=True)
class Lag:
    """How late the driver wakes past the tick due (s on both clocks) and how long the machine
    was suspended before (s on the wall clock alone); what the driver must step and skip."""

    late_s: float
    stepped: int
    skipped: int
    warns: bool
    suspended_s: float = 0.0


LAGS = [
    pytest.param(Lag(0.0, 1, 0, False), id="on-time"),
    pytest.param(Lag(0.6, 3, 0, False), id="late-by-jitter-is-caught-up"),
    pytest.param(Lag(MAX_CATCH_UP_S - 0.25, 4, 0, False), id="late-by-the-bound-is-caught-up"),
    # the driver before: 41 ticks (205 simulated s) in one step
    pytest.param(Lag(10.0, 4, 37, True), id="sigstop-10s-is-skipped-not-burst"),
    # the driver before: 1 tick, but objects' times 10 minutes behind the wall clock from then on
    pytest.param(Lag(600.0, 4, 2397, True), id="debugger-10min-is-skipped"),
    # the driver before: nothing noticed (the monotonic clock stops), objects' times an hour behind
    pytest.param(Lag(0.0, 1, 0, True, suspended_s=3600.0), id="suspend-1h-is-skipped"),
    pytest.param(Lag(0.0, 1, 0, False, suspended_s=0.5), id="wall-clock-slewed-is-left"),
]


@pytest.mark.parametrize("lag", LAGS)
def test_driver_catches_up_a_short_lag_and_skips_a_pause(lag, caplog):
    world, driver, clocks = paced_world()
    world.store.update_scale("Deployment", "shop", "web", {"spec": {"replicas": 4}})
    driver.step_due(clocks.now)  # nothing due yet
    assert world.ticks == 1
    ticks_before, sim_before = world.ticks, world.next_tick_s
    clocks.now = driver.due + lag.late_s
    clocks.suspended_s = lag.suspended_s
    with caplog.at_level(logging.WARNING, "setpoint.sim.kubeapi"):
        stepped = driver.step_due(clocks.now)
    assert (stepped, driver.skipped_ticks) == (lag.stepped, lag.skipped)
    assert world.ticks - ticks_before == lag.stepped
    assert world.next_tick_s == sim_before + lag.stepped * world.tick_s  # simulated time resumed, not jumped
    # objects show the wall time of the last tick due: in line with the wall clock, pause or not
    slack_s = driver.interval_s + (lag.suspended_s if not lag.warns else 0.0)  # a slewed clock is left
    assert clocks.wall() - slack_s < world.store.wall_now() <= clocks.wall()
    assert driver.due > clocks.now
    warnings = [r.getMessage() for r in caplog.records if "without catching up" in r.getMessage()]
    assert len(warnings) == lag.warns
    if lag.warns:
        assert warnings[0].startswith(f"paused for {lag.late_s + lag.suspended_s:.1f}s;")
        assert f"({(lag.skipped * driver.interval_s + lag.suspended_s) * SPEED:.0f} simulated s skipped;" in warnings[0]


def test_times_from_before_a_pause_keep_their_wall_times_and_later_ones_follow_the_wall_clock():
    world, driver, clocks = paced_world()
    world.store.update_scale("Deployment", "shop", "web", {"spec": {"replicas": 4}})
    clocks.now = driver.due
    driver.step_due(clocks.now)
    before = pod_times(world)
    clocks.now = driver.due + 300.0  # SIGSTOP for 5 minutes
    driver.step_due(clocks.now)
    assert {name: t for name, t in pod_times(world).items() if name in before} == before
    world.store.update_scale("Deployment", "shop", "web", {"spec": {"replicas": 6}})
    world.advance(1)
    new = {name: t for name, t in pod_times(world).items() if name not in before}
    assert len(new) == 2
    for created in new.values():  # created at the simulated now, shown at the wall clock's
        assert abs(K.parse_rfc3339(created) - world.store.wall_now()) <= world.tick_s / SPEED + 1
        assert K.parse_rfc3339(created) >= clocks.wall() - 1


def test_start_lines_the_ticks_up_with_the_wall_clock_after_the_set_up():
    world, driver, clocks = paced_world()
    clocks.now += 3.0  # the server's set-up (certificates, sockets) after the world was made
    driver.align()
    clocks.now = driver.due
    driver.step_due(clocks.now)
    assert world.store.wall_now() == clocks.wall()


def test_skipped_warnings_are_rate_limited_and_summed(caplog):
    world, driver, clocks = paced_world()
    with caplog.at_level(logging.WARNING, "setpoint.sim.kubeapi"):
        for pause_s in (10.0, 20.0, 30.0):  # three stalls within a minute: one warning now ...
            clocks.now = driver.due + pause_s
            driver.step_due(clocks.now)
        clocks.now = driver.due + 61.0  # ... and one summing the next ones after a minute
        driver.step_due(clocks.now)
    warnings = [r.getMessage() for r in caplog.records if "without catching up" in r.getMessage()]
    assert len(warnings) == 2
    assert "(3 pauses since the last warning)" in warnings[1]
    assert driver.skipped_ticks == sum(round(p / driver.interval_s) - 3 for p in (10.0, 20.0, 30.0, 61.0))


CLOCK_SKIPS = [
    pytest.param(0.0, 0.0, id="before-any-pause"),
    pytest.param(99.0, 0.0, id="just-before-the-pause"),
    pytest.param(100.0, 30.0, id="resumed-after-the-pause"),
    pytest.param(500.0, 30.0, id="later"),
    pytest.param(1000.0, 40.0, id="after-three-pauses-two-before-one-tick"),
]


def clock_with_skips(*skips: tuple[float, float], speed: float = 1.0) -> SimTime:
    """A SimTime from sim 0 at wall 1000 with ``skips`` (sim s, wall s) skipped in order."""
    clock = SimTime(0.0, 1000.0, speed=speed)
    for at_s, wall_s in skips:
        clock.skip(at_s, wall_s)
    return clock


@pytest.mark.parametrize("sim_s,skipped_s", CLOCK_SKIPS)
def test_sim_time_maps_to_wall_time_with_the_pauses_skipped_before_it(sim_s, skipped_s):
    clock = clock_with_skips((100.0, 30.0), (1000.0, 4.0), (1000.0, 6.0), speed=2.0)
    assert clock.wall(sim_s) == 1000.0 + sim_s / 2.0 + skipped_s
    assert clock.sim(clock.wall(sim_s)) == sim_s


@pytest.mark.parametrize("at_s,wall_s,message", [
    pytest.param(50.0, 5.0, "before the last one", id="going-back"),
    pytest.param(200.0, 0.0, "> 0 wall seconds", id="no-pause"),
])
def test_a_skip_that_would_run_time_backwards_is_refused(at_s, wall_s, message):
    clock = clock_with_skips((100.0, 30.0))
    with pytest.raises(ValueError, match=message):
        clock.skip(at_s, wall_s)
    assert clock.skips == [(100.0, 30.0)]


def test_wall_time_during_a_skipped_pause_maps_to_where_the_simulation_resumed():
    clock = clock_with_skips((100.0, 30.0), (200.0, 5.0))
    assert clock.sim(1100.0) == clock.sim(1129.9) == 100.0
    assert clock.sim(1230.0) == clock.sim(1234.9) == 200.0
    assert clock.sim(1229.0) == 199.0 and clock.sim(1236.0) == 201.0


def test_two_skips_before_one_tick_are_one_entry():
    """A suspend and a lag found in the same step: the list grows by one entry per step at most."""
    clock = clock_with_skips((100.0, 30.0), (100.0, 5.0))
    assert clock.skips == [(100.0, 35.0)]
