"""A run whose cycle results nobody keeps (no records, no on_cycle) lets its Reconcilers skip what
only a keeper reads (Reconciler.keeps_results False: the decision's arrays are the scaling
workspace's own, no telemetry counts of unusable samples); the runs are the same as with records
and with an on_cycle hook, and a kept result's decision stays as it was decided."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from controller.core.scaling import compiled
from controller.policy import load_policies
from simulators.runner import ControllerSpec, _ControllerRun, _load_chunks, run_controllers
from simulators.scenario import load_scenario_text
from tests.simulators.helpers import run_view
from tests.simulators.test_lockstep import SCENARIO

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def spec(name: str, healer: str | None = None, restart_every_s: float | None = None) -> ControllerSpec:
    policy = load_policies([POLICIES / name])[0]
    return ControllerSpec(name, "policy", "", policy=policy, restart_every_s=restart_every_s,
                          healer=load_policies([POLICIES / healer])[0] if healer else None)


SPECS = [
    pytest.param(lambda: spec("setpoint-default.yaml"), id="default-policy"),
    pytest.param(lambda: spec("web-forecast.yaml"), id="forecast-policy"),
    pytest.param(lambda: spec("hpa-cpu.yaml"), id="hpa-preset"),
    pytest.param(lambda: spec("setpoint-default.yaml", healer="setpoint-healing.yaml"), id="scaler-and-healer"),
    pytest.param(lambda: spec("setpoint-default.yaml", restart_every_s=600.0), id="restarted-every-10m"),
]


@pytest.mark.parametrize("switch", [pytest.param("1", id="compiled"), pytest.param("0", id="numpy")])
@pytest.mark.parametrize("make", SPECS)
def test_a_run_without_keepers_equals_the_runs_with_them(monkeypatch, switch, make):
    monkeypatch.setattr(compiled, "switch", switch)
    sc = load_scenario_text(SCENARIO.format(duration="30m"))
    bare = run_controllers(sc, [make()], keep_records=False, keep_trajectory=True)[0][0]
    logged = run_controllers(sc, [make()], keep_records=True, keep_trajectory=True)[0][0]
    seen = []
    hooked = run_controllers(sc, [make()], keep_records=False, keep_trajectory=True, on_cycle=seen.append)[0][0]
    assert run_view(bare) == run_view(logged) == run_view(hooked)
    assert len(bare.actions) > 5 and seen  # something to compare


# (the scaler's, the healer's): a run's records are its healer's
@pytest.mark.parametrize("records, on_cycle, keeps", [
    pytest.param(False, None, [False, False], id="neither-keeps-nothing"),
    pytest.param(True, None, [False, True], id="records-the-healers"),
    pytest.param(False, print, [True, True], id="an-on-cycle-hook-both"),
])
def test_the_reconcilers_keep_results_only_for_a_keeper(records, on_cycle, keeps):
    sc = load_scenario_text(SCENARIO.format(duration="10m"))
    run = _ControllerRun(sc, spec("setpoint-default.yaml", healer="setpoint-healing.yaml"), None, None, records,
                         None, 64, on_cycle)
    assert [c.reconciler.keeps_results for c in run.cycles] == keeps


def test_a_kept_decision_is_not_overwritten_by_the_next_cycle_and_an_unkept_one_counts_nothing(monkeypatch):
    monkeypatch.setattr(compiled, "switch", "1")
    sc = load_scenario_text(SCENARIO.format(duration="10m"))
    kept: dict[bool, list] = {}
    for keeps in (True, False):
        got = kept[keeps] = []
        run = _ControllerRun(sc, spec("setpoint-default.yaml"), None, None, False, None, 64, None)
        reconciler = run.cycles[0].reconciler
        reconciler.keeps_results = keeps
        reconciler.on_cycle = lambda r, got=got: got.append((r, r.decision.norm.desired.copy()))
        for k0, times, load in _load_chunks(sc, None, 64):
            run.advance(k0, times, load)
    assert len(kept[True]) == len(kept[False]) > 10
    for (r, desired), (bare, bare_desired) in zip(kept[True], kept[False]):
        np.testing.assert_array_equal(r.decision.norm.desired, desired)  # as decided, cycles later
        np.testing.assert_array_equal(bare_desired, desired)  # the same decisions
        assert r.missing.keys() == r.implausible.keys() == ({"rps"} if r.answered else set())
        assert not bare.missing and not bare.implausible
