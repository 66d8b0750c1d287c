"""The Kubernetes adapter: the ``Cluster`` port over the official ``kubernetes`` client.

The only module of the project that imports ``kubernetes``.

- ``resolve(selector)``: names -> the named workloads that exist; matchLabels -> a list with
  ``labelSelector``. One request per call.
- ``observe(targets)``: per namespace, one list of the workloads, and (``with_pods``) one list
  of ReplicaSets and one of pods, so the request count does not grow with the target count.
  Returns a ClusterView with full TargetStatus objects (pods with readiness, start time,
  restarts and revision; the revision history from the ReplicaSets).
- ``apply(action)``:

  SCALE            merge patch of the scale subresource with the new value, and only when it
                   differs from the observed spec (``action.from_replicas``, else the last
                   observe), carrying the observed resourceVersion as a precondition (a late
                   write, e.g. a deposed leader's, is a 409 instead of undoing a newer change;
                   a conflict is re-read and retried); no read first unless neither is known;
  RESTART_POD      delete the pod (its ReplicaSet recreates it);
  ROLLING_RESTART  patch ``spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"]``,
                   carrying a resourceVersion as a precondition: after a 409 it is read again
                   and, if its pod template or spec.paused changed since the observation the
                   restart was decided on, not sent (Superseded: a deposed leader's late
                   restart would be a second rollout); a change of status or replicas only
                   is retried with the new version;
  ROLLBACK         as ``kubectl rollout undo``: the ReplicaSet of the target revision
                   (default: the previous one), its template minus the pod-template-hash
                   label, written with a JSON patch that carries the read resourceVersion so
                   that a concurrent change is a 409, re-read and retried; not sent
                   (Superseded) when the read finds a pod template or spec.paused other than
                   the observation the rollback was decided on (a deploy since: it is not the
                   release judged). A fast rollback (``Action.fast``, a release caught during
                   its rollout) is the same undo: on the template change the Deployment
                   controller stops the rollout, scales the stable ReplicaSet up within
                   maxSurge and removes the abandoned one's unready pods first, its ready ones
                   as the stable pods become ready (no new ReplicaSet, no waves: Kubernetes'
                   rolling.go, reconcileOldReplicaSets, describes exactly this undo). It is
                   not done by pausing the Deployment and scaling its ReplicaSets: the
                   Deployment controller owns them, and while paused it scales them
                   proportionally back to its own sizes. A paused Deployment is not rolled
                   back (PermanentError, as ``kubectl rollout undo`` refuses): its controller
                   would not act on the template until someone resumes it, so the patch would
                   only leave a change pending behind someone's hold; unless the action says
                   ``resume`` (setpoint paused it itself, a rollout hold): then the same patch
                   sets ``spec.paused`` false (undo and resume in one write);
  PAUSE / RESUME   a merge patch of the Deployment's ``spec.paused`` (a rollout hold while a
                   revision test is undecided; controller/core/health/rollout_hold.py), with
                   the rolling restart's precondition (a late pause is a hold nobody lifts);
  RECORD           nothing.

  Each action that changed something emits a core/v1 Event on the workload (reasons
  ``SuccessfulRescale``, ``PodRestarted``, ``RolloutRestarted``, ``RolledBack``, ``RolloutPaused``,
  ``RolloutResumed``), sent in the
  background by a separate client with its own rate limit, as client-go's event recorder does.
  Each message ends with ``reason: REASON (policy NAME)``, and every Event's message, these and
  the notices (``record_event``), fits in 1024 bytes (``fit_event_message``: cut at a word with
  `` …``, an action's tail kept): ``prior_actions`` reads the applied
  ones back (through that client: one list per namespace, bounded pages) for a new leader's status.

Fencing: with a ``fence`` (``setpoint run --leader-elect`` gives ``LeaderElector.is_leader``),
every write request (POST/PUT/PATCH/DELETE, events included) asks it right before it is sent;
a replica that has lost the lease raises NotLeader instead of sending, never retried.

Errors: every failure is an ActuationError: 409 ConflictError, 5xx / 429 / timeouts / connection
errors TemporaryError (with the server's Retry-After), 403 Forbidden, 404 NotFound,
400/401/405/415/422 PermanentError. ``apply`` makes one attempt (its requests are not retried
here): the reconciler owns the retries of an action (controller/runtime/actuate.py). Reads
(observe, resolve) and the state store retry temporary errors ``max_retries`` times with
exponential backoff, honouring Retry-After. A client-side token bucket (``qps``, ``burst``)
paces every request the adapter makes.

``KubernetesStateStore`` keeps each policy's durable healing state in a core/v1 ConfigMap
``setpoint-state-<policy>`` (key ``state.json``) in the controller's own namespace, and each part
of it beside it (``setpoint-state-<policy>.hands-off``, ``.scale-events``):
``read_namespaced_config_map`` to load (404: none yet), ``create_namespaced_config_map`` the
first time, then ``replace_namespaced_config_map`` carrying the last read resourceVersion; a
409 re-reads and writes once more (the leader's payload wins, nothing it recorded is lost).
Each write carries the annotation ``setpoint.io/controller`` (the store's owner: the controller's
Lease, ``NAMESPACE/NAME``). ``delete_namespaced_config_map`` removes a removed policy's ConfigMap
with the resourceVersion last read as a precondition (409: someone wrote it since, it is left),
and only when the annotation names this store's owner or none (another controller's is never
deleted; one without it was written by a setpoint older than the annotation).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import queue
import random
import re
import socket
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, NamedTuple, Sequence
from urllib.parse import urlsplit

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from controller.errors import (ActuationError, ConflictError, Forbidden, KubernetesConfigError, NotFound, NotLeader,
                               PermanentError, RevisionChanged, StateStoreError, Stopping, Superseded,
                               TemporaryError)
from controller.model import Action, ActionKind, PodStatus, TargetRef, TargetSelector, TargetStatus
from controller.ports import ClusterView, HpaRef, PriorAction, PriorActions, StateDeletion, state_name

log = logging.getLogger("setpoint.kubernetes")

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
TEMPLATE_HASH_LABEL = "pod-template-hash"
STATEFULSET_HASH_LABEL = "controller-revision-hash"
#: The Progressing condition's reason once the newest ReplicaSet is fully rolled out.
ROLLOUT_COMPLETE_REASON = "NewReplicaSetAvailable"
#: The field manager of every write to a workload (metadata.managedFields names it as the writer of
#: spec.replicas after a scale): how the controller tells its own writes from someone else's.
FIELD_MANAGER = "setpoint"
#: Longest wait honoured from a Retry-After header (s).
MAX_RETRY_AFTER_S = 10.0
#: Tries of a conditional write that other writes keep changing the object under (409 each time).
CONDITIONAL_WRITE_ATTEMPTS = 5


# --------------------------------------------------------------------------- rate limiting
class TokenBucket:
    """Client-side rate limit, like client-go's flowcontrol: ``qps`` tokens per second, at most
    ``burst`` saved up. ``acquire()`` blocks until a token is there; thread-safe.

    ``qps <= 0`` disables the limit.
    """

    def __init__(self, qps: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if burst < 1 and qps > 0:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.qps, self.burst = float(qps), int(burst)
        self._clock, self._sleep = clock, sleep
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token; returns the seconds waited."""
        if self.qps <= 0:
            return 0.0
        with self._lock:  # reserve a token (possibly in the future), then wait outside the lock
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.qps)
            self._last = now
            self._tokens -= 1.0
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.qps
        if wait > 0:
            self._sleep(wait)
        return wait


class WorkloadApi(NamedTuple):
    """The client functions the adapter uses for one workload kind."""

    list: Callable
    read: Callable
    patch: Callable
    read_scale: Callable
    patch_scale: Callable


#: HTTP methods that change something on the cluster: the fence is checked before each.
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _rate_limited(api_client: k8s.ApiClient, bucket: TokenBucket, counter: Counter,
                  may_write: Callable[[str, str], bool] = lambda method, url: True,
                  stopping: Callable[[], bool] = lambda: False) -> k8s.ApiClient:
    """Make every request of ``api_client`` take a token first (and count it by method), and
    every write ask ``may_write`` right before it goes out: the one place where the adapter's
    writes are issued, so the leadership fence covers all of them. Once ``stopping()``, no
    request is sent (Stopping)."""
    call_api = api_client.call_api

    def limited(method, url, *args, **kwargs):
        if stopping():
            raise Stopping(f"{method} {urlsplit(url).path}: not sent, the controller is stopping")
        bucket.acquire()  # may wait: the fence is checked after it, just before sending
        if method in WRITE_METHODS and not may_write(method, urlsplit(url).path):
            raise NotLeader(f"{method} {urlsplit(url).path}: not sent, this replica does not hold the leader lease")
        counter[method] += 1
        return call_api(method, url, *args, **kwargs)

    api_client.call_api = limited
    return api_client


def fresh_client(api_client: k8s.ApiClient) -> k8s.ApiClient:
    """A new ApiClient with a copy of the configuration and the User-Agent of ``api_client`` but
    its own connections, none of its wrappers (rate limit, fence) and no urllib3 retries.

    urllib3's default retries would resend a PUT after a read timeout, though the first one may
    have been applied: every try must be one request the caller sees and counts."""
    configuration = copy.deepcopy(api_client.configuration)  # the caller's stays as it is
    configuration.retries = False
    fresh = k8s.ApiClient(configuration)
    fresh.user_agent = api_client.user_agent
    return fresh


# --------------------------------------------------------------------------- configuration
def load_api_client(kubeconfig: str | os.PathLike | None = None, context: str | None = None,
                    in_cluster: bool | None = None) -> k8s.ApiClient:
    """An ApiClient from in-cluster config (service account) or a kubeconfig.

    ``in_cluster=None``: in-cluster when no kubeconfig is given and ``KUBERNETES_SERVICE_HOST`` is
    set, else the kubeconfig (``$KUBECONFIG`` or ~/.kube/config when ``kubeconfig`` is None).
    urllib3's own retries are turned off: the adapter retries, and counts and paces, each try.
    """
    configuration = k8s.Configuration()
    if in_cluster or (in_cluster is None and kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST")):
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
        except k8s_config.ConfigException as exc:
            raise KubernetesConfigError(f"in-cluster configuration: {exc} (the Pod's service account token and CA "
                                        "are read from /var/run/secrets/kubernetes.io/serviceaccount)") from None
    else:
        where = str(kubeconfig) if kubeconfig is not None else os.environ.get("KUBECONFIG") or "~/.kube/config"
        try:
            k8s_config.load_kube_config(config_file=None if kubeconfig is None else str(kubeconfig), context=context,
                                        client_configuration=configuration)
        except Exception as exc:  # noqa: BLE001 -- the library raises what the file's content makes it raise
            raise KubernetesConfigError(_kubeconfig_problem(where, context, exc)) from None
    configuration.retries = False
    return k8s.ApiClient(configuration)


def _kubeconfig_problem(where: str, context: str | None, exc: Exception) -> str:
    """What to say when a kubeconfig cannot be loaded: which file, why, and what to do."""
    if isinstance(exc, k8s_config.ConfigException):
        why = str(exc).rstrip(".")
    elif isinstance(exc, OSError):
        why = exc.strerror or str(exc)
    else:  # a file that is YAML but not a kubeconfig (TypeError, KeyError, ...)
        why = f"not a kubeconfig ({type(exc).__name__}: {exc})"
    asked = f" with context {context!r}" if context else ""
    return (f"no Kubernetes configuration: {where}{asked}: {why}; pass --kubeconfig FILE (and --context NAME), run "
            "in a cluster (a Pod's service account), or try the simulated cluster (setpoint sim serve)")


# --------------------------------------------------------------------------- errors
def _status_message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "")
        return body.get("message") or exc.reason or ""
    except (ValueError, AttributeError):
        return str(exc.reason or "")


def map_error(exc: BaseException, what: str, target: str = "") -> ActuationError:
    """The project's error for a client failure: by HTTP status, or TemporaryError for
    timeouts and connection errors."""
    if isinstance(exc, ActuationError):
        return exc
    if isinstance(exc, ApiException):
        status = exc.status or 0
        message = f"{what}: HTTP {status}: {_status_message(exc)}"
        if status == 409:
            return ConflictError(message, target=target, status=status)
        if status == 404:
            return NotFound(message, target=target, status=status)
        if status == 403:
            return Forbidden(message, target=target, status=status)
        if status == 429 or status >= 500 or status == 0:
            return TemporaryError(message, target=target, status=status, retry_after_s=_retry_after_s(exc))
        return PermanentError(message, target=target, status=status)
    if isinstance(exc, (urllib3.exceptions.HTTPError, socket.timeout, TimeoutError, ConnectionError, OSError)):
        return TemporaryError(f"{what}: {type(exc).__name__}: {exc}", target=target)
    return PermanentError(f"{what}: {type(exc).__name__}: {exc}", target=target)


def _retry_after_s(exc: BaseException) -> float | None:
    headers = getattr(exc, "headers", None) or {}
    try:
        value = headers.get("Retry-After")
        return min(float(value), MAX_RETRY_AFTER_S) if value is not None else None
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- events
#: The most an Event's message may hold, in UTF-8 bytes. The apiserver refuses a longer one on
#: events.k8s.io/v1 (``note``) and on core/v1 once ``eventTime`` is set (legacyValidateEvent's
#: NoteLengthLimit, pkg/apis/core/validation/events.go), as on every Event written here; kubectl
#: describe shows the message as one line, so the details belong in the records and explain.
EVENT_MESSAGE_BYTES = 1024
_CUT = " …"


def fit_event_message(message: str, tail: str = "", limit: int = EVENT_MESSAGE_BYTES) -> str:
    """``message + tail`` when it fits in ``limit`` UTF-8 bytes; else ``message`` cut at its last
    word boundary that leaves room, `` …``, then ``tail`` whole (what a reader parses back, e.g. an
    action Event's `` (policy NAME)``). The messages put their key facts first, so the cut loses
    only details."""
    whole = message + tail
    if len(whole.encode()) <= limit:
        return whole
    room = limit - len((_CUT + tail).encode())
    if room <= 0:  # a tail too long to keep: cut the whole instead
        message, tail, room = whole, "", limit - len(_CUT.encode())
    cut = message.encode()[:room].decode(errors="ignore")  # never half a character
    if not message[len(cut)].isspace() and " " in cut:  # mid-word: back to the word's start
        cut = cut[:cut.rindex(" ")]
    return cut.rstrip(" ;,:") + _CUT + tail


class EventRecorder:
    """Sends core/v1 Events in the background (bounded queue, dropped when full, never raising),
    through its own rate-limited client so that events never slow actuation down."""

    def __init__(self, api_client: k8s.ApiClient, source: str, timeout: tuple[float, float], capacity: int = 1000):
        self.core = k8s.CoreV1Api(api_client)
        self.source = source
        self.instance = socket.gethostname()[:128]  # the apiserver's limit on reportingInstance
        self.timeout = timeout
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.fenced = 0  # not sent: the replica had lost the leader lease by then
        self._queue: queue.Queue = queue.Queue(maxsize=capacity)
        self._thread = threading.Thread(target=self._run, name="setpoint-events", daemon=True)
        self._thread.start()

    def record(self, namespace: str, involved: dict, reason: str, message: str, event_type: str = "Normal",
               tail: str = "") -> None:
        """Queue one Event: the only place Setpoint's Event bodies are built. Its message is
        ``message + tail`` fitted to EVENT_MESSAGE_BYTES (fit_event_message). ``eventTime`` (and
        the ``action`` it requires) is set, so the apiserver holds the message to that limit on
        core/v1 too, as events.k8s.io/v1 does: a longer one is refused, not written."""
        now = datetime.now(timezone.utc)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"metadata": {"name": f"{involved['name']}.{time.time_ns():x}", "namespace": namespace},
                "involvedObject": {**involved, "namespace": namespace}, "reason": reason,
                "message": fit_event_message(message, tail), "type": event_type, "action": reason,
                "source": {"component": self.source}, "reportingComponent": self.source,
                "reportingInstance": self.instance, "firstTimestamp": stamp, "lastTimestamp": stamp,
                "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "count": 1}
        try:
            self._queue.put_nowait(body)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while True:
            body = self._queue.get()
            if body is None:
                self._queue.task_done()
                return
            try:
                self.core.create_namespaced_event(body["metadata"]["namespace"], body, _request_timeout=self.timeout)
                self.sent += 1
            except NotLeader:
                self.fenced += 1
            except ApiException as exc:
                if exc.status == 409:  # a retried create that had gone through
                    self.sent += 1
                else:
                    self.failed += 1
                    log.warning("event %s for %s not recorded: %s", body["reason"], body["involvedObject"]["name"],
                                map_error(exc, "create event"))
            except Exception as exc:  # events are best effort: never let one stop the recorder
                self.failed += 1
                log.warning("event %s not recorded: %s", body["reason"], map_error(exc, "create event"))
            finally:
                self._queue.task_done()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queued event was sent (or failed); False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        self.flush(timeout_s)
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(timeout=timeout_s)


# --------------------------------------------------------------------------- reading objects
def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _condition(conditions: Iterable | None, kind: str):
    return next((c for c in conditions or () if c.type == kind), None)


def statefulset_partition(workload: Any) -> int:
    """A StatefulSet's ``spec.updateStrategy.rollingUpdate.partition`` (0: none, or not a RollingUpdate)."""
    strategy = getattr(workload.spec, "update_strategy", None)
    rolling = getattr(strategy, "rolling_update", None) if strategy is not None else None
    if strategy is None or (strategy.type or "RollingUpdate") != "RollingUpdate" or rolling is None:
        return 0
    return max(0, int(rolling.partition or 0))


def statefulset_ordered(workload: Any) -> bool:
    """A StatefulSet's ``spec.podManagementPolicy`` is OrderedReady (the default, also when unset);
    False for Parallel."""
    return (getattr(workload.spec, "pod_management_policy", None) or "OrderedReady") == "OrderedReady"


def statefulset_ordinal_start(workload: Any) -> int:
    """A StatefulSet's ``spec.ordinals.start``: the ordinal of its first pod (0 when unset)."""
    ordinals = getattr(workload.spec, "ordinals", None)
    return max(0, int(getattr(ordinals, "start", 0) or 0)) if ordinals is not None else 0


def rollout_in_progress(workload: Any, kind: str = "Deployment", terminating: int = 0) -> bool:
    """A template rollout is under way, for Setpoint's purposes (it holds restarts, rollbacks
    and scale-downs): the controller has not seen the latest spec, pods are left to replace
    (:func:`pods_left_to_replace`), or the workload's controller has not marked the revision
    complete (:func:`marked_complete`). The same rule for a Deployment and a StatefulSet,
    partitioned or not.

    Readiness counts only through that mark, which a workload controller sets once the new
    revision's pods are all updated and Ready and leaves alone when it scales: a scale-up's
    starting pods are not a rollout (restarts wait for them by the overload rule instead, and a
    scale-down is not blocked). kubectl rollout status counts every pod's readiness (a StatefulSet:
    readyReplicas < spec.replicas is "Waiting for N pods to be ready"; a Deployment: available <
    updated), so it also waits for a scale-up; here a StatefulSet's OrderedReady scale-up, one
    starting pod at a time, would hold every restart for as long as it lasts. ``terminating``: a
    StatefulSet's pods seen terminating (see :func:`pods_left_to_replace`)."""
    st = workload.status
    if st is None or (st.observed_generation or 0) < (workload.metadata.generation or 0):
        return True
    return pods_left_to_replace(workload, kind, terminating) > 0 or not marked_complete(workload, kind)


def pods_left_to_replace(workload: Any, kind: str = "Deployment", terminating: int = 0) -> int:
    """Existing pods the rollout still has to put on the new revision (0: none):
    ``status.replicas - partition - updatedReplicas``. A Deployment's every pod (old pods still
    running); a StatefulSet's at or above its partition (0 when none is set): the pods below it
    keep the current revision for good. Pods a scale-up has not created yet are not counted (a
    StatefulSet's OrderedReady creates them one at a time, each on the update revision; a
    Deployment's new ReplicaSet at once, each new). A StatefulSet's status.replicas counts its pods
    terminating (a scale-down's, a restarted pod's) and updatedReplicas does not: the
    ``terminating`` pods seen are taken off, and with currentRevision = updateRevision (every pod on
    the one revision) none is left whatever the counts (a scale-down is no rollout)."""
    st = workload.status
    if kind != "StatefulSet":
        return max(0, (st.replicas or 0) - (st.updated_replicas or 0))
    if st.update_revision and st.update_revision == st.current_revision:
        return 0
    return max(0, (st.replicas or 0) - terminating - statefulset_partition(workload) - (st.updated_replicas or 0))


def marked_complete(workload: Any, kind: str = "Deployment") -> bool:
    """The workload's controller has marked its revision rolled out: a Deployment's Progressing
    condition says ``NewReplicaSetAvailable`` (or there is none); a StatefulSet's currentRevision
    is its updateRevision (set once every pod is updated and Ready). A StatefulSet held at a
    partition is never marked (the pods below it keep currentRevision), and its canary's starting
    pod cannot be told from a scale-up's by the counts: it counts as marked, so only its pods left
    to replace say it rolls out (kubectl's "partitioned roll out complete" less its readiness)."""
    st = workload.status
    if kind == "StatefulSet":
        if statefulset_partition(workload) > 0:
            return True
        return not (st.update_revision and st.current_revision and st.update_revision != st.current_revision)
    progressing = _condition(st.conditions, "Progressing")
    return progressing is None or progressing.reason == ROLLOUT_COMPLETE_REASON


def rollout_completed_at(workload: Any, kind: str = "Deployment") -> float | None:
    """When a Deployment's current revision finished rolling out (epoch s): the Progressing
    condition's lastUpdateTime once its reason is ``NewReplicaSetAvailable`` (the Deployment
    controller sets it when it records that reason and leaves it while it stays: a lower bound on
    how long the revision has been complete). None while a rollout is in progress, for a
    StatefulSet, or without the condition or its time. Its time is truncated to the second: one
    second is added, so that it is never earlier than the truth."""
    if kind != "Deployment" or workload.status is None or rollout_in_progress(workload, kind):
        return None
    progressing = _condition(workload.status.conditions, "Progressing")
    if progressing is None or progressing.reason != ROLLOUT_COMPLETE_REASON or progressing.last_update_time is None:
        return None
    return progressing.last_update_time.timestamp() + 1.0


def _pod_status(pod: Any, revision_of_hash: dict[str, str]) -> PodStatus:
    st = pod.status
    ready = _condition(st.conditions if st else None, "Ready")
    labels = pod.metadata.labels or {}
    pod_hash = labels.get(TEMPLATE_HASH_LABEL) or labels.get(STATEFULSET_HASH_LABEL, "")
    return PodStatus(
        name=pod.metadata.name,
        phase=(st.phase if st and st.phase else "Unknown"),
        ready=None if ready is None or ready.status == "Unknown" else ready.status == "True",
        deleted=pod.metadata.deletion_timestamp is not None,
        start_time=_ts(st.start_time if st and st.start_time else pod.metadata.creation_timestamp),
        ready_transition_time=_ts(ready.last_transition_time) if ready is not None else None,
        restarts=sum(c.restart_count or 0 for c in (st.container_statuses or [])) if st else 0,
        revision=revision_of_hash.get(pod_hash, pod_hash),
        created_time=_ts(pod.metadata.creation_timestamp),
        waiting=_waiting_reason(st.container_statuses if st else None),
        uid=pod.metadata.uid or "",
    )


def _waiting_reason(container_statuses) -> str:
    """The first waiting container's reason (CrashLoopBackOff, ImagePullBackOff, ...), "" when none waits."""
    for c in container_statuses or ():
        waiting = c.state.waiting if c.state is not None else None
        if waiting is not None:
            return waiting.reason or "Waiting"
    return ""


def _rollout_change(seen: Any, current: Any) -> str:
    """What of a workload's rollout changed between two reads of it: 'pod template', 'spec.paused'
    or '' (nothing, or ``seen`` unknown). Replicas and status are not part of it."""
    if seen is None:
        return ""
    if current.spec.template != seen.spec.template:
        return "pod template"
    if bool(getattr(current.spec, "paused", False)) != bool(getattr(seen.spec, "paused", False)):
        return "spec.paused"
    return ""


def _owned_by(obj: Any, uid: str) -> bool:
    return any(o.uid == uid for o in obj.metadata.owner_references or ())


#: Where ``current_revision`` reads a workload's current revision, per kind (for messages).
CURRENT_REVISION_SOURCE = {"Deployment": f"its {REVISION_ANNOTATION} annotation",
                           "StatefulSet": "its status.updateRevision"}


def current_revision(workload: Any, kind: str = "Deployment") -> str:
    """The revision the controller calls a workload's current one ('' not known yet): a
    Deployment's deployment.kubernetes.io/revision annotation (a number, "2"), a StatefulSet's
    status.updateRevision (a ControllerRevision's name, "db-7c9f8d6b5"; a canary held at a
    partition is on it). What revision checks judge and an accept-revision annotation must name."""
    if kind == "StatefulSet":
        return (workload.status.update_revision or "") if workload.status else ""
    return (workload.metadata.annotations or {}).get(REVISION_ANNOTATION, "")


def _revision_number(rs: Any) -> int:
    return _revision_as_number((rs.metadata.annotations or {}).get(REVISION_ANNOTATION, ""))


def _revision_as_number(text: str) -> int:
    """A revision annotation's number (0: not set, or not a number)."""
    try:
        return int(text or "0")
    except ValueError:
        return 0


class _NamespaceSnapshot:
    """The objects of one namespace that observe() reads, listed once per call."""

    def __init__(self, workloads: list, replicasets: list, pods: list):
        self.workloads = {w.metadata.name: w for w in workloads}
        self.replicasets = replicasets
        self.pods = pods

    def status(self, ref: TargetRef) -> TargetStatus | None:
        w = self.workloads.get(ref.name)
        if w is None:
            return None
        uid = w.metadata.uid
        rss = sorted((rs for rs in self.replicasets if _owned_by(rs, uid)), key=_revision_number)
        revision_of_hash = {(rs.metadata.labels or {}).get(TEMPLATE_HASH_LABEL, ""): str(_revision_number(rs)) for rs in rss}
        owners = {uid} | {rs.metadata.uid for rs in rss}
        pods = [p for p in self.pods if any(o.uid in owners for o in p.metadata.owner_references or ())]
        st = w.status
        if ref.kind == "StatefulSet":
            revision_of_hash = {}
        return TargetStatus(
            ref=ref, spec_replicas=w.spec.replicas if w.spec.replicas is not None else 1,
            status_replicas=(st.replicas or 0) if st else 0, ready_replicas=(st.ready_replicas or 0) if st else 0,
            revision=current_revision(w, ref.kind),
            rollout_in_progress=rollout_in_progress(w, ref.kind, sum(1 for p in pods if p.metadata.deletion_timestamp)),
            revisions=tuple(str(_revision_number(rs)) for rs in rss),
            pods=tuple(_pod_status(p, revision_of_hash) for p in sorted(pods, key=lambda p: p.metadata.name)),
            annotations=tuple(sorted((w.metadata.annotations or {}).items())),
            paused=ref.kind == "Deployment" and bool(w.spec.paused),
            rollout_completed_at=rollout_completed_at(w, ref.kind),
            revision_history_limit=w.spec.revision_history_limit if ref.kind == "Deployment" else None,
            partition=statefulset_partition(w) if ref.kind == "StatefulSet" else 0,
            ordered=ref.kind == "StatefulSet" and statefulset_ordered(w),
            ordinal_start=statefulset_ordinal_start(w) if ref.kind == "StatefulSet" else 0,
            **dict(zip(("replicas_manager", "replicas_set_at", "replicas_by_scale", "replicas_applied",
                        "replicas_alone", "replicas_template"), replicas_writer(w.metadata.managed_fields))))


#: The fieldsV1 of an entry that owns spec.replicas and nothing else.
REPLICAS_ONLY = {"f:spec": {"f:replicas": {}}}


def replicas_writer(managed_fields: Iterable | None) -> tuple[str, float | None, bool, bool, bool, bool]:
    """(field manager, time, through the scale subresource, a server-side apply, owning nothing but
    spec.replicas, owning pod-template fields too) of the metadata.managedFields entry that owns
    spec.replicas (a write through the scale subresource is recorded with the parent's
    f:spec.f:replicas and ``subresource: scale``): the latest entry when several share it
    (server-side applies of the same value); ('', None, False, False, False, True) when no entry
    does (an API server or object without managedFields: whether its writer could have changed the
    template is not known). An entry's time moves with any of its fields: only one that owns
    nothing else dates the replicas."""
    owners = []
    for entry in managed_fields or ():
        spec = (entry.fields_v1 if isinstance(entry.fields_v1, dict) else {}).get("f:spec") or {}
        if "f:replicas" in spec:
            owners.append((entry.manager or "", _ts(entry.time), getattr(entry, "subresource", None) == "scale",
                           entry.operation == "Apply", entry.fields_v1 == REPLICAS_ONLY, "f:template" in spec))
    if not owners:
        return "", None, False, False, False, True
    return max(owners, key=lambda o: -math.inf if o[1] is None else o[1])


#: Seconds a resolve()'s list of workloads is read by the observe() that follows it in the same
#: thread (the same cycle: milliseconds apart) instead of a second list.
REUSE_LIST_S = 2.0

#: Seconds the adapter remembers a workload's last observe (its spec.replicas, resourceVersion, the
#: object, its uid: what the writes of the same cycle check against) once no observe sees it any
#: more (it left every policy's selection, or was deleted): far longer than any cycle, whose writes
#: follow its observe within seconds; kept longer, a controller running for months held every
#: workload it ever observed.
SEEN_FOR_S = 3600.0


# --------------------------------------------------------------------------- the adapter
class KubernetesCluster:
    """The ``Cluster`` port over the Kubernetes API. See the module docstring.

    Give an ``api_client`` (a ``kubernetes.client.ApiClient``), or let it load one from
    ``kubeconfig`` / ``context`` / ``in_cluster`` (see :func:`load_api_client`).

    Options: ``qps`` / ``burst`` (client-side rate limit of every request; 0 disables),
    ``event_source`` (the Events' source component), ``emit_events``, ``event_qps`` /
    ``event_burst`` (the event client's own limit), ``request_timeout_s`` (per request: connect
    and read), ``max_retries`` (temporary errors of reads and the state
    store; ``apply`` makes one attempt),
    ``retry_backoff_s`` (first backoff, doubled per try, with jitter), ``with_pods`` (observe
    lists ReplicaSets and pods for full statuses), ``clock`` (epoch seconds), ``fence`` (asked
    right before every write, events included; False: the write is not sent and raises
    NotLeader; ``setpoint run --leader-elect`` passes ``LeaderElector.is_leader``).

    ``seen_for_s``: how long what an observe saw of a workload (SEEN_FOR_S) is kept after the last
    observe that saw it; a workload observed absent is forgotten at once.

    ``requests`` counts the HTTP requests made by method (events excluded); ``fenced`` the
    writes the fence stopped. Every write to a workload carries ``field_manager`` (the
    FieldManaged capability: observed statuses name the manager of spec.replicas).
    """

    field_manager = FIELD_MANAGER

    def __init__(self, api_client: k8s.ApiClient | None = None, *, kubeconfig: str | os.PathLike | None = None,
                 context: str | None = None, in_cluster: bool | None = None, qps: float = 20.0, burst: int = 30,
                 event_source: str = "setpoint", emit_events: bool = True, event_qps: float | None = None,
                 event_burst: int | None = None, request_timeout_s: float = 10.0, max_retries: int = 3,
                 retry_backoff_s: float = 0.2, with_pods: bool = True,
                 clock: Callable[[], float] = time.time, fence: Callable[[], bool] | None = None,
                 seen_for_s: float = SEEN_FOR_S):
        self._owns_client = api_client is None
        api_client = api_client or load_api_client(kubeconfig, context, in_cluster)
        self.requests: Counter[str] = Counter()
        self.fence = fence
        self.fenced = 0
        self._fenced_lock = threading.Lock()
        self.limiter = TokenBucket(qps, burst)
        self._stopping = threading.Event()  # stop_requests(): a stopping controller sends nothing more
        self.api_client = _rate_limited(api_client, self.limiter, self.requests, self._may_write,
                                        self._stopping.is_set)
        self.apps = k8s.AppsV1Api(self.api_client)
        self.core = k8s.CoreV1Api(self.api_client)
        self.autoscaling = k8s.AutoscalingV2Api(self.api_client)
        self.timeout = (min(3.0, request_timeout_s), request_timeout_s)
        # per thread (a policy's cycle runs in one): the workloads resolve() just listed, which the
        # observe() right after it reads instead of listing them again (see _listed_by_resolve)
        self._resolved = threading.local()
        self.max_retries = max_retries
        self.retry_backoff_s = retry_backoff_s
        self.with_pods = with_pods
        self.clock = clock
        self._spec_seen: dict[TargetRef, int] = {}
        self._version_seen: dict[TargetRef, str] = {}  # each target's resourceVersion at its last observe
        self._workload_seen: dict[TargetRef, Any] = {}  # and the workload as then (its template, paused)
        self._uids: dict[TargetRef, str] = {}
        self._seen_at: dict[TargetRef, float] = {}  # when an observe last saw each workload (clock)
        self._seen_lock = threading.Lock()  # cycles observe from several threads
        self.seen_for_s = seen_for_s
        self._pruned_at = -math.inf
        self.events: EventRecorder | None = None
        self.event_source = event_source
        if emit_events:
            self._event_api_client = _rate_limited(fresh_client(api_client), TokenBucket(
                qps if event_qps is None else event_qps, burst if event_burst is None else event_burst), Counter(),
                self._may_write)
            self.events = EventRecorder(self._event_api_client, event_source, self.timeout)

    def stop_requests(self) -> None:
        """From now on every request (but the Events') fails at once with Stopping, retries
        included: the controller is stopping and a cycle stuck on a stalled API server must end
        with its request in flight (bounded by the request timeout), not after every retry."""
        self._stopping.set()

    def close(self) -> None:
        """Send the queued events and release the connections."""
        if self.events:
            self.events.close()
            self._event_api_client.close()
        if self._owns_client:
            self.api_client.close()

    # ------------------------------------------------------------------ requests
    def _may_write(self, method: str, path: str) -> bool:
        """The fence: asked right before each write request (any thread)."""
        fence = self.fence
        if fence is None or fence():
            return True
        with self._fenced_lock:
            self.fenced += 1
        log.warning("fenced: %s %s not sent (not the leader)", method, path)
        return False

    def _once(self, what: str, target: str, fn: Callable, *args, **kwargs):
        """One API call, one attempt (the requests of ``apply``); raises the mapped ActuationError."""
        try:
            return fn(*args, _request_timeout=self.timeout, **kwargs)
        except Exception as exc:  # mapped; anything unexpected becomes PermanentError
            raise map_error(exc, what, target) from exc

    def _call(self, what: str, target: str, fn: Callable, *args, **kwargs):
        """One API call with retries of temporary errors (reads and the state store, not ``apply``);
        raises the mapped ActuationError."""
        for attempt in range(self.max_retries + 1):
            try:
                return fn(*args, _request_timeout=self.timeout, **kwargs)
            except Exception as exc:  # mapped below; anything unexpected becomes PermanentError
                error = map_error(exc, what, target)
                if not isinstance(error, TemporaryError) or attempt == self.max_retries:
                    raise error from exc
                delay = _retry_after_s(exc)
                if delay is None:
                    delay = self.retry_backoff_s * (2 ** attempt) * (0.5 + random.random() / 2)
                # the error names ``what`` already (map_error): "list Deployment in shop: HTTP 503: ..."
                log.info("%s; retry %d/%d in %.2fs", error, attempt + 1, self.max_retries, delay)
                if self._stopping.wait(delay):
                    raise error from exc
        raise AssertionError("unreachable")

    def _workload_api(self, kind: str) -> WorkloadApi:
        """The client functions for a workload kind (tests/test_deploy.py reads this table)."""
        a = self.apps
        if kind == "Deployment":
            return WorkloadApi(list=a.list_namespaced_deployment, read=a.read_namespaced_deployment,
                               patch=a.patch_namespaced_deployment,
                               read_scale=a.read_namespaced_deployment_scale,
                               patch_scale=a.patch_namespaced_deployment_scale)
        if kind == "StatefulSet":
            return WorkloadApi(list=a.list_namespaced_stateful_set, read=a.read_namespaced_stateful_set,
                               patch=a.patch_namespaced_stateful_set,
                               read_scale=a.read_namespaced_stateful_set_scale,
                               patch_scale=a.patch_namespaced_stateful_set_scale)
        raise PermanentError(f"unsupported workload kind {kind!r}: expected Deployment or StatefulSet")

    # ------------------------------------------------------------------ resolve / observe
    def resolve(self, selector: TargetSelector) -> list[TargetRef]:
        """The workloads the selector matches now, sorted. One list request."""
        list_fn = self._workload_api(selector.kind).list
        where = f"list {selector.kind} in {selector.namespace}"
        if selector.by_name:
            items = self._call(where, selector.namespace, list_fn, selector.namespace).items
            names = {w.metadata.name for w in items} & set(selector.names)
        else:
            items = self._call(where, selector.namespace, list_fn, selector.namespace,
                               label_selector=selector.label_selector or None).items
            names = {w.metadata.name for w in items}
        self._resolved.listed = (selector.namespace, selector.kind, time.monotonic(), items)
        return sorted(TargetRef(selector.namespace, n, selector.kind) for n in names)

    def _listed_by_resolve(self, namespace: str, kind: str, names: set[str]) -> list | None:
        """The workloads this thread's last resolve() listed, when it listed ``namespace``'s
        ``kind`` less than REUSE_LIST_S ago and holds every one of ``names``; taken once.

        A cycle resolves its targets, then observes them: two lists of the same namespace a few
        milliseconds apart, a third of a scaling cycle's requests (with 150 policies at a 15 s
        interval, 30 requests per second against the client's default 20)."""
        listed, self._resolved.listed = getattr(self._resolved, "listed", None), None
        if listed is None:
            return None
        ns, k, at, items = listed
        if (ns, k) != (namespace, kind) or time.monotonic() - at > REUSE_LIST_S:
            return None
        return items if names <= {w.metadata.name for w in items} else None

    def hpa_targets(self, namespace: str) -> dict[TargetRef, HpaRef]:
        """{workload: HPA} for the HorizontalPodAutoscalers of ``namespace`` (the first in name
        order when several target one workload), each with its controlling owner (KEDA's
        ScaledObject). One list request; raises ActuationError."""
        hpas = self._call(f"list HorizontalPodAutoscalers in {namespace}", namespace,
                          self.autoscaling.list_namespaced_horizontal_pod_autoscaler, namespace).items
        out: dict[TargetRef, HpaRef] = {}
        for hpa in sorted(hpas, key=lambda h: h.metadata.name):
            ref = hpa.spec.scale_target_ref if hpa.spec else None
            if ref is not None and ref.kind and ref.name:
                owner = next((o for o in hpa.metadata.owner_references or () if o.controller), None)
                out.setdefault(TargetRef(namespace, ref.name, ref.kind),
                               HpaRef(hpa.metadata.name, owner.kind if owner else None, owner.name if owner else None))
        return out

    def observe(self, targets: Sequence[TargetRef], with_pods: bool | None = None) -> ClusterView:
        """Replicas, readiness, rollout state, pods and revisions of each target (absent targets
        have ``exists`` False). Raises TemporaryError/Forbidden/... when a list fails.

        ``with_pods`` (default: the constructor's) lists ReplicaSets and pods too; scaling alone
        does not need them, and on a big namespace they are most of the cost of a cycle."""
        now = self.clock()
        statuses: dict[TargetRef, TargetStatus] = {}
        groups: dict[tuple[str, str], list[TargetRef]] = defaultdict(list)
        for t in targets:
            groups[(t.namespace, t.kind)].append(t)
        for (namespace, kind), refs in groups.items():
            snapshot = self._snapshot(namespace, kind, self.with_pods if with_pods is None else with_pods,
                                      {r.name for r in refs})
            for ref in refs:
                status = snapshot.status(ref)
                if status is not None:
                    statuses[ref] = status
                self._remember_seen(ref, status, snapshot.workloads.get(ref.name), now)
        self._prune_seen(now)
        return ClusterView.from_statuses(targets, statuses)

    def _remember_seen(self, ref: TargetRef, status: TargetStatus | None, workload: Any, now: float) -> None:
        """Keep what this observe saw of ``ref`` for the writes of its cycle; a workload observed
        absent is forgotten (no write will go to it)."""
        with self._seen_lock:
            if status is None:
                self._drop_seen(ref)
                return
            self._spec_seen[ref] = status.spec_replicas
            self._version_seen[ref] = workload.metadata.resource_version
            self._workload_seen[ref] = workload
            self._uids[ref] = workload.metadata.uid
            self._seen_at[ref] = now

    def _drop_seen(self, ref: TargetRef) -> None:
        """Drop what observes saw of ``ref`` (with ``_seen_lock`` held)."""
        for seen in (self._spec_seen, self._version_seen, self._workload_seen, self._uids, self._seen_at):
            seen.pop(ref, None)

    def _prune_seen(self, now: float) -> None:
        """Forget the workloads no observe has seen for ``seen_for_s`` (checked at most every quarter of
        it): what is kept per workload follows the workloads observed now, not every one ever observed."""
        if now - self._pruned_at < self.seen_for_s / 4:
            return
        self._pruned_at = now
        cutoff = now - self.seen_for_s
        with self._seen_lock:
            for ref in self._seen_refs():
                if self._seen_at.get(ref, -math.inf) < cutoff:
                    self._drop_seen(ref)

    def _seen_refs(self) -> set[TargetRef]:
        """Every workload something is kept of (with ``_seen_lock`` held)."""
        return set(self._spec_seen) | set(self._version_seen) | set(self._workload_seen) | set(self._uids)

    def seen_count(self) -> int:
        """How many workloads the adapter keeps what an observe saw of (for tests and benches)."""
        with self._seen_lock:
            return len(self._seen_refs())

    def _snapshot(self, namespace: str, kind: str, with_pods: bool, names: set[str] = frozenset()) -> _NamespaceSnapshot:
        workloads = self._listed_by_resolve(namespace, kind, set(names))
        if workloads is None:
            list_fn = self._workload_api(kind).list
            workloads = self._call(f"list {kind} in {namespace}", namespace, list_fn, namespace).items
        replicasets, pods = self._health_objects(namespace, kind) if with_pods else ([], [])
        return _NamespaceSnapshot(workloads, replicasets, pods)

    def _health_objects(self, namespace: str, kind: str) -> tuple[list, list]:
        """(ReplicaSets, pods) of a namespace: only health checks need them."""
        replicasets = []
        if kind == "Deployment":
            replicasets = self._call(f"list ReplicaSets in {namespace}", namespace,
                                     self.apps.list_namespaced_replica_set, namespace).items
        pods = self._call(f"list pods in {namespace}", namespace, self.core.list_namespaced_pod, namespace).items
        return replicasets, pods

    # ------------------------------------------------------------------ apply
    def apply(self, action: Action) -> None:
        """Make one change (see the module docstring). Raises ActuationError."""
        handlers = {ActionKind.SCALE: self._scale, ActionKind.RESTART_POD: self._restart_pod,
                    ActionKind.ROLLING_RESTART: self._rolling_restart, ActionKind.ROLLBACK: self._rollback,
                    ActionKind.PAUSE: self._set_paused, ActionKind.RESUME: self._set_paused,
                    ActionKind.RECORD: lambda a: None}
        handlers[action.kind](action)

    def _scale(self, action: Action) -> None:
        ref, desired = action.target, action.replicas
        if desired is None or desired < 0:
            raise PermanentError(f"scale {ref}: replicas must be a count >= 0, got {desired}", target=str(ref))
        api = self._workload_api(ref.kind)
        read_scale, patch_scale = api.read_scale, api.patch_scale
        current = action.from_replicas if action.from_replicas is not None else self._spec_seen.get(ref)
        if current == desired:
            return  # never write an unchanged value
        version = self._version_seen.get(ref)
        if current is None or version is None:
            scale = self._once(f"read scale of {ref}", str(ref), read_scale, ref.name, ref.namespace)
            current, version = int(scale.spec.replicas or 0), scale.metadata.resource_version
            if current == desired:
                return
        # The resourceVersion the decision saw is a precondition (409 if the workload changed
        # since): a write that reaches the API server late (a slow server, a leader paused after
        # its fence check) must not undo what the next leader, or a person, did meanwhile. After
        # a 409 the retry reads afresh; after a timeout it keeps the version (if the write had
        # landed, the retry is a 409, then a read that finds nothing left to write).
        body = {"metadata": {"resourceVersion": version}, "spec": {"replicas": desired}} if version else \
            {"spec": {"replicas": desired}}
        self._version_seen[ref] = version
        try:
            self._once(f"scale {ref}", str(ref), patch_scale, ref.name, ref.namespace, body,
                       field_manager=self.field_manager)
        except ConflictError:
            self._version_seen.pop(ref, None)
            raise
        self._version_seen.pop(ref, None)  # the write changed it
        self._spec_seen[ref] = desired
        self._event(ref, "SuccessfulRescale", f"New size: {desired}; reason: {action.reason}",
                    tail=f"; replicas {current} -> {desired}{_of_policy(action)}")

    def _restart_pod(self, action: Action) -> None:
        ref, pod = action.target, action.pod
        if not pod:
            raise PermanentError(f"restart-pod on {ref}: no pod named in the action", target=str(ref))
        self._once(f"delete pod {ref.namespace}/{pod}", str(ref), self.core.delete_namespaced_pod, pod, ref.namespace)
        self._event(ref, "PodRestarted",
                    f"Deleted pod {pod} so that it is recreated; reason: {action.reason}", tail=_of_policy(action))

    def _rolling_restart(self, action: Action) -> None:
        ref = action.target
        stamp = datetime.fromtimestamp(self.clock(), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: stamp}}}}}
        self._patch_observed_spec(action, f"rolling restart {ref}", body)
        self._event(ref, "RolloutRestarted",
                    f"Rolling restart (restartedAt {stamp}); reason: {action.reason}", tail=_of_policy(action))

    def _patch_observed_spec(self, action: Action, what: str, body: dict) -> None:
        """A merge patch of a workload's spec, decided on its last observe, that must not land on a
        pod template or rollout hold changed since. It carries a resourceVersion as a precondition
        (409 if anything changed): the observed one, or after a 409 one read afresh if only the
        status or replicas had changed. A changed template or spec.paused (another leader's restart
        in a failover's overlap, a deploy, a person's pause) raises Superseded: nothing is sent and
        the next cycle decides again on what is there. Without it a deposed leader's late rolling
        restart was a second rollout, and its late pause a hold nobody would lift."""
        ref = action.target
        api = self._workload_api(ref.kind)
        version = self._version_seen.get(ref)
        if version is None:
            current = self._once(f"read {ref}", str(ref), api.read, ref.name, ref.namespace)
            changed = _rollout_change(self._workload_seen.get(ref), current)
            if changed:
                raise Superseded(f"{what}: not sent, the {ref.kind}'s {changed} changed since it was observed "
                                 f"(a deploy, another restart or pause, or an earlier try whose answer was "
                                 f"lost); decided again next cycle", target=str(ref))
            version = current.metadata.resource_version
        self._version_seen[ref] = version
        patch = {**body, "metadata": {"resourceVersion": version}}
        try:
            written = self._once(what, str(ref), api.patch, ref.name, ref.namespace, patch,
                                 field_manager=self.field_manager)
        except ConflictError:
            self._version_seen.pop(ref, None)  # the retry reads afresh
            raise
        self._version_seen.pop(ref, None)  # the write changed it
        self._workload_seen[ref] = written

    def _rollback(self, action: Action) -> None:
        ref = action.target
        if ref.kind != "Deployment":
            raise PermanentError(f"rollback {ref}: only Deployments can be rolled back", target=str(ref))
        deployment, target_rs = self._rollback_source(ref, action.revision)
        if deployment.spec.paused and not action.resume:
            raise PermanentError(f"rollback {ref}: the Deployment is paused (spec.paused), so a rollback would not "
                                 f"progress; resume it (kubectl rollout resume) or roll back by hand",
                                 target=str(ref))
        template = self.api_client.sanitize_for_serialization(target_rs.spec.template)
        (template.get("metadata") or {}).get("labels", {}).pop(TEMPLATE_HASH_LABEL, None)
        current = self.api_client.sanitize_for_serialization(deployment.spec.template)
        resume = bool(action.resume and deployment.spec.paused)
        if _compact(template) == _compact(current) and not resume:
            return  # already on that template (e.g. an earlier try went through)
        changed = _rollout_change(self._workload_seen.get(ref), deployment)
        if changed:
            raise Superseded(f"rollback {ref}: not sent, the Deployment's {changed} changed since it was observed "
                             f"(a deploy or another rollback since: not the release that was judged); decided "
                             f"again next cycle", target=str(ref))
        # a concurrent change is a 409 (ConflictError): the retry re-reads (see runtime/actuate.py)
        patch = [{"op": "replace", "path": "/metadata/resourceVersion", "value": deployment.metadata.resource_version},
                 {"op": "replace", "path": "/spec/template", "value": template}]
        if resume:  # our own rollout hold: the undo and the resume are one write (never half done)
            patch.append({"op": "replace", "path": "/spec/paused", "value": False})
        self._once(f"rollback {ref}", str(ref), self.apps.patch_namespaced_deployment, ref.name, ref.namespace, patch,
                   field_manager=self.field_manager)
        from_rev = current_revision(deployment) or "?"
        self._event(ref, "RolledBack", f"Rolled back from revision {from_rev} to revision "
                                       f"{_revision_number(target_rs)}; reason: {action.reason}",
                    tail=_of_policy(action))

    def _set_paused(self, action: Action) -> None:
        """PAUSE / RESUME: a merge patch of the Deployment's spec.paused (a rollout hold)."""
        ref, paused = action.target, action.kind is ActionKind.PAUSE
        if ref.kind != "Deployment":
            raise PermanentError(f"{action.kind.word} {ref}: only a Deployment's rollout can be paused",
                                 target=str(ref))
        self._patch_observed_spec(action, f"{action.kind.word} {ref}", {"spec": {"paused": paused}})
        self._event(ref, "RolloutPaused" if paused else "RolloutResumed",
                    f"{'Paused' if paused else 'Resumed'} the rollout; reason: {action.reason}")

    def _rollback_source(self, ref: TargetRef, revision: str | None) -> tuple[Any, Any]:
        """The Deployment and the ReplicaSet to roll back to (by revision number or
        pod-template-hash; default the highest revision below the current one)."""
        deployment = self._once(f"read {ref}", str(ref), self.apps.read_namespaced_deployment, ref.name, ref.namespace)
        selector = ",".join(f"{k}={v}" for k, v in (deployment.spec.selector.match_labels or {}).items())
        rss = [rs for rs in self._once(f"list ReplicaSets of {ref}", str(ref), self.apps.list_namespaced_replica_set,
                                       ref.namespace, label_selector=selector or None).items
               if _owned_by(rs, deployment.metadata.uid)]
        current = _revision_as_number(current_revision(deployment))
        if revision is None:
            older = [rs for rs in rss if _revision_number(rs) < current]
            if not older:
                raise NotFound(f"rollback {ref}: no revision before {current} to roll back to", target=str(ref), status=404)
            return deployment, max(older, key=_revision_number)
        for rs in rss:
            if str(_revision_number(rs)) == str(revision) or (rs.metadata.labels or {}).get(TEMPLATE_HASH_LABEL) == revision:
                return deployment, rs
        have = sorted(_revision_number(rs) for rs in rss)
        raise NotFound(f"rollback {ref}: no revision {revision!r} (have {have})", target=str(ref), status=404)

    def read_current_revision(self, ref: TargetRef) -> str:
        """The workload's current revision as ``observe`` names it (:func:`current_revision`; ''
        not known yet), from one read of it (retried as reads are). Raises ActuationError
        (NotFound for a workload that does not exist)."""
        workload = self._call(f"read {ref}", str(ref), self._workload_api(ref.kind).read, ref.name, ref.namespace)
        return current_revision(workload, ref.kind)

    def annotate(self, ref: TargetRef, key: str, value: str, resource_version: str | None = None) -> None:
        """Set one metadata annotation of a workload (a merge patch); with ``resource_version``, only
        on that version of it (a precondition: 409, ConflictError, if it changed). Raises ActuationError."""
        metadata = {"annotations": {key: value}}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        patch = self._workload_api(ref.kind).patch
        self._call(f"annotate {ref}", str(ref), patch, ref.name, ref.namespace, {"metadata": metadata},
                   field_manager=self.field_manager)

    def annotate_while_current(self, ref: TargetRef, key: str, value: str, revision: str) -> None:
        """Set one annotation of a workload only while ``revision`` is its current revision (what an
        acceptance names): read it, then write on the version read (resourceVersion precondition).
        On a 409 it is read again: a new current revision (a rollout between the read and the write)
        raises RevisionChanged naming it, nothing written; any other change (a scale, a status) is
        written over, at most :data:`CONDITIONAL_WRITE_ATTEMPTS` times, then ConflictError. Raises
        ActuationError."""
        read = self._workload_api(ref.kind).read
        for attempt in range(1, CONDITIONAL_WRITE_ATTEMPTS + 1):
            workload = self._call(f"read {ref}", str(ref), read, ref.name, ref.namespace)
            current = current_revision(workload, ref.kind)
            if current != revision:
                raise RevisionChanged(f"annotate {ref}: revision {revision} is no longer the current revision "
                                      f"(now {current or 'not known'}); nothing written", current=current,
                                      target=str(ref))
            try:
                return self.annotate(ref, key, value, workload.metadata.resource_version)
            except ConflictError:  # written meanwhile: on the current revision still?
                log.info("annotate %s: conflict on try %d of %d, reading it again", ref, attempt,
                         CONDITIONAL_WRITE_ATTEMPTS)
        raise ConflictError(f"annotate {ref}: it changed under each of {CONDITIONAL_WRITE_ATTEMPTS} tries "
                            f"(HTTP 409 each time); nothing written", target=str(ref), status=409)

    def record_event(self, ref: TargetRef, reason: str, message: str, warning: bool = False) -> None:
        """An Event on the workload that is not about an applied action (e.g. healing held);
        type Warning when ``warning``."""
        self._event(ref, reason, message, "Warning" if warning else "Normal")

    def _event(self, ref: TargetRef, reason: str, message: str, event_type: str = "Normal", tail: str = "") -> None:
        """An Event on the workload ``ref``; ``tail``: the end of the message kept whole when it is
        cut to fit (what ``prior_actions`` parses back)."""
        if self.events is None:
            return
        involved = {"apiVersion": "apps/v1", "kind": ref.kind, "name": ref.name}
        if ref in self._uids:
            involved["uid"] = self._uids[ref]
        self.events.record(ref.namespace, involved, reason, message, event_type, tail)

    def prior_actions(self, namespaces: Sequence[str]) -> PriorActions:
        """The applied actions Setpoint's Events in ``namespaces`` record (the PriorActionReader
        capability): per namespace one list of this source's Normal Events, in pages of
        PRIOR_EVENT_PAGE, at most PRIOR_EVENT_PAGES of them (the rest is a problem, as is a
        namespace that cannot be listed). Through the event client: its own rate limit, so that
        a take-over's read never delays a cycle's requests."""
        core = k8s.CoreV1Api(self._event_api_client if self.events else self.api_client)
        ours = f"source={self.event_source},type=Normal"
        actions, problems = [], []
        for namespace in namespaces:
            token = None
            for _ in range(PRIOR_EVENT_PAGES):
                try:
                    page = core.list_namespaced_event(namespace, field_selector=ours, limit=PRIOR_EVENT_PAGE,
                                                      _continue=token, _request_timeout=self.timeout)
                except Exception as exc:  # one namespace's refusal (403: no list on events) spoils no other
                    problems.append(str(map_error(exc, f"list Events in {namespace}")))
                    break
                actions += [a for a in map(_prior_action, page.items) if a is not None]
                token = page.metadata._continue if page.metadata else None
                if not token:
                    break
            else:
                problems.append(f"list Events in {namespace}: more than {PRIOR_EVENT_PAGES * PRIOR_EVENT_PAGE} "
                                f"Events of {self.event_source}; the rest not read")
        return PriorActions(tuple(actions), tuple(problems))


#: The reasons of the Events of applied actions -> the action's word. A rollout hold's pause or
#: resume is not a target's last action (setpoint status shows it apart), so it is not read back.
ACTION_EVENTS = {"SuccessfulRescale": "scale", "PodRestarted": "restart-pod", "RolloutRestarted": "rolling-restart",
                 "RolledBack": "rollback"}
#: A read of prior actions lists at most PRIOR_EVENT_PAGES pages of PRIOR_EVENT_PAGE Events per namespace.
PRIOR_EVENT_PAGE, PRIOR_EVENT_PAGES = 500, 4
# the messages of the action Events (the adapter's own; "(policy NAME)" is absent from older versions' restarts)
_REASON_TAIL = re.compile(r".*?; reason: (?P<reason>.*?)(?: \(policy (?P<policy>[^()]*)\))?", re.S)
_RESCALE = re.compile(r"New size: (?P<to>\d+); reason: (?P<reason>.*?); replicas (?P<from>\d+) -> (?P=to)"
                      r"(?: \(policy (?P<policy>[^()]*)\))?")


def _of_policy(action: Action) -> str:
    """`` (policy NAME)``, the end of an action Event's message: which policy acted (read back by
    :func:`_prior_action`); '' without one."""
    return f" (policy {action.policy})" if action.policy else ""


def _prior_action(event: Any) -> PriorAction | None:
    """The applied action one of Setpoint's Events records (its message as the adapter writes it),
    or None: another reason, a message in another shape, no time."""
    word = ACTION_EVENTS.get(event.reason or "")
    involved, message = event.involved_object, event.message or ""
    when = event.last_timestamp or event.first_timestamp or event.event_time or event.metadata.creation_timestamp
    if word is None or involved is None or involved.kind not in ("Deployment", "StatefulSet") or when is None:
        return None
    m = (_RESCALE if word == "scale" else _REASON_TAIL).fullmatch(message)
    if m is None:
        return None
    steps = (int(m["from"]), int(m["to"])) if word == "scale" else (None, None)
    ref = TargetRef(involved.namespace or event.metadata.namespace, involved.name, involved.kind)
    return PriorAction(ref, word, m["reason"], when.timestamp(), *steps, policy=m["policy"] or "",
                       by=event.reporting_instance or "")


# ---------------------------------------------------------------------------------- durable state
STATE_KEY = "state.json"
STATE_PREFIX = "setpoint-state-"


def state_config_map_name(policy: str, part: str = "") -> str:
    """The ConfigMap holding a policy's durable state: its health state, or one ``part`` of it
    (``hands-off``) beside it."""
    return STATE_PREFIX + state_name(policy, part)


#: The annotation naming the controller (the store's owner) that wrote a state ConfigMap last.
OWNER_ANNOTATION = "setpoint.io/controller"


class KubernetesStateStore:
    """The ``StateStore`` port over ConfigMaps, through a KubernetesCluster's client (its rate
    limit, timeouts and retries of temporary errors). ``owner``: the controller's Lease
    (``NAMESPACE/NAME``), written on every ConfigMap it saves. See the module docstring."""

    def __init__(self, cluster: KubernetesCluster, namespace: str, owner: str = ""):
        self.cluster, self.namespace, self.owner = cluster, namespace, owner
        self._versions: dict[str, str | None] = {}  # ConfigMap -> resourceVersion last read or written (None: absent)
        self._owners: dict[str, str] = {}  # ConfigMap -> its owner annotation as last read or written
        self._shared_said: set[str] = set()  # ConfigMaps whose other owner was logged (once each)

    def _read(self, name: str):
        """The ConfigMap ``name``, None when there is none (404)."""
        try:
            cm = self.cluster._call(f"read ConfigMap {self.namespace}/{name}", name,
                                    self.cluster.core.read_namespaced_config_map, name, self.namespace)
        except NotFound:
            self._versions[name] = None
            return None
        self._versions[name] = cm.metadata.resource_version
        owner = self._owners[name] = (cm.metadata.annotations or {}).get(OWNER_ANNOTATION, "")
        if owner and self.owner and owner != self.owner and name not in self._shared_said:
            self._shared_said.add(name)
            log.warning("state ConfigMap %s/%s was last written by controller %s, not this one (%s): two controllers "
                        "with a policy of the same name share its state here, and overwrite each other's budgets, "
                        "hands-offs and rate limits; give each controller its own --state-namespace, or rename "
                        "one of the policies", self.namespace, name, owner, self.owner)
        return cm

    def load(self, policy: str, part: str = "") -> str | None:
        try:
            cm = self._read(state_config_map_name(policy, part))
        except ActuationError as exc:
            raise StateStoreError(f"load {_what(policy, part)}: {exc}") from exc
        if cm is None:
            return None
        return (cm.data or {}).get(STATE_KEY, "")  # a ConfigMap without the key is unreadable state

    def save(self, policy: str, payload: dict, part: str = "") -> None:
        name = state_config_map_name(policy, part)
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
        labels = {"app.kubernetes.io/managed-by": "setpoint", "setpoint.io/policy": policy[:63]}
        try:
            for attempt in range(2):  # a 409 re-reads and writes once more
                if attempt or name not in self._versions:
                    self._read(name)
                version = self._versions.get(name)
                meta = k8s.V1ObjectMeta(name=name, namespace=self.namespace, labels=labels, resource_version=version,
                                        annotations={OWNER_ANNOTATION: self.owner} if self.owner else None)
                body = k8s.V1ConfigMap(api_version="v1", kind="ConfigMap", metadata=meta, data={STATE_KEY: text})
                try:
                    if version is None:
                        done = self.cluster._call(f"create ConfigMap {self.namespace}/{name}", name,
                                                  self.cluster.core.create_namespaced_config_map, self.namespace, body)
                    else:
                        done = self.cluster._call(f"replace ConfigMap {self.namespace}/{name}", name,
                                                  self.cluster.core.replace_namespaced_config_map, name,
                                                  self.namespace, body)
                except (ConflictError, NotFound) as exc:  # changed or deleted since our read, or created meanwhile
                    self._versions.pop(name, None)
                    if attempt == 1 or (isinstance(exc, NotFound) and version is None):  # 404 on create: no namespace
                        raise
                    continue
                self._versions[name], self._owners[name] = done.metadata.resource_version, self.owner
                return
        except ActuationError as exc:
            raise StateStoreError(f"save {_what(policy, part)}: {exc}") from exc

    def foreign(self, policy: str, part: str = "") -> bool:
        name = state_config_map_name(policy, part)
        try:
            if name not in self._versions:
                self._read(name)
        except ActuationError as exc:
            raise StateStoreError(f"load {_what(policy, part)}: {exc}") from exc
        # no annotation: written by a setpoint older than owners, which any owner may delete
        return self._versions.get(name) is not None and self._owners.get(name, "") not in ("", self.owner)

    def delete(self, policy: str, part: str = "") -> StateDeletion:
        name = state_config_map_name(policy, part)
        try:
            if self.foreign(policy, part):
                return StateDeletion.FOREIGN
            version = self._versions.get(name)
            if version is None:
                return StateDeletion.ABSENT
            options = k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(resource_version=version))
            try:
                self.cluster._call(f"delete ConfigMap {self.namespace}/{name}", name,
                                   self.cluster.core.delete_namespaced_config_map, name, self.namespace, body=options)
            except NotFound:  # deleted meanwhile (or by our own first try, whose answer was lost)
                return StateDeletion.ABSENT
            except ConflictError:  # written since our read: a newer payload is not ours to delete
                return StateDeletion.CHANGED
            finally:
                self._versions.pop(name, None)
                self._owners.pop(name, None)
            return StateDeletion.DELETED
        except ActuationError as exc:
            raise StateStoreError(f"delete {_what(policy, part)}: {exc}") from exc


def _what(policy: str, part: str) -> str:
    return f"{part} state of policy {policy}" if part else f"state of policy {policy}"


def _compact(value: Any) -> Any:
    """Drop None and empty values recursively (templates compare equal across round trips)."""
    if isinstance(value, dict):
        out = {k: _compact(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return copy.deepcopy(value)


# ---------------------------------------------------------------------------------- leader election
#: A request that got no HTTP answer: refused, reset, timed out.
_TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, OSError)


#: Another holder's leaseDurationSeconds is honoured up to this many times our own lease duration.
#: client-go trusts the record's duration whatever it is, so a Lease left with 2**31-1 s (a bug,
#: a hand edit) would mean no leader for 68 years. Capping it is safe for any live holder: a
#: client-go or Setpoint leader rewrites the record every retry period (2 s by default), and we
#: time from the last change we saw, so only a holder that has not renewed for 10 lease durations
#: of ours (150 s by default) is overtaken. Replicas of one Deployment share their settings, so a
#: longer legitimate duration only appears during a rollout that changes it: 10x leaves room.
FOREIGN_LEASE_FACTOR = 10


class LeaderElector:
    """Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does.

    A background thread tries every ``retry_period_s`` to acquire the Lease (create it, or take
    it over) and, while it holds it, renews it. Expiry is timed as client-go times it: from when
    THIS candidate last saw the Lease record change, on its own monotonic clock, never by
    comparing the holder's ``renewTime`` with the local wall clock. Another holder's Lease may
    be taken over only once its record has not changed for its ``leaseDurationSeconds`` of local
    time, so skewed wall clocks between replicas cannot make two leaders (a candidate that
    starts up waits one lease duration before taking over a silent holder). Writes carry the
    read resourceVersion, so two candidates racing for an expired Lease get one success and one
    409.

    ``is_leader()`` is true only while the last successful acquire/renew started less than
    ``renew_deadline_s`` ago (monotonic): a leader that cannot renew stops acting at least
    ``lease_duration_s - renew_deadline_s`` before anyone else may take over. Give it as the
    ``fence`` of :class:`KubernetesCluster` so that every write re-checks it. ``stop()``
    releases the Lease. ``clock`` (epoch seconds) only stamps acquireTime/renewTime. ``term``
    counts the times it became leader: a caller that acts only now and then (a long interval)
    compares it to tell that leadership was lost and won back in between.

    Another holder's record is trusted for its ``leaseDurationSeconds`` only up to
    ``FOREIGN_LEASE_FACTOR`` times ours (a missing or non-positive one counts as ours); its
    ``renewTime`` is never read, so one in the future delays nothing.

    Use an ``api_client`` of its own (:func:`fresh_client`: no urllib3 retries), not a fenced one.
    ``request_timeout_s`` (each request's read timeout) must be shorter than ``renew_deadline_s``.

    Safety under API errors: ``_renewed_at`` is the start of a try whose write the server
    answered with a changed record (a new resourceVersion), so it is never later than that write
    took effect, and others time their takeover from when they saw it; any error (429, 503, reset, timeout, a write that landed but
    whose answer was lost) only leaves ``_renewed_at`` older or clears it.
    """

    def __init__(self, api_client: k8s.ApiClient, namespace: str, name: str, identity: str, *,
                 lease_duration_s: float = 15.0, renew_deadline_s: float = 10.0, retry_period_s: float = 2.0,
                 request_timeout_s: float = 5.0, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic):
        if not lease_duration_s > renew_deadline_s > 0:
            raise ValueError(f"lease duration ({lease_duration_s}s) must be longer than the renew deadline "
                             f"({renew_deadline_s}s), which must be > 0")
        if not 0 < request_timeout_s < renew_deadline_s:
            raise ValueError(f"request timeout ({request_timeout_s}s) must be > 0 and shorter than the renew "
                             f"deadline ({renew_deadline_s}s)")
        self.api_client = api_client
        self.api = k8s.CoordinationV1Api(api_client)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.lease_duration_s, self.renew_deadline_s, self.retry_period_s = lease_duration_s, renew_deadline_s, retry_period_s
        self.timeout = (min(3.0, request_timeout_s), request_timeout_s)
        self.clock, self.monotonic = clock, monotonic
        self._renewed_at: float | None = None  # monotonic start of the last successful acquire/renew
        self.term = 0  # times this candidate became leader (a renewal after its deadline counts too)
        self._observed: tuple | None = None  # the Lease record as last seen (resourceVersion and spec)
        self._observed_at = 0.0  # monotonic time when it was seen to change
        self._standing_by: str | None = None  # the other holder last said to hold the Lease (``round``'s log)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="leader-election", daemon=True)

    def is_leader(self) -> bool:
        renewed = self._renewed_at
        return renewed is not None and self.monotonic() - renewed < self.renew_deadline_s

    def start(self) -> "LeaderElector":
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop trying and give the Lease up if held. The fence closes first: a cycle still
        running (a shutdown that did not wait for it) cannot write once the release is sent."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.retry_period_s + self.timeout[1] + 1)
        held = self.is_leader()
        self._renewed_at = None
        if held:
            self._release()

    def _loop(self) -> None:
        held = False
        while not self._stop.is_set():
            held = self.round(held)
            self._stop.wait(self.retry_period_s)

    def round(self, held_before: bool) -> bool:
        """One try of the loop; ``held_before``: whether the last round ended leading. Says each
        change of leadership, one that lapsed while the loop waited (the renew deadline passed
        before the next try) included: a leader whose renewal came late is said to have lost
        the lease before it is said to lead again, its writes fenced in between."""
        said = {"lease": f"{self.namespace}/{self.name}", "identity": self.identity}
        was_leader = self.is_leader()
        if held_before and not was_leader:
            log.info("leader election: lost the lease", extra=said)
        try:
            self.try_acquire_or_renew()
        except Exception as exc:  # API unreachable: keep trying; is_leader() expires on its own
            log.warning("leader election: %s", exc, extra={"lease": self.name})
        held = self.is_leader()
        if held != was_leader:
            log.info("leader election: %s", "became the leader" if held else "lost the lease", extra=said)
        return held

    def _spec(self, acquire_time: datetime | None, transitions: int) -> k8s.V1LeaseSpec:
        now = datetime.fromtimestamp(self.clock(), timezone.utc)
        # whole seconds, rounded up: others wait at least our duration (int(0.5) = 0 was a 422)
        return k8s.V1LeaseSpec(holder_identity=self.identity, lease_duration_seconds=max(1, math.ceil(self.lease_duration_s)),
                               acquire_time=acquire_time or now, renew_time=now, lease_transitions=transitions)

    def try_acquire_or_renew(self) -> bool:
        """One attempt. True when this candidate holds the Lease afterwards; an ActuationError
        when the API could not be asked or did not answer (leadership then expires on its own)."""
        started = self.monotonic()
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace, _request_timeout=self.timeout)
        except _TRANSPORT_ERRORS as exc:
            raise map_error(exc, f"read lease {self.namespace}/{self.name}") from None
        except ApiException as exc:
            if exc.status != 404:
                raise map_error(exc, f"read lease {self.namespace}/{self.name}") from None
            body = k8s.V1Lease(metadata=k8s.V1ObjectMeta(name=self.name, namespace=self.namespace),
                               spec=self._spec(None, 0))
            return self._write(lambda: self.api.create_namespaced_lease(self.namespace, body,
                                                                        _request_timeout=self.timeout), started)
        self._observe(lease)
        spec = lease.spec or k8s.V1LeaseSpec()
        holder = spec.holder_identity or ""
        ours = holder == self.identity
        where = f"{self.namespace}/{self.name}"
        if holder and not ours and not self._observed_expired(spec):
            self._renewed_at = None
            if holder != self._standing_by:  # a standby says so once, and again when the holder changes
                self._standing_by = holder
                log.info("leader election: standing by, the lease %s is held by %s", where, holder,
                         extra={"lease": where, "identity": self.identity, "holder": holder})
            return False
        if holder and not ours:  # a holder that stopped renewing (killed, its node lost): say why we take over
            log.info("leader election: the lease %s held by %s has not changed for %gs: taking over", where, holder,
                     self.honoured_duration_s(spec.lease_duration_seconds),
                     extra={"lease": where, "identity": self.identity, "holder": holder})
        lease.spec = self._spec(spec.acquire_time if ours else None,
                                (spec.lease_transitions or 0) + (0 if ours else 1))
        return self._write(lambda: self.api.replace_namespaced_lease(self.name, self.namespace, lease,
                                                                     _request_timeout=self.timeout), started,
                           read_version=lease.metadata.resource_version)

    def _observe(self, lease: Any) -> None:
        """Remember the record and, when it changed since last seen, the local time of the change."""
        spec = lease.spec or k8s.V1LeaseSpec()
        record = (lease.metadata.resource_version, spec.holder_identity, spec.renew_time, spec.acquire_time,
                  spec.lease_duration_seconds, spec.lease_transitions)
        if record != self._observed:
            self._observed, self._observed_at = record, self.monotonic()

    def _observed_expired(self, spec: k8s.V1LeaseSpec) -> bool:
        """The record has not changed for its honoured lease duration, on this candidate's
        monotonic clock (its renewTime is not read: a wall clock in the future delays nothing)."""
        return self.monotonic() - self._observed_at >= self.honoured_duration_s(spec.lease_duration_seconds)

    def honoured_duration_s(self, record_s: Any) -> float:
        """Seconds another holder's record (``leaseDurationSeconds``: ``record_s``) keeps the
        Lease once it stops changing: its own duration, at most FOREIGN_LEASE_FACTOR x ours;
        ours when it is missing, not a number or not > 0 (the API server rejects those on
        write, so such a record comes from elsewhere: waiting our own is the safe side, where
        client-go would take over at once)."""
        ours = self.lease_duration_s
        if isinstance(record_s, bool) or not isinstance(record_s, (int, float)) or not record_s > 0:
            return ours
        return min(float(record_s), FOREIGN_LEASE_FACTOR * ours)

    def _write(self, call: Callable[[], Any], started: float, read_version: str | None = None) -> bool:
        try:
            written = call()
        except _TRANSPORT_ERRORS as exc:  # it may have been applied all the same: the next read tells
            raise map_error(exc, f"write lease {self.namespace}/{self.name}") from None
        except ApiException as exc:
            if exc.status == 409:  # another candidate wrote first
                self._renewed_at = None
                return False
            raise map_error(exc, f"write lease {self.namespace}/{self.name}") from None
        self._observe(written)
        if read_version is not None and written.metadata.resource_version == read_version:
            # A no-op update (the same renewTime: a wall clock that stood still or stepped back)
            # keeps the resourceVersion, so the others see no change and keep timing the old
            # record: it must not extend this candidate's leadership either.
            log.warning("leader election: the renewal changed nothing (is the wall clock advancing?)",
                        extra={"lease": f"{self.namespace}/{self.name}"})
            return self.is_leader()
        renewed = self._renewed_at
        if renewed is None or started - renewed >= self.renew_deadline_s:
            self.term += 1  # not leader right before: another replica may have led (and acted) meanwhile
        self._renewed_at, self._standing_by = started, None
        return True

    def _release(self) -> None:
        """Give the Lease up so a standby takes over at once (client-go's ReleaseOnCancel)."""
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace, _request_timeout=self.timeout)
            if lease.spec and lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None
                lease.spec.lease_duration_seconds = 1
                self.api.replace_namespaced_lease(self.name, self.namespace, lease, _request_timeout=self.timeout)
                # an on-call following a rolling upgrade sees the hand-over ("stopping", then this)
                log.info("leader election: released the lease (a standby takes over at its next try)",
                         extra={"lease": f"{self.namespace}/{self.name}", "identity": self.identity})
        except Exception as exc:  # best effort: the Lease expires anyway
            log.warning("leader election: release failed (the standby waits for it to expire, %g s): %s",
                        self.lease_duration_s, exc)


def fence_with_lease(cluster: KubernetesCluster, namespace: str, name: str, identity: str,
                     **options: Any) -> LeaderElector:
    """A LeaderElector for the Lease ``namespace/name`` on a client of its own (its Lease writes
    are never fenced), made the fence of ``cluster``: every write of ``cluster`` is sent only
    while it holds the Lease. Not started; ``options`` go to LeaderElector."""
    elector = LeaderElector(fresh_client(cluster.api_client), namespace, name, identity, **options)
    cluster.fence = elector.is_leader
    return elector
