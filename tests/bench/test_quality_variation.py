"""bench/quality.py's input variations: what --peak-scale does to the scenario and the policies' caps.

The benches print issue #9's figures; a variation that silently changed the wrong thing (a cap
left at 20 while the load doubles, a demo's cap scaled though its load is not) would change
every figure checked on other inputs. Files only, no simulation: the traces are not read."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import yaml

from simulators.load import traces_dir

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quality():
    spec = importlib.util.spec_from_file_location("bench_quality", REPO / "bench" / "quality.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def scenario_text(name: str) -> str:
    return (REPO / "simulators" / "scenarios" / f"{name}.yaml").read_text(encoding="utf-8")


def max_pods(text: str) -> list[int]:
    return [s["maxPods"] for s in yaml.safe_load(text)["spec"]["services"]]


@pytest.mark.parametrize("scenario, peak, want_scale", [
    ("trace-nyc-taxi", 2.0, 2.0),
    ("trace-nasa-july", 1.5, 1.5),
    ("trace-nyc-taxi", 0.8, 1.0),      # lower peaks: caps as they are
    ("trace-nyc-taxi", 1.0, 1.0),
    ("step", 2.0, 1.0),                # the demos' load is not scaled, nor are their caps
    ("flash-crowd", 1.5, 1.0),
], ids=["taxi-x2", "nasa-x1.5", "taxi-x0.8", "taxi-x1", "step-x2", "flash-crowd-x1.5"])
def test_caps_scale_with_the_trace_peaks(quality, scenario, peak, want_scale):
    text = scenario_text(scenario)
    v = quality.Variation(peak_scale=peak)
    assert quality.cap_scale(text, v) == want_scale
    assert max_pods(quality.varied_text(text, v)) == [math.ceil(m * want_scale) for m in max_pods(text)]
    for file in ("setpoint-default.yaml", "hpa-cpu.yaml"):
        own = yaml.safe_load((REPO / "policies" / file).read_text(encoding="utf-8"))["spec"]["replicas"]["max"]
        policy, _ = quality.varied_policy(REPO / "policies" / file, quality.cap_scale(text, v))
        assert policy.params.max_replicas == math.ceil(own * want_scale)


def test_an_unscaled_policy_is_the_file_as_written(quality):
    path = REPO / "policies" / "setpoint-default.yaml"
    policy, text = quality.varied_policy(path, 1.0)
    assert text == path.read_text(encoding="utf-8")
    assert policy.file == str(path)


def test_every_document_of_a_policy_file_is_scaled(quality, tmp_path):
    one = (REPO / "policies" / "setpoint-default.yaml").read_text(encoding="utf-8")
    two = one + "---\n" + one.replace("name: setpoint-default", "name: second").replace("max: 20", "max: 7")
    path = tmp_path / "two.yaml"
    path.write_text(two, encoding="utf-8")
    _, text = quality.varied_policy(path, 1.5)
    assert [d["spec"]["replicas"]["max"] for d in yaml.safe_load_all(text)] == [30, 11]


@pytest.mark.parametrize("scenario", [
    pytest.param("trace-nasa-july", marks=pytest.mark.skipif(not traces_dir().is_dir(), reason="shared traces absent")),
    "flash-crowd",
])
def test_rps_at_pods_binds_the_rate_to_what_the_pods_served(quality, scenario):
    from simulators.scenario import load_scenario_text

    text = quality.varied_text(scenario_text(scenario), quality.Variation(rps_at_pods=True))
    assert load_scenario_text(text, f"{scenario}.yaml").signal_for("rps") == "served_rps"
    assert load_scenario_text(scenario_text(scenario), f"{scenario}.yaml").signal_for("rps") == "offered_rps"
