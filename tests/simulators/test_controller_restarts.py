"""A controller restarted mid-run (a new Reconciler every few minutes, its durable healing state
kept in a MemoryStateStore) keeps within its healing budgets over the whole run."""

from __future__ import annotations

import dataclasses

import numpy as np

from controller.policy import load_policies
from simulators.runner import simulate, standard_controllers
from simulators.scenario import load_scenario
from tests.simulators.conftest_paths import POLICIES


def test_restarted_controller_keeps_its_restart_budget_in_every_hour():
    policy = load_policies([POLICIES / "setpoint-healing.yaml"])[0]
    budget = policy.model.spec.health.budgets.restarts_per_hour
    [spec] = standard_controllers(policy, [], None, 20)
    spec = dataclasses.replace(spec, restart_every_s=300.0)  # a crash-looping controller: 12 lifetimes an hour
    result, _ = simulate(load_scenario("memory-leak"), [spec], keep_records=False)
    disruptive = np.array([a.t_s for a in result.runs["policy"].actions if a.kind == "rolling-restart"])
    assert disruptive.size  # it does heal
    for t in disruptive:
        assert ((disruptive >= t) & (disruptive < t + 3600)).sum() <= budget
