"""Cheap reads of `setpoint sim serve`'s Kubernetes API for the end-to-end tests' waits: the
official Python client, made once per kubeconfig (a world), answering the JSON kubectl's
``get ... -o json`` prints. A poll through the real kubectl costs ~90 ms of CPU (a Go binary, a
fresh HOME, no discovery cache) and a new client ~16 ms; a reused client ~1 ms. The tests keep
the real kubectl for what they say an operator sees, once, after a wait.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

NAMESPACE = "default"
#: Seconds: a read's bound.
READ_TIMEOUT_S = 5
#: A read's keywords: the response undecoded (its JSON as the server sent it), bounded.
_RAW = {"_preload_content": False, "_request_timeout": READ_TIMEOUT_S}


@functools.lru_cache(maxsize=4)
def _api_client(kubeconfig: str, written_ns: int):
    """The client of one kubeconfig as written (``written_ns``, its mtime: a rewritten file is a new server)."""
    from kubernetes import config

    return config.new_client_from_config(config_file=kubeconfig)


def api_client(kubeconfig: Path):
    """The kubernetes ApiClient of ``kubeconfig``, made on its first use and reused."""
    return _api_client(str(kubeconfig), Path(kubeconfig).stat().st_mtime_ns)


def _readers(kubeconfig: Path) -> dict:
    from kubernetes import client

    core, apps = client.CoreV1Api(api_client(kubeconfig)), client.AppsV1Api(api_client(kubeconfig))
    return {"pods": lambda label=None: core.list_namespaced_pod(NAMESPACE, label_selector=label, **_RAW),
            "pod": lambda name: core.read_namespaced_pod(name, NAMESPACE, **_RAW),
            "sts": lambda name: apps.read_namespaced_stateful_set(name, NAMESPACE, **_RAW),
            "events": lambda: core.list_namespaced_event(NAMESPACE, **_RAW),
            "configmaps": lambda: core.list_config_map_for_all_namespaces(**_RAW)}


def kube_get(kubeconfig: Path, kind: str, *args: str) -> dict:
    """As ``kubectl get KIND [NAME|LABEL] -o json`` in namespace default: "pods" [label selector],
    "pod" NAME, "sts" NAME, "events", "configmaps" (all namespaces: ``-A``); the API's JSON."""
    return json.loads(_readers(kubeconfig)[kind](*args).data)


def spec_replicas(kubeconfig: Path, name: str = "web") -> int:
    """The Deployment ``name``'s spec.replicas (its scale subresource)."""
    from kubernetes import client

    apps = client.AppsV1Api(api_client(kubeconfig))
    return apps.read_namespaced_deployment_scale(name, NAMESPACE, _request_timeout=READ_TIMEOUT_S).spec.replicas


def reasons(events: dict) -> set[str]:
    """The reasons of an Event list's JSON."""
    return {e.get("reason") for e in events["items"]}


def names(items: dict) -> set[str]:
    """The names of a list's JSON."""
    return {i["metadata"]["name"] for i in items["items"]}
