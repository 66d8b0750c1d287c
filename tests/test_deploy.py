"""The kustomize layout is complete, its policies are valid, and each overlay's RBAC grants
exactly what the Kubernetes adapter calls, in both directions: every call is granted in the
right scope by the role of its code path, and every grant is used by some call of that path.

The calls come from a scan of controller/adapters/kubernetes.py: every reference to a
``kubernetes`` client function (``self.apps.patch_namespaced_deployment_scale``, or a field of
the ``_workload_api`` table), resolved to its client class (AppsV1Api, CoreV1Api, ...) and from
there to the HTTP method and path the client sends, hence (API group, resource, verb, scope).
Each adapter function that makes calls is assigned a code path in ``CODE_PATHS``; a new
function with API calls fails the test until it is assigned one (and granted).
"""

from __future__ import annotations

import ast
import functools
import inspect
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import typer
import yaml
from kubernetes import client as k8s

from controller.cli import app as setpoint_app
from controller.policy import check_policies
from controller.runtime.http import parse_listen

# The tests share the cached kustomize builds (built): on one pytest-xdist worker each is computed once.
pytestmark = pytest.mark.xdist_group("tests/test_deploy.py")

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
BASE = DEPLOY / "base"
ADAPTER = REPO / "controller" / "adapters" / "kubernetes.py"
KUBECTL = shutil.which("kubectl")
OVERLAYS = {"namespaced": {"shop"}, "cluster-wide": {"*"}}  # overlay -> scope of the watched namespaces
CONTROLLER_NAMESPACE = "setpoint"
SERVICE_ACCOUNT = {"kind": "ServiceAccount", "name": "setpoint", "namespace": CONTROLLER_NAMESPACE}

#: Adapter function -> the code path its calls serve. ``resume`` is `setpoint resume` and `setpoint
#: accept`, run by a person with their own credentials, not by the controller's ServiceAccount.
CODE_PATHS = {
    "KubernetesCluster.resolve": "scaling",
    "KubernetesCluster._snapshot": "scaling",
    "KubernetesCluster._scale": "scaling",
    "KubernetesCluster.hpa_targets": "scaling",  # a workload an HPA scales is left alone
    "EventRecorder._run": "events",
    "KubernetesCluster.prior_actions": "events",  # a new leader reads the last actions back for its status
    "KubernetesCluster._health_objects": "scaling",  # pods and ReplicaSets: per-pod HPA, withheld, start-ups
    "KubernetesCluster._restart_pod": "healing",
    "KubernetesCluster._patch_observed_spec": "healing",  # rolling restart, pause, resume (read after a 409)
    "KubernetesCluster._rollback": "healing",
    "KubernetesCluster._rollback_source": "healing",
    "LeaderElector.try_acquire_or_renew": "leader-election",
    "LeaderElector._release": "leader-election",
    "KubernetesCluster.annotate": "resume",
    "KubernetesCluster.read_current_revision": "resume",  # setpoint accept: the revision it may accept
    "KubernetesCluster.annotate_while_current": "resume",  # setpoint accept: read, then write on that version
    "KubernetesStateStore._read": "state",
    "KubernetesStateStore.save": "state",
    "KubernetesStateStore.delete": "state",  # a removed policy's state, once it no longer matters
}
#: Code path -> the role (label setpoint.io/rbac) that must grant its calls. "state": durable
#: state in the controller's own namespace (ConfigMaps), granted by the base's Role.
PATH_ROLES = {"scaling": "scaling", "events": "scaling", "healing": "healing", "leader-election": "controller",
              "state": "controller"}
#: Verbs that can change a pod template or remove a pod: only the healing role may grant them.
HEALING_VERBS = {("apps", "deployments", "patch"), ("apps", "statefulsets", "patch"), ("", "pods", "delete")}
CLIENT_CLASSES = {"AppsV1Api", "AutoscalingV2Api", "CoreV1Api", "CoordinationV1Api", "EventsV1Api"}
API_FUNCTION = re.compile(r"^(list|read|patch|replace|create|delete|delete_collection)_\w+$")
REQUEST_PATH = re.compile(r"""method\s*=\s*['"](\w+)['"],\s*resource_path\s*=\s*['"]([^'"]+)['"]"""
                          r"""|call_api\(\s*['"]([^'"]+)['"],\s*['"](\w+)['"]""")


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


# ------------------------------------------------------------------------------------ the calls
@dataclass(frozen=True)
class Call:
    group: str
    resource: str  # with the subresource: deployments/scale
    verb: str
    namespaced: bool
    path: str  # code path, from CODE_PATHS
    where: str  # Class.function (client function)


def request_of(cls_name: str, function: str) -> tuple[str, str]:
    """(HTTP method, resource path) that ``kubernetes.client.<cls_name>.<function>`` sends, read
    from the generated client's source (both the old and the new generator's layout)."""
    cls = getattr(k8s, cls_name)
    assert hasattr(cls, function), f"{cls_name} has no {function}"
    for name in (f"_{function}_serialize", f"{function}_with_http_info"):
        if hasattr(cls, name):
            match = REQUEST_PATH.search(inspect.getsource(getattr(cls, name)))
            if match:
                return (match[1], match[2]) if match[1] else (match[4], match[3])
    raise AssertionError(f"cannot find the request of {cls_name}.{function}")


def rbac_of(method: str, path: str) -> tuple[str, str, str, bool]:
    """(group, resource[/subresource], verb, namespaced) of one request."""
    parts = path.strip("/").split("/")
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    namespaced = rest[:2] == ["namespaces", "{namespace}"]
    if namespaced:
        rest = rest[2:]
    resource, named = rest[0], len(rest) > 1
    if len(rest) > 2:
        resource += "/" + rest[2]
    verb = {"GET": "get" if named else "list", "POST": "create", "PUT": "update", "PATCH": "patch",
            "DELETE": "delete" if named else "deletecollection"}[method]
    return group, resource, verb, namespaced


class _Scan(ast.NodeVisitor):
    """Client function references per adapter function, resolved to their client class."""

    def __init__(self, tree: ast.Module):
        self.attr_classes: dict[tuple[str, str], str] = {}  # (class, "self.apps") -> "AppsV1Api"
        self.table: dict[str, set[tuple[str, str]]] = {}  # _workload_api field -> {(cls, fn)}
        self.refs: dict[str, set[tuple[str, str]]] = {}  # "Class.function" -> {(cls, fn)}
        self.watches: set[str] = set()
        self.unresolved: list[str] = []
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                self._class(node)
            elif isinstance(node, ast.FunctionDef):
                self._function("", node)

    def _class(self, cls: ast.ClassDef) -> None:
        for node in ast.walk(cls):
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                client = self._constructed(node.value)
                if client and isinstance(node.targets[0], ast.Attribute):
                    self.attr_classes[(cls.name, ast.unparse(node.targets[0]))] = client
        for fn in (n for n in cls.body if isinstance(n, ast.FunctionDef)):
            self._function(cls.name, fn)

    @staticmethod
    def _constructed(value: ast.expr) -> str | None:
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr in CLIENT_CLASSES:
            return value.func.attr
        return None

    def _function(self, cls: str, fn: ast.FunctionDef) -> None:
        where = f"{cls}.{fn.name}" if cls else fn.name
        aliases: dict[str, str] = {}  # local name -> client class ("a = self.apps")
        table_names: set[str] = set()  # local names bound to a _workload_api(...) result
        for node in ast.walk(fn):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                source = ast.unparse(node.value)
                client = self.attr_classes.get((cls, source)) or self._constructed(node.value)
                if client:
                    aliases[node.targets[0].id] = client
                if source.startswith("self._workload_api("):
                    table_names.add(node.targets[0].id)
            if isinstance(node, ast.keyword) and node.arg == "watch" or isinstance(node, ast.Name) and node.id == "Watch":
                self.watches.add(where)
        refs = self.refs.setdefault(where, set())
        for node in ast.walk(fn):
            if not isinstance(node, ast.Attribute):
                continue
            receiver = ast.unparse(node.value)
            if receiver.startswith("self._workload_api(") or receiver in table_names:
                refs.add(("table", node.attr))
                continue
            if not API_FUNCTION.match(node.attr):
                continue
            client = self.attr_classes.get((cls, receiver)) or aliases.get(receiver) or self._constructed(node.value)
            if client is None:  # a parameter or the like: the function name tells the class, if only one has it
                owners = [c for c in sorted(CLIENT_CLASSES) if hasattr(getattr(k8s, c), node.attr)]
                if len(owners) > 1:
                    self.unresolved.append(f"{where}: {receiver}.{node.attr} (which of {owners}?)")
                client = owners[0] if len(owners) == 1 else None
            if client and fn.name != "_workload_api":  # the table's entries count where its fields are used
                refs.add((client, node.attr))
        if fn.name == "_workload_api":
            for call in (n for n in ast.walk(fn) if isinstance(n, ast.Call) and ast.unparse(n.func) == "WorkloadApi"):
                for kw in call.keywords:
                    client = aliases.get(ast.unparse(kw.value.value))
                    self.table.setdefault(kw.arg, set()).add((client, kw.value.attr))

    def calls(self) -> set[Call]:
        out = set()
        for where, refs in self.refs.items():
            for client, function in refs:
                for cls_name, fn in (self.table[function] if client == "table" else {(client, function)}):
                    group, resource, verb, namespaced = rbac_of(*request_of(cls_name, fn))
                    verbs = {verb, "watch"} if verb == "list" and where in self.watches else {verb}
                    for v in verbs:
                        out.add(Call(group, resource, v, namespaced, CODE_PATHS.get(where, "?"), where))
        return out


@functools.lru_cache(maxsize=1)
def adapter_scan() -> _Scan:
    return _Scan(ast.parse(ADAPTER.read_text()))


def controller_calls() -> set[Call]:
    """Every call the controller's ServiceAccount makes (not `setpoint resume`)."""
    return {c for c in adapter_scan().calls() if c.path != "resume"}


def test_the_scan_finds_every_call_with_its_group_and_code_path():
    scan = adapter_scan()
    assert scan.unresolved == []
    calls = {(c.group, c.resource, c.verb, c.path) for c in scan.calls()}
    for known in [("apps", "deployments/scale", "patch", "scaling"), ("apps", "statefulsets/scale", "get", "scaling"),
                  ("apps", "deployments", "list", "scaling"), ("", "events", "create", "events"),
                  ("", "pods", "delete", "healing"), ("apps", "replicasets", "list", "healing"),
                  ("apps", "statefulsets", "patch", "healing"),
                  ("apps", "statefulsets", "get", "healing"), ("coordination.k8s.io", "leases", "update", "leader-election"),
                  ("apps", "deployments", "patch", "resume"), ("", "configmaps", "delete", "state")]:
        assert known in calls, known
    with_calls = {where for where, refs in scan.refs.items() if refs}
    assert with_calls - set(CODE_PATHS) == set(), "assign these adapter functions a code path in CODE_PATHS"
    assert set(CODE_PATHS) - with_calls == set(), "CODE_PATHS names functions that make no API call"


@pytest.mark.parametrize(("method", "path", "expected"), [
    pytest.param("PATCH", "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale",
                 ("apps", "deployments/scale", "patch", True), id="subresource"),
    pytest.param("GET", "/api/v1/namespaces/{namespace}/pods", ("", "pods", "list", True), id="core-list"),
    pytest.param("GET", "/api/v1/pods", ("", "pods", "list", False), id="all-namespaces"),
    pytest.param("PUT", "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}",
                 ("coordination.k8s.io", "leases", "update", True), id="replace"),
    pytest.param("DELETE", "/api/v1/namespaces/{namespace}/pods", ("", "pods", "deletecollection", True),
                 id="delete-collection"),
])
def test_a_request_maps_to_its_rbac_attributes(method, path, expected):
    assert rbac_of(method, path) == expected


# ------------------------------------------------------------------------------------ the grants
@dataclass(frozen=True)
class Grant:
    group: str
    resource: str
    verb: str
    scope: str  # a namespace, or "*" for every namespace (ClusterRoleBinding)
    role: str  # label setpoint.io/rbac of the role
    name: str  # Kind/name of the role
    names: tuple[str, ...] = ()  # the rule's resourceNames: only objects of these names (empty: any)


def build(directory: Path) -> list[dict]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed: cannot build the kustomize overlays")
    done = subprocess.run([KUBECTL, "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


@functools.lru_cache(maxsize=None)
def built(overlay: str) -> tuple[dict, ...]:
    return tuple(build(DEPLOY / "overlays" / overlay))


def grants(objects) -> set[Grant]:
    """What the controller's ServiceAccount may do, through every binding of ``objects``."""
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o
             for o in objects if o["kind"] in ("Role", "ClusterRole")}
    out = set()
    for binding in (o for o in objects if o["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        assert SERVICE_ACCOUNT in binding["subjects"], binding["metadata"]["name"]
        scope = binding["metadata"]["namespace"] if binding["kind"] == "RoleBinding" else "*"
        ref = binding["roleRef"]
        role = roles[(ref["kind"], scope if ref["kind"] == "Role" else None, ref["name"])]
        label = role["metadata"].get("labels", {}).get("setpoint.io/rbac", "?")
        for rule in role["rules"]:
            assert "nonResourceURLs" not in rule, rule
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        assert "*" not in (group, resource, verb), f"wildcard in {role['metadata']['name']}: {rule}"
                        out.add(Grant(group, resource, verb, scope, label, f"{role['kind']}/{role['metadata']['name']}",
                                      tuple(rule.get("resourceNames", ()))))
    return out


def expected_scopes(path: str, overlay: str) -> set[str]:
    return {CONTROLLER_NAMESPACE} if PATH_ROLES[path] == "controller" else OVERLAYS[overlay]


def ungranted(calls: set[Call], have: set[Grant], overlay: str) -> list[str]:
    """Calls that no grant of their path's role allows in every scope the path needs."""
    missing = []
    for c in sorted(calls, key=str):
        for scope in (expected_scopes(c.path, overlay) if c.namespaced else {"*"}):
            if not any((g.group, g.resource, g.verb, g.role) == (c.group, c.resource, c.verb, PATH_ROLES[c.path])
                       and g.scope in (scope, "*") for g in have):
                missing.append(f"{c.where}: {c.verb} {c.group or 'core'}/{c.resource} in {scope} ({c.path})")
    return missing


def unused(have: set[Grant], calls: set[Call], overlay: str) -> list[str]:
    """Grants no call of their role's paths needs, or granted wider than those paths need."""
    out = []
    for g in sorted(have, key=str):
        users = [c for c in calls if (c.group, c.resource, c.verb) == (g.group, g.resource, g.verb)
                 and PATH_ROLES[c.path] == g.role]
        needed = set().union(*(expected_scopes(c.path, overlay) if c.namespaced else {"*"} for c in users))
        if not users or g.scope not in needed:
            out.append(f"{g.name} in {g.scope}: {g.verb} {g.group or 'core'}/{g.resource}")
    return out


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_every_call_is_granted_in_its_scope(overlay):
    assert ungranted(controller_calls(), grants(built(overlay)), overlay) == []


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_every_grant_is_used_by_a_call(overlay):
    assert unused(grants(built(overlay)), controller_calls(), overlay) == []


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_healing_verbs_come_only_from_the_healing_component(overlay):
    have = grants(built(overlay))
    healing = {g for g in have if (g.group, g.resource, g.verb) in HEALING_VERBS}
    assert {(g.group, g.resource, g.verb) for g in healing} == HEALING_VERBS  # healing works when included
    assert {g.role for g in healing} == {"healing"}
    component = {(d["kind"], d["metadata"]["name"]) for f in (DEPLOY / "components" / "healing").rglob("healing.yaml")
                 for d in documents(f)}
    assert {tuple(g.name.split("/")) for g in have if g.role == "healing"} <= component


def _without_healing(tmp_path: Path) -> Path:
    """A copy of deploy/ whose kustomizations include no component."""
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy)
    for k in copy.rglob("kustomization.yaml"):
        data = yaml.safe_load(k.read_text())
        if data.pop("components", None) is not None:
            k.write_text(yaml.safe_dump(data))
    return copy


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_without_the_healing_component_scaling_is_fully_granted_and_nothing_more(overlay, tmp_path):
    have = grants(build(_without_healing(tmp_path) / "overlays" / overlay))
    calls = {c for c in controller_calls() if c.path != "healing"}
    assert {g.role for g in have} == {"scaling", "controller"}
    assert ungranted(calls, have, overlay) == []
    assert unused(have, calls, overlay) == []


def test_the_controller_namespace_role_is_namespaced_in_both_overlays():
    """The Lease (and later the durable state) is reachable in the controller's namespace only."""
    for overlay in OVERLAYS:
        scopes = {g.scope for g in grants(built(overlay)) if g.role == "controller"}
        assert scopes == {CONTROLLER_NAMESPACE}, overlay


# ------------------------------------------------------------------------------------ named grants
#: Verbs whose requests name no object when they are authorized (create: the object does not exist
#: yet; list, watch, deletecollection: a collection), so a rule with resourceNames never allows them.
UNNAMED_VERBS = {"create", "list", "watch", "deletecollection"}
#: (group, resource) granted by name -> the `setpoint run` option that names the one object used.
NAMED_OBJECTS = {("coordination.k8s.io", "leases"): "lease_name"}


def run_options(deployment: dict) -> dict:
    """The options `setpoint run` takes from the Deployment's container args, parsed by the real
    command (so its defaults count: the Deployment passes no --lease-name)."""
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert "command" not in container and container["args"][0] == "run", "the image's ENTRYPOINT is setpoint"
    command = typer.main.get_command(setpoint_app).commands["run"]
    # resilient: no validation (--policies names a folder of the pod, not of this machine)
    return command.make_context("run", list(container["args"][1:]), resilient_parsing=True).params


def _deployment_with(*args: str) -> dict:
    return {"spec": {"template": {"spec": {"containers": [{"args": ["run", "--leader-elect", *args]}]}}}}


@pytest.mark.parametrize(("args", "expected"), [
    pytest.param([], "setpoint", id="the-code-default"),
    pytest.param(["--lease-name=other"], "other", id="with-equals"),
    pytest.param(["--lease-name", "other"], "other", id="separate-value"),
])
def test_the_lease_name_is_read_as_setpoint_run_parses_it(args, expected):
    assert run_options(_deployment_with(*args))["lease_name"] == expected


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_the_lease_is_granted_by_the_name_the_deployment_elects_with(overlay):
    """get and update only on the Lease `setpoint run` uses (its --lease-name, or the default),
    in its namespace ($POD_NAMESPACE: the controller's); create by no name, as RBAC requires."""
    objects = built(overlay)
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    options = run_options(deployment)
    assert options["leader_elect"] and options["lease_namespace"] is None
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}} in container["env"]
    named = [g for g in grants(objects) if (g.group, g.resource) in NAMED_OBJECTS]
    assert named, "no grant on the named objects"
    for g in named:
        name = options[NAMED_OBJECTS[(g.group, g.resource)]]
        assert g.names == (() if g.verb in UNNAMED_VERBS else (name,)), g
        assert g.scope == deployment["metadata"]["namespace"], g


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_names_restrict_only_the_objects_and_verbs_they_can(overlay):
    """A named rule on a verb that carries no name would silently grant nothing (create of the
    Lease: leader election never starts); a name on any other object is one no test checks."""
    named = [g for g in grants(built(overlay)) if g.names]
    assert [g for g in named if g.verb in UNNAMED_VERBS] == []
    assert {(g.group, g.resource) for g in named} <= set(NAMED_OBJECTS)


# ------------------------------------------------------------------------------------ optional components
def with_components(tmp_path: Path, overlay: str, *components: str) -> Path:
    """A copy of deploy/ whose ``overlay`` also lists these components (deploy/components/NAME);
    returns the copy's deploy/ folder."""
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy)
    k = copy / "overlays" / overlay / "kustomization.yaml"
    data = yaml.safe_load(k.read_text())
    data["components"] = (data.get("components") or []) + [f"../../components/{c}" for c in components]
    k.write_text(yaml.safe_dump(data))
    return copy


RUNBOOKS = DEPLOY / "components" / "monitoring" / "runbooks.yaml"


@pytest.mark.parametrize("readme", [
    pytest.param(None, id="default-repository-path"),
    pytest.param("https://git.example.com/org/setpoint/blob/v0.1.0/deploy/README.md", id="set-to-a-git-host"),
])
def test_every_runbook_url_takes_its_base_from_runbooks_yaml(readme, tmp_path):
    """The monitoring component's replacement writes runbooks.yaml's readme before the '#' of every
    alert's runbook_url, and keeps the anchor; runbooks.yaml itself is not applied."""
    copy = with_components(tmp_path, "namespaced", "monitoring")
    runbooks = copy / RUNBOOKS.relative_to(DEPLOY)
    if readme is not None:
        data = yaml.safe_load(runbooks.read_text())
        data["data"]["readme"] = readme
        runbooks.write_text(yaml.safe_dump(data))
    base = yaml.safe_load(runbooks.read_text())["data"]["readme"]
    objects = build(copy / "overlays" / "namespaced")
    [rule] = [o for o in objects if o["kind"] == "PrometheusRule"]
    built_urls = {r["alert"]: r["annotations"]["runbook_url"] for g in rule["spec"]["groups"] for r in g["rules"]}
    source = documents(DEPLOY / "components" / "monitoring" / "prometheusrule.yaml")[0]
    anchors = {r["alert"]: r["annotations"]["runbook_url"].split("#", 1)[1]
               for g in source["spec"]["groups"] for r in g["rules"]}
    assert built_urls == {alert: f"{base}#{anchor}" for alert, anchor in anchors.items()}
    assert not [o for o in objects if o["metadata"]["name"] == "setpoint-runbooks"]


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_the_networkpolicy_admits_the_monitoring_namespace_to_the_container_port_only(overlay, tmp_path):
    """components/networkpolicy: ingress to the port `setpoint run --listen`s on (the container port
    "http") from the namespace --prometheus points at, nothing else; egress untouched (the API
    server, Prometheus). The overlays leave it out unless listed."""
    assert not [o for o in built(overlay) if o["kind"] == "NetworkPolicy"], "optional: not in the default build"
    objects = build(with_components(tmp_path, overlay, "networkpolicy") / "overlays" / overlay)
    [policy] = [o for o in objects if o["kind"] == "NetworkPolicy"]
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]
    [container] = pod["spec"]["containers"]
    options = run_options(deployment)
    [http] = [p for p in container["ports"] if p["name"] == "http"]
    assert http["containerPort"] == parse_listen(options["listen"])[1]
    assert {container["livenessProbe"]["httpGet"]["port"], container["readinessProbe"]["httpGet"]["port"]} == {"http"}
    assert policy["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    prometheus_namespace = urlsplit(options["prometheus"]).hostname.split(".")[1]  # prometheus.monitoring
    assert policy["spec"]["ingress"] == [{
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": prometheus_namespace}}}],
        "ports": [{"protocol": "TCP", "port": http["containerPort"]}]}]


# ------------------------------------------------------------------------------------ the rest
def test_kustomizations_list_existing_files():
    for k in DEPLOY.rglob("kustomization.yaml"):
        data = documents(k)[0]
        for name in data.get("resources", []) + data.get("components", []):
            assert (k.parent / name).exists(), f"{k}: {name}"
        for name in (f for g in data.get("configMapGenerator", []) for f in g["files"]):
            assert (k.parent / name).is_file(), f"{k}: {name}"


def test_bundled_policies_are_valid():
    check = check_policies([BASE / "policies"])
    assert check.ok, [str(e) for e in check.errors]


def test_deployment_runs_leader_election_with_probes():
    deployment = documents(BASE / "deployment.yaml")[0]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert deployment["spec"]["replicas"] == 2 and "--leader-elect" in container["args"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


@pytest.mark.parametrize("overlay", ["namespaced", "cluster-wide"])
def test_the_policies_configmap_keeps_its_name_so_edits_reload_in_place(overlay):
    """With kustomize's content hash in the name, every policy edit rolled the pods (the README's
    hot reload never ran) and an invalid edit crash-looped the new pod instead of being refused."""
    objects = built(overlay)
    [cm] = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("setpoint-policies")]
    assert cm["metadata"]["name"] == "setpoint-policies"
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert [v["configMap"]["name"] for v in volumes if "configMap" in v] == ["setpoint-policies"]
