"""The simulated cluster seen as Kubernetes objects: what the simulated apiserver reads and writes.

:class:`KubeStore` wraps a :class:`~simulators.cluster.SimCluster` (the engine) and keeps what
the engine does not: per-workload metadata (labels, annotations, generation), the pod template
of every revision, resourceVersions, and the stored-only objects (Events, Leases, ConfigMaps).

Mapping to the engine:

- each engine service is a Deployment (or, if named in ``statefulsets``, a StatefulSet) with
  labels ``app: <name>`` and ``setpoint.io/autoscale: "true"`` plus the service's own labels;
- a StatefulSet's engine row is made one (``SimCluster.make_statefulset``: ordinal pods, ordered
  scaling and updates, see simulators/simcluster/statefulsets.py); its revisions are
  ControllerRevisions ``<name>-<hash>`` (the pods' ``controller-revision-hash``) whose ``data``
  is the ``$patch: replace`` template patch ``kubectl rollout undo`` applies, and its
  ``spec.updateStrategy.rollingUpdate.partition`` goes to the engine;
- ``spec.replicas`` writes call ``set_replicas``; a change of ``spec.template`` to the template
  of an older revision (``kubectl rollout undo``) calls ``rollback`` to it; any other template
  change (e.g. the ``kubectl.kubernetes.io/restartedAt`` annotation of ``kubectl rollout
  restart``) calls ``rollout`` (a new revision with the same behaviour);
- each engine revision is a ReplicaSet ``<name>-<hash>`` with the
  ``deployment.kubernetes.io/revision`` annotation and the ``pod-template-hash`` label;
- pods are the engine's pods; deleting one calls ``delete_pod`` (its ReplicaSet recreates it);
  a pod deleted or removed by the engine (scale-down, rollout) stays listed as terminating for its
  grace period (simulators/kubeapi/terminating.py; a DELETE's gracePeriodSeconds replaces the
  template's); a StatefulSet's counts in its status.replicas meanwhile (not in its ready, current
  nor updated replicas), and its replacement comes once it is gone (the engine is told each
  revision's grace: ``SimCluster.set_termination_grace``);
- old ReplicaSets beyond a Deployment's ``spec.revisionHistoryLimit`` are deleted as the
  Deployment controller's cleanup deletes them (see :meth:`KubeStore._sync_history`): the engine
  forgets their revisions, so they can no longer be rolled back to.

resourceVersions are lazy: an engine-backed object's content is fingerprinted whenever it is
served or written, and its resourceVersion is bumped (from one global counter, as etcd's
revision) when the fingerprint changed. Without watches a client cannot tell the difference
from bumping on every change, and no per-tick work is spent on objects nobody reads.

Times: the engine runs on simulation time; objects show wall-clock times through
:class:`SimTime` so that ages computed by a live controller (wall clock) are right. Events
expire ``event_ttl_s`` of that wall-clock time after their last write (kube-apiserver's
``--event-ttl``, see StoredObjects).

Every resourceVersion given is a change in the watch history (simulators/kubeapi/history.py),
with the object's state before it, which watches resumed from a resourceVersion replay; an
engine pod's deletion is found (and gets its resourceVersion) when its workload's pods are next
served, so a pod created and gone between two reads is never seen, as if compacted.

Over a long run nothing here grows with churn: Events expire (at most MAX_EVENTS kept; the
recorder of the cluster's own Events keeps at most 4096 keys per cache and source, see
event_recorder.py), the fingerprints of pods no longer
there are dropped when their workload's pods are next served, the resourceVersion marks and
the changes of the watch history are kept for ``watch_history_s`` only (the changes, at most
history.MAX_CHANGES of them), and a Deployment keeps at most ``revisionHistoryLimit`` old
ReplicaSets (their templates, fingerprints and engine revisions).
All public methods take the store's lock: call them from any thread.
"""

from __future__ import annotations

import copy
import json
import math
import secrets
import threading
import time
from bisect import bisect_right
from collections import OrderedDict, deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable

import numpy as np

from controller.model import PodStatus, TargetStatus
from simulators.kubeapi import objects as K
from simulators.kubeapi import validation as V
from simulators.kubeapi.cluster_events import ClusterEvents
from simulators.kubeapi.event_recorder import EventRecorder
from simulators.kubeapi.history import Change, ChangeHistory
from simulators.kubeapi.managed_fields import FieldWriter, ManagedFields, changed_paths
from simulators.kubeapi.namespaces import Namespaces
from simulators.kubeapi.terminating import DEFAULT_GRACE_S, Departure, Departures, TerminatingPod, grace_s
from simulators.cluster import SimCluster
from simulators.simcluster.slots import INITIAL_PODS_AGE_S
from simulators.workload import NAME_ALPHABET, Revision, ServiceConfig, rollout_budget

#: How long an Event is kept after its last write (s): kube-apiserver's ``--event-ttl`` default (1h).
EVENT_TTL_S = 3600.0
#: Most Events kept at once (those closest to expiry go first, as deletions): a guard of the
#: simulator's memory against a client creating Events faster than they expire (the real API
#: has no such cap; 10 000 within the TTL is ~3 a second for an hour).
MAX_EVENTS = 10_000
#: How long before the simulation's start its workloads were created (s): a day before their initial pods
WORKLOAD_AGE_S = INITIAL_PODS_AGE_S + 86400.0
CONFIG_MAP_MAX_BYTES = 1024 * 1024  # the apiserver's limit on a ConfigMap's data
#: Namespaces that exist besides the workloads' own: a real cluster's, and the controller's
#: (deploy/ installs it in ``setpoint``; ``setpoint-system`` is the other usual choice).
BUILT_IN_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease", "setpoint",
                                 "setpoint-system"})
#: The field manager of the workloads as the simulator creates them (their first managedFields entry).
CREATOR = "setpoint-sim"
#: The field manager of a write made without a request (a test or the simulator calling the store).
UNNAMED_WRITER = FieldWriter("unknown")
#: Old ReplicaSets a Deployment keeps when its spec.revisionHistoryLimit is not set (apps/v1's default).
REVISION_HISTORY_LIMIT = 10
#: Wall seconds of resourceVersions a watch can start from (as the watch cache's history
#: window): older ones get 410 Expired.
WATCH_HISTORY_S = 75.0


@dataclass
class SimTime:
    """Simulation time <-> wall clock: ``wall = wall_start_s + (sim - sim_start_s) / speed``, plus
    the wall seconds of the pauses skipped at or before ``sim`` (see :meth:`skip`). Times before a
    pause keep their wall times; times after it are that much later, in line with the wall clock.

    ``skips``: (simulation time a pause came before, wall seconds skipped up to it in all), in
    order; appended to while other threads read it (a list append is atomic; lookups bisect)."""

    sim_start_s: float
    wall_start_s: float
    speed: float = 1.0
    skips: list[tuple[float, float]] = field(default_factory=list)

    def skipped_s(self, sim_s: float) -> float:
        """The wall seconds skipped at or before simulation time ``sim_s``."""
        k = bisect_right(self.skips, sim_s, key=_first)
        return self.skips[k - 1][1] if k else 0.0

    def wall(self, sim_s: float) -> float:
        """The wall-clock time (epoch s) objects show for simulation time ``sim_s``."""
        return self.wall_start_s + (sim_s - self.sim_start_s) / self.speed + self.skipped_s(sim_s)

    def sim(self, wall_s: float) -> float:
        """The simulation time at wall time ``wall_s`` (during a skipped pause: where it resumed)."""
        skipped = 0.0
        for at_s, total_s in list(self.skips):
            resumed_wall_s = self.wall_start_s + (at_s - self.sim_start_s) / self.speed + total_s
            if wall_s < resumed_wall_s:
                if wall_s >= resumed_wall_s - (total_s - skipped):
                    return at_s
                break
            skipped = total_s
        return self.sim_start_s + (wall_s - self.wall_start_s - skipped) * self.speed

    def skip(self, at_s: float, wall_s: float) -> None:
        """Skip a pause of ``wall_s`` wall seconds before simulation time ``at_s`` (the next tick's):
        simulated time resumes there, ``wall_s`` later on the wall clock."""
        last_at_s, total_s = self.skips[-1] if self.skips else (-math.inf, 0.0)
        if at_s < last_at_s:
            raise ValueError(f"a pause is skipped at simulation time {at_s:g}, before the last one "
                             f"({last_at_s:g}): time only goes forward")
        if not wall_s > 0:
            raise ValueError(f"a skipped pause lasts > 0 wall seconds, got {wall_s:g}")
        if at_s == last_at_s:  # two skips before the same tick (a suspend and a lag): one entry
            self.skips[-1] = (at_s, total_s + wall_s)
        else:
            self.skips.append((at_s, total_s + wall_s))


def _first(pair: tuple[float, float]) -> float:
    return pair[0]


@dataclass
class Workload:
    """API-side state of one engine service."""

    index: int
    config: ServiceConfig
    kind: str  # Deployment | StatefulSet
    uid: str
    labels: dict[str, str]
    annotations: dict[str, str]
    selector: dict[str, str]
    generation: int = 1
    current_seq: int = 0
    paused: bool = False  # spec.paused (Deployments)
    partition: int = 0  # spec.updateStrategy.rollingUpdate.partition (StatefulSets)
    pod_management: str = "OrderedReady"  # spec.podManagementPolicy (StatefulSets)
    history_limit: int = REVISION_HISTORY_LIMIT  # spec.revisionHistoryLimit: old ReplicaSets kept
    templates: dict[int, dict] = field(default_factory=dict)
    managed: ManagedFields = field(default_factory=lambda: ManagedFields("apps/v1"))  # metadata.managedFields
    # the Progressing condition's state (current revision seq, paused, rolling) and since when (sim s):
    # its lastUpdateTime, set when its reason changes, as the Deployment controller's
    # SetDeploymentCondition does (a rollout's NewReplicaSetAvailable: the tick that completed it)
    progress: tuple = ()
    progress_at: float = float("nan")

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def namespace(self) -> str:
        return self.config.namespace

    @property
    def resource(self) -> str:
        return "deployments" if self.kind == "Deployment" else "statefulsets"


def base_template(cfg: ServiceConfig) -> dict:
    """The pod template of a service's first revision (terminationGracePeriodSeconds only when not
    the API's default of 30: a template written without it stays the same template)."""
    spec = {"containers": [{"name": cfg.name, "image": f"sim.setpoint.local/{cfg.name}:1",
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "resources": {"requests": {"cpu": K.millicores(cfg.cpu_request_cores),
                                                       "memory": memory_quantity(cfg)}}}],
            "restartPolicy": "Always"}
    if cfg.termination_grace_s != DEFAULT_GRACE_S:
        spec["terminationGracePeriodSeconds"] = int(cfg.termination_grace_s)
    return {"metadata": {"labels": {"app": cfg.name}}, "spec": spec}


def memory_quantity(cfg: ServiceConfig) -> str:
    """A pod's memory request as a quantity: whole MiB as ``512Mi``, else bytes (what the
    exposition's kube_pod_container_resource_requests and an HPA's memory utilization divide by)."""
    mib = float(cfg.memory_request_mib)
    return f"{int(mib)}Mi" if mib.is_integer() else str(int(round(cfg.memory_request_bytes)))


#: The fields of a StatefulSet's spec an update may change (apps validation's message).
_STS_MUTABLE = ("'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
                "'minReadySeconds'")


def statefulset_spec(w: "Workload") -> dict:
    """The StatefulSet-only fields of ``w``'s spec, as the apiserver defaults them (OrderedReady
    unless the scenario says Parallel, RollingUpdate with a partition, volume claims retained)."""
    return {"serviceName": w.name, "podManagementPolicy": w.pod_management,
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": w.partition}},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"}}


def revision_name(w: "Workload", rev: Revision) -> str:
    """The ControllerRevision name of a StatefulSet's revision (its pods' controller-revision-hash)."""
    return f"{w.name}-{rev.hash}"


def revision_data(template: dict) -> dict:
    """A ControllerRevision's ``data``: ``{"spec": {"template": {..., "$patch": "replace"}}}`` as
    Go's encoding/json writes it (keys sorted, the template's ``creationTimestamp: null`` and each
    container's ``resources``, which Go always writes). ``kubectl rollout undo`` compares these bytes
    with the same patch made from the StatefulSet to say "skipped rollback" when they are equal."""
    out = copy.deepcopy(template)
    out["metadata"] = {"creationTimestamp": None, **(out.get("metadata") or {})}
    for container in (out.get("spec") or {}).get("containers") or []:
        container.setdefault("resources", {})
    return _sorted_keys({"spec": {"template": {**out, "$patch": "replace"}}})


def _sorted_keys(value):
    """``value`` with every map's keys in sorted order (as Go marshals a map)."""
    if isinstance(value, dict):
        return {k: _sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(v) for v in value]
    return value


def _statefulset_update(kind: str, name: str, spec: dict, current: dict) -> int:
    """The partition an update of a StatefulSet's spec asks for, after the apiserver's checks:
    serviceName and podManagementPolicy cannot change (422 Forbidden, as there), the strategy
    is RollingUpdate (OnDelete is not simulated: 422 saying so), partition an int >= 0;
    minReadySeconds and ordinals.start are not simulated either (422 unless 0)."""
    for key, default in (("serviceName", ""), ("podManagementPolicy", "OrderedReady")):
        if spec.get(key, default) != current.get(key):
            raise K.field_error(kind, "apps", name, "spec", "FieldValueForbidden",
                                f"Forbidden: updates to statefulset spec for fields other than {_STS_MUTABLE} "
                                f"are forbidden")
    strategy = spec.get("updateStrategy") or {}
    if not isinstance(strategy, dict):
        raise K.invalid(kind, "apps", name, "spec.updateStrategy", strategy, "must be an object")
    kind_of = strategy.get("type", "RollingUpdate")
    if kind_of == "OnDelete":
        raise K.field_error(kind, "apps", name, "spec.updateStrategy.type", "FieldValueNotSupported",
                            'Unsupported value: "OnDelete": the simulated cluster serves "RollingUpdate" only')
    if kind_of != "RollingUpdate":
        raise K.field_error(kind, "apps", name, "spec.updateStrategy.type", "FieldValueNotSupported",
                            f'Unsupported value: "{kind_of}": supported values: "OnDelete", "RollingUpdate"')
    partition = (strategy.get("rollingUpdate") or {}).get("partition", 0)
    _check_replicas(partition, kind, "apps", name, "spec.updateStrategy.rollingUpdate.partition")
    for path, value in (("spec.minReadySeconds", spec.get("minReadySeconds", 0)),
                        ("spec.ordinals.start", (spec.get("ordinals") or {}).get("start", 0))):
        _check_replicas(value, kind, "apps", name, path)
        if value:  # taken and not honoured would be a lie: the pods would not show it
            raise K.field_error(kind, "apps", name, path, "FieldValueNotSupported",
                                f"Unsupported value: {value}: the simulated cluster serves 0 only")
    return partition


def _with_labels(template: dict, extra: dict) -> dict:
    out = copy.deepcopy(template)
    out.setdefault("metadata", {}).setdefault("labels", {}).update(extra)
    return out


class StoredObjects:
    """A table of objects that only live in the store (Events, Leases, ConfigMaps), with resourceVersion
    preconditions on update, as the apiserver's generic registry does.

    ``ttl_s`` (Events): an object is deleted ``ttl_s`` after its last write, as kube-apiserver's
    ``--event-ttl``: the generic registry's TTLFunc gives every create and every update of an Event
    a fresh etcd lease of the TTL, so an update restarts it; an update that changes nothing is
    not written (etcd3's GuaranteedUpdate returns before it takes a lease) and restarts nothing.
    The expiry is a deletion like any other (a new resourceVersion; watchers see DELETED), done
    by :meth:`expire`, which the store calls on every engine tick. ``limit``: most objects kept
    at once of each origin, the simulated cluster's own (written with ``owned``: its Events) and
    the clients'; beyond it the oldest written of that origin is deleted (the one closest to
    expiry), so a busy cluster's Events never push out the controller's."""

    def __init__(self, store: "KubeStore", resource: str, group: str, kind: str, api_version: str,
                 validate: Callable[[str, dict], None] | None = None, limit: int | None = None,
                 ttl_s: float | None = None):
        if ttl_s is not None and not ttl_s > 0:  # NaN too
            raise ValueError(f"the {kind} TTL must be above 0 s, got {ttl_s:g}")
        self.store, self.resource, self.group, self.kind, self.api_version = store, resource, group, kind, api_version
        self.validate = validate or (lambda name, obj: None)
        self.limit = limit
        self.ttl_s = ttl_s
        self.items: OrderedDict[tuple[str, str], dict] = OrderedDict()
        #: (namespace, name) -> when it expires (the store's wall_now clock), soonest first: every
        #: write moves its object to the end with now + ttl_s, and that clock never goes back
        self.expiry: OrderedDict[tuple[str, str], float] = OrderedDict()
        #: per origin (True: the simulated cluster's own), its keys in the order last written
        self.written: dict[bool, OrderedDict[tuple[str, str], None]] = {False: OrderedDict(), True: OrderedDict()}

    def _written(self, key: tuple[str, str], own: bool = False) -> None:
        """``key`` was just written (``own``: by the simulated cluster): its TTL (re)starts, and
        its origin's objects are kept within ``limit``."""
        if self.ttl_s is not None:
            self.expiry[key] = self.store.wall_now() + self.ttl_s
            self.expiry.move_to_end(key)
        order = self.written[own]
        order[key] = None
        order.move_to_end(key)
        self.written[not own].pop(key, None)
        if self.limit and len(order) > self.limit:
            self._remove(next(iter(order)))

    def _remove(self, key: tuple[str, str]) -> dict:
        """Delete ``key`` (it must exist): a new resourceVersion, as etcd's revision on a delete."""
        self.expiry.pop(key, None)
        self.written[False].pop(key, None)
        self.written[True].pop(key, None)
        obj = self.items.pop(key)
        # a deletion is a change, as in etcd: a new revision, and watchers resumed from before it see it
        self.store.changed(self.kind, *key, obj, deleted=True)
        return obj

    def expire(self, now: float) -> int:
        """Delete the objects whose TTL ran out at ``now`` (the store's wall_now); how many."""
        count = 0
        while self.expiry:
            key, at = next(iter(self.expiry.items()))
            if at > now:
                break
            self._remove(key)
            count += 1
        return count

    def create(self, namespace: str, body: dict, owned: bool = False) -> dict:
        """Store a new object (``body`` decoded already, see validation.check_shape): 404 when the
        namespace does not exist, 422 for invalid metadata, 409 when the name is taken. ``owned``:
        written by the simulated cluster itself (its Events, many a tick; kept within ``limit``
        apart from the clients'), which gives ``body`` away (keeps no reference into it, never
        changes what is returned), so it is stored and returned without copies."""
        obj = body if owned else copy.deepcopy(body)
        meta = obj.setdefault("metadata", None) or {}
        obj["metadata"] = meta
        if meta.get("namespace") not in (None, "", namespace):
            raise K.bad_request("the namespace of the provided object does not match the namespace sent on the request")
        if not self.store.namespace_exists(namespace):  # as the apiserver: no object in a namespace that is not there
            raise K.not_found("namespaces", "", namespace)
        name = meta.get("name") or (meta["generateName"] + "".join(secrets.choice(NAME_ALPHABET) for _ in range(5))
                                    if meta.get("generateName") else "")
        if not name:
            raise K.invalid(self.kind, self.group, "", "metadata.name", "", "name or generateName is required")
        V.validate_meta(self.kind, self.group, {**meta, "name": name})
        if (namespace, name) in self.items:
            raise K.already_exists(self.resource, self.group, name)
        self.validate(name, obj)
        obj["kind"], obj["apiVersion"] = self.kind, self.api_version
        meta.update(name=name, namespace=namespace, uid=K.uid_for(self.resource, namespace, name, secrets.token_hex(4)),
                    resourceVersion=str(self.store.changed(self.kind, namespace, name, None)),
                    creationTimestamp=K.rfc3339(self.store.wall_now()))
        self.items[(namespace, name)] = obj
        self._written((namespace, name), owned)
        return obj if owned else copy.deepcopy(obj)

    def get(self, namespace: str, name: str) -> dict:
        obj = self.items.get((namespace, name))
        if obj is None:
            raise K.not_found(self.resource, self.group, name)
        return copy.deepcopy(obj)

    def list(self, namespace: str | None, labels: Callable[[dict], bool], fields: Callable[[dict], bool]) -> list[dict]:
        return [copy.deepcopy(o) for (ns, _), o in self.items.items()
                if (namespace is None or ns == namespace) and labels(o["metadata"].get("labels") or {}) and fields(o)]

    def update(self, namespace: str, name: str, body: dict, owned: bool = False) -> dict:
        """Replace an object (resourceVersion and uid preconditions, validation); an update that
        changes nothing keeps its resourceVersion. ``owned``: as for :meth:`create`."""
        current = self.items.get((namespace, name))
        if current is None:
            raise K.not_found(self.resource, self.group, name)
        meta = body.get("metadata") or {}
        V.check_identity(meta, current, self.resource, self.group, name, namespace)
        V.validate_meta(self.kind, self.group, {**meta, "name": name})
        self.validate(name, body)
        obj = body if owned else copy.deepcopy(body)
        obj["kind"], obj["apiVersion"] = self.kind, self.api_version
        keep = {k: current["metadata"][k] for k in ("name", "namespace", "uid", "creationTimestamp")}
        obj["metadata"] = {**(obj.get("metadata") or {}), **keep}
        unchanged = _without_rv(obj) == _without_rv(current)  # a no-op update keeps the resourceVersion
        obj["metadata"]["resourceVersion"] = (current["metadata"]["resourceVersion"] if unchanged
                                              else str(self.store.changed(self.kind, namespace, name, current)))
        self.items[(namespace, name)] = obj
        if not unchanged:  # not written: its TTL goes on (as etcd3's GuaranteedUpdate skips the put)
            self._written((namespace, name), owned)
        return obj if owned else copy.deepcopy(obj)

    def delete(self, namespace: str, name: str) -> dict:
        """Remove an object (404 when there is none); the answer is a Success Status, as the
        apiserver's generic registry gives for these kinds (preconditions: the route checks them)."""
        if (namespace, name) not in self.items:
            raise K.not_found(self.resource, self.group, name)
        obj = self._remove((namespace, name))
        return K.deleted_status(self.resource, self.group, name, obj["metadata"].get("uid", ""))


class PodVersions:
    """The resourceVersions of one workload's pods for its Events, at one instant (a sync): the
    pods served before and gone since show their deletion's (found at once: what a watch sends
    with DELETED; the kubelet's Killing refers to the pod being deleted), one never served has
    none; a pod still there is stamped when asked (a scale's Events name a few of its pods: the
    others are not serialized)."""

    def __init__(self, store: "KubeStore", w: Workload):
        self.store, self.w = store, w
        self.deleted = store._forget_gone_pods(w, store.listed_pod_names(w))
        self.seen: dict[str, str | None] = {}

    def get(self, name: str) -> str | None:
        if name in self.deleted:
            return self.deleted[name]
        if name not in self.seen:
            self.seen[name] = self.store.pod_version(self.w, name)
        return self.seen[name]


def _without_rv(obj: dict) -> dict:
    out = K.compact(obj)
    out.get("metadata", {}).pop("resourceVersion", None)
    return out


def _validate_lease(name: str, obj: dict) -> None:
    duration = (obj.get("spec") or {}).get("leaseDurationSeconds")
    if duration is not None and (not isinstance(duration, int) or duration <= 0):
        raise K.invalid("Lease", "coordination.k8s.io", name, "spec.leaseDurationSeconds", duration, "must be greater than 0")


def _validate_hpa(name: str, obj: dict) -> None:
    """As the apiserver (pkg/apis/autoscaling/validation), for what a client of ours reads:
    spec.scaleTargetRef's kind and name, maxReplicas >= 1 (>= minReplicas when both are given;
    a missing one reads as Go's zero value), and each metric's target: a type among
    Utilization, Value and AverageValue, positive values, and for a Resource or ContainerResource
    metric an averageUtilization or an averageValue, not both. The first error found (the
    apiserver lists them all)."""
    problem = _hpa_problem(obj)
    if problem is not None:
        field, reason, cause = problem
        raise K.field_error("HorizontalPodAutoscaler", "autoscaling", name, field, reason, cause)


#: MetricTarget.type values the apiserver accepts, and the metric sources whose target it checks.
_TARGET_TYPES = ("Utilization", "Value", "AverageValue")
_METRIC_SOURCES = {"Resource": "resource", "ContainerResource": "containerResource", "Pods": "pods",
                   "Object": "object", "External": "external"}


def _hpa_problem(obj: dict) -> tuple[str, str, str] | None:
    """(field, cause reason, cause message) of an HPA's first invalid field, or None."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return "spec", "FieldValueRequired", "Required value"
    ref = spec.get("scaleTargetRef")
    for key in ("kind", "name"):
        value = ref.get(key) if isinstance(ref, dict) else None
        if not isinstance(value, str) or not value:
            return f"spec.scaleTargetRef.{key}", "FieldValueRequired", f"Required value: must specify a {key}"
    high, low = spec.get("maxReplicas", 0), spec.get("minReplicas", 1)
    if not isinstance(high, int) or isinstance(high, bool) or high < 1:
        return "spec.maxReplicas", "FieldValueInvalid", f"Invalid value: {_shown(high)}: must be greater than or equal to 1"
    if not isinstance(low, int) or isinstance(low, bool) or low > high:
        return "spec.minReplicas", "FieldValueInvalid", f"Invalid value: {_shown(low)}: must be less than or equal to maxReplicas"
    for i, metric in enumerate(spec.get("metrics") or []):
        problem = _metric_problem(metric, f"spec.metrics[{i}]")
        if problem is not None:
            return problem
    return None


def _metric_problem(metric, at: str) -> tuple[str, str, str] | None:
    """The first invalid field of one ``spec.metrics`` entry (its source's target), or None."""
    kind = metric.get("type") if isinstance(metric, dict) else None
    if kind not in _METRIC_SOURCES:
        if not kind:
            return f"{at}.type", "FieldValueRequired", "Required value: must specify a metric source type"
        return (f"{at}.type", "FieldValueNotSupported",
                f'Unsupported value: "{kind}": supported values: ' + ", ".join(f'"{k}"' for k in _METRIC_SOURCES))
    source_key = _METRIC_SOURCES[kind]
    source = metric.get(source_key)
    if not isinstance(source, dict):
        return (f"{at}.{source_key}", "FieldValueRequired",
                "Required value: must populate information for the given metric source")
    target, where = source.get("target") or {}, f"{at}.{source_key}.target"
    kind_of_target = target.get("type")
    if not kind_of_target:
        return f"{where}.type", "FieldValueRequired", "Required value: must specify a metric target type"
    if kind_of_target not in _TARGET_TYPES:
        return (f"{where}.type", "FieldValueInvalid",
                f"Invalid value: {_shown(kind_of_target)}: must be either Utilization, Value, or AverageValue")
    utilization = target.get("averageUtilization")
    if utilization is not None and (not isinstance(utilization, int) or utilization < 1):
        return f"{where}.averageUtilization", "FieldValueInvalid", f"Invalid value: {_shown(utilization)}: must be greater than 0"
    if kind in ("Resource", "ContainerResource"):
        if utilization is None and target.get("averageValue") is None:
            return (f"{where}.averageUtilization", "FieldValueRequired",
                    "Required value: must set either a target raw value or a target utilization")
        if utilization is not None and target.get("averageValue") is not None:
            return (f"{where}.averageValue", "FieldValueForbidden",
                    "Forbidden: may not set both a target raw value and a target utilization")
    return None


def _shown(value) -> str:
    """A value as the apiserver's field errors print it."""
    return f'"{value}"' if isinstance(value, str) else "null" if value is None else str(value)


def _validate_config_map(name: str, obj: dict) -> None:
    """As the apiserver: ``data`` maps keys to strings (``binaryData`` is not served)."""
    data = obj.get("data")
    if data is None:
        return
    if not isinstance(data, dict):
        raise K.invalid("ConfigMap", "", name, "data", data, "must be a map of strings")
    for key, value in data.items():
        if not isinstance(value, str):
            raise K.invalid("ConfigMap", "", name, f"data[{key}]", value, "must be a string")
    if sum(len(k) + len(v.encode()) for k, v in data.items()) > CONFIG_MAP_MAX_BYTES:
        raise K.invalid("ConfigMap", "", name, "data", "", f"Too long: must have at most {CONFIG_MAP_MAX_BYTES} bytes")


#: legacyValidateEvent's limits (kubernetes pkg/apis/core/validation/events.go), in bytes (Go's len)
EVENT_NOTE_LIMIT, EVENT_REASON_LIMIT, EVENT_INSTANCE_LIMIT, EVENT_ACTION_LIMIT = 1024, 128, 128, 128


def _validate_event(name: str, obj: dict) -> None:
    """involvedObject is required; the times must parse (tables compute ages from them); an Event
    with ``eventTime`` is held to the apiserver's rules for one (below) even on core/v1."""
    if not isinstance(obj.get("involvedObject"), dict):
        raise K.invalid("Event", "", name, "involvedObject", None, "Required value")
    for key in ("firstTimestamp", "lastTimestamp", "eventTime"):
        value = obj.get(key)
        if value is not None and (not isinstance(value, str) or not _parses(value)):
            raise K.invalid("Event", "", name, key, str(value)[:80], "must be an RFC 3339 time")
    if obj.get("eventTime"):
        _validate_new_style_event(name, obj)


def _validate_new_style_event(name: str, obj: dict) -> None:
    """As the apiserver's legacyValidateEvent for an Event whose eventTime is set (core/v1 and
    events.k8s.io alike): reportingComponent, reportingInstance, action and reason required, and
    at most 128 bytes each but the component; the message at most 1024 bytes (events.k8s.io's
    ``note``). Without eventTime the real core/v1 API has no limit on the message."""
    for key, limit in (("reportingComponent", None), ("reportingInstance", EVENT_INSTANCE_LIMIT),
                       ("action", EVENT_ACTION_LIMIT), ("reason", EVENT_REASON_LIMIT)):
        value = obj.get(key) or ""
        if not value:
            raise K.required("Event", "", name, key)
        if limit is not None and len(str(value).encode()) > limit:
            raise K.invalid("Event", "", name, key, "", f"can have at most {limit} characters")
    if len((obj.get("message") or "").encode()) > EVENT_NOTE_LIMIT:
        raise K.invalid("Event", "", name, "message", "", f"can have at most {EVENT_NOTE_LIMIT} characters")


def _parses(timestamp: str) -> bool:
    try:
        K.parse_rfc3339(timestamp)
        return True
    except (ValueError, OverflowError, OSError):
        return False


class KubeStore:
    """Kubernetes objects over a SimCluster. See the module docstring for the mapping."""

    def __init__(self, engine: SimCluster, clock: SimTime, statefulsets: frozenset[str] | set[str] = frozenset(),
                 event_ttl_s: float = EVENT_TTL_S, cluster_events: bool = True,
                 parallel: frozenset[str] | set[str] = frozenset()):
        self.engine = engine
        self.clock = clock
        self.lock = threading.RLock()
        self._rv_counter = 1
        self._rv_marks: deque[tuple[float, int]] = deque()  # (monotonic s, counter then), one a second
        self.history = ChangeHistory()  # what a watch from a resourceVersion replays
        self.monotonic = time.monotonic  # the clock of the watch history (tests set a fake one)
        self.watch_history_s = WATCH_HISTORY_S
        self._fingerprints: dict[tuple, tuple[str, int]] = {}
        #: per workload index, the names of the pods last served (their fingerprints are dropped once gone)
        self._served_pods: dict[int, set[str]] = {}
        self._departures = Departures(engine)  # the pods the engine removes, found after each tick and write
        #: per workload index, its pods listed while they terminate, by name
        self._terminating: dict[int, dict[str, TerminatingPod]] = {}
        self._epoch = 0  # bumped whenever the engine's state may have changed
        self._statuses: dict[int, tuple[int, TargetStatus]] = {}
        self.workloads: list[Workload] = []
        self.by_key: dict[tuple[str, str, str], Workload] = {}
        for i, cfg in enumerate(engine.config.services):
            kind = "StatefulSet" if cfg.name in statefulsets else "Deployment"
            labels = {"app": cfg.name, K.AUTOSCALE_LABEL: "true", **dict(cfg.labels)}
            w = Workload(i, cfg, kind, K.uid_for(kind, cfg.namespace, cfg.name), labels, {}, {"app": cfg.name})
            self._keep_template(w, 0, base_template(cfg))
            created = [("spec", k) for k in ("replicas", "selector", "template")] + [
                ("metadata", "labels", k) for k in labels]
            w.managed.record(FieldWriter(CREATOR), created, (), clock.wall(clock.sim_start_s))
            self.workloads.append(w)
            self.by_key[(kind, cfg.namespace, cfg.name)] = w
            if kind == "StatefulSet":  # ordinal pods, ordered scaling and updates (simcluster/statefulsets.py)
                w.pod_management = "Parallel" if cfg.name in parallel else "OrderedReady"
                engine.make_statefulset(i, parallel=cfg.name in parallel)
        # The TTL runs on wall_now(), the wall-clock time objects show (creationTimestamp, and the
        # clients' own first/lastTimestamp), not on simulated seconds: kube-apiserver's --event-ttl
        # is wall time, and the controller that reads Events (its hands-off and history windows)
        # measures their age on its wall clock. At --speed 4 an Event so lives an hour of wall time
        # (4 simulated hours), and `kubectl get events` never shows one older than the TTL. wall_now()
        # moves with the ticks (and skips pauses, staying in line with the wall clock), so an Event
        # expires at the first tick at or after its time; tests driving the world by hand move it.
        self.events = StoredObjects(self, "events", "", "Event", "v1", _validate_event, MAX_EVENTS,
                                    ttl_s=event_ttl_s)
        self.leases = StoredObjects(self, "leases", "coordination.k8s.io", "Lease", "coordination.k8s.io/v1",
                                    _validate_lease)
        self.configmaps = StoredObjects(self, "configmaps", "", "ConfigMap", "v1", _validate_config_map)
        # acted on by SimWorld's HPA controller (simulators/kubeapi/hpa_controller.py) unless it is off
        self.hpas = StoredObjects(self, "horizontalpodautoscalers", "autoscaling", "HorizontalPodAutoscaler",
                                  "autoscaling/v2", _validate_hpa)
        self.namespace_table = Namespaces(self)  # their labels, annotations, and those clients create
        self._fixed_namespaces = frozenset({w.namespace for w in self.workloads} | BUILT_IN_NAMESPACES)
        self._revision_numbers = np.array([1] * len(self.workloads))
        #: indexes of the Deployments with more old ReplicaSets than their limit, waiting for
        #: their rollout to complete to be cleaned up (see _sync_history)
        self._history_due: set[int] = set()
        self.sync_revisions()
        for w in self.workloads:  # the first revision completed when its initial pods became Ready
            w.progress, w.progress_at = (w.current_seq, w.paused, False), clock.sim_start_s - INITIAL_PODS_AGE_S
        #: client-go's recorder, shared by the cluster's own controllers, kubelets and HPA controller
        #: (one clock of Event names: two recorders named two Events alike at the same instant)
        self.event_recorder = EventRecorder(self.events, self.wall_now)
        #: the Events of the cluster's own controllers and kubelets (None: only clients' Events are stored)
        self.cluster_events = ClusterEvents(self) if cluster_events else None
        self._events_deferred: set[int] | None = None  # rows whose Events wait (cluster_events_after)

    # ------------------------------------------------------------------ bookkeeping
    def next_rv(self) -> int:
        now = self.monotonic()
        if not self._rv_marks or now - self._rv_marks[-1][0] >= 1.0:
            self._rv_marks.append((now, self._rv_counter))
            self._forget(now - self.watch_history_s)
        self._rv_counter += 1
        return self._rv_counter

    def changed(self, kind: str, namespace: str, name: str, before: dict | str | None, deleted: bool = False) -> int:
        """A new resourceVersion for a write to an object, recorded in the watch history with the
        object's state ``before`` it (None: a creation)."""
        rv = self.next_rv()
        self.history.record(Change(rv, kind, namespace, name, before, deleted))
        return rv

    def _forget(self, horizon: float) -> None:
        """Drop the marks older than ``horizon`` but the newest of them, and the changes up to
        it: the history window is all a watch can start from, so both stay within it however long
        the server runs, whether or not watches ask."""
        while len(self._rv_marks) > 1 and self._rv_marks[1][0] <= horizon:
            self._rv_marks.popleft()  # the newest mark before the horizon stays first
        first = self._rv_marks[0] if self._rv_marks else None
        if first is not None and first[0] <= horizon:
            self.history.forget_through(first[1])

    def oldest_watchable_rv(self) -> int:
        """The resourceVersion of ``watch_history_s`` ago, or of the last change forgotten to keep
        the history within its limit: a watch from an older one cannot be served (changes after
        it are forgotten) and gets 410 Expired; 0 while the server is younger and nothing was."""
        with self.lock:
            self._forget(self.monotonic() - self.watch_history_s)
            return self.history.oldest_rv

    def changes_since(self, kind: str, rv: int) -> list[Change] | None:
        """The recorded changes of ``kind`` objects after ``rv``; None when that is too old."""
        with self.lock:
            if rv < self.oldest_watchable_rv():
                return None
            return self.history.since(kind, rv)

    @property
    def resource_version(self) -> int:
        """The store-wide resourceVersion (lists carry it)."""
        return self._rv_counter

    def wall_now(self) -> float:
        return self.clock.wall(self.engine.now)

    def _record_cluster_events(self, rows: list[int] | None = None) -> None:
        """The Events of what the controllers and kubelets did since the last tick or write (of
        ``rows``, or of every workload): see simulators/kubeapi/cluster_events.py. Within
        :meth:`cluster_events_after`, a write's rows wait for its end."""
        if self.cluster_events is None:
            return
        if self._events_deferred is not None and rows is not None:
            self._events_deferred.update(rows)
            return
        self.cluster_events.sync(rows)

    @contextmanager
    def cluster_events_after(self):
        """Hold the Events of the writes made inside (the Deployment, ReplicaSet and kubelet ones)
        until its end, so that a writer's own Event comes first: the HPA controller records its
        SuccessfulRescale as the scale returns, the Deployment controller acts on it after. Hold
        the store's lock around it."""
        self._events_deferred = set()
        try:
            yield
        finally:
            rows, self._events_deferred = self._events_deferred, None
            if rows:
                self._record_cluster_events(sorted(rows))

    def touch(self) -> None:
        """The engine's state may have changed: cached statuses are stale."""
        self._epoch += 1

    def _stamp(self, key: tuple, obj: dict) -> dict:
        """Set ``metadata.resourceVersion``: the same as last time unless the content changed."""
        obj["metadata"].pop("resourceVersion", None)
        fingerprint = json.dumps(obj, sort_keys=True, separators=(",", ":"))
        seen = self._fingerprints.get(key)
        if seen is None or seen[0] != fingerprint:
            seen = (fingerprint, self.changed(key[0], key[1], key[2], seen and seen[0]))
            self._fingerprints[key] = seen
        obj["metadata"]["resourceVersion"] = str(seen[1])
        return obj

    def step(self, now: float, dt_s: float, offered_rps: np.ndarray):
        """Advance the engine one tick (see SimCluster.step) and pick up revisions it created."""
        with self.lock:
            signals = self.engine.step(now, dt_s, offered_rps)
            self.touch()
            self._expire_terminating()
            self._note_departures()
            self.events.expire(self.wall_now())
            changed = np.flatnonzero(signals.revision != self._revision_numbers)
            if changed.size:
                self.sync_revisions(changed.tolist())
            self._record_cluster_events()
            self._sync_histories()
            rolling = self.engine.rollout_in_progress
            for w in self.workloads:
                self._track_progress(w, bool(rolling[w.index]))
            return signals

    def _track_progress(self, w: Workload, rolling: bool) -> None:
        """Date ``w``'s Progressing condition now if its state changed since last seen (checked
        after every tick and when served: never earlier than the change)."""
        key = (w.current_seq, w.paused, rolling)
        if key != w.progress:
            w.progress, w.progress_at = key, self.engine.now

    def sync_revisions(self, rows: list[int] | None = None) -> None:
        """Give every engine revision a pod template; a revision the engine made on its own (a
        fault's bad release) gets the current template with a new image tag, and counts as a
        spec change (generation + 1), as a deploy by someone else would."""
        for w in (self.workloads if rows is None else [self.workloads[i] for i in rows]):
            for rev in self.engine.revisions(w.index):
                if rev.seq not in w.templates:
                    template = copy.deepcopy(w.templates[w.current_seq])
                    container = template["spec"]["containers"][0]
                    image = container.get("image") or f"sim.setpoint.local/{w.name}"
                    container["image"] = image.rsplit(":", 1)[0] + f":{rev.seq + 1}"
                    self._keep_template(w, rev.seq, template)
            current = self.engine.current_revision(w.index)
            if current.seq != w.current_seq:
                w.current_seq = current.seq
                w.generation += 1
                self._sync_history(w)
            self._revision_numbers[w.index] = current.number

    def _keep_template(self, w: Workload, seq: int, template: dict) -> None:
        """``template`` is the pod template of ``w``'s revision ``seq``; a StatefulSet's engine row
        learns its pods' grace period (they keep their ordinal while they terminate)."""
        w.templates[seq] = template
        if w.kind == "StatefulSet":
            self.engine.set_termination_grace(w.index, seq, grace_s(template))

    def _sync_histories(self) -> None:
        """The history cleanup of the Deployments waiting for it whose rollout may be done (after a tick)."""
        if not self._history_due:
            return
        rolling = self.engine.rollout_in_progress
        for i in sorted(self._history_due):
            if not rolling[i] or self.workloads[i].paused:
                self._sync_history(self.workloads[i])

    def _sync_history(self, w: Workload) -> None:
        """A Deployment's sync, for its revision history: as the Deployment controller runs
        cleanupDeployment when a sync finds the rollout complete (rolling.go) or the Deployment
        paused (sync.go), the old ReplicaSets beyond ``w.history_limit`` are trimmed now if so,
        else ``w`` waits in ``_history_due`` for a tick that completes its rollout. A
        StatefulSet's (truncateHistory): at every sync, its ControllerRevisions but the live ones
        (current, update, with pods); those still live beyond the limit wait the same way."""
        excess = len(self.engine.revisions(w.index)) - 1 - w.history_limit
        if w.history_limit == V.INT32_MAX or excess <= 0:  # MaxInt32: keep all
            self._history_due.discard(w.index)
            return
        st = self._status(w)
        if w.kind == "StatefulSet":  # truncateHistory runs at every sync; the live revisions stay
            self._trim_history(w, {p.revision for p in st.pods})
            if len(self.engine.revisions(w.index)) - 1 > w.history_limit:  # some still live: after the update
                self._history_due.add(w.index)
            else:
                self._history_due.discard(w.index)
            return
        complete = not st.rollout_in_progress and st.ready_replicas == st.spec_replicas == st.status_replicas
        if w.paused or complete:
            self._trim_history(w, {p.revision for p in st.pods})
            self._history_due.discard(w.index)  # paused: what is still scaled up waits for the next sync
        else:
            self._history_due.add(w.index)

    def _trim_history(self, w: Workload, with_pods: set[str]) -> None:
        """cleanupDeployment (a StatefulSet's truncateHistory): of the old revisions (not current;
        a StatefulSet's current and update revisions both), oldest number first, the first (count -
        ``w.history_limit``) are deleted unless they still have pods (``with_pods``: revision
        numbers); scaled-up ones count but stay, as there."""
        live = {w.current_seq} | ({self.engine.statefulset_current_seq(w.index)} if w.kind == "StatefulSet" else set())
        old = sorted((r for r in self.engine.revisions(w.index) if r.seq not in live),
                     key=lambda r: (r.number, r.created_s))
        gone = [r for r in old[:max(0, len(old) - w.history_limit)] if str(r.number) not in with_pods]
        if not gone:
            return
        self.engine.forget_revisions(w.index, [r.seq for r in gone])
        kind = "ReplicaSet" if w.kind == "Deployment" else "ControllerRevision"
        for r in gone:  # a DELETE of the ReplicaSet (ControllerRevision): watchers see it gone
            w.templates.pop(r.seq, None)
            name = f"{w.name}-{r.hash}"
            seen = self._fingerprints.pop((kind, w.namespace, name), None)
            if seen is None:  # never served: no watcher knows it, a new revision all the same
                self.next_rv()
            else:  # a deletion is a change, as in etcd: a watch resumed from before it replays it
                self.changed(kind, w.namespace, name, seen[0], deleted=True)
        self.touch()

    def _status(self, w: Workload) -> TargetStatus:
        cached = self._statuses.get(w.index)
        if cached is None or cached[0] != self._epoch:
            cached = (self._epoch, self.engine.statuses([self.engine.ref(w.index)])[0])
            self._statuses[w.index] = cached
        return cached[1]

    def _revisions(self, w: Workload) -> dict[str, Revision]:
        return {str(r.number): r for r in self.engine.revisions(w.index)}

    # ------------------------------------------------------------------ workloads
    def workload(self, kind: str, namespace: str, name: str) -> Workload:
        w = self.by_key.get((kind, namespace, name))
        if w is None:
            raise K.not_found("deployments" if kind == "Deployment" else "statefulsets", "apps", name)
        return w

    def namespaces(self) -> list[str]:
        """The workloads' namespaces, :data:`BUILT_IN_NAMESPACES` and those clients created (objects
        are only created in these)."""
        return self.namespace_table.names(self._fixed_namespaces)

    def namespace_exists(self, namespace: str) -> bool:
        """Whether ``namespace`` is among :meth:`namespaces` (without listing them: a create asks it)."""
        return namespace in self._fixed_namespaces or namespace in self.namespace_table.created

    def list_workloads(self, kind: str, namespace: str | None, labels: Callable[[dict], bool],
                       fields: Callable[[dict], bool] = lambda o: True) -> list[dict]:
        with self.lock:
            objs = [self.workload_object(w) for w in self.workloads
                    if w.kind == kind and (namespace is None or w.namespace == namespace) and labels(w.labels)]
            return [o for o in objs if fields(o)]

    def get_workload(self, kind: str, namespace: str, name: str) -> dict:
        with self.lock:
            return self.workload_object(self.workload(kind, namespace, name))

    def workload_object(self, w: Workload) -> dict:
        """The Deployment or StatefulSet of ``w`` as the apiserver serves it."""
        st = self._status(w)
        current = self.engine.current_revision(w.index)
        updated = sum(1 for p in st.pods if p.revision == str(current.number))
        spec = st.spec_replicas
        _, unavailable = rollout_budget(spec, w.config.max_surge, w.config.max_unavailable)
        annotations = dict(w.annotations)
        template = w.templates[w.current_seq]
        body_spec = {"replicas": spec, "selector": {"matchLabels": dict(w.selector)},
                     "template": copy.deepcopy(template), "revisionHistoryLimit": w.history_limit}
        # older than its initial pods (Ready INITIAL_PODS_AGE_S before the start): kubectl showed
        # a Deployment of 6s whose pods were 60m old
        created = K.rfc3339(self.clock.wall(self.clock.sim_start_s - WORKLOAD_AGE_S))
        if w.kind == "Deployment":
            annotations[K.REVISION_ANNOTATION] = str(current.number)
            body_spec.update(strategy={"type": "RollingUpdate", "rollingUpdate": {
                "maxSurge": w.config.max_surge, "maxUnavailable": w.config.max_unavailable}},
                progressDeadlineSeconds=600)
            if w.paused:
                body_spec["paused"] = True
            status = K.replica_status(observed_generation=w.generation, replicas=st.status_replicas, updated=updated,
                                      ready=st.ready_replicas, available=st.ready_replicas, spec=spec)
            self._track_progress(w, st.rollout_in_progress)
            status["conditions"] = K.deployment_conditions(
                st.ready_replicas >= spec - unavailable, st.rollout_in_progress, w.name, f"{w.name}-{current.hash}",
                K.rfc3339(self.clock.wall(current.created_s)), paused=w.paused,
                progressing_at=K.rfc3339(self.clock.wall(w.progress_at)))
            api_version, kind = "apps/v1", "Deployment"
        else:
            body_spec.update(statefulset_spec(w))
            status = self._statefulset_status(w, st)
            api_version, kind = "apps/v1", "StatefulSet"
        meta = K.object_meta(w.name, w.namespace, w.uid, 0, self.clock.sim_start_s, labels=w.labels,
                             annotations=annotations, generation=w.generation)
        meta["creationTimestamp"] = created
        meta["managedFields"] = w.managed.render()
        obj = {"kind": kind, "apiVersion": api_version, "metadata": meta, "spec": body_spec, "status": status}
        return self._stamp((w.kind, w.namespace, w.name), obj)

    def _statefulset_status(self, w: Workload, st: TargetStatus) -> dict:
        """A StatefulSet's status as its controller writes it: pods on the current revision
        (currentReplicas) and on the update revision (updatedReplicas), terminating ones in
        replicas only; currentRevision becomes updateRevision once every pod is on it and Ready
        and none terminates (simcluster/statefulsets.py)."""
        by_seq = {r.seq: r for r in self.engine.revisions(w.index)}
        update, current = self.engine.current_revision(w.index), by_seq[self.engine.statefulset_current_seq(w.index)]
        on = lambda rev: sum(1 for p in st.pods if p.revision == str(rev.number))  # noqa: E731
        # computeReplicaStatus: a terminating pod counts in replicas (created), not in the others
        leaving = self._leaving(w, {p.name for p in st.pods})
        status = {"observedGeneration": w.generation, "replicas": st.status_replicas + len(leaving),
                  "readyReplicas": st.ready_replicas, "availableReplicas": st.ready_replicas,
                  "currentReplicas": on(current), "updatedReplicas": on(update),
                  "currentRevision": revision_name(w, current), "updateRevision": revision_name(w, update),
                  "collisionCount": 0}
        # the apiserver omits zero counters (omitempty); replicas and availableReplicas have no omitempty
        return {k: v for k, v in status.items() if v or k in ("replicas", "availableReplicas", "observedGeneration",
                                                              "collisionCount")}

    def update_workload(self, kind: str, namespace: str, name: str, body: dict,
                        writer: FieldWriter = UNNAMED_WRITER) -> dict:
        """Replace a Deployment/StatefulSet (PUT, or the result of a PATCH): resourceVersion
        precondition, validation, then the engine calls the change implies; ``writer`` gets the
        fields it changed in managedFields (simulators/kubeapi/managed_fields.py)."""
        with self.lock:
            w = self.workload(kind, namespace, name)
            current = self.workload_object(w)
            meta = body.get("metadata") or {}
            V.check_identity(meta, current, w.resource, "apps", name, namespace)
            V.validate_meta(kind, "apps", {**meta, "name": name})
            spec = body.get("spec") or {}
            replicas = spec.get("replicas", 1)  # the apiserver defaults a missing spec.replicas to 1
            _check_replicas(replicas, kind, "apps", name, "spec.replicas")
            if spec.get("selector") != current["spec"]["selector"]:
                raise K.invalid(kind, "apps", name, "spec.selector", spec.get("selector"), "field is immutable")
            template = spec.get("template")
            V.validate_pod_template(kind, "apps", name, template)  # pods are made from it: it must be whole
            labels = ((template or {}).get("metadata") or {}).get("labels") or {}
            if not isinstance(template, dict) or any(labels.get(k) != v for k, v in w.selector.items()):
                raise K.invalid(kind, "apps", name, "spec.template.metadata.labels", labels,
                                "`selector` does not match template `labels`")
            paused = spec.get("paused")
            if paused is not None and not isinstance(paused, bool):
                raise K.invalid(kind, "apps", name, "spec.paused", paused, "must be a boolean")
            paused = bool(paused) and kind == "Deployment"
            partition = _statefulset_update(kind, name, spec, current["spec"]) if kind == "StatefulSet" else 0
            limit = spec.get("revisionHistoryLimit")
            limit = REVISION_HISTORY_LIMIT if limit is None else limit  # apps/v1 defaults a missing one
            _check_replicas(limit, kind, "apps", name, "spec.revisionHistoryLimit")  # a non-negative int32, as there
            w.labels = dict(meta.get("labels") or {})
            w.annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != K.REVISION_ANNOTATION}
            # as the Deployment controller honours spec.paused: a paused rollout makes no progress
            # (a template change made while paused waits for the resume); pausing applies before
            # the rest of the update, resuming after it
            pausing, resuming = paused and not w.paused, w.paused and not paused
            w.paused = paused
            if pausing:
                self.engine.set_paused(w.index, True)
            changed = self._set_replicas(w, replicas) or pausing or resuming or limit != w.history_limit
            w.history_limit = limit
            if partition != w.partition:
                w.partition = partition
                self.engine.set_partition(w.index, partition)
                self.touch()
                changed = True
            if K.compact(template) != K.compact(w.templates[w.current_seq]):
                self._change_template(w, template)
                changed = True
            if resuming:
                self.engine.set_paused(w.index, False)
                self.touch()
            if changed:
                w.generation += 1
            self._note_departures([w.index])  # before the history cleanup may forget their revisions
            self._sync_history(w)  # the Deployment controller syncs on every update
            body = {**body, "spec": {**spec, "replicas": replicas, "revisionHistoryLimit": limit}}
            w.managed.record(writer, *changed_paths(current, body), self.wall_now())
            self._record_cluster_events([w.index])
            return self.workload_object(w)

    def _set_replicas(self, w: Workload, replicas: int) -> bool:
        if int(self.engine.spec_replicas[w.index]) == replicas:
            return False
        self.engine.set_replicas(w.index, replicas)
        self.touch()
        return True

    def _change_template(self, w: Workload, template: dict) -> None:
        """Roll back to the revision that has this template, or roll out a new one."""
        wanted = K.compact(template)
        for rev in self.engine.revisions(w.index):
            if rev.seq != w.current_seq and K.compact(w.templates[rev.seq]) == wanted:
                # as the Deployment controller syncs on the change: the abandoned ReplicaSet's
                # unready pods go first, the stable one scales up within maxSurge at once
                number = self.engine.rollback(w.index, rev.number, fast=True)
                break
        else:
            number = self.engine.rollout(w.index)
            self._keep_template(w, self.engine.current_revision(w.index).seq, copy.deepcopy(template))
        w.current_seq = self.engine.current_revision(w.index).seq
        self._revision_numbers[w.index] = number
        self.touch()

    # ------------------------------------------------------------------ scale subresource
    def get_scale(self, kind: str, namespace: str, name: str) -> dict:
        with self.lock:
            w = self.workload(kind, namespace, name)
            obj = self.workload_object(w)
            return K.scale_object(obj["metadata"], obj["spec"]["replicas"], obj["status"].get("replicas", 0),
                                  K.selector_string(w.selector))

    def update_scale(self, kind: str, namespace: str, name: str, body: dict,
                     writer: FieldWriter = UNNAMED_WRITER) -> dict:
        """Set spec.replicas through the scale subresource; ``writer`` (its entry marked
        ``subresource: scale``) gets spec.replicas in managedFields when it changed."""
        with self.lock:
            w = self.workload(kind, namespace, name)
            current = self.workload_object(w)
            V.check_identity(body.get("metadata") or {}, current, w.resource, "apps", name, namespace)
            replicas = (body.get("spec") or {}).get("replicas", 0)  # Scale's spec.replicas is omitempty
            _check_replicas(replicas, "Scale", "autoscaling", name, "spec.replicas")
            if self._set_replicas(w, replicas):
                w.generation += 1
                self._note_departures([w.index])
                self._sync_history(w)  # a scale is a sync too (of a paused Deployment: with its cleanup)
                w.managed.record(FieldWriter(writer.manager, writer.operation, "scale"), [("spec", "replicas")], (),
                                 self.wall_now())
                self._record_cluster_events([w.index])
            return self.get_scale(kind, namespace, name)

    # ------------------------------------------------------------------ replicasets
    def list_replicasets(self, namespace: str | None, labels: Callable[[dict], bool],
                         fields: Callable[[dict], bool] = lambda o: True) -> list[dict]:
        with self.lock:
            out = []
            for w in self.workloads:
                if w.kind == "Deployment" and (namespace is None or w.namespace == namespace):
                    out += [rs for rs in self._replicasets(w) if labels(rs["metadata"]["labels"]) and fields(rs)]
            return out

    def get_replicaset(self, namespace: str, name: str) -> dict:
        with self.lock:
            for w in self.workloads:
                if w.kind == "Deployment" and w.namespace == namespace and name.startswith(w.name + "-"):
                    for rs in self._replicasets(w):
                        if rs["metadata"]["name"] == name:
                            return rs
            raise K.not_found("replicasets", "apps", name)

    def _replicasets(self, w: Workload) -> list[dict]:
        st = self._status(w)
        owner = K.owner_reference("apps/v1", "Deployment", w.name, w.uid)
        out = []
        for rev in self.engine.revisions(w.index):
            pods = [p for p in st.pods if p.revision == str(rev.number)]
            ready = sum(1 for p in pods if p.ready)
            current = rev.seq == w.current_seq
            spec = st.spec_replicas if current and not st.rollout_in_progress else len(pods)
            name = f"{w.name}-{rev.hash}"
            labels = {**w.selector, K.TEMPLATE_HASH_LABEL: rev.hash}
            meta = K.object_meta(name, w.namespace, K.uid_for("ReplicaSet", w.namespace, name), 0, self.clock.wall(rev.created_s),
                                 labels=labels, owner=owner, generation=1,
                                 annotations={K.REVISION_ANNOTATION: str(rev.number),
                                              "deployment.kubernetes.io/desired-replicas": str(st.spec_replicas)})
            status = {k: v for k, v in {"fullyLabeledReplicas": len(pods), "readyReplicas": ready,
                                        "availableReplicas": ready}.items() if v}
            status.update(replicas=len(pods), observedGeneration=1)  # replicas is not omitempty
            rs = {"kind": "ReplicaSet", "apiVersion": "apps/v1", "metadata": meta,
                  "spec": {"replicas": spec, "selector": {"matchLabels": labels},
                           "template": _with_labels(w.templates[rev.seq], {K.TEMPLATE_HASH_LABEL: rev.hash})},
                  "status": status}
            out.append(self._stamp(("ReplicaSet", w.namespace, name), rs))
        return out

    # ------------------------------------------------------------------ controllerrevisions
    def list_controllerrevisions(self, namespace: str | None, labels: Callable[[dict], bool],
                                 fields: Callable[[dict], bool] = lambda o: True) -> list[dict]:
        """The ControllerRevisions of the StatefulSets (``kubectl rollout history/undo`` list them
        by the StatefulSet's selector and keep those it controls)."""
        with self.lock:
            out = []
            for w in self.workloads:
                if w.kind == "StatefulSet" and (namespace is None or w.namespace == namespace):
                    out += [cr for cr in self._controllerrevisions(w) if labels(cr["metadata"]["labels"]) and fields(cr)]
            return out

    def get_controllerrevision(self, namespace: str, name: str) -> dict:
        with self.lock:
            for w in self.workloads:
                if w.kind == "StatefulSet" and w.namespace == namespace and name.startswith(w.name + "-"):
                    for cr in self._controllerrevisions(w):
                        if cr["metadata"]["name"] == name:
                            return cr
            raise K.not_found("controllerrevisions", "apps", name)

    def _controllerrevisions(self, w: Workload) -> list[dict]:
        """One ControllerRevision per revision of StatefulSet ``w``, as its controller writes
        them: named NAME-HASH (its pods' controller-revision-hash), labelled with the template's
        labels and ``controller.kubernetes.io/hash``, ``revision`` its number, ``data`` the patch
        that restores its template (``{"spec": {"template": {..., "$patch": "replace"}}}``, what
        ``kubectl rollout undo`` applies)."""
        owner = K.owner_reference("apps/v1", "StatefulSet", w.name, w.uid)
        out = []
        for rev in self.engine.revisions(w.index):
            name = revision_name(w, rev)
            template = copy.deepcopy(w.templates[rev.seq])
            labels = {**(template.get("metadata") or {}).get("labels", {}), K.REVISION_HASH_LABEL: rev.hash}
            meta = K.object_meta(name, w.namespace, K.uid_for("ControllerRevision", w.namespace, name), 0,
                                 self.clock.wall(rev.created_s), labels=labels, owner=owner)
            cr = {"kind": "ControllerRevision", "apiVersion": "apps/v1", "metadata": meta,
                  "data": revision_data(template), "revision": rev.number}
            out.append(self._stamp(("ControllerRevision", w.namespace, name), cr))
        return out

    # ------------------------------------------------------------------ pods
    def list_pods(self, namespace: str | None, labels: Callable[[dict], bool],
                  fields: Callable[[dict], bool] = lambda o: True) -> list[dict]:
        with self.lock:
            out = []
            for w in self.workloads:
                if namespace is None or w.namespace == namespace:
                    out += [p for p in self._pods(w) if labels(p["metadata"]["labels"]) and fields(p)]
            return out

    def get_pod(self, namespace: str, name: str) -> dict:
        with self.lock:
            return self._find_pod(namespace, name)[1]

    def delete_pod(self, namespace: str, name: str, grace_s: float | None = None) -> dict:
        """Delete a pod; its ReplicaSet (the engine) recreates it under a new name. Returns it as it
        terminates, listed so for its grace period: ``grace_s`` (a DeleteOptions'
        gracePeriodSeconds, see terminating.delete_grace_s), else its template's; 0, or a pod never
        scheduled (Pending), is gone at once. A pod already terminating is returned as it is,
        nothing done again, unless ``grace_s`` is shorter than its grace (see :meth:`_shorten`)."""
        with self.lock:
            w, pod = self._find_pod(namespace, name)
            leaving = self._terminating.get(w.index, {}).get(name)
            if leaving is not None:
                return self._shorten(w, name, leaving, grace_s) if grace_s is not None else pod
            if self.cluster_events is not None:
                self.cluster_events.deleted_by_client(w.index, name)
            self.engine.delete_pod(w.index, name, grace_s=grace_s)
            self.touch()
            self._note_departures([w.index], (name, grace_s))
            self._record_cluster_events([w.index])
            leaving = self._terminating.get(w.index, {}).get(name)
            if leaving is not None:  # only it is stamped: its replacement is found when the pods are next served
                return self._terminating_pod(w, name, leaving)
            return self._gone_now(pod)

    def _gone_now(self, pod: dict) -> dict:
        """``pod`` (as served) as a DELETE that removed it at once returns it."""
        pod["metadata"]["deletionTimestamp"] = K.rfc3339(self.wall_now())
        pod["metadata"]["deletionGracePeriodSeconds"] = 0
        return pod

    def _shorten(self, w: Workload, name: str, leaving: TerminatingPod, grace_s: float) -> dict:
        """A DELETE with ``grace_s`` of a pod terminating with ``leaving``: only a shorter grace
        is taken (the apiserver's BeforeDelete), its deletionTimestamp moved that much sooner; one
        that ends by now removes it now (``--grace-period=0 --force``). A StatefulSet's engine
        row frees its ordinal then too."""
        if grace_s >= leaving.grace_s:
            return self._terminating_pod(w, name, leaving)
        shorter = leaving.shortened(grace_s)
        if w.kind == "StatefulSet":
            self.engine.end_termination_at(w.index, int(name.rsplit("-", 1)[1]), shorter.gone_s)
            self.touch()
        elif leaving.lost_serial >= 0 and shorter.gone_s <= self.engine.now:  # force-deleted: replaced already
            self.engine.forget_lost_pod(w.index, leaving.lost_serial)
        if shorter.gone_s > self.engine.now:
            self._terminating[w.index][name] = shorter
            return self._terminating_pod(w, name, shorter)
        pod = self._terminating_pod(w, name, leaving)
        self._drop_terminating(w.index, [name])
        self._note_departures([w.index])
        return self._gone_now(pod)

    def _find_pod(self, namespace: str, name: str) -> tuple[Workload, dict]:
        for w in self.workloads:
            if w.namespace == namespace and name.startswith(w.name + "-"):
                for pod in self._pods(w):
                    if pod["metadata"]["name"] == name:
                        return w, pod
        raise K.not_found("pods", "", name)

    def _pods(self, w: Workload) -> list[dict]:
        """``w``'s pods as listed: the engine's, then those terminating (by name)."""
        st = self._status(w)
        revs = self._revisions(w)
        live = {p.name for p in st.pods}
        leaving = self._leaving(w, live)
        self._forget_gone_pods(w, live | set(leaving))
        return [self._pod(w, p, revs[p.revision]) for p in st.pods] + [
            self._terminating_pod(w, name, leaving[name]) for name in sorted(leaving)]

    def _terminating_pod(self, w: Workload, name: str, pod: TerminatingPod) -> dict:
        return self._stamp(("Pod", w.namespace, name), copy.deepcopy(pod.obj))

    def _leaving(self, w: Workload, live: set[str] | None = None) -> dict[str, TerminatingPod]:
        """``w``'s pods terminating now: those whose grace has passed are gone (dropped), and so is
        one whose name a new pod took (a StatefulSet's, recreated at once by the engine); ``live``:
        the names of its engine pods, if the caller has them already."""
        leaving = self._terminating.get(w.index)
        if not leaving:
            return {}
        if live is None:
            live = {p.name for p in self._status(w).pods}
        self._drop_terminating(w.index, [n for n, t in leaving.items() if n in live or self._gone(w, t)])
        return self._terminating.get(w.index, {})

    def _gone(self, w: Workload, pod: TerminatingPod) -> bool:
        """Whether a terminating pod of ``w`` is gone: its grace has passed, or, lost with its node,
        its node is back (the engine says; a force delete drops it itself)."""
        return pod.gone_s <= self.engine.now or (pod.lost_serial >= 0
                                                  and not self.engine.lost_to_node(w.index, pod.lost_serial))

    def _expire_terminating(self) -> None:
        """Drop the terminating pods whose grace has passed, listed or not (after a tick: nothing
        kept grows with churn; their deletion is found when their workload's pods are next served)."""
        for i, leaving in list(self._terminating.items()):
            w = self.workloads[i]
            self._drop_terminating(i, [n for n, t in leaving.items() if self._gone(w, t)])

    def _drop_terminating(self, i: int, names: list[str]) -> None:
        leaving = self._terminating[i]
        for name in names:
            del leaving[name]
        if not leaving:
            del self._terminating[i]

    def _note_departures(self, rows: list[int] | None = None,
                         deleted: tuple[str, float | None] = ("", None)) -> None:
        """List the pods the engine removed since the last look (of ``rows``, or all after a tick) as
        terminating, each for its grace period (its revision's template's; ``deleted``: (name, grace)
        of a pod a DELETE gave a grace, None: its template's); a pod never scheduled, or with a
        grace of 0, is gone at once."""
        for d in self._departures.since_last(rows):
            w = self.workloads[d.row]
            template = w.templates.get(d.revision_seq)
            name = self.engine.pod_name_of(d.row, d.serial, d.revision_seq)
            grace = deleted[1] if name == deleted[0] and deleted[1] is not None else grace_s(template)
            # a pod on a lost node: listed (evicted: terminating) until the node is back, whatever its grace
            lost = d.scheduled and self.engine.lost_to_node(d.row, d.serial)
            if d.scheduled and (grace > 0 or lost) and template is not None:
                self._terminating.setdefault(d.row, {})[name] = TerminatingPod(
                    math.inf if lost else self.engine.now + grace, grace, self.wall_now(),
                    self._departed_pod(w, d, name, template), d.serial if lost else -1)

    def _departed_pod(self, w: Workload, d: Departure, name: str, template: dict) -> Callable[[], dict]:
        """What makes the object of a pod gone from the engine now, as it was (its revision's
        ``template`` and number kept: the history cleanup may forget them before it is served)."""
        number = next((r.number for r in self.engine.revisions(w.index) if r.seq == d.revision_seq), "")
        p = PodStatus(name=name, phase="Running", ready=False, start_time=d.created_s, restarts=d.restarts,
                      revision=str(number), created_time=d.created_s)
        rev = SimpleNamespace(seq=d.revision_seq, hash=self.engine.revision_hash_of(w.index, d.revision_seq))
        return lambda: self._pod_object(w, p, rev, template)

    def _forget_gone_pods(self, w: Workload, names: set[str]) -> dict[str, str]:
        """A pod served before and not among ``names`` (deleted, scaled down, replaced) is never
        served again: its deletion is a change (found now, lazily, as resourceVersions are; before
        its replacements are stamped, as a ReplicaSet replaces a pod after it is gone), and its
        fingerprint is forgotten, else they pile up with every pod ever served (a name that comes
        back, a StatefulSet's, is a new object: a new resourceVersion, as the apiserver gives it).
        Returns name -> resourceVersion of the deletions found."""
        found = {}
        for gone in sorted(self._served_pods.get(w.index, set()) - names):
            seen = self._fingerprints.pop(("Pod", w.namespace, gone), None)
            if seen is not None:
                found[gone] = str(self.changed("Pod", w.namespace, gone, seen[0], deleted=True))
        self._served_pods[w.index] = names
        return found

    def _pod(self, w: Workload, p: PodStatus, rev: Revision) -> dict:
        return self._stamp(("Pod", w.namespace, p.name), self._pod_object(w, p, rev))

    def _pod_object(self, w: Workload, p: PodStatus, rev: Revision, template: dict | None = None) -> dict:
        """Engine pod ``p`` of revision ``rev`` (its ``template``, default the one kept) as a Pod
        object, without its resourceVersion."""
        template = w.templates[rev.seq] if template is None else template
        if w.kind == "Deployment":
            labels = {**(template["metadata"].get("labels") or {}), K.TEMPLATE_HASH_LABEL: rev.hash}
            owner = K.owner_reference("apps/v1", "ReplicaSet", f"{w.name}-{rev.hash}",
                                      K.uid_for("ReplicaSet", w.namespace, f"{w.name}-{rev.hash}"))
        else:  # as the StatefulSet controller labels its pods (the index label: Kubernetes 1.28+)
            ordinal = p.name.rsplit("-", 1)[1]
            labels = {**(template["metadata"].get("labels") or {}), "controller-revision-hash": revision_name(w, rev),
                      "statefulset.kubernetes.io/pod-name": p.name, "apps.kubernetes.io/pod-index": ordinal}
            owner = K.owner_reference("apps/v1", "StatefulSet", w.name, w.uid)
        meta = K.object_meta(p.name, w.namespace, K.pod_uid(w.namespace, p.name, p.start_time), 0,
                             self.clock.wall(p.start_time),
                             labels=labels, owner=owner,
                             annotations=template["metadata"].get("annotations"))
        spec = copy.deepcopy(template["spec"])
        if w.kind == "StatefulSet":
            spec.update(hostname=p.name, subdomain=w.name)
        running = p.phase == "Running"
        if running:
            spec["nodeName"] = K.node_name(p.name)
        return {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": spec,
                "status": self._pod_status(w, p, spec)}

    def _pod_status(self, w: Workload, p: PodStatus, spec: dict) -> dict:
        created = K.rfc3339(self.clock.wall(p.start_time))
        if p.phase != "Running":
            return {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "lastTransitionTime": created}]}
        ready_at = K.rfc3339(self.clock.wall(p.ready_transition_time)) if p.ready_transition_time is not None else created
        ready = "True" if p.ready else "False"
        container = spec["containers"][0]
        # in back-off after a crash: waiting; else running (Ready or not: a pod failing its readiness
        # probe runs), since its last start (the Ready change of a Ready one)
        state = ({"waiting": {"reason": p.waiting}} if p.waiting else
                 {"running": {"startedAt": ready_at if p.ready else created}})
        return {"phase": "Running", "startTime": created, "podIP": f"10.244.{sum(map(ord, p.name)) % 250}.{len(p.name)}",
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": created},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": created},
                    {"type": "ContainersReady", "status": ready, "lastTransitionTime": ready_at},
                    {"type": "Ready", "status": ready, "lastTransitionTime": ready_at}],
                "containerStatuses": [{"name": container["name"], "image": container.get("image", ""), "imageID": "",
                                       "ready": bool(p.ready), "started": True, "restartCount": p.restarts,
                                       "state": state}]}

    def pod_templates(self, w: Workload) -> list[tuple[str, dict]]:
        """(name, pod template of its revision) of each pod of ``w``, by name: what the HPA
        controller reads the pods' requests from."""
        with self.lock:
            revs = self._revisions(w)
            return sorted((p.name, w.templates[revs[p.revision].seq]) for p in self._status(w).pods)

    # ------------------------------------------------------------------ Events' references
    def versions_of(self, w: Workload, kind: str) -> "dict[str, str] | PodVersions":
        """name -> resourceVersion of ``w``'s objects of ``kind`` (its own kind, ReplicaSet or Pod) as
        served now (stamped, as a GET would: what changed since it was last served gets a new one),
        what an Event's involvedObject.resourceVersion shows (client-go's GetReference reads the
        object the controller holds). Pods: a :class:`PodVersions` (each stamped when asked)."""
        if kind == w.kind:
            objs = [self.workload_object(w)]
        elif kind == "ReplicaSet":
            objs = self._replicasets(w)
        elif kind == "Pod":
            return PodVersions(self, w)
        else:
            raise ValueError(f"no {kind} of a workload")
        return {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in objs}

    def pod_version(self, w: Workload, name: str) -> str | None:
        """The resourceVersion of ``w``'s pod ``name`` as served now (stamped), None when gone."""
        revs = self._revisions(w)
        for p in self._status(w).pods:
            if p.name == name:
                return self._pod(w, p, revs[p.revision])["metadata"]["resourceVersion"]
        leaving = self._leaving(w).get(name)
        if leaving is not None:
            return self._terminating_pod(w, name, leaving)["metadata"]["resourceVersion"]
        return None

    def terminating_pods(self) -> dict[tuple[int, str], TerminatingPod]:
        """(workload row, name) -> the pod, of the pods listed terminating now (their grace not passed)."""
        with self.lock:
            now = self.engine.now
            return {(i, name): t for i, leaving in self._terminating.items() for name, t in leaving.items()
                    if t.gone_s > now}

    def listed_pod_names(self, w: Workload) -> set[str]:
        """The names of ``w``'s pods listed now: the engine's and those terminating."""
        live = {p.name for p in self._status(w).pods}
        return live | set(self._leaving(w, live))

    # ------------------------------------------------------------------ reads for the metrics endpoint
    def pod_statuses(self) -> list[tuple[Workload, TargetStatus]]:
        with self.lock:
            return [(w, self._status(w)) for w in self.workloads]


def _check_replicas(value, kind: str, group: str, name: str, path: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise K.invalid(kind, group, name, path, value, "must be an integer")
    if value < 0:
        raise K.invalid(kind, group, name, path, value, "must be greater than or equal to 0")
    if value > V.INT32_MAX:  # spec.replicas is an int32
        raise K.invalid(kind, group, name, path, value, f"must be less than or equal to {V.INT32_MAX}")
