"""Bundled policy and scenario files, and the HPA / KEDA manifests of the import tests, with
random line edits (a reviewer's slip, a bad merge, a truncated upload): each either loads (or
converts), or is rejected as InvalidInput whose every error names the file and a line of it (an
empty file, or one without any HPA, has none); no other exception. A mutated policy that loads
also simulates. In process; the CLI's handling of InvalidInput is tested in test_hostile.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.errors import InvalidInput, ManifestError
from controller.policy import load_policy_text
from controller.policy.import_files import import_files
from simulators.runner import run_controllers, standard_controllers
from simulators.scenario import load_scenario_text

REPO = Path(__file__).resolve().parents[2]
POLICIES = sorted((REPO / "policies").glob("*.yaml"))
MANIFESTS = sorted((REPO / "tests" / "policy" / "imports").glob("*.yaml"))
SCENARIOS = sorted((REPO / "simulators" / "scenarios").glob("*.yaml"))
#: What a slip puts in place of a value: YAML's awkward scalars, bounds, wrong kinds, tags.
TOKENS = ["0", "-1", "1e400", ".nan", "-.inf", ".inf", "null", "~", "[]", "{}", "''", "true", "0x10", "1_000",
          "9999999999999999999999", "-0", "1e-300", "1s", "0s", "-5s", "3m", "100000d", "[1, 2]", "{a: 1}",
          "!!binary aGk=", "2026-01-01", "*x", "&x 1", "!!python/object:os.system ''", "5%", "1e3", "1.0e+3"]
#: The example policies whose metrics the flash-crowd scenario simulates (the others read signals it has not).
RUN_ON_FLASH_CROWD = [p for p in POLICIES if p.stem in (
    "setpoint-default", "setpoint-healing", "web-rps", "web-forecast", "web-pooled", "hpa-behavior", "queue-worker")]
SHORT_SCENARIO = (REPO / "simulators" / "scenarios" / "flash-crowd.yaml").read_text().replace(
    "duration: 2h", "duration: 10m")

edits = st.lists(st.tuples(st.sampled_from(["delete", "repeat", "value", "indent", "character", "number", "cut"]),
                           st.integers(0, 10_000), st.integers(0, 10_000), st.sampled_from(TOKENS)),
                 min_size=1, max_size=3)


def mutate(text: str, changes) -> str:
    """``text`` with each (kind, at, other, token) line edit applied in turn."""
    lines = text.split("\n")
    for kind, at, other, token in changes:
        lines = lines or [""]
        k = at % len(lines)
        line = lines[k]
        if kind == "delete":
            del lines[k]
        elif kind == "repeat":
            lines.insert(k, lines[other % len(lines)])
        elif kind == "value" and ":" in line:
            lines[k] = line.partition(":")[0] + ": " + token
        elif kind == "indent":
            lines[k] = " " * (1 + other % 3) + line
        elif kind == "character" and line:
            i = other % len(line)
            lines[k] = line[:i] + "{}[]:,-'\"&*!|>#%@` \x00é"[other % 20] + line[i + 1:]
        elif kind == "number" and (numbers := list(re.finditer(r"\d+(\.\d+)?", line))):
            m = numbers[other % len(numbers)]
            lines[k] = line[:m.start()] + token + line[m.end():]
        elif kind == "cut":
            lines = lines[:k]
    return "\n".join(lines)


def load_or_errors(loader, text: str, name: str):
    """What ``loader`` returns, or the InvalidInput's errors, each checked to name the file and a
    line of it; any other exception fails the test."""
    try:
        return loader(text, name), []
    except InvalidInput as exc:
        n_lines = text.count("\n") + 1
        for e in exc.errors:
            assert e.file == name and e.message, e
            assert ((e.line is not None and 1 <= e.line <= n_lines) or "file is empty" in e.message
                    or "no HorizontalPodAutoscaler or ScaledObject found" in e.message), e
        assert exc.errors
        return None, exc.errors


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(POLICIES + SCENARIOS), changes=edits)
def test_an_edited_file_loads_or_is_rejected_naming_file_and_line(path, changes):
    loader = load_scenario_text if path in SCENARIOS else load_policy_text
    load_or_errors(loader, mutate(path.read_text(), changes), path.name)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(path=st.sampled_from(RUN_ON_FLASH_CROWD), changes=edits)
def test_an_edited_policy_that_loads_also_simulates(path, changes):
    policies, _ = load_or_errors(load_policy_text, mutate(path.read_text(), changes), path.name)
    scaling = [p for p in policies or () if p.params is not None]
    if not scaling:
        return
    policy = scaling[0]
    hpa = load_policy_text((REPO / "policies" / "hpa-cpu.yaml").read_text(), "hpa-cpu.yaml")[0]
    scenario = load_scenario_text(SHORT_SCENARIO, "flash-crowd.yaml")
    controllers = standard_controllers(policy, ["hpa"], hpa, policy.params.max_replicas)
    try:
        (run, _), (hpa_run, _) = run_controllers(scenario, controllers, keep_records=True)
    except ValueError as exc:  # an edited query or metric name the scenario has no signal for (the CLI says so)
        assert "is not bound to a simulated signal" in str(exc), exc
        return
    assert run.scores["replica_hours"] > 0 and hpa_run.scores["replica_hours"] > 0


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(MANIFESTS), changes=edits)
def test_an_edited_manifest_converts_or_is_rejected_at_its_file_and_line(tmp_path_factory, path, changes):
    edited = tmp_path_factory.mktemp("import") / path.name
    text = mutate(path.read_text(), changes)
    edited.write_text(text)

    def convert(_, name):  # load_or_errors' loader: our own output must validate as policies
        result = import_files([name])
        load_policy_text(result.text, "<imported>")
        return result

    _, errors = load_or_errors(convert, text, str(edited))
    assert all(isinstance(e, type(errors[0])) for e in errors)
    if errors:  # ManifestError, never the policy loader's errors on our own output
        with pytest.raises(ManifestError):
            import_files([str(edited)])
