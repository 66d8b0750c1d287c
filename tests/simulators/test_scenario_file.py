"""Scenario files: bundled ones load, broken ones are rejected whole with file, line and field."""

from __future__ import annotations

import textwrap

import pytest

from controller.errors import ScenarioError
from simulators import faults as F
from simulators.load import traces_dir
from simulators.scenario import SIM_EPOCH_S, bundled_scenarios, load_scenario, load_scenario_text
from simulators.workload import ReadinessProbe

TRACES = traces_dir().is_dir()

GOOD = textwrap.dedent("""\
    apiVersion: setpoint/v1
    kind: Scenario
    metadata: {name: tiny}
    spec:
      duration: 10m
      tick: 5s
      seed: 3
      slo:
        latency: {percentile: 95, below: 250ms}
      services:
        - name: web
          capacityPerPod: 100
          load:
            - constant: {rps: 150}
      faults:
        - {kind: pod-crash, at: 2m, services: [web]}
    """)


@pytest.mark.parametrize("path", bundled_scenarios(), ids=lambda p: p.stem)
def test_bundled_scenario_loads(path):
    if path.stem.startswith("trace-") and not TRACES:
        pytest.skip("the shared traces folder is absent (../shared/data/traces)")
    sc = load_scenario(path)
    offered = sc.offered()
    assert offered.shape == (len(sc.times()), len(sc.services))
    assert (offered >= 0).all() and offered.max() > 0


def test_good_scenario_compiles_with_times_from_the_sim_epoch():
    sc = load_scenario_text(GOOD, "tiny.yaml")
    assert sc.times()[0] == SIM_EPOCH_S and len(sc.times()) == 120
    assert sc.faults[0].at_s == SIM_EPOCH_S + 120
    assert sc.signal_for("cpu") == "utilization_pct" and sc.signal_for("nope") is None


@pytest.mark.parametrize("fault, duration_s", [
    pytest.param("{kind: readiness-outage, at: 2m, duration: 3m, services: [web]}", 180.0, id="with-a-duration"),
    pytest.param("{kind: readiness-outage, at: 2m}", None, id="until-the-end-of-the-run"),
])
def test_readiness_outage_compiles_to_its_fault(fault, duration_s):
    sc = load_scenario_text(_broken("{kind: pod-crash, at: 2m, services: [web]}", fault), "tiny.yaml")
    [f] = sc.faults
    assert isinstance(f, F.ReadinessOutage) and f.kind == "readiness-outage"
    assert (f.at_s, f.duration_s) == (SIM_EPOCH_S + 120, duration_s)
    assert f.services == (("web",) if "services" in fault else None)


@pytest.mark.parametrize("probe, expected", [
    pytest.param("", None, id="absent-no-probe"),
    pytest.param("\n      readinessProbe: {}", ReadinessProbe(10.0, 3, 1), id="defaults"),
    pytest.param("\n      readinessProbe: {period: 1m, failureThreshold: 2, successThreshold: 4}",
                 ReadinessProbe(60.0, 2, 4), id="every-field"),
])
def test_readiness_probe_compiles_to_the_service_config(probe, expected):
    sc = load_scenario_text(_broken("capacityPerPod: 100", "capacityPerPod: 100" + probe), "tiny.yaml")
    assert sc.cluster.services[0].readiness_probe == expected


def test_seed_override_changes_only_the_seed():
    assert load_scenario_text(GOOD, "tiny.yaml", seed=99).seed == 99


def _broken(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


BROKEN = [
    pytest.param(_broken("tick: 5s", "tick: 5"), 6, "spec.tick", "bare number", id="duration-without-unit"),
    pytest.param(_broken("capacityPerPod: 100", "capacityPerPod: -1"), 12, "spec.services[0].capacityPerPod",
                 "must be > 0, got -1", id="negative-capacity"),
    pytest.param(_broken("capacityPerPod: 100", "capacityPerPod: 100\n      retryRatio: 0.95"), 13,
                 "spec.services[0].retryRatio", "0.9", id="retry-ratio-above-0.9"),
    pytest.param(_broken("capacityPerPod: 100", "capacityPerPod: 100\n      retryRatio: -0.1"), 13,
                 "spec.services[0].retryRatio", "0", id="negative-retry-ratio"),
    pytest.param(_broken("capacityPerPod: 100", "capacityPerPod: 100\n      readinessProbe: {period: 2s}"), 13,
                 "spec.services[0].readinessProbe.period", "at least the tick (5s), got 2s",
                 id="probe-period-below-the-tick"),
    pytest.param(_broken("capacityPerPod: 100", "capacityPerPod: 100\n      readinessProbe: {period: 0s}"), 13,
                 "spec.services[0].readinessProbe.period", "0", id="probe-period-zero"),
    pytest.param(_broken("capacityPerPod: 100", "capacityPerPod: 100\n      readinessProbe: {failureThreshold: 0}"), 13,
                 "spec.services[0].readinessProbe.failureThreshold", "1", id="probe-failure-threshold-zero"),
    pytest.param(_broken("capacityPerPod: 100", "capacityPerPod: 100\n      readinessProbe: {successThreshold: 1.5}"),
                 13, "spec.services[0].readinessProbe.successThreshold", "integer",
                 id="probe-success-threshold-not-an-integer"),
    pytest.param(_broken("capacityPerPod: 100", "capacityPerPod: 100\n      readinessProbe: {period: 10}"), 13,
                 "spec.services[0].readinessProbe.period", "bare number", id="probe-period-without-unit"),
    pytest.param(_broken("capacityPerPod: 100", "capacityPerPod: 100\n      readinessProbe: {timeout: 1s}"), 13,
                 "spec.services[0].readinessProbe.timeout", "", id="probe-unknown-key"),
    pytest.param(_broken("seed: 3", "seed: 3\n  colour: red"), 8, "spec.colour", "", id="unknown-key"),
    pytest.param(_broken("services: [web]", "services: [api]"), 16, "spec.faults[0].services[0]", "'api'",
                 id="fault-names-unknown-service"),
    pytest.param(_broken("at: 2m", "at: 20m"), 16, "spec.faults[0].at", "before the end", id="fault-after-the-end"),
    pytest.param(_broken("kind: pod-crash", "kind: meteor"), 16, "spec.faults[0].kind", "got 'meteor'",
                 id="unknown-fault-kind"),
    pytest.param(_broken("percentile: 95", "percentile: 90"), 9, "spec.slo.latency.percentile", "", id="unsupported-percentile"),
    pytest.param(_broken("- constant: {rps: 150}", "- {constant: {rps: 1}, step: {at: 1m, from: 1, to: 2}}"), 14,
                 "spec.services[0].load[0]", "exactly one", id="two-shapes-in-one-term"),
    pytest.param(_broken("{kind: pod-crash, at: 2m, services: [web]}",
                         "{kind: readiness-outage, at: 2m, duration: -20m, services: [web]}"), 16,
                 "spec.faults[0].duration", "got '-20m'", id="readiness-outage-negative-duration"),
    pytest.param(_broken("{kind: pod-crash, at: 2m, services: [web]}",
                         "{kind: readiness-outage, at: 2m, duration: 0s, services: [web]}"), 16,
                 "spec.faults[0].duration", "longer than 0s", id="readiness-outage-zero-duration"),
    pytest.param(_broken("{kind: pod-crash, at: 2m, services: [web]}",
                         "{kind: readiness-outage, at: 2m, duration: 20m, services: [web, postgres]}"), 16,
                 "spec.faults[0].services[1]", "got 'postgres'", id="readiness-outage-unknown-service"),
    pytest.param(_broken("{kind: pod-crash, at: 2m, services: [web]}",
                         "{kind: readiness-outage, at: 2m, duration: 20m, count: 3}"), 16,
                 "spec.faults[0].count", "unknown field", id="readiness-outage-unknown-field"),
    pytest.param(_broken("{kind: pod-crash, at: 2m, services: [web]}", "{kind: pod-crash, at: 2m, services: []}"), 16,
                 "spec.faults[0].services", "omit services to hit every service",
                 id="a-fault-with-an-empty-services-list"),  # it hit no service: a fault that did nothing
    pytest.param(_broken("kind: Scenario", "kind: Policy"), 2, "kind", "'Scenario'", id="wrong-kind"),
    pytest.param(_broken("capacityPerPod: 100", "capacityPerPod: 100\n      kind: DaemonSet"), 13,
                 "spec.services[0].kind", "expected 'Deployment' or 'StatefulSet', got 'DaemonSet'",
                 id="service-kind-neither-deployment-nor-statefulset"),
    pytest.param(_broken("capacityPerPod: 100", "capacityPerPod: 100\n      podManagementPolicy: Parallel"), 13,
                 "spec.services[0].podManagementPolicy", "is a StatefulSet's; this service is a Deployment",
                 id="pod-management-policy-of-a-deployment"),
    pytest.param(_broken("capacityPerPod: 100", "capacityPerPod: 100\n      kind: StatefulSet\n"
                                                "      podManagementPolicy: Burst"), 14,
                 "spec.services[0].podManagementPolicy", "expected 'OrderedReady' or 'Parallel', got 'Burst'",
                 id="pod-management-policy-unknown"),
    pytest.param(_broken("- constant: {rps: 150}", "- trace: {file: no-such-trace.csv}"), 14, "", "no-such-trace",
                 id="missing-trace-file"),
    pytest.param(_broken("load:\n        - constant: {rps: 150}", "load: {constant: 1}"), 13, "spec.services[0].load",
                 "list", id="mapping-where-a-list-belongs"),
]


@pytest.mark.parametrize("text,line,path,words", BROKEN)
def test_broken_scenario_is_rejected_with_file_line_and_field(text, line, path, words):
    with pytest.raises(ScenarioError) as exc:
        load_scenario_text(text, "bad.yaml")
    errors = exc.value.errors
    match = [e for e in errors if e.path.startswith(path) and e.line == line]
    assert match, [str(e) for e in errors]
    assert all(e.file == "bad.yaml" for e in errors)
    assert words.lower() in str(match[0]).lower()


# (what was written, the field, its hint): a latency's bare number reads as milliseconds (`below: 250`
# meant 250ms, not the 250s it suggested), one below 1 as seconds; every other duration's as seconds
BARE_NUMBER_HINTS = [
    pytest.param(("below: 250ms", "below: 250"), "spec.slo.latency.below", "e.g. 250ms)", id="slo-latency"),
    pytest.param(("below: 250ms", "below: '250'"), "spec.slo.latency.below", "e.g. 250ms)", id="slo-latency-quoted"),
    pytest.param(("below: 250ms", "below: 0.25"), "spec.slo.latency.below", "e.g. 0.25s)",
                 id="slo-latency-below-1-reads-as-seconds"),
    pytest.param(("capacityPerPod: 100", "capacityPerPod: 100\n      baseLatency: 50"), "spec.services[0].baseLatency",
                 "e.g. 50ms)", id="base-latency"),
    pytest.param(("{kind: pod-crash, at: 2m, services: [web]}", "{kind: bad-rollout, at: 2m, extraLatency: 60}"), "spec.faults[0].extraLatency",
                 "e.g. 60ms)", id="extra-latency"),
    pytest.param(("tick: 5s", "tick: 5"), "spec.tick", "e.g. 5s)", id="tick-stays-seconds"),
    pytest.param(("capacityPerPod: 100", "capacityPerPod: 100\n      timeout: 10"), "spec.services[0].timeout",
                 "e.g. 10s)", id="request-timeout-stays-seconds"),
    pytest.param(("capacityPerPod: 100", "capacityPerPod: 100\n      startupDelay: 30"), "spec.services[0].startupDelay",
                 "e.g. 30s)", id="startup-delay-stays-seconds"),
]


@pytest.mark.parametrize("edit, path, hint", BARE_NUMBER_HINTS)
def test_a_bare_numbers_hint_names_the_unit_its_field_is_written_in(edit, path, hint):
    with pytest.raises(ScenarioError) as exc:
        load_scenario_text(_broken(*edit), "bad.yaml")
    [error] = [e for e in exc.value.errors if e.path == path]
    assert error.message.endswith(f"(add a unit, {hint}"), error.message


#: A fault written a key per line (lines 16-18), for the rows that name a field's own line.
BLOCK_FAULT = "{kind: pod-crash, at: 2m, services: [web]}"
BLOCK_FAULT_LINES = "kind: bad-rollout\n      at: 2m\n      services: [web]"
KINDS = ("'pod-crash', 'crash-loop', 'bad-rollout', 'node-loss', 'memory-leak', 'readiness-outage', 'pod-hang', 'metrics-outage', "
         "'stale-metrics' or 'nan-metrics'")


# (the broken file, every line it gets): a fault's errors name its own field and line, not pydantic's
# tag of the fault's kind ('spec.faults[0].bad-rollout.services' at the fault's first line), an unknown
# key suggests a field of that kind of fault, and an unknown or missing kind names the kinds there are
# (found by tests/simulators/test_scenario_fuzz.py: a path that is no field of the file)
FAULT_ERRORS = [
    pytest.param(_broken(BLOCK_FAULT, BLOCK_FAULT_LINES.replace("[web]", "[]")), [
        "18: spec.faults[0].services: an empty list hits no service; omit services to hit every service"],
        id="a-field-of-a-fault-at-its-own-line"),
    pytest.param(_broken(BLOCK_FAULT, BLOCK_FAULT_LINES + "\n      extraLatncy: 1s"), [
        "19: spec.faults[0].extraLatncy: unknown field 'extraLatncy'; did you mean 'extraLatency'?"],
        id="an-unknown-key-suggests-a-field-of-that-kind-of-fault"),
    pytest.param(_broken(BLOCK_FAULT, BLOCK_FAULT_LINES.replace("bad-rollout", "meteor")), [
        f"16: spec.faults[0].kind: expected {KINDS}, got 'meteor'"], id="an-unknown-kind"),
    pytest.param(_broken(BLOCK_FAULT, BLOCK_FAULT_LINES.replace("kind: bad-rollout\n      ", "")), [
        f"16: spec.faults[0].kind: required field is missing (expected {KINDS})"], id="no-kind"),
]


@pytest.mark.parametrize("text, expected", FAULT_ERRORS)
def test_a_faults_errors_name_its_fields(text, expected):
    with pytest.raises(ScenarioError) as exc:
        load_scenario_text(text, "bad.yaml")
    assert [str(e) for e in exc.value.errors] == [f"bad.yaml:{line}" for line in expected]


@pytest.mark.parametrize("text,message", [
    pytest.param("", "empty", id="empty-file"),
    pytest.param("apiVersion: [\n", "", id="malformed-yaml"),
    pytest.param("- 1\n- 2\n", "Scenario document", id="a-list-not-a-mapping"),
    pytest.param(GOOD + "---\n" + GOOD, "one document", id="two-documents"),
])
def test_unreadable_scenarios_get_one_clear_error(text, message):
    with pytest.raises(ScenarioError) as exc:
        load_scenario_text(text, "bad.yaml")
    assert message in str(exc.value)
    assert str(exc.value).startswith("bad.yaml")


def test_several_errors_are_reported_together():
    text = _broken("tick: 5s", "tick: 5").replace("capacityPerPod: 100", "capacityPerPod: 0")
    with pytest.raises(ScenarioError) as exc:
        load_scenario_text(text, "bad.yaml")
    assert {e.path for e in exc.value.errors} >= {"spec.tick", "spec.services[0].capacityPerPod"}


def test_unknown_bundled_name_lists_the_bundled_ones():
    with pytest.raises(ScenarioError) as exc:
        load_scenario("no-such-scenario")
    assert "flash-crowd" in str(exc.value)


# --------------------------------------------------------------------------- warnings
#: A 3-minute trace (a row a minute), written next to the scenario for the rows that replay it.
SHORT_TRACE = "timestamp,value\n2020-01-01T00:00:00Z,6000\n2020-01-01T00:01:00Z,9000\n2020-01-01T00:02:00Z,7200\n"
LOAD = "- constant: {rps: 150}"

# (the load term added after the constant one, at line 15; the warnings, exactly): valid, and never
# what was meant. A fault after the end is an error (above); a load event there is only warned about,
# so that a shorter duration (--scenario-set spec.duration=10m, a test's template) keeps a file valid.
WARNINGS = [
    pytest.param("- flashCrowd: {at: 45m, peak: 500}", [
        "15: spec.services[0].load[1].flashCrowd.at: warning: at 45m, after the run's end (10m): it never happens"],
        id="a-flash-crowd-after-the-end"),
    pytest.param("- step: {at: 10m, from: 0, to: 100}", [
        "15: spec.services[0].load[1].step.at: warning: at 10m, at the run's end (10m): it never happens"],
        id="a-step-at-the-end"),
    pytest.param("- ramp: {start: 1h, end: 2h, from: 0, to: 100}", [
        "15: spec.services[0].load[1].ramp.start: warning: at 1h, after the run's end (10m): it never happens"],
        id="a-ramp-starting-after-the-end"),
    pytest.param("- trace: {file: short.csv}", [
        "15: spec.services[0].load[1].trace.file: warning: short.csv is 3m long, shorter than the run (10m): its "
        "last rate holds for the last 7m; wrap: true repeats it instead"], id="a-trace-shorter-than-the-run"),
    pytest.param("- trace: {file: short.csv, start: 1m}", [
        "15: spec.services[0].load[1].trace.file: warning: short.csv is 3m long: replayed from 1m into it, it ends "
        "2m into the run, shorter than the run (10m): its last rate holds for the last 8m; wrap: true repeats it "
        "instead"], id="a-trace-replayed-from-its-middle"),
    pytest.param("- trace:\n            file: short.csv\n            duration: 2m", [
        "17: spec.services[0].load[1].trace.duration: warning: a window of 2m of short.csv, shorter than the run "
        "(10m): its last rate holds for the last 8m; wrap: true repeats it instead"], id="a-trace-window-shorter"),
    pytest.param("- flashCrowd: {at: 9m, peak: 500}", [], id="a-flash-crowd-before-the-end"),
    pytest.param("- ramp: {start: 5m, end: 1h, from: 0, to: 100}", [], id="a-ramp-cut-short-by-the-end"),
    pytest.param("- trace: {file: short.csv, wrap: true}", [], id="a-short-trace-that-wraps"),
]


@pytest.mark.parametrize("term, expected", WARNINGS)
def test_a_valid_scenario_warns_of_what_silently_never_happens(tmp_path, term, expected):
    (tmp_path / "short.csv").write_text(SHORT_TRACE)
    sc = load_scenario_text(_broken(LOAD, f"{LOAD}\n        {term}"), "w.yaml", folder=tmp_path)
    assert [str(w) for w in sc.warnings] == [f"w.yaml:{line}" for line in expected]


@pytest.mark.parametrize("path", bundled_scenarios(), ids=lambda p: p.stem)
def test_no_bundled_scenario_warns(path):
    if path.stem.startswith("trace-") and not TRACES:
        pytest.skip("the shared traces folder is absent (../shared/data/traces)")
    assert load_scenario(path).warnings == ()


# (the edits, every error in one pass): the rules across fields run beside the field errors, on the
# parts that validated, and each trace is looked for; before, each row came in two or three waves
ONE_PASS = [
    pytest.param([("capacityPerPod: 100", "capacityPerPod: 100\n      initialReplicas: 60"),
                  ("services: [web]", "services: [api]"), (LOAD, "- trace: {file: missing.csv}")], [
        "13: spec.services[0].initialReplicas: initialReplicas must be <= maxPods (50), got 60",
        "17: spec.faults[0].services[0]: must name a service of this scenario (web), got 'api'",
        "15: spec.services[0].load[0].trace.file: trace not found"], id="three-cross-field-errors"),
    pytest.param([("tick: 5s", "tick: 5"), ("capacityPerPod: 100", "capacityPerPod: -1\n      initialReplicas: 60"),
                  ("services: [web]", "services: [api]")], [
        "6: spec.tick: ",
        "12: spec.services[0].capacityPerPod: must be > 0, got -1",
        "13: spec.services[0].initialReplicas: initialReplicas must be <= maxPods (50), got 60",
        "17: spec.faults[0].services[0]: must name a service of this scenario (web), got 'api'"],
        id="beside-field-errors-in-the-same-service"),
    pytest.param([("{kind: pod-crash, at: 2m, services: [web]}",
                   "{kind: pod-crash, at: 2m, count: 0}\n    - {kind: crash-loop, at: 20m, services: [api]}")], [
        "16: spec.faults[0].count: ",
        "17: spec.faults[1].services[0]: must name a service of this scenario (web), got 'api'",
        "17: spec.faults[1].at: must be before the end of the scenario (600s), got 1200s"],
        id="a-broken-fault-beside-others"),
]


@pytest.mark.parametrize("edits, expected", ONE_PASS)
def test_every_error_comes_in_one_pass(tmp_path, edits, expected):
    text = GOOD
    for old, new in edits:
        text = text.replace(old, new)
    with pytest.raises(ScenarioError) as exc:
        load_scenario_text(text, "bad.yaml", folder=tmp_path)
    found = [str(e) for e in exc.value.errors]
    assert len(found) == len(expected), found
    for line, want in zip(found, expected):
        assert line.startswith(f"bad.yaml:{want}"), (line, want)
