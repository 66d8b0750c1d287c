"""A held target is announced (Event, metric) and re-armed by `setpoint resume` (an annotation)."""

from __future__ import annotations

import pytest


from controller.adapters.kubernetes import KubernetesCluster
from controller.core.health.params import HealthReason
from controller.policy import load_policy_text
from controller.runtime.reconciler import Reconciler, RuntimePolicy
from controller.runtime.telemetry import Telemetry
from simulators.ports import MemoryStateStore, SimMetrics
from tests.adapters.kube_helpers import official_client, server  # noqa: F401 (fixture)
from tests.support.cli_inproc import run_cli

POLICY = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: web-heal}
spec:
  targets: {kind: Deployment, namespace: shop, names: [web]}
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


def test_budget_exhausted_is_announced_and_resume_rearms(server, tmp_path):
    [policy] = load_policy_text(POLICY, "heal.yaml")
    world = server.world
    world.advance(2)
    metrics = SimMetrics(world.engine, {"mem": "memory_mib"}, window_s=15, tick_s=world.tick_s)
    metrics.push(world.engine.signals())
    cluster = KubernetesCluster(official_client(server, tmp_path), qps=0, retry_backoff_s=0.01)
    store = MemoryStateStore()
    rec = Reconciler(RuntimePolicy.of(policy), metrics, cluster, state_store=store)
    telemetry = Telemetry()

    def cycle():
        world.advance(3)  # 15 s of simulated time between cycles
        metrics.push(world.engine.signals())
        return rec.cycle(world.engine.now)

    # every pod is over the limit (256 MiB > 100): a systemic problem gets one rolling restart
    # (the budget: 1 per hour); it does not cure it, so verification fails and the target is held
    results = []
    for _ in range(40):
        results.append(cycle())
        telemetry.observe_cycle(results[-1])
        if results[-1].healing.held[0]:
            break
    disruptive = [a for r in results for a in r.actions if a.kind.word in ("restart-pod", "rolling-restart")]
    assert len(disruptive) == 1
    assert results[-1].healing.held.tolist() == [True]

    assert telemetry.registry.get_sample_value("setpoint_healing_held", {"policy": "web-heal", "target": "shop/web"}) == 1
    cluster.events.flush()
    events = [e for e in official_client_core(server, tmp_path).list_namespaced_event("shop").items
              if e.reason == "HealingHeld"]
    assert len(events) == 1 and "setpoint resume shop/web" in events[0].message

    # a new leader (or a restart) reads the hold from the durable state: still held, not announced
    # again (a day-2 drill saw one HealingHeld Event per leader change)
    rec = Reconciler(RuntimePolicy.of(policy), metrics, cluster, state_store=store)
    assert cycle().healing.held.tolist() == [True]
    cluster.events.flush()
    assert len([e for e in official_client_core(server, tmp_path).list_namespaced_event("shop").items
                if e.reason == "HealingHeld"]) == 1

    kubeconfig = server.write_kubeconfig(tmp_path / "resume.yaml", namespace="shop")
    proc = run_cli("resume", "shop/web", "--kubeconfig", kubeconfig, cwd=tmp_path)  # what it writes: in-process
    assert proc.returncode == 0, proc.stderr
    result = cycle()
    assert HealthReason(int(result.healing.outcome[0])) == HealthReason.REARMED
    cluster.close()


def official_client_core(server, tmp_path):
    from kubernetes import client

    folder = tmp_path / "core"
    folder.mkdir(exist_ok=True)
    return client.CoreV1Api(official_client(server, folder))


@pytest.mark.parametrize("args, message", [
    # these went to the API server as paths: 405 for "shop/", a 404 about "c" for "a/b/c"
    pytest.param(["shop/"], "TARGET: expected NAMESPACE/NAME or NAME, got 'shop/'", id="empty-name"),
    pytest.param(["/web"], "TARGET: expected NAMESPACE/NAME or NAME, got '/web'", id="empty-namespace"),
    pytest.param(["a/b/c"], "TARGET: expected NAMESPACE/NAME or NAME, got 'a/b/c'", id="three-segments"),
    pytest.param(["Shop/web"], "namespace 'Shop': expected a DNS-1123 label", id="namespace-not-a-label"),
    pytest.param(["shop/web app"], "name 'web app': expected a DNS-1123 subdomain", id="name-with-a-space"),
    pytest.param(["shop/web", "--kind", "Pod"], "--kind: expected Deployment or StatefulSet, got 'Pod'", id="kind-pod"),
    # the API's answer, said once (it read "Deployment/shop/nope: annotate Deployment/shop/nope: HTTP 404: ...")
    pytest.param(["shop/nope"], "Deployment/shop/nope: cannot write the resume annotation: HTTP 404: "
                                "deployments.apps \"nope\" not found", id="no-such-deployment"),
])
def test_resume_refuses_what_names_no_workload_in_one_line(server, tmp_path, args, message):  # noqa: F811
    kubeconfig = server.write_kubeconfig(tmp_path / "resume.yaml", namespace="shop")
    proc = run_cli("resume", *args, "--kubeconfig", kubeconfig, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip() == message or proc.stderr.strip().startswith(message), proc.stderr


@pytest.mark.parametrize("kind, expected", [
    pytest.param("statefulset", "StatefulSet", id="lowercase"), pytest.param("sts", "StatefulSet", id="short-name"),
    pytest.param("deploy", "Deployment", id="deploy"), pytest.param("Deployments", "Deployment", id="plural"),
])
def test_resume_reads_kind_as_kubectl_does(kind, expected):
    from controller.cli.live import resume_target
    from controller.model import TargetRef

    assert resume_target("shop/web", "default", kind) == TargetRef("shop", "web", expected)
    assert resume_target("web", "team-a", kind) == TargetRef("team-a", "web", expected)
