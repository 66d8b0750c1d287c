"""What the CLI and the benches print says "1 replica", "1 simulated day", not "1 replicas",
"1 simulated days" (bench/sim_speed.py's first line, by default: --hours 24). Named rows, each
the line printed for one of a thing and for more."""

from __future__ import annotations

import importlib.util
import warnings

import pytest

from controller.adapters.prometheus import gave_up_message
from controller.cli.backtest import off_step_note
from controller.cli.common import worker_count
from controller.cli.live import failed_actions_problem
from controller.cli.records import _format_check_history, _format_record, _format_startup, _format_warm_start
from controller.cli.search import holdout_missed_line, sweep_title, tune_banner
from controller.cli.simulation import warmed_line
from controller.model import TargetRef
from controller.policy.summary import plural
from controller.runtime.last_good import LastGood, PolicyTexts
from controller.runtime.reconciler import FailedAction, checks_history_line, checks_history_unavailable_line
from controller.runtime.warm_start import WarmStart
from simulators.warm import Warmed
from tests.conftest import REPO


def _sim_speed():
    spec = importlib.util.spec_from_file_location("sim_speed", REPO / "bench" / "sim_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(current: int, reason: str = "HealthOnly") -> dict:
    return {"target": "shop/web", "at": 900.0, "current": current, "ready": current, "metrics": {},
            "combined": current, "stabilized": current, "limited": current, "desired": current, "reason": reason}


def _warm_start(warm: int, ticks: int) -> str:
    """The warm start's log line for ``warm`` targets rebuilt from ``ticks`` ticks (fixed times)."""
    return WarmStart(at=1_700_000_000.0, source="prometheus", window_s=600.0, from_s=1_699_999_400.0,
                     to_s=1_700_000_000.0, ticks=ticks, warm=[f"default/web-{k}" for k in range(warm)]).summary()


def _jobs_warning(jobs: int, cpus: int, monkeypatch) -> str:
    monkeypatch.setattr("os.cpu_count", lambda: cpus)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        worker_count(jobs)
    return str(caught[0].message)


def _failed(n: int) -> str:
    """`run --once`'s line for ``n`` failed scale actions of policy web."""
    failed = FailedAction(TargetRef("shop", "web"), "HTTP 403: forbidden", "scale")
    return failed_actions_problem("web", [failed] * n)


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
    "warm-start-log-one-target-one-tick": (lambda mp: _warm_start(1, 1), ": 1 target rebuilt from 1 tick over 600s"),
    "warm-start-log-two-targets": (lambda mp: _warm_start(2, 40), ": 2 targets rebuilt from 40 ticks over 600s"),
    "checks-history-log-one-target": (lambda mp: checks_history_line(1, 300.0, 1),
                                      "checks' history: 1 target replayed over 300s (1 tick)"),
    "checks-history-log-two-targets": (lambda mp: checks_history_line(2, 300.0, 60),
                                       "checks' history: 2 targets replayed over 300s (60 ticks)"),
    "checks-history-unavailable-one-target": (lambda mp: checks_history_unavailable_line("HTTP 503", 1),
                                              "(HTTP 503): the checks of 1 target start at OK"),
    "sweep-title-one-scenario-one-seed": (lambda mp: sweep_title(1, 1), "sweep: 1 scenario, 1 seed each;"),
    "sweep-title-two-scenarios": (lambda mp: sweep_title(2, 3), "sweep: 2 scenarios, 3 seeds each;"),
    "tune-banner-ones": (lambda mp: tune_banner(1, 1, 1, "", 1),
                         "tune: 1 trial on 1 training scenario x 1 seed; then 1 held-out scenario"),
    "tune-banner-twos": (lambda mp: tune_banner(8, 2, 3, "", 0), "tune: 8 trials on 2 training scenarios x 3 seeds"),
    "tune-holdout-missed-one": (lambda mp: holdout_missed_line("budget 1", 1, 1), "on 1 of 1 held-out scenario, which"),
    "last-good-one-file": (lambda mp: LastGood(PolicyTexts((("kind: Policy", "web.yaml"),)), "T").where(),
                           "loaded at T (1 file)"),
    "last-good-two-files": (lambda mp: LastGood(PolicyTexts((("a", "a.yaml"), ("b", "b.yaml"))), "T").where(),
                            "loaded at T (2 files)"),
    "explain-startup-one-observed": (lambda mp: _format_startup({"delay_s": 30, "source": "observed", "pods": 1,
                                                                 "range_s": [30, 30]}),
                                     "(observed over 1 pod start-up, 30-30s)"),
    "explain-startup-none-observed": (lambda mp: _format_startup({"delay_s": 30, "source": "policy", "pods": 1}),
                                      "(policy's initial value, 1 start-up observed)"),
    "warm-one-kernel-compiled": (lambda mp: warmed_line(Warmed(2.0, 1, 0, ("/c",))),
                                 "compiled 1 kernel, 0 found in the cache, in 2.0 s; cache: /c"),
    "warm-two-kernels-compiled": (lambda mp: warmed_line(Warmed(2.0, 2, 1, ())), "compiled 2 kernels, 1 found"),
    "warm-one-kernel-cached": (lambda mp: warmed_line(Warmed(0.5, 0, 1, ("/c",))),
                               "the 1 kernel was in the cache (loaded in 0.5 s); cache: /c"),
    "warm-all-kernels-cached": (lambda mp: warmed_line(Warmed(0.5, 0, 9, ())),
                                "all 9 kernels were in the cache (loaded in 0.5 s); cache: none (in memory only)"),
    "backtest-off-step-every-sample": (lambda mp: off_step_note("web", 20.0, 15.0),
                                       "web: interval 20s is not a multiple of --step 15s: it runs every sample"),
    "backtest-off-step-every-two-samples": (lambda mp: off_step_note("web", 25.0, 10.0), "it runs every 2 samples"),
    "run-once-one-action-failed": (lambda mp: _failed(1), "policy web: 1 action failed, scale Deployment/shop/web: HTTP 403"),
    "run-once-two-actions-failed": (lambda mp: _failed(2), "policy web: 2 actions failed, scale Deployment/shop/web: HTTP 403"),
    "prometheus-gave-up-one-attempt": (lambda mp: gave_up_message("up", "http://p", 1, 0.5, "HTTP 503"),
                                       "query 'up' at http://p: gave up after 1 attempt within 0.5s: HTTP 503"),
    "prometheus-gave-up-three-attempts": (lambda mp: gave_up_message("up", "http://p", 3, 5.0, None),
                                          "gave up after 3 attempts within 5s: no time left for an attempt"),
}


@pytest.mark.parametrize("name", list(ROWS))
def test_one_of_a_thing_is_said_in_the_singular(monkeypatch, name):
    line, said = ROWS[name]
    assert said in line(monkeypatch)
