"""A workload that two policies select is governed by one: the incumbent; the other says so."""

from __future__ import annotations

import logging

import pytest

from controller.model import TargetRef
from controller.runtime.claims import HEAL, LAPSE_INTERVALS, SCALE, TargetClaims
from controller.runtime.service import ControllerService, ServiceOptions
from controller.runtime.telemetry import Telemetry
from tests.runtime.test_service import POLICY, T0, sim, write_policy

WEB, API = TargetRef("default", "web"), TargetRef("default", "api")


def claim(claims, policy, targets, at, interval_s=15.0):
    return claims.claim(policy, targets, T0 + at, interval_s)


@pytest.mark.parametrize("steps, expected", [
    pytest.param([("a", [WEB], 0)], ([WEB], {}), id="alone"),
    pytest.param([("a", [WEB], 0), ("b", [WEB, API], 5)], ([API], {WEB: "a"}), id="the-incumbent-keeps-it"),
    pytest.param([("a", [WEB], 0), ("b", [WEB], 5), ("a", [WEB], 15), ("b", [WEB], 20)], ([], {WEB: "a"}),
                 id="renewed-every-cycle"),
    pytest.param([("a", [WEB], 0), ("b", [WEB], 5 + LAPSE_INTERVALS * 15)], ([WEB], {}),
                 id="lapses-after-three-intervals-without-a-cycle"),
    pytest.param([("a", [WEB], 0), ("a", [API], 15), ("b", [WEB], 20)], ([WEB], {}),
                 id="freed-when-no-longer-selected"),
    pytest.param([("b", [WEB], 0), ("a", [WEB], 5)], ([], {WEB: "b"}), id="not-by-name-order"),
])
def test_one_policy_governs_each_workload(steps, expected):
    claims = TargetClaims()
    for policy, targets, at in steps:
        outcome = claim(claims, policy, targets, at)
    assert outcome == expected


BOTH = (SCALE, HEAL)


@pytest.mark.parametrize("steps, expected", [
    # a scaling policy without health checks and a health-only policy: one sets the count, one heals
    pytest.param([("scaler", [WEB], 0, (SCALE,)), ("healer", [WEB], 5, (HEAL,))], ([WEB], {}),
                 id="a-scaler-and-a-healer-both-govern-it"),
    pytest.param([("healer", [WEB], 0, (HEAL,)), ("scaler", [WEB], 5, (SCALE,))], ([WEB], {}),
                 id="whichever-cycles-first"),
    pytest.param([("both", [WEB], 0, BOTH), ("healer", [WEB, API], 5, (HEAL,))], ([API], {WEB: "both"}),
                 id="two-healers-do-not"),
    pytest.param([("healer", [WEB], 0, (HEAL,)), ("both", [WEB], 5, BOTH)], ([], {WEB: "healer"}),
                 id="all-its-roles-or-none"),
    pytest.param([("healer", [WEB], 0, (HEAL,)), ("both", [WEB], 5, BOTH), ("scaler", [WEB], 10, (SCALE,))],
                 ([WEB], {}), id="a-policy-left-out-holds-nothing-there"),
    pytest.param([("both", [WEB], 0, BOTH), ("scaler", [WEB], 5, (SCALE,)), ("healer", [WEB], 10, (HEAL,))],
                 ([], {WEB: "both"}), id="a-scale-and-heal-policy-holds-both"),
])
def test_a_workload_has_one_scaler_and_one_healer(steps, expected):
    claims = TargetClaims()
    for policy, targets, at, roles in steps:
        outcome = claims.claim(policy, targets, T0 + at, 15.0, roles)
    assert outcome == expected


def test_forgetting_a_removed_policy_frees_its_workloads():
    claims = TargetClaims()
    claim(claims, "a", [WEB, API], 0)
    claims.forget("a")
    assert claim(claims, "b", [WEB, API], 1) == ([WEB, API], {})


WIDE = POLICY.format(interval="15s", target=50).replace("{name: web}", "{name: wide}").replace(
    "names: [web]", "selector: {matchLabels: {team: shop}}")


def test_a_named_policy_and_a_selector_policy_do_not_both_scale_one_deployment(tmp_path, caplog):
    # Both selected web: replicas went 8 -> 3 -> 9 -> 5 -> 7 -> 8 -> 16 -> 8 in 40 s (found by a live fuzz).
    cluster, metrics, targets = sim()  # web: 4 replicas, 1000 rps; 100 per replica for web, 50 for wide
    write_policy(tmp_path)
    (tmp_path / "wide.yaml").write_text(WIDE)
    telemetry = Telemetry()
    service = ControllerService([tmp_path], metrics, targets, telemetry, ServiceOptions(), clock=lambda: T0)
    caplog.set_level(logging.WARNING, logger="setpoint.runtime")
    first = {r.policy: r for r in service.run_all_once()}
    second = {r.policy: r for r in service.run_all_once()}
    governing = {name for name, r in first.items() if r.targets}
    assert len(governing) == 1 and all(bool(second[name].targets) == (name in governing) for name in second)
    [other] = set(first) - governing
    assert first[other].contested == 1 and not first[other].actions
    said = [r.getMessage() for r in caplog.records if "already governs" in r.getMessage()]
    assert said == [f"{other} selects Deployment default/web, which policy {governing.pop()} already governs: "
                    f"{other} leaves it alone (two policies would scale it against each other); narrow one of "
                    f"the two selectors"]  # once, not every cycle
    assert telemetry.registry.get_sample_value("setpoint_contested_targets", {"policy": other}) == 1


HEALER = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: web-probes}
spec:
  targets: {kind: Deployment, namespace: default, names: [web]}
  interval: 15s
  health:
    checks:
      - name: slow
        query: rps_query
        scope: workload
        unhealthy: {above: 1000000, for: 1m}
        action: restart-pod
"""


def test_a_health_only_policy_beside_a_scaling_policy_leaves_its_scaling_alone(tmp_path):
    """validate accepts a health-only policy naming a workload a scaling policy (no health checks)
    names; at run time whichever cycled first took it, and the other left it alone: adding a probe
    check stopped the workload's scaling (found by the backtest of policy sets)."""
    cluster, metrics, targets = sim()  # web: 4 replicas at 1000 rps, 100 per replica: the policy wants 10
    write_policy(tmp_path)
    (tmp_path / "a-probes.yaml").write_text(HEALER)  # sorts first: cycles first
    service = ControllerService([tmp_path], metrics, targets, Telemetry(), ServiceOptions(), clock=lambda: T0)
    results = {r.policy: r for r in service.run_all_once()}
    assert {name: [t.name for t in r.targets] for name, r in results.items()} == {"web": ["web"], "web-probes": ["web"]}
    assert results["web"].contested == 0 and results["web-probes"].contested == 0
    assert [(a.target.name, a.kind.word, a.replicas) for a in results["web"].actions] == [("web", "scale", 10)]
