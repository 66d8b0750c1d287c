"""The kustomize base is complete, its policies are valid, and its RBAC grants exactly what the
Kubernetes adapter calls (no less, so it works; checked by scanning the adapter's API calls)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from controller.policy import check_policies

REPO = Path(__file__).resolve().parents[1]
BASE = REPO / "deploy" / "base"
ADAPTER = REPO / "controller" / "adapters" / "kubernetes.py"
VERBS = {"list": "list", "read": "get", "patch": "patch", "replace": "update", "create": "create", "delete": "delete"}


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_kustomization_lists_existing_files():
    k = documents(BASE / "kustomization.yaml")[0]
    for name in k["resources"] + [f for g in k["configMapGenerator"] for f in g["files"]]:
        assert (BASE / name).is_file(), name


def test_bundled_policies_are_valid():
    check = check_policies([BASE / "policies"])
    assert check.ok, [str(e) for e in check.errors]


def _resource(snake: str) -> str:
    sub = ""
    if snake.endswith("_scale"):
        snake, sub = snake[: -len("_scale")], "/scale"
    return snake.replace("_", "") + "s" + sub


def api_calls() -> set[tuple[str, str]]:
    """(resource, verb) for every namespaced call the adapter makes."""
    calls = set()
    for verb, obj in re.findall(r"\b(list|read|patch|replace|create|delete)_namespaced_([a-z_]+)", ADAPTER.read_text()):
        calls.add((_resource(obj), VERBS[verb]))
    return calls


def granted() -> set[tuple[str, str]]:
    out = set()
    for doc in documents(BASE / "rbac.yaml"):
        for rule in doc.get("rules", []):
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    out.add((resource, verb))
    return out


def test_rbac_grants_every_call_the_adapter_makes():
    calls = api_calls()
    assert ("deployments/scale", "patch") in calls and ("leases", "update") in calls  # the scan works
    assert calls - granted() == set()


def test_deployment_runs_leader_election_with_probes():
    deployment = documents(BASE / "deployment.yaml")[0]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert deployment["spec"]["replicas"] == 2 and "--leader-elect" in container["args"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
