"""Namespaces of the simulated apiserver: read, labelled, annotated and created as the real ones.

The cluster's namespaces are those of the scenario's workloads and the built-in ones
(:data:`simulators.kubeapi.store.BUILT_IN_NAMESPACES`). A manifest file that starts with its
``Namespace`` (as most do: ``kubectl apply -f hpas.yaml`` with the namespace and its HPAs) must
apply: kubectl GETs the namespace, then PATCHes its ``last-applied-configuration`` annotation
onto it, or POSTs it when it is absent. So labels and annotations are kept per namespace, and a
namespace a client creates exists from then on (empty: no workload runs in it, but ConfigMaps,
Leases, Events and HPAs may be created there). Deleting a namespace is not served (405).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Callable

from simulators.kubeapi import objects as K
from simulators.kubeapi import validation as V

if TYPE_CHECKING:
    from simulators.kubeapi.store import KubeStore

#: The label the apiserver sets on every namespace, always equal to its name.
NAME_LABEL = "kubernetes.io/metadata.name"


class Namespaces:
    """The namespaces' own metadata (labels, annotations, resourceVersion) beside the store."""

    def __init__(self, store: "KubeStore"):
        self.store = store
        self.meta: dict[str, dict] = {}  # name -> {"labels", "annotations", "resourceVersion"} once written
        self.created: set[str] = set()  # names a client created (the others come from the scenario)

    def names(self, existing: set[str]) -> list[str]:
        """``existing`` (the scenario's and built-in namespaces) and those clients created, sorted."""
        return sorted(existing | self.created)

    def object(self, name: str) -> dict:
        """The Namespace object ``name`` (which must exist)."""
        meta = self.meta.get(name, {})
        labels = {**meta.get("labels", {}), NAME_LABEL: name}
        out = {"kind": "Namespace", "apiVersion": "v1",
               "metadata": {"name": name, "uid": K.uid_for("Namespace", name),
                            "resourceVersion": meta.get("resourceVersion", "1"),
                            "creationTimestamp": K.rfc3339(self.store.clock.wall(self.store.clock.sim_start_s)),
                            "labels": labels},
               "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
        if meta.get("annotations"):
            out["metadata"]["annotations"] = dict(meta["annotations"])
        return out

    def get(self, _namespace: str | None, name: str) -> dict:
        with self.store.lock:
            if name not in self.store.namespaces():
                raise K.not_found("namespaces", "", name)
            return self.object(name)

    def list(self, _namespace: str | None, labels: Callable[[dict], bool],
             fields: Callable[[dict], bool]) -> list[dict]:
        with self.store.lock:
            objs = [self.object(n) for n in self.store.namespaces()]
        return [o for o in objs if labels(o["metadata"]["labels"]) and fields(o)]

    def create(self, _namespace: str | None, body: dict) -> dict:
        """A new, empty namespace (409 when it exists, 422 for an invalid name or metadata)."""
        meta = body.get("metadata") or {}
        name = meta.get("name") or ""
        V.validate_meta("Namespace", "", {**meta, "name": name})
        problem = None if V.DNS_LABEL_NAME.fullmatch(name) else V.DNS_LABEL_MESSAGE
        if problem:
            raise K.invalid("Namespace", "", name, "metadata.name", name, problem)
        with self.store.lock:
            if name in self.store.namespaces():
                raise K.already_exists("namespaces", "", name)
            self.created.add(name)
            self._write(name, meta, None)
            return self.object(name)

    def update(self, _namespace: str | None, name: str, body: dict) -> dict:
        """Labels and annotations as ``body`` has them (the name label stays); the rest is the server's."""
        meta = body.get("metadata") or {}
        with self.store.lock:
            current = self.get(None, name)
            V.check_identity(meta, current, "namespaces", "", name, None)
            V.validate_meta("Namespace", "", {**meta, "name": name})
            if _kept(meta, name) != _kept(current["metadata"], name):
                self._write(name, meta, current)
            return self.object(name)

    def _write(self, name: str, meta: dict, before: dict | None) -> None:
        """Store ``meta``'s labels and annotations: a change from ``before`` (None: a creation)."""
        kept = _kept(meta, name)
        self.meta[name] = {**kept, "resourceVersion": str(self.store.changed("Namespace", "", name, before))}


def _kept(meta: dict, name: str) -> dict:
    """The labels (without the name label) and annotations of ``meta``, as stored."""
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != NAME_LABEL}
    return {"labels": copy.deepcopy(labels), "annotations": copy.deepcopy(dict(meta.get("annotations") or {}))}
