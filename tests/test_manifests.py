"""Every overlay with every combination of the optional components builds with `kubectl
kustomize`, and every object it yields is valid: Kubernetes kinds against the Kubernetes 1.30
OpenAPI schemas bundled with kubernetes-validate (strict: unknown fields are errors; offline),
the Prometheus Operator kinds against the minimal schemas below. Then the base's promises: a
PodDisruptionBudget that keeps one of the two replicas, spread across nodes and zones, a
hardened pod, the image the Dockerfile builds, and a records volume sized for the rotation bound.
"""

from __future__ import annotations

import functools
import itertools
import re
import shutil
import socket
from pathlib import Path

import pytest
import yaml

from tests.test_deploy import DEPLOY, build, documents, with_components

# The tests share the cached kustomize builds (built_variant): on one pytest-xdist worker each is computed once.
pytestmark = pytest.mark.xdist_group("tests/test_manifests.py")

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install -e '.[test]' (kubernetes-validate)")
jsonschema = pytest.importorskip("jsonschema", reason="pip install -e '.[test]' (jsonschema)")

REPO = DEPLOY.parent
KUBERNETES_VERSION = "1.30.0"
OVERLAYS = ("namespaced", "cluster-wide")
MONITORING = {"none": [], "servicemonitor": ["monitoring"], "podmonitor": ["monitoring", "podmonitor"]}

# ------------------------------------------------------------------- Prometheus Operator kinds
# The CRDs are not bundled with kubernetes-validate. These schemas cover the part of
# monitoring.coreos.com/v1 the manifests use, strictly (an unknown or misspelt field fails).
_DURATION = {"type": "string", "pattern": r"^(\d+(ms|s|m|h|d|w|y))+$"}
_METADATA = {"type": "object", "required": ["name", "namespace"],
             "properties": {"name": {"type": "string"}, "namespace": {"type": "string"},
                            "labels": {"type": "object", "additionalProperties": {"type": "string"}}}}
_SELECTOR = {"type": "object", "additionalProperties": False,
             "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}}}
_ENDPOINT = {"type": "object", "additionalProperties": False, "required": ["port"],
             "properties": {"port": {"type": "string"}, "path": {"type": "string"}, "interval": _DURATION,
                            "scrapeTimeout": _DURATION}}


def _crd(spec: dict) -> dict:
    return {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
            "properties": {"apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"type": "string"},
                           "metadata": _METADATA, "spec": spec}}


CRD_SCHEMAS = {
    "ServiceMonitor": _crd({"type": "object", "additionalProperties": False, "required": ["selector", "endpoints"],
                            "properties": {"selector": _SELECTOR, "endpoints": {"type": "array", "minItems": 1,
                                                                                "items": _ENDPOINT}}}),
    "PodMonitor": _crd({"type": "object", "additionalProperties": False, "required": ["selector", "podMetricsEndpoints"],
                        "properties": {"selector": _SELECTOR, "podMetricsEndpoints": {"type": "array", "minItems": 1,
                                                                                      "items": _ENDPOINT}}}),
    "PrometheusRule": _crd({"type": "object", "additionalProperties": False, "required": ["groups"], "properties": {
        "groups": {"type": "array", "minItems": 1, "items": {
            "type": "object", "additionalProperties": False, "required": ["name", "rules"],
            "properties": {"name": {"type": "string"}, "interval": _DURATION, "rules": {"type": "array", "items": {
                "type": "object", "additionalProperties": False, "required": ["expr"],
                "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                "properties": {"alert": {"type": "string"}, "record": {"type": "string"}, "expr": {"type": "string"},
                               "for": _DURATION,
                               "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                               "annotations": {"type": "object", "additionalProperties": {"type": "string"}}}}}}}}}}),
}


def problems(obj: dict) -> list[str]:
    """Schema violations of one object, as `Kind/name: path: message` lines."""
    where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    if obj.get("kind") in CRD_SCHEMAS:
        validator = jsonschema.Draft202012Validator(CRD_SCHEMAS[obj["kind"]])
        return [f"{where}: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:  # jsonschema's error: message and path, not the schema
        return [f"{where}: {'/'.join(map(str, exc.absolute_path))}: {exc.message}"]
    return []


# ------------------------------------------------------------------- the variants
def variant_dir(tmp: Path, overlay: str, healing: bool, monitoring: str) -> Path:
    """A copy of deploy/ whose overlay has exactly these components."""
    copy = tmp / "deploy"
    shutil.copytree(DEPLOY, copy)
    for k in copy.rglob("kustomization.yaml"):
        data = yaml.safe_load(k.read_text())
        if not healing and "components" in data:
            data["components"] = [c for c in data["components"] if "/healing/" not in c]
        if k.parent == copy / "overlays" / overlay:
            data["components"] = data.get("components") or []
            data["components"] += [f"../../components/{c}" for c in MONITORING[monitoring]]
        if data.get("components") == []:
            del data["components"]
        k.write_text(yaml.safe_dump(data))
    return copy / "overlays" / overlay


VARIANTS = [pytest.param(o, h, m, id=f"{o}-{'healing' if h else 'no-healing'}-{m}")
            for o, h, m in itertools.product(OVERLAYS, (True, False), MONITORING)]


@functools.lru_cache(maxsize=None)
def built_variant(overlay: str, healing: bool, monitoring: str, tmp: str) -> tuple[dict, ...]:
    return tuple(build(variant_dir(Path(tmp), overlay, healing, monitoring)))


@pytest.fixture
def no_network(monkeypatch):
    """The schemas must come from the package: any connection attempt fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access during validation: {args}")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize(("overlay", "healing", "monitoring"), VARIANTS)
def test_every_variant_builds_and_every_object_is_valid(overlay, healing, monitoring, tmp_path, no_network):
    objects = built_variant(overlay, healing, monitoring, str(tmp_path))
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "PodDisruptionBudget", "Service", "ConfigMap"} <= kinds
    assert ("ServiceMonitor" in kinds) == (monitoring == "servicemonitor")
    assert ("PodMonitor" in kinds) == (monitoring == "podmonitor")
    assert ("PrometheusRule" in kinds) == (monitoring != "none")
    dashboards = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"].get("labels", {}).get("grafana_dashboard")]
    assert len(dashboards) == (monitoring != "none")
    assert [p for o in objects for p in problems(o)] == []
    namespaced = [o for o in objects if o["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding")]
    assert all(o["metadata"].get("namespace") for o in namespaced), "every namespaced object has its namespace"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_networkpolicy_component_builds_valid_objects(overlay, tmp_path, no_network):
    objects = build(with_components(tmp_path, overlay, "networkpolicy") / "overlays" / overlay)
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "NetworkPolicy"] == ["setpoint"]
    assert [p for o in objects for p in problems(o)] == []


@pytest.mark.parametrize(("obj", "expected"), [
    pytest.param({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "x"},
                  "spec": {"minAvailable": 1, "selectr": {}}}, "'selectr' was unexpected", id="k8s-unknown-field"),
    pytest.param({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                  "spec": {"replicas": "two", "selector": {}, "template": {}}}, "is not of type", id="k8s-wrong-type"),
    pytest.param({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
                  "metadata": {"name": "x", "namespace": "y"},
                  "spec": {"selector": {}, "endpoints": [{"port": "http", "intervl": "30s"}]}},
                 "'intervl' was unexpected", id="crd-unknown-field"),
    pytest.param({"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
                  "metadata": {"name": "x", "namespace": "y"},
                  "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up", "for": "5 minutes"}]}]}},
                 "does not match", id="crd-bad-duration"),
])
def test_the_validation_rejects_bad_objects(obj, expected, no_network):
    found = problems(obj)
    assert found and expected in found[0], found


# ------------------------------------------------------------------- the base's promises
def _deployment() -> dict:
    return documents(DEPLOY / "base" / "deployment.yaml")[0]


def _quantity_bytes(q: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([KMGT]i)?", q).groups()
    return int(number) * 1024 ** (" KMGT".index(unit[0]) if unit else 0)


def _arg(args: list[str], name: str) -> str:
    [value] = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    return value


def test_the_records_volume_holds_the_rotation_bound():
    spec = _deployment()["spec"]["template"]["spec"]
    args = spec["containers"][0]["args"]
    bound = int(_arg(args, "records-max-bytes")) * (1 + int(_arg(args, "records-keep")))
    records_dir = str(Path(_arg(args, "records")).parent)
    [mount] = [m for m in spec["containers"][0]["volumeMounts"] if m["mountPath"] == records_dir]
    [volume] = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert 0 < bound < _quantity_bytes(volume["emptyDir"]["sizeLimit"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pdb_keeps_one_of_the_replicas_and_selects_the_pods(overlay, tmp_path):
    objects = built_variant(overlay, True, "none", str(tmp_path))
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    [pdb] = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert 1 <= pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    spec = deployment["spec"]["template"]["spec"]
    spread = {c["topologyKey"]: c for c in spec["topologySpreadConstraints"]}
    assert set(spread) == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    for c in spread.values():
        assert c["whenUnsatisfiable"] == "ScheduleAnyway" and c["labelSelector"]["matchLabels"].items() <= pod_labels.items()
    [term] = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"].items() <= pod_labels.items()


def test_the_pod_is_hardened_and_bounded():
    spec = _deployment()["spec"]["template"]["spec"]
    [container] = spec["containers"]
    assert spec["securityContext"]["runAsNonRoot"] and spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == ["ALL"]
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert all("sizeLimit" in v["emptyDir"] for v in spec["volumes"] if "emptyDir" in v)


def test_the_image_is_the_one_the_dockerfile_builds_pinned_to_the_package_version(tmp_path):
    import tomllib

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    [image] = [c["image"] for o in built_variant("namespaced", True, "none", str(tmp_path)) if o["kind"] == "Deployment"
               for c in o["spec"]["template"]["spec"]["containers"]]
    assert image == f"setpoint:{version}"
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    [uid] = re.findall(r"^USER (\d+)", dockerfile, re.M)
    assert _deployment()["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(uid)
