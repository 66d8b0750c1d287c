"""The seams between the decision core and the outside world, as Protocols.

Implementations: controller/adapters (Prometheus, Kubernetes), simulators (simulated
cluster and metrics), and wrappers (dry-run, recording). Arrays are aligned with the list
of targets passed in: row i is targets[i].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, NamedTuple, Protocol, Sequence, runtime_checkable

import numpy as np

from controller.core.scaling.hpa_propose import PodSamples, PodSlots
from controller.model import Action, TargetRef, TargetSelector, TargetStatus, direct_init


class Clock(Protocol):
    def now(self) -> float:
        """UTC epoch seconds. Read once per cycle and passed down."""


@direct_init
@dataclass(frozen=True)
class Samples:
    """One metric for N targets at one instant.

    values: (N,) float; present: (N,) bool, exactly one series matched the target;
    age_s: (N,) seconds between the sample and the query time; conflict: (N,) bool, several
    series matched the target (an error for that target only, reported, never averaged).
    """

    values: np.ndarray
    present: np.ndarray
    age_s: np.ndarray
    conflict: np.ndarray

    @classmethod
    def missing(cls, n: int) -> "Samples":
        return cls(np.full(n, np.nan), np.zeros(n, bool), np.zeros(n), np.zeros(n, bool))


class MetricsSource(Protocol):
    def query(self, expr: str, targets: Sequence[TargetRef], at: float, *,
              labels: tuple[str, str] | None = None) -> Samples:
        """Evaluate ``expr`` once for all targets. ``labels``: the (namespace, name) label pair
        that matches a series to a target, when not the source's default (``("namespace",
        "pod")`` for pod targets). Raises MetricsUnavailable when the source fails."""


@runtime_checkable
class ConcurrentMetricsSource(MetricsSource, Protocol):
    """Optional capability: several queries at once (checked when a reconciler is wired)."""

    def query_many(self, exprs: Sequence[str], targets: Sequence[TargetRef], at: float, *,
                   return_exceptions: bool = False) -> list:
        """``query`` for each expression, results in order; with ``return_exceptions`` a failed
        query's slot holds its MetricsUnavailable."""


class ScalingReads(NamedTuple):
    """A cycle's scaling metrics read as arrays (``ArrayMetricsSource.read_scaling``), what
    ``query`` of each gives, stacked: (N, M) ``values``, ``present`` (one series matched, none
    in conflict) and ``age_s`` of the policy's queries, and ``latest`` (N, M) the ramps' latest
    readings through the signal stage (core/scaling/signal.py's ``clean``: NaN where a metric has
    no latest query or its sample is not usable), None when no metric has one. ``pods``: the
    ``hpa`` preset's pods and their samples when its metric was read per pod
    (runtime/pod_samples.PodReader.read_stacked), else None."""

    values: np.ndarray
    present: np.ndarray
    age_s: np.ndarray
    latest: np.ndarray | None
    pods: "PodSamples | None" = None


@runtime_checkable
class ArrayMetricsSource(Protocol):
    """Optional capability of a MetricsSource that holds its series as arrays (the simulator's
    metrics ring): a cycle's scaling queries and the ramps' latest queries in one read, without
    a Samples per query. Checked once when a Reconciler is wired."""

    def read_scaling(self, queries: Sequence[str], latest: Sequence[str | None], targets: Sequence[TargetRef],
                     at: float, stale_after_s: float, nonnegative: np.ndarray,
                     implausible_above: np.ndarray) -> ScalingReads | None:
        """``queries`` (M,) and the ramps' ``latest`` queries (M,: None where a metric has none)
        for ``targets`` at ``at`` as :class:`ScalingReads`, the latest readings judged usable as
        ``read_signal(values, present, age, stale_after_s, nonnegative, implausible_above)``
        judges them. None when this read cannot give what ``query`` of each would (an outage, a
        query read another way, the kernels off): then query one by one. Never raises for a
        source failure (``query`` raises it)."""


@dataclass(frozen=True)
class PodSeries:
    """One metric's per-pod samples, K series that carry a ``pod`` label: (K,) arrays.

    namespaces, pods: the series' namespace and pod names (any sequence: a source may make them
    on access); values: the samples; age_s: seconds between each sample and the query time;
    window_s: the span a sample averages over (HPA's CPU readiness rules compare it with the
    pod's last readiness change). uid: optional (K,) int64 pod identities; when the PodView of
    the same source carries them too, series join pods by uid instead of by name.
    """

    namespaces: Sequence[str]
    pods: Sequence[str]
    values: np.ndarray
    age_s: np.ndarray
    window_s: float = 60.0
    uid: np.ndarray | None = None


@runtime_checkable
class PodMetricsSource(Protocol):
    """Optional capability of a MetricsSource: per-pod series, for the ``hpa`` preset's
    per-pod metrics (Resource and Pods metrics). Checked once when a Reconciler is wired."""

    def query_pods(self, expr: str, targets: Sequence[TargetRef], at: float) -> "PodSeries | Samples":
        """Evaluate ``expr`` once. PodSeries when its series carry a ``pod`` label, else the
        workload values aligned with ``targets`` (an aggregated expression), as ``query`` would
        return them. Raises MetricsUnavailable when the source fails."""


@direct_init
@dataclass(frozen=True)
class ClusterView:
    """The observed state of N targets as arrays, plus the full statuses when the source has them.

    spec, status, ready: (N,) replica counts; rollout: (N,) bool, a rollout is in progress;
    exists: (N,) bool, the workload was found; paused: (N,) bool, spec.paused (None: the source
    does not say; then the controller never pauses a rollout).
    """

    spec: np.ndarray
    status: np.ndarray
    ready: np.ndarray
    rollout: np.ndarray
    exists: np.ndarray
    statuses: tuple[TargetStatus, ...] = field(default=())
    paused: np.ndarray | None = None

    def check_rows(self, n: int) -> "ClusterView":
        """This view, if every per-target array has ``n`` rows; else ValueError naming the arrays
        (a Cluster adapter that broke its contract: nothing downstream may read past the rows)."""
        rows = (n,)
        if (type(self.spec) is type(self.status) is type(self.ready) is type(self.rollout) is type(self.exists)
                is np.ndarray and self.spec.shape == self.status.shape == self.ready.shape == self.rollout.shape
                == self.exists.shape == rows and (self.paused is None or np.shape(self.paused) == rows)):
            return self  # every cycle: checked without the dicts the message needs
        arrays = {"spec": self.spec, "status": self.status, "ready": self.ready, "rollout": self.rollout,
                  "exists": self.exists, "paused": self.paused}
        shapes = {k: a.shape if isinstance(a, np.ndarray) else np.shape(a) for k, a in arrays.items() if a is not None}
        wrong = {k: shape for k, shape in shapes.items() if shape != (n,)}
        if wrong:
            raise ValueError(f"cluster view for {n} targets has arrays of other shapes: "
                             + ", ".join(f"{k} {shape}" for k, shape in wrong.items()))
        return self

    @classmethod
    def from_statuses(cls, targets: Sequence[TargetRef], statuses: dict[TargetRef, TargetStatus]) -> "ClusterView":
        rows = [statuses.get(t) for t in targets]
        def arr(get) -> np.ndarray:
            return np.array([get(s) if s else 0 for s in rows], dtype=np.float64)
        return cls(spec=arr(lambda s: s.spec_replicas), status=arr(lambda s: s.status_replicas),
                   ready=arr(lambda s: s.ready_replicas),
                   rollout=np.array([bool(s and s.rollout_in_progress) for s in rows], dtype=bool),
                   exists=np.array([s is not None for s in rows], dtype=bool), statuses=tuple(s for s in rows if s),
                   paused=np.array([bool(s and s.paused) for s in rows], dtype=bool))


class Cluster(Protocol):
    def resolve(self, selector: TargetSelector) -> list[TargetRef]:
        """The workloads a selector matches now, sorted."""

    def observe(self, targets: Sequence[TargetRef], with_pods: bool | None = None) -> ClusterView:
        """Current replicas and readiness of each target; with ``with_pods``, also the full
        statuses (pods, revisions, annotations) that health checks need."""

    def apply(self, action: Action) -> None:
        """Make one change. Raises ActuationError (ConflictError, TemporaryError, PermanentError)."""


@runtime_checkable
class BatchScaler(Protocol):
    """Optional capability of a Cluster: a cycle's scale actions in one call (the simulator,
    whose scales are queued writes that cannot fail for a workload it has). Checked once when a
    Reconciler is wired, on the cluster's class."""

    def apply_scales(self, actions: Sequence[Action]) -> list[Action]:
        """Apply the SCALE ``actions`` as ``apply`` of each in order would; returns those it did
        not apply, in order (all of them when it cannot take them all): they go through
        ``apply`` one by one, with its retries and errors."""


@runtime_checkable
class StopsRequests(Protocol):
    """Optional capability of a port (Cluster, MetricsSource): refuse every request from now on,
    so that a stopping controller's running cycle ends quickly (see ControllerService.stop)."""

    def stop_requests(self) -> None:
        """Send nothing more; the calls that would send fail with the port's error at once."""


@dataclass(frozen=True)
class HpaRef:
    """A HorizontalPodAutoscaler that scales a workload: its name, and the kind and name of the
    object that controls it (its controller ownerReference: KEDA's ScaledObject), whose deletion,
    not the HPA's, hands the workload over (KEDA re-creates an HPA of its own deleted alone)."""

    name: str  # "" for one not listed, known from its writes alone (controller/runtime/hpa_guard.py)
    owner_kind: str | None = None
    owner_name: str | None = None
    writer: str = "kube-controller-manager"  # the field manager of its writes

    def __str__(self) -> str:
        return self.name


@runtime_checkable
class HpaLister(Protocol):
    """Optional Cluster capability: the workloads the HorizontalPodAutoscalers of a namespace
    scale (controller/runtime/hpa_guard.py). Checked when a reconciler is wired."""

    def hpa_targets(self, namespace: str) -> dict[TargetRef, HpaRef]:
        """{workload: an HPA that scales it} in ``namespace``. Raises ActuationError."""


@runtime_checkable
class FieldManaged(Protocol):
    """Optional Cluster capability: its writes carry the field manager ``field_manager``, and the
    statuses it observes name the field manager of spec.replicas (TargetStatus.replicas_manager,
    from metadata.managedFields), so a change someone else made can be told from this
    controller's own (controller/runtime/external_scale.py). Checked when a reconciler is wired."""

    field_manager: str


@runtime_checkable
class EventRecorder(Protocol):
    """Optional Cluster capability: Kubernetes Events about a target that are not an action
    (healing held, a reload failed). Checked when a reconciler is wired; best effort."""

    def record_event(self, target: TargetRef, reason: str, message: str, warning: bool = False) -> None:
        """Record one Event on ``target`` (type Warning when ``warning``, else Normal)."""


@dataclass(frozen=True)
class PriorAction:
    """An action another process applied (read back from the cluster): ``action`` is the
    ActionKind word, ``at`` epoch seconds; ``policy`` '' when the record does not say (written by
    an older version); ``by`` the process (its host) that applied it, '' when unknown."""

    target: TargetRef
    action: str
    reason: str
    at: float
    from_replicas: int | None = None
    to_replicas: int | None = None
    policy: str = ""
    by: str = ""


@dataclass(frozen=True)
class PriorActions:
    """What a read of prior actions found, and ``problems``: one line per namespace it could not
    read whole (a refusal, a timeout, more records than it reads)."""

    actions: tuple[PriorAction, ...] = ()
    problems: tuple[str, ...] = ()


@runtime_checkable
class PriorActionReader(Protocol):
    """Optional Cluster capability: the actions other processes (a previous leader) applied to the
    workloads of ``namespaces``, as the cluster still records them. A bounded number of requests;
    never raises for an API error (those are ``problems``)."""

    def prior_actions(self, namespaces: Sequence[str]) -> PriorActions:
        """Every applied action recorded in ``namespaces`` (oldest records may be gone)."""


@runtime_checkable
class Rehearsal(Protocol):
    """A Cluster that applies nothing (dry-run, shadow): its ``apply`` records the action in
    ``would_apply``. The reconciler commits no state for a rehearsed action."""

    would_apply: list[Action]


@direct_init
@dataclass(frozen=True)
class PodView:
    """The pods of N targets as flat (P,) arrays, pods of a target in list order.

    target: the pod's target row; names: pod names; pending: phase Pending (else Running);
    ready: the Ready condition is True; start_time, ready_transition_time: epoch seconds (NaN:
    unset). names may be any sequence (a source may make them on access). uid: optional (P,)
    int64 pod identities, unique within the source and equal to the ``uid`` of the same pod's
    PodSeries rows (the join then needs no names). created_time: optional (P,) creation
    times, epoch s (the observed start-up delay is creation -> Ready).
    """

    target: np.ndarray
    names: Sequence[str]
    pending: np.ndarray
    ready: np.ndarray
    start_time: np.ndarray
    ready_transition_time: np.ndarray
    uid: np.ndarray | None = None
    created_time: np.ndarray | None = None


@runtime_checkable
class PodLister(Protocol):
    """Optional capability of a Cluster: the targets' pods as arrays, cheaper than the full
    statuses of ``observe(with_pods=True)``. Checked once when a Reconciler is wired."""

    def list_pods(self, targets: Sequence[TargetRef]) -> PodView:
        """Every pod of each target (rows aligned with ``targets``; unknown targets have none)."""


@runtime_checkable
class PodStartLister(Protocol):
    """Optional capability of a PodLister: the columns of ``list_pods`` the start-up observer
    reads (controller/runtime/startup_observer.py), for some rows of a target list, without the
    listing's names and objects (the simulator). Checked once per cluster by the observer."""

    def pod_starts(self, targets: Sequence[TargetRef], due: np.ndarray) -> tuple | None:
        """The pods of ``targets`` at rows ``due`` (D,) int64, as ``list_pods`` of those targets
        lists them: (row in ``targets``, uid (int64), creation, Ready change (epoch s, NaN:
        unset), Ready, runs but not Ready (neither Ready nor Pending)), (P,) each. None when it
        declines: then ``list_pods``."""


@dataclass(frozen=True)
class ListedPodSamples:
    """The pods of N targets with one per-pod metric's samples joined to them.

    pods: what ``PodLister.list_pods`` returns; values, age_s: (P,) aligned with ``pods``, the
    pod's sample (NaN: none) and its age (0 without a sample); window_s: as PodSeries'.
    means: None, or what the reader's workload summary of these samples is, made by the source
    in the pass that joined them (the simulator's listing): (mean (N,) of each target's pods'
    samples as the pod table holds them, milli-units / 1000, added in pod order, NaN without
    one; has one (N,) bool). The reader uses them as they are, with the kernels on; without
    them it builds the pod table and summarizes it.
    """

    pods: PodView
    values: np.ndarray
    age_s: np.ndarray
    window_s: float
    means: tuple[np.ndarray, np.ndarray] | None = None


@direct_init
@dataclass(frozen=True)
class PaddedPodSamples:
    """The pods of N targets with one per-pod metric's samples, where the cluster keeps them
    (``slots``, a padded per-row layout: core/scaling/hpa_propose.PodSlots): what
    ``ListedPodSamples`` holds, unlisted (listing every pod each cycle cost more than reading
    them in place). values, age_s (N,): the sample of every running pod of target i (NaN: none)
    and its age; window_s and means as ListedPodSamples'. ``listed`` (): the same pods and
    samples listed (a ListedPodSamples), for a reader that needs them. The slot arrays may be
    the cluster's own: read them, and call ``listed``, before it changes."""

    slots: PodSlots
    values: np.ndarray
    age_s: np.ndarray
    window_s: float
    means: tuple[np.ndarray, np.ndarray]
    listed: Callable[[], ListedPodSamples]


@runtime_checkable
class ListedPodMetricsSource(Protocol):
    """Optional capability of a PodMetricsSource that reads the same pods as a Cluster's
    PodLister (the simulator: both ports over one simulated cluster): the pods and a per-pod
    metric's samples in one read, as ``list_pods`` then ``query_pods`` joined by uid give them.
    Checked once when a Reconciler is wired (``lists_pods_of``)."""

    def lists_pods_of(self, cluster: object) -> bool:
        """``query_listed_pods`` lists the pods ``cluster.list_pods`` would."""

    def query_listed_pods(self, expr: str, targets: Sequence[TargetRef],
                          at: float) -> "ListedPodSamples | PaddedPodSamples | Samples | None":
        """``query_pods(expr, targets, at)`` joined to the pods of ``targets`` (listed, or in the
        cluster's own layout); Samples when the expression gives workload values; None when this read is not available (then call
        ``list_pods`` and ``query_pods``). Raises MetricsUnavailable as ``query_pods``."""


class StateDeletion(str, Enum):
    """What ``StateStore.delete`` did with a payload."""

    DELETED = "deleted"  # it was there, as this store last read or wrote it: deleted now
    ABSENT = "absent"  # there was none (never saved, or deleted already)
    CHANGED = "changed"  # written since this store read it (a resourceVersion conflict): left; read it again
    FOREIGN = "foreign"  # another controller (another store owner) wrote it last: left
    REHEARSED = "rehearsed"  # a dry run's store: nothing is deleted


class StateStore(Protocol):
    """Durable per-policy state that outlives the process (healing budgets, breaker, held
    targets, revision memory): a versioned JSON payload, see controller/core/health_state_codec.

    Every call raises StateStoreError when the store fails; a conflicting writer is resolved
    inside ``save`` (re-read, write again), so a saved payload is never silently dropped. A store
    has an ``owner`` (the controller it belongs to: its Lease's ``NAMESPACE/NAME``), recorded with
    each payload it saves, so that ``delete`` only ever removes what this controller wrote last. A
    payload with no owner recorded was saved by a setpoint older than owners: any owner may delete
    it (else every upgrade would leave the state of the policies it removes forever).
    """

    def load(self, policy: str, part: str = "") -> bytes | str | dict | None:
        """The last payload saved for ``policy`` (its health state, or ``part`` of its state:
        ``hands-off``), None if there is none."""

    def save(self, policy: str, payload: dict, part: str = "") -> None:
        """Replace the payload of ``policy`` (or of its ``part``)."""

    def delete(self, policy: str, part: str = "") -> StateDeletion:
        """Delete the payload of ``policy`` (or of its ``part``) as this store last loaded or saved
        it (read now if it did neither), only if no one wrote it since and this store's owner
        wrote it last: a caller that decides on a payload's content loads it first."""

    def foreign(self, policy: str, part: str = "") -> bool:
        """True when another controller (another owner) saved the payload of ``policy`` (or of its
        ``part``) last, as this store last loaded or saved it (read now if it did neither): its
        ``delete`` would answer FOREIGN. A caller deleting several parts checks them all first."""


def state_name(policy: str, part: str = "") -> str:
    """How a StateStore names what it keeps of ``policy``: its name for the health state,
    ``policy.part`` for a part (a policy name has no dot: never another policy's name)."""
    return f"{policy}.{part}" if part else policy


def controller_state_name(controller: str) -> str:
    """The StateStore name of a controller's own payloads (its last good policies, its index of
    policies with state): its Lease's name, from ``NAMESPACE/NAME`` or ``NAME``."""
    return controller.rsplit("/", 1)[-1] or "setpoint"
