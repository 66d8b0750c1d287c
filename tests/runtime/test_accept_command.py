"""`setpoint accept TARGET REVISION` writes the setpoint.io/accept-revision annotation through the
Kubernetes adapter (against sim serve, with the official client reading it back), as `kubectl
annotate` does, for the workload's current revision only: the controller honours an acceptance
while its revision is current (core/health/heal._accepts), so one of another revision would accept
nothing. The current revision is read as the controller's observe reads it (a Deployment's
deployment.kubernetes.io/revision, a StatefulSet's status.updateRevision); another is refused in
one line naming the current one, nothing written, unless --force. What names no workload or no
revision is refused in one line, nothing written.
(What the annotation does: tests/core/test_revision_accepted.py, tests/e2e/test_revision_accepted_live.py.)"""

from __future__ import annotations

import subprocess
import threading
import sys

import pytest
from kubernetes import client

from simulators.kubeapi.server import SimKubeServer
from simulators.scenario import load_scenario_text
from tests.adapters.kube_helpers import TOKEN, official_client
from tests.support.cli_inproc import run_cli

ANNOTATION = "setpoint.io/accept-revision"

#: web (a Deployment, revision 1) and db (a StatefulSet) in namespace shop.
SCENARIO_YAML = """
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: accept-test}
spec:
  duration: 1h
  tick: 5s
  seed: 3
  slo: {latency: {percentile: 95, below: 250ms}}
  services:
    - name: web
      namespace: shop
      capacityPerPod: 100
      startupDelay: 10s
      schedulingDelay: 0s
      initialReplicas: 2
      load: [{constant: {rps: 150}}]
    - name: db
      namespace: shop
      kind: StatefulSet
      capacityPerPod: 100
      startupDelay: 10s
      schedulingDelay: 0s
      initialReplicas: 2
      load: [{constant: {rps: 150}}]
"""


@pytest.fixture
def server():
    srv = SimKubeServer(load_scenario_text(SCENARIO_YAML, "accept-test.yaml"), drive=False, token=TOKEN,
                        max_connections=32).start()
    yield srv
    srv.stop()


def _accept(server, tmp_path, *args) -> subprocess.CompletedProcess:
    """``setpoint accept *args`` against ``server``, in this process (what it says, writes and exits
    with; the test about a write held between read and write runs it as a process of its own)."""
    kubeconfig = server.write_kubeconfig(tmp_path / "accept.yaml", namespace="shop")
    return run_cli("accept", *args, "--kubeconfig", kubeconfig, cwd=tmp_path)


def _apps(server, tmp_path) -> client.AppsV1Api:
    folder = tmp_path / "read"
    folder.mkdir(exist_ok=True)
    return client.AppsV1Api(official_client(server, folder))


def _workload(server, tmp_path, kind: str = "Deployment", name: str = "web"):
    apps = _apps(server, tmp_path)
    read = apps.read_namespaced_deployment if kind == "Deployment" else apps.read_namespaced_stateful_set
    return read(name, "shop", _request_timeout=5)


def _annotations(server, tmp_path, kind: str = "Deployment", name: str = "web") -> dict:
    return _workload(server, tmp_path, kind, name).metadata.annotations or {}


def _release(server, tmp_path, kind: str = "Deployment", name: str = "web", stamp: str = "2") -> None:
    """A new pod template (a release): the next revision of the workload."""
    apps = _apps(server, tmp_path)
    patch = apps.patch_namespaced_deployment if kind == "Deployment" else apps.patch_namespaced_stateful_set
    patch(name, "shop", {"spec": {"template": {"metadata": {"annotations": {"release": stamp}}}}}, _request_timeout=5)


def test_accept_writes_the_annotation_for_the_current_revision(server, tmp_path):
    proc = _accept(server, tmp_path, "shop/web", "1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Deployment/shop/web: revision 1, the current one, accepted "
                                  "(setpoint.io/accept-revision=1)"), proc.stdout
    assert _annotations(server, tmp_path)[ANNOTATION] == "1"
    _release(server, tmp_path)  # revision 2 is current: its acceptance replaces the first
    assert _annotations(server, tmp_path)["deployment.kubernetes.io/revision"] == "2"
    assert _accept(server, tmp_path, "shop/web", "2").returncode == 0
    assert _annotations(server, tmp_path)[ANNOTATION] == "2"


def test_accept_refuses_a_revision_that_is_not_current_and_writes_nothing(server, tmp_path):
    proc = _accept(server, tmp_path, "shop/web", "2")
    assert proc.returncode == 1 and proc.stdout == "", proc.stdout
    assert proc.stderr.strip() == (
        "Deployment/shop/web: revision 2 is not the current revision: its current revision is 1; an acceptance "
        "counts only while its revision is current, so this one would accept nothing now; nothing written (accept "
        "it with `setpoint accept shop/web 1`, or --force to write it for when revision 2 is current)")
    assert ANNOTATION not in _annotations(server, tmp_path)


def test_accept_force_writes_a_revision_that_is_not_current_and_says_it_accepts_nothing_yet(server, tmp_path):
    proc = _accept(server, tmp_path, "shop/web", "2", "--force")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ("Deployment/shop/web: annotation written (setpoint.io/accept-revision=2) with "
                                   "--force; it accepts nothing until revision 2 is current (the current revision "
                                   "is now 1)")
    assert _annotations(server, tmp_path)[ANNOTATION] == "2"


def test_accept_reads_a_statefulsets_current_revision_as_its_update_revision(server, tmp_path):
    """A StatefulSet's revisions are ControllerRevision names; the current one is status.updateRevision
    (a canary's revision while the pods below a partition stay on currentRevision)."""
    before = _workload(server, tmp_path, "StatefulSet", "db").status.update_revision
    _release(server, tmp_path, "StatefulSet", "db")
    status = _workload(server, tmp_path, "StatefulSet", "db").status
    assert status.update_revision != before and status.current_revision == before  # rolling out, not done
    proc = _accept(server, tmp_path, "shop/db", before, "--kind", "sts")
    assert proc.returncode == 1, proc.stdout
    assert proc.stderr.startswith(f"StatefulSet/shop/db: revision {before} is not the current revision: its current "
                                  f"revision is {status.update_revision};"), proc.stderr
    assert f"`setpoint accept shop/db --kind statefulset {status.update_revision}`" in proc.stderr
    assert ANNOTATION not in _annotations(server, tmp_path, "StatefulSet", "db")
    proc = _accept(server, tmp_path, "shop/db", status.update_revision, "--kind", "sts")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"StatefulSet/shop/db: revision {status.update_revision}, the current one, accepted")
    assert _annotations(server, tmp_path, "StatefulSet", "db")[ANNOTATION] == status.update_revision


@pytest.mark.parametrize("args, message", [
    pytest.param(["shop/web", ""], "REVISION: expected a revision as setpoint names it", id="empty-revision"),
    pytest.param(["shop/web", "2 3"], "REVISION: expected a revision as setpoint names it", id="two-words"),
    pytest.param(["shop/web", "-"], "REVISION: expected a revision as setpoint names it", id="a-dash"),
    pytest.param(["shop/", "2"], "TARGET: expected NAMESPACE/NAME or NAME, got 'shop/'", id="empty-name"),
    pytest.param(["shop/nope", "2"], "Deployment/shop/nope: cannot read its current revision: HTTP 404: "
                                     "deployments.apps \"nope\" not found", id="no-such-deployment"),
    pytest.param(["shop/nope", "2", "--force"], "Deployment/shop/nope: cannot read its current revision: HTTP 404",
                 id="no-such-deployment-forced"),
])
def test_accept_refuses_in_one_line(server, tmp_path, args, message):
    proc = _accept(server, tmp_path, *args)
    assert proc.returncode == 1 and proc.stderr.strip().startswith(message), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert ANNOTATION not in _annotations(server, tmp_path)


@pytest.mark.parametrize("kind, current, said", [
    pytest.param("Deployment", "", "its current revision is not known yet (its deployment.kubernetes.io/revision "
                                   "annotation is not set); an acceptance counts only while its revision is current, "
                                   "so this one would accept nothing now; nothing written (--force to write it for "
                                   "when revision 2 is current)", id="deployment-without-a-revision"),
    pytest.param("StatefulSet", "", "its current revision is not known yet (its status.updateRevision is not set)",
                 id="statefulset-without-an-update-revision"),
])
def test_accept_refuses_while_the_current_revision_is_unknown(kind, current, said):
    """A workload whose controller has not named a revision yet: the controller accepts nothing there
    (core/health/heal._accepts: an empty revision never matches), so neither does the command."""
    from controller.cli.live import not_current_refusal
    from controller.model import TargetRef

    assert said in not_current_refusal(TargetRef("shop", "web", kind), "2", current)


def _scale(server, tmp_path, replicas: int = 3) -> None:
    """Another writer's scale of web (no new revision)."""
    _apps(server, tmp_path).patch_namespaced_deployment_scale("web", "shop", {"spec": {"replicas": replicas}},
                                                              _request_timeout=5)


WEB_PATH = r"/apis/apps/v1/namespaces/shop/deployments/web$"


@pytest.mark.parametrize("meanwhile, code, said, written", [
    pytest.param(_release, 1, "Deployment/shop/web: revision 1 was current when read but not when the acceptance "
                              "was to be written: a rollout came in between (revision 2 is current now); nothing "
                              "written, so no revision was accepted unseen; to keep revision 2, judge it first, then "
                              "`setpoint accept shop/web 2`", None, id="rollout-between-read-and-write-refused"),
    pytest.param(_scale, 0, "", "1", id="scale-between-read-and-write-written-on-a-second-try"),
])
def test_accept_writes_only_on_the_version_it_read(server, tmp_path, meanwhile, code, said, written):
    """The acceptance's write carries the resourceVersion read with the revision: a write held at the
    server between the read and the write (a gate, the real client and server on both sides) while
    another writer changes the Deployment gets 409; read again, a new revision is refused naming it,
    any other change is written over."""
    gate = threading.Event()
    rule = server.api.faults.inject(WEB_PATH, method="PATCH", gate=gate)
    kubeconfig = server.write_kubeconfig(tmp_path / "accept.yaml", namespace="shop")
    proc = subprocess.Popen([sys.executable, "-m", "controller.cli", "accept", "shop/web", "1", "--kubeconfig",
                             str(kubeconfig)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert rule.arrived.wait(60), "the acceptance's write never came"
        meanwhile(server, tmp_path)
        gate.set()
        out, err = proc.communicate(timeout=60)
    finally:
        gate.set()
        proc.kill()
        proc.wait()
    assert proc.returncode == code, (out, err)
    assert err.strip() == said
    assert _annotations(server, tmp_path).get(ANNOTATION) == written
    # rollout: the release's own patch and the held write (409); scale: the held write (409) and its retry
    assert server.api.requests.count("PATCH", WEB_PATH) == 2


def test_accept_gives_up_after_bounded_conflicts(server, tmp_path):
    """Conflicts that never end (each write raced by another, made here by a 409 on every try) end
    the command after CONDITIONAL_WRITE_ATTEMPTS tries, nothing written."""
    from controller.adapters.kubernetes import CONDITIONAL_WRITE_ATTEMPTS

    server.api.faults.inject(WEB_PATH, status=409, times=CONDITIONAL_WRITE_ATTEMPTS, method="PATCH")
    proc = _accept(server, tmp_path, "shop/web", "1")
    assert proc.returncode == 1, proc.stdout
    assert proc.stderr.strip() == (f"Deployment/shop/web: cannot write the accept-revision annotation: it changed "
                                   f"under each of {CONDITIONAL_WRITE_ATTEMPTS} tries (HTTP 409 each time); nothing "
                                   f"written")
    assert ANNOTATION not in _annotations(server, tmp_path)
