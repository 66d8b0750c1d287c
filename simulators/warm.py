"""`setpoint warm`: compile the kernels ahead, into numba's disk cache.

A machine's first simulation long enough for the kernels to pay (every trace scenario), its
first sweep, tune or backtest, and the first after an upgrade (the cache is keyed on the code)
spend ~40-80 s compiling before the first tick. `setpoint warm` does it ahead, in an image build
or a CI step: it runs a short scenario through everything that has a kernel: the policy under
test (the bundled default unless given), the same policy with a forecast stage, the ``hpa``
preset, the oracle and a fixed baseline; load that rises and falls so that pods are created,
start (the start-up observer's kernels), serve and are removed, and scores that close.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from controller.core.scaling import compiled
from controller.policy import LoadedPolicy, load_policy_text

#: Two services, five minutes: a rise at 1 m (pods created, Ready 30 s later), a fall at 3 m.
WARM_SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: warm-up, description: "every kernel once: pods created, started, removed; scores closed"}
spec:
  duration: 5m
  tick: 5s
  seed: 1
  slo: {latency: {percentile: 95, below: 250ms}, errorRatio: 0.01}
  services:
    - name: svc
      count: 2
      capacityPerPod: 100
      initialReplicas: 2
      maxPods: 20
      load: [{step: {from: 150, to: 900, at: 1m}}, {step: {from: 0, to: -700, at: 3m}}]
"""


@dataclass(frozen=True)
class Warmed:
    """What `setpoint warm` did: seconds, kernels compiled now and loaded from the cache, and
    where the cache is (None: no kernel has one)."""

    seconds: float
    compiled: int
    loaded: int
    cache_dirs: tuple[str, ...]


def with_forecast(policy: LoadedPolicy) -> LoadedPolicy | None:
    """``policy`` with ``forecast: {startupDelay: observed}`` on its first metric (the forecast
    stage's kernels), None when it has no scaling metric or already forecasts."""
    params = policy.params
    if not params.metrics or params.forecast_metrics or params.hpa_semantics:
        return None
    fp = dataclasses.replace(_forecast_template(), interval_s=params.interval_s)
    metrics = (dataclasses.replace(params.metrics[0], forecast=fp), *params.metrics[1:])
    forecasting = dataclasses.replace(params, metrics=metrics)
    return dataclasses.replace(policy, name=f"{policy.name}-forecast", params=forecasting)


def _forecast_template():
    """The compiled ForecastParams of ``forecast: {startupDelay: observed}`` on a 1m-rate query."""
    text = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: template}
spec:
  targets: {namespace: default, names: [svc]}
  replicas: {min: 1, max: 20}
  scaling:
    metrics:
      - {name: rps, query: "sum(rate(http_requests_total[1m]))", target: {averagePerReplica: 85},
         forecast: {startupDelay: observed}}
"""
    return load_policy_text(text, "warm-template.yaml")[0].params.metrics[0].forecast


def warm(policy: LoadedPolicy, hpa: LoadedPolicy) -> Warmed:
    """Run the warm-up scenario with every kind of controller on the compiled path; raises
    RuntimeError when the kernels are off (SETPOINT_COMPILED=0, numba missing or broken)."""
    from simulators.runner import ControllerSpec, run_controllers, warm_later_kernels  # noqa: PLC0415 (numba's import is slow)
    from simulators.scenario import load_scenario_text  # noqa: PLC0415

    if compiled.switch == "0":
        raise RuntimeError(f"{compiled.ENV_SWITCH}=0: the kernels are off, nothing to compile")
    if not compiled.available():
        raise RuntimeError("numba does not import or a kernel failed to compile: every run uses numpy "
                           "(the same numbers, slower on long runs)")
    previous = compiled.set_switch("1")  # "" means the kernels too; explicit, for the runs below
    started = time.perf_counter()
    specs = [ControllerSpec("policy", "policy", policy.name, policy=policy),
             ControllerSpec("hpa", "policy", hpa.name, policy=hpa),
             ControllerSpec("oracle", "oracle", "oracle"), ControllerSpec("fixed", "fixed", "fixed", replicas=4)]
    forecasting = with_forecast(policy)
    if forecasting is not None:
        specs.append(ControllerSpec("forecast", "policy", forecasting.name, policy=forecasting))
    before = _signatures()
    try:
        run_controllers(load_scenario_text(WARM_SCENARIO, "warm-up.yaml"), specs, keep_records=False)
        warm_later_kernels()  # what its two services and five minutes do not reach
    finally:
        compiled.set_switch(previous)
    if not compiled.available():  # a kernel failed while compiling: numpy from then on
        raise RuntimeError("a kernel failed to compile (see the warning above): every run uses numpy")
    seconds = time.perf_counter() - started
    after = _dispatchers()
    new = [d for name, d in after.items() if len(d.signatures) > before.get(name, 0)]
    compiled_now = sum(1 for d in new if sum(d.stats.cache_misses.values()))
    dirs = sorted({str(Path(d.stats.cache_path)) for d in new if d.stats.cache_path})
    return Warmed(seconds, compiled_now, len(new) - compiled_now, tuple(dirs))


def _dispatchers() -> dict[str, object]:
    """Every numba dispatcher of controller/ and simulators/ loaded so far, by qualified name."""
    return {f"{d.py_func.__module__}.{d.py_func.__qualname__}": d for _, _, d in compiled.loaded_kernels()}


def _signatures() -> dict[str, int]:
    return {name: len(d.signatures) for name, d in _dispatchers().items()}
