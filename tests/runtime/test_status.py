"""`setpoint status`: the per-target view built from decision records written by real cycles
(the simulated cluster and metrics behind a ControllerService), its table and JSON."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.errors import StatusError
from controller.runtime.records import read_all_records
from controller.runtime.service import ControllerService, ServiceOptions
from controller.runtime.status import (ago, book_from_records, from_document, rfc3339, to_document, wall_clock)
from controller.runtime.telemetry import Telemetry
from simulators.cluster import SimCluster
from simulators.ports import SimMetrics, SimTargets
from simulators.workload import RevisionProps, ServiceConfig

T0 = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC
#: A POSIX zone that needs no tz database: UTC+05:30.
TZ = "XST-05:30"
XST = timezone(timedelta(hours=5, minutes=30))

SCALING = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {{name: web}}
spec:
  targets: {{kind: Deployment, namespace: default, names: [web]}}
  interval: 15s
  replicas: {{min: 2, max: {max}}}
  scaling:
    metrics:
      - name: rps
        query: {query}
        target: {{averagePerReplica: 100}}
    behavior:
      scaleUp: {{policies: [{{type: Percent, value: 1000, period: 15s}}]}}
      scaleDown: {{stabilizationWindow: 0s}}
"""

HEALTH = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: web}
spec:
  targets: {kind: Deployment, namespace: default, names: [web]}
  interval: 15s
  replicas: {min: 2, max: 20}
  health:
    checks:
      - name: memory
        query: mem
        scope: pod
        unhealthy: {above: 100, for: 0s}
        recovered: {below: 50, for: 0s}
        action: restart-pod
    budgets: {restartsPerHour: 1, rollbacksPerDay: 1, maxUnavailable: 50%}
"""


@pytest.fixture
def local_zone(monkeypatch):
    """The process' local time is UTC+05:30 for the test."""
    monkeypatch.setenv("TZ", TZ)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def run_cycles(tmp_path, policy: str, load_rps: float, cycles: int = 1, until_held: bool = False,
               crash_loop: bool = False) -> list[dict]:
    """Run real cycles of one policy on a simulated cluster (web: 4 replicas); its records.
    ``crash_loop``: web rolls out a release whose pods never get Ready, before the first cycle."""
    cluster = SimCluster([ServiceConfig("web", capacity_rps=100, initial_replicas=4, max_pods=30)], rng=1)
    if crash_loop:
        cluster.rollout(0, RevisionProps(crash_loop=True, label="broken"))
    metrics = SimMetrics(cluster, {"rps_query": "offered_rps", "mem": "memory_mib"}, window_s=60, tick_s=5)
    targets = SimTargets(cluster, ["web"])
    metrics.attach(targets)
    clock = [T0]

    def step(ticks: int) -> None:
        for _ in range(ticks):
            cluster.step(clock[0], 5.0, np.array([load_rps]))
            metrics.push(cluster.signals())
            clock[0] += 5.0

    (tmp_path / "policy.yaml").write_text(policy)
    records = tmp_path / "decisions.jsonl"
    step(4)
    service = ControllerService([tmp_path / "policy.yaml"], metrics, targets, Telemetry(),
                                ServiceOptions(records_path=records), clock=lambda: clock[0])
    for _ in range(cycles):
        [result] = service.run_all_once()
        if until_held and result.healing.held.any():
            break
        step(3)
    service.stop()
    return list(read_all_records(records))


def conditions_of(view: dict) -> dict:
    return {k: (c["status"], c["reason"]) for k, c in view["conditions"].items()}


OK_ACTIVE = ("True", "ValidMetricFound")
WITHIN = ("False", "DesiredWithinRange")


@pytest.mark.parametrize("policy, load, cycles, expect", [
    pytest.param(SCALING.format(max=20, query="rps_query"), 1000.0, 1, dict(
        current=4, desired=10, reason="ScaleUp", action=("scale", 4, 10, "ScaleUp"),
        conditions={"AbleToScale": ("True", "SucceededRescale"), "ScalingActive": OK_ACTIVE, "ScalingLimited": WITHIN},
        table=["scale 4->10", "SucceededRescale", "update the target scale to 10"]), id="scaled up"),
    # one pod held back by the stuck rollout: counted once unready past twice the 120 s floor
    pytest.param(SCALING.format(max=20, query="rps_query"), 300.0, 20, dict(
        current=4, desired=4, reason="WithinTolerance", withheld=1,
        conditions={"AbleToScale": ("True", "ReadyForNewScale"),
                                                      "ScalingActive": OK_ACTIVE, "ScalingLimited": WITHIN},
        table=["default/web: 1 replica withheld (pods running but not Ready past twice their start-up)"]),
        id="withheld replica shown"),
    pytest.param(SCALING.format(max=20, query="rps_query"), 400.0, 1, dict(
        current=4, desired=4, reason="WithinTolerance", action=None,
        conditions={"AbleToScale": ("True", "ReadyForNewScale"), "ScalingActive": OK_ACTIVE, "ScalingLimited": WITHIN},
        table=["WithinTolerance", "none", "recommended size matches current size"]), id="within tolerance"),
    pytest.param(SCALING.format(max=6, query="rps_query"), 1000.0, 1, dict(
        current=4, desired=6, reason="ClampedToMax", action=("scale", 4, 6, "ClampedToMax"),
        conditions={"AbleToScale": ("True", "SucceededRescale"), "ScalingActive": OK_ACTIVE,
                    "ScalingLimited": ("True", "TooManyReplicas")},
        table=["TooManyReplicas", "more than the maximum replica count"]), id="limited by max"),
    pytest.param(SCALING.format(max=20, query="unbound"), 100.0, 1, dict(
        current=4, desired=4, reason="MetricsMissing", action=None,
        conditions={"AbleToScale": ("True", "SucceededGetScale"), "ScalingActive": ("False", "FailedGetExternalMetric")},
        table=["MetricsMissing", "FailedGetExternalMetric", "no usable sample for rps"]), id="metrics missing"),
    pytest.param(HEALTH, 100.0, 1, dict(
        current=4, desired=4, reason="SystemicNoRestart", conditions={}, health_phase="firing", held=False,
        table=["firing: memory", "memory", "firing", "256 (4/4 pods)"]), id="health check firing"),
    pytest.param(HEALTH, 100.0, 60, dict(
        current=4, conditions={}, held=True, action=("rolling-restart", None, None, None),
        reason="Held", table=["HELD", "rolling-restart"]), id="held target shown"),
])
def test_status_view_from_records(tmp_path, capsys, monkeypatch, local_zone, policy, load, cycles, expect):
    from controller.cli.records import _print_status

    records = run_cycles(tmp_path, policy, load, cycles, until_held=expect.get("held", False),
                         crash_loop="withheld" in expect)
    view = book_from_records(records).view()
    status = view["web"]["targets"]["default/web"]
    assert status["current"] == expect["current"]
    assert status["withheld"] == expect.get("withheld", 0)
    if "desired" in expect:
        assert (status["desired"], status["reason"]) == (expect["desired"], expect["reason"])
    assert conditions_of(status) == expect["conditions"]
    if "action" in expect:
        want = expect["action"]
        got = status["last_action"]
        assert (got is None) if want is None else \
            (got["action"], got["from"] if want[1] is not None else None, got["to"], got["reason"] if want[3] else None) \
            == want
    if "held" in expect:
        assert status["health"]["held"] is expect["held"]
        assert status["health"]["held_reason"] if expect["held"] else status["health"]["held_reason"] is None
    if expect.get("held"):
        assert status["reason"] == expect["reason"]
    if "health_phase" in expect:
        assert [c["phase"] for c in status["health"]["checks"]] == [expect["health_phase"]]

    now = records[-1]["at"] + 90
    monkeypatch.setenv("COLUMNS", "80")  # a terminal of 80 columns, whatever the one running the tests
    _print_status(view, now)
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80, out
    flat = " ".join(out.split())  # a message folds over lines in its (last) column
    for text in expect["table"] + ([status["health"]["held_reason"]] if expect.get("held") else []):
        assert text in flat, out
    # the record's time, in local wall-clock time (UTC+05:30), 90 s before "now"
    local = datetime.fromtimestamp(records[-1]["at"], XST).strftime("%H:%M:%S")
    assert f"last cycle {local} (1m ago)" in out, out
    assert "UTC+05:30" in out


def test_a_condition_keeps_its_transition_time_while_its_status_holds(tmp_path):
    records = run_cycles(tmp_path, SCALING.format(max=20, query="rps_query"), 1000.0, cycles=3)
    status = book_from_records(records).view()["web"]["targets"]["default/web"]
    first, last = records[0]["at"], records[-1]["at"]
    assert status["conditions"]["ScalingActive"]["last_transition"] == first  # True since the first cycle
    # AbleToScale: SucceededRescale (a scale) then ReadyForNewScale: both True, so no transition
    assert status["conditions"]["AbleToScale"]["last_transition"] == first
    assert status["at"] == last
    assert status["last_action"]["at"] == first  # the scale happened at the first cycle only


@pytest.mark.parametrize("odd, problem", [
    pytest.param({"target": ["shop", "web"]}, "target: unexpected a list", id="target-a-list"),  # was TypeError
    pytest.param({"at": "soon"}, "at: unexpected 'soon'", id="time-text"),
    pytest.param({"at": True}, "at: unexpected true", id="time-boolean"),
    pytest.param({"conditions": {"AbleToScale": "yes"}}, "conditions: unexpected", id="condition-text"),
    pytest.param({"conditions": {"AbleToScale": {"status": 1}}}, "conditions: unexpected", id="status-number"),
    pytest.param({"health": {"checks": {"crash": {"smoothed": "high"}}}}, "health: unexpected", id="check-text"),
    pytest.param({"reason": 7}, "reason: unexpected 7", id="reason-number"),  # rich refused the table cell
    pytest.param(3.5, "expected a mapping, got 3.5", id="a-number"),
    # these stopped `setpoint status --records` with exit 70: OverflowError, or a year out of range
    pytest.param({"at": 10**400}, "at: unexpected 1000000000", id="time-an-integer-of-401-digits"),
    pytest.param({"at": 1e15}, "at: unexpected 1000000000000000", id="time-in-the-year-31690708"),
    pytest.param({"at": -1e300}, "at: unexpected -1e+300", id="time-negative"),
    pytest.param({"externalScale": {"by": "kubectl", "replicas": 3, "until": 1e300}}, "externalScale: unexpected",
                 id="hands-off-until-1e300"),
    pytest.param({"health": {"checks": {"crash": {"phase": "firing", "since": 1e20}}}}, "health: unexpected",
                 id="check-since-1e20"),
    pytest.param({"warm_start": 5}, "warm_start: unexpected 5", id="warm-start-a-number"),  # was AttributeError
    pytest.param({"warm_start": {"at": 1e300, "warm": True}}, "warm_start: unexpected", id="warm-start-at-1e300"),
])
def test_a_record_that_is_not_a_decision_record_is_skipped_and_said(tmp_path, odd, problem):
    records = run_cycles(tmp_path, SCALING.format(max=20, query="rps_query"), 1000.0, cycles=2)
    bad = {**records[-1], **odd} if isinstance(odd, dict) else odd
    skipped: list[str] = []
    book = book_from_records([records[0], bad, records[1]], on_skip=skipped.append)
    assert len(skipped) == 1 and problem in skipped[0], skipped
    assert book.view()["web"]["targets"]["default/web"]["at"] == records[1]["at"]  # the good ones all count


@pytest.mark.parametrize("as_json", [pytest.param([], id="table"), pytest.param(["--json"], id="json")])
def test_status_from_a_records_file_with_an_odd_record_skips_it_and_names_the_file(tmp_path, as_json):
    from typer.testing import CliRunner

    from controller.cli import app

    records = run_cycles(tmp_path, SCALING.format(max=20, query="rps_query"), 1000.0, cycles=2)
    bad = {**records[-1], "at": 1e300, "externalScale": {"by": "kubectl", "replicas": 3, "until": 10**400}}
    path = tmp_path / "odd.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (records[0], bad, records[1])))
    out = CliRunner().invoke(app, ["status", "--records", str(path), *as_json])
    assert out.exit_code == 0 and out.exception is None, out.output
    assert f"note: {path}: 1 record skipped, not decision records (the first: at: unexpected 1e+300)" in out.output
    assert "default/web" in out.output


def test_json_document_round_trips_and_uses_rfc3339(tmp_path):
    records = run_cycles(tmp_path, SCALING.format(max=20, query="rps_query"), 1000.0)
    view = book_from_records(records).view()
    doc = json.loads(json.dumps(to_document(view, T0 + 60)))
    assert doc["generated_at"] == datetime.fromtimestamp(T0 + 60, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert doc["policies"]["web"]["targets"]["default/web"]["at"].endswith("Z")
    assert from_document(doc, "test")["web"]["targets"]["default/web"]["at"] == records[0]["at"]
    with pytest.raises(StatusError, match="not a Setpoint status document"):
        from_document({"kind": "Other"}, "http://x/status")


@pytest.mark.parametrize("seconds, text", [
    pytest.param(0.4, "now", id="now"),
    pytest.param(12, "12s ago", id="seconds"),
    pytest.param(250, "4m ago", id="minutes"),
    pytest.param(3900, "1h05m ago", id="hours"),
    pytest.param(3 * 86400 + 5, "3d ago", id="days"),
    pytest.param(-5, "in 5s", id="future (clock skew)"),
])
def test_ago(seconds, text):
    assert ago(seconds) == text


def test_wall_clock_is_local_time_with_the_date_when_not_today(local_zone):
    now = T0 + 3 * 86400
    assert wall_clock(T0, now) == datetime.fromtimestamp(T0, XST).strftime("%Y-%m-%d %H:%M") + " (3d ago)"
    assert wall_clock(now - 30, now) == datetime.fromtimestamp(now - 30, XST).strftime("%H:%M:%S") + " (30s ago)"
    assert wall_clock(125.0, now) == "t+2m"  # a simulation's records: seconds since its start
    assert rfc3339(T0, None).endswith("+05:30")


@given(st.lists(st.tuples(st.sampled_from(["True", "False", None]), st.sampled_from(["True", "False", None])),
                min_size=1, max_size=12))
def test_fold_keeps_kubernetes_transition_semantics(statuses):
    """Whatever the sequence of cycles: each condition shows the status of the last cycle that set
    it, and its last transition is the first cycle of the run of that status that ends there; a
    condition no cycle set is absent."""
    records = []
    for k, (able, limited) in enumerate(statuses):
        conds = {kind: {"status": s, "reason": f"R{s}", "message": ""}
                 for kind, s in (("AbleToScale", able), ("ScalingLimited", limited)) if s is not None}
        records.append({"policy": "p", "target": "ns/t", "at": T0 + 15 * k, "current": 1, "desired": 1,
                        "reason": "WithinTolerance", "conditions": conds})
    status = book_from_records(records).view()["p"]["targets"]["ns/t"]
    for j, kind in enumerate(("AbleToScale", "ScalingLimited")):
        set_at = [(r["at"], s[j]) for r, s in zip(records, statuses) if s[j] is not None]
        if not set_at:
            assert kind not in status["conditions"]
            continue
        last = set_at[-1][1]
        start = len(set_at) - 1
        while start > 0 and set_at[start - 1][1] == last:
            start -= 1
        assert status["conditions"][kind]["status"] == last
        assert status["conditions"][kind]["last_transition"] == set_at[start][0]
    assert list(status["conditions"]) == [k for k in ("AbleToScale", "ScalingLimited") if k in status["conditions"]]


@pytest.mark.parametrize("record, shown", [
    pytest.param({"current": 18, "desired": 17, "reason": "RateLimitedDown", "action": "scale", "at": 5.0,
                  "health": {"action": None, "reason": "ScaleUpCooldown", "replicas": 18}}, None,
                 id="a-scale-down-the-health-side-held-is-no-action"),
    pytest.param({"current": 10, "desired": 11, "reason": "ScaleUp", "action": "scale", "at": 5.0,
                  "health": {"action": "scale", "reason": "Scaling", "replicas": 11}},
                 {"action": "scale", "reason": "Scaling", "from": 10, "to": 11, "at": 5.0}, id="passed-through"),
    pytest.param({"current": 11, "desired": 11, "reason": "WithinTolerance", "action": None, "at": 5.0,
                  "health": {"action": "scale", "reason": "ScaleUpOverloaded", "replicas": 14}},
                 {"action": "scale", "reason": "ScaleUpOverloaded", "from": 11, "to": 14, "at": 5.0},
                 id="a-health-scale-up"),
    pytest.param({"current": 2, "desired": 3, "reason": "ScaleUp", "action": "scale", "at": 5.0},
                 {"action": "scale", "reason": "ScaleUp", "from": 2, "to": 3, "at": 5.0}, id="a-scaling-only-policy"),
])
def test_the_last_action_is_one_that_was_applied(record, shown):
    """A crash-looping release: status showed 'last action scale 18->17 RateLimitedDown' while the
    health side held 18 for 16 minutes (the records' top-level action is the scaling decision's)."""
    from controller.runtime.status import last_action

    assert last_action(record) == shown


def _prior(at: float, policy: str = "web", to: int = 5):
    from controller.model import TargetRef
    from controller.ports import PriorAction

    return PriorAction(TargetRef("default", "web"), "scale", "ScaleUp", at, 4, to, policy=policy, by="pod-a")


def _cycle(at: float, acted: bool) -> dict:
    return {"target": "default/web", "policy": "web", "at": at, "current": 3 if acted else 5, "desired": 5,
            "reason": "ScaleUp" if acted else "WithinTolerance", "action": "scale" if acted else None}


OWN = {"action": "scale", "reason": "ScaleUp", "from": 3, "to": 5, "at": 200.0}
PRIOR = {"action": "scale", "reason": "ScaleUp", "from": 4, "to": 5, "at": 100.0, "before_leading": True, "by": "pod-a"}


# each row: the steps (("recall", [prior actions]) read back at a take-over, ("cycle", record)) and
# the target's last action after them
@pytest.mark.parametrize("steps, shown", [
    pytest.param([("recall", [_prior(100.0)]), ("cycle", _cycle(200.0, False))], PRIOR, id="read-before-its-cycle"),
    pytest.param([("cycle", _cycle(200.0, False)), ("recall", [_prior(100.0)])], PRIOR, id="read-after-its-cycle"),
    pytest.param([("cycle", _cycle(200.0, True)), ("recall", [_prior(100.0)])], OWN, id="its-own-newer-action-stays"),
    pytest.param([("recall", [_prior(100.0)]), ("cycle", _cycle(200.0, True))], OWN, id="its-own-action-then"),
    pytest.param([("cycle", _cycle(50.0, True)), ("recall", [_prior(100.0)])], PRIOR,
                 id="leadership-won-back-the-other-leaders-newer-action"),
    pytest.param([("recall", [_prior(100.0), _prior(40.0, to=9)]), ("cycle", _cycle(200.0, False))], PRIOR,
                 id="the-newest-of-several"),
    pytest.param([("recall", [_prior(100.0, policy="other")]), ("cycle", _cycle(200.0, False))], None,
                 id="another-policys-action-is-not-this-ones"),
    pytest.param([("recall", [_prior(100.0, policy="")]), ("cycle", _cycle(200.0, False))], PRIOR,
                 id="an-older-versions-record-naming-no-policy-counts"),
    pytest.param([("recall", []), ("cycle", _cycle(200.0, False))], None, id="none-read"),
])
def test_actions_read_back_at_a_take_over_become_the_last_action_unless_newer_is_known(steps, shown):
    from controller.runtime.status import StatusBook

    book = StatusBook()
    for kind, arg in steps:
        if kind == "recall":
            book.recall(arg)
        else:
            book.add_cycle("web", arg["at"], [arg])
    assert book.view()["web"]["targets"]["default/web"]["last_action"] == shown


def test_json_of_a_simulations_records_keeps_seconds_since_its_start(tmp_path):
    """`setpoint status --records out/SCENARIO --json` dated a simulation's cycles in January 1970
    ("at": "1970-01-01T00:59:45Z"); the table says t+59m45s. Its times stay seconds since the start."""
    from typer.testing import CliRunner

    from controller.cli import app
    from tests.simulators.sweep_fixtures import write_scenarios

    (scenario,) = write_scenarios(tmp_path, {"short": (1, 700)}, duration="4m")
    out = tmp_path / "out"
    ran = CliRunner().invoke(app, ["simulate", scenario, "-b", "hpa", "--no-frontier", "--no-report", "-j", "1",
                                   "-o", str(out)])
    assert ran.exit_code == 0, ran.output
    said = CliRunner().invoke(app, ["status", "--records", str(out), "--json"])
    assert said.exit_code == 0, said.output
    doc = json.loads(said.stdout)
    assert "1970-" not in said.stdout
    for controller in ("policy", "hpa"):
        target = doc["policies"][controller]["targets"]["default/web"]
        assert target["at"] == pytest.approx(235.0, abs=15.0)  # the last cycle of 4 minutes
        assert all(isinstance(c["last_transition"], (int, float)) for c in target["conditions"].values())
    assert from_document(doc, "test")["policy"]["targets"]["default/web"]["at"] == doc["policies"]["policy"][
        "targets"]["default/web"]["at"]
