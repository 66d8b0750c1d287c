"""What the CLI and the benches print says "1 replica", "1 simulated day", not "1 replicas",
"1 simulated days" (bench/sim_speed.py's first line, by default: --hours 24). Named rows, each
the line printed for one of a thing and for more."""

from __future__ import annotations

import importlib.util
import warnings

import pytest

from controller.cli.common import worker_count
from controller.cli.records import _format_check_history, _format_record, _format_warm_start
from controller.policy.summary import plural
from tests.conftest import REPO


def _sim_speed():
    spec = importlib.util.spec_from_file_location("sim_speed", REPO / "bench" / "sim_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(current: int, reason: str = "HealthOnly") -> dict:
    return {"target": "shop/web", "at": 900.0, "current": current, "ready": current, "metrics": {},
            "combined": current, "stabilized": current, "limited": current, "desired": current, "reason": reason}


def _jobs_warning(jobs: int, cpus: int, monkeypatch) -> str:
    monkeypatch.setattr("os.cpu_count", lambda: cpus)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        worker_count(jobs)
    return str(caught[0].message)


ROWS = {
    # name: (what prints the line, a part of it that must be there)
    "plural-one": (lambda mp: plural(1, "policy", "policies"), "1 policy"),
    "plural-two": (lambda mp: plural(2, "policy", "policies"), "2 policies"),
    "plural-a-float-one": (lambda mp: plural(1.0, "simulated day"), "1 simulated day"),
    "plural-a-float-half": (lambda mp: plural(0.5, "simulated day"), "0.5 simulated days"),
    "sim-speed-one-day-one-service": (lambda mp: _sim_speed().run_size(1, 17280, 1.0),
                                      "1 service x 17280 ticks (1 simulated day)"),
    "sim-speed-thirty-days": (lambda mp: _sim_speed().run_size(1000, 518400, 30.0),
                              "1000 services x 518400 ticks (30 simulated days)"),
    "sim-speed-scenario-one-day": (lambda mp: _sim_speed().scenario_text(1, 24.0), 'description: "1 service, 1 day"'),
    "sim-speed-scenario-two-hours": (lambda mp: _sim_speed().scenario_text(1000, 2.0),
                                     'description: "1000 services, 2 hours"'),
    "sim-speed-scenario-thirty-days": (lambda mp: _sim_speed().scenario_text(1000, 720.0),
                                       'description: "1000 services, 30 days"'),
    "sim-speed-scenario-one-minute": (lambda mp: _sim_speed().scenario_text(2, 1 / 60),
                                      'description: "2 services, 1 minute"'),
    "explain-one-replica-health-only": (lambda mp: _format_record(_record(1)), "shop/web: 1 replica [HealthOnly]"),
    "explain-two-replicas-health-only": (lambda mp: _format_record(_record(2)), "shop/web: 2 replicas [HealthOnly]"),
    "warm-start-one-tick": (lambda mp: _format_warm_start({"warm": True, "source": "P", "ticks": 1, "window_s": 5}),
                            "from P (1 tick over 5s)"),
    "checks-history-one-tick": (lambda mp: _format_check_history({"ticks": 1, "windowS": 5}), "(1 tick over 5s)"),
    "jobs-over-one-cpu": (lambda mp: _jobs_warning(2, 1, mp), "more worker processes than this machine's 1 CPU;"),
    "jobs-over-two-cpus": (lambda mp: _jobs_warning(3, 2, mp), "more worker processes than this machine's 2 CPUs;"),
}


@pytest.mark.parametrize("name", list(ROWS))
def test_one_of_a_thing_is_said_in_the_singular(monkeypatch, name):
    line, said = ROWS[name]
    assert said in line(monkeypatch)
