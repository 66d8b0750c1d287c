"""Configuration of simulated workloads and the small pure rules both cluster engines share.

Shared by :mod:`simulators.simcluster` (vectorized) and the per-object reference engine the tests
compare it with (tests/support/reference_cluster.py):
the configuration dataclasses, pod phases, pod and revision naming, crash-loop backoff,
rollout budgets (maxSurge / maxUnavailable) and the scale-down ranking. Keeping these rules in
one place is what lets the two engines agree tick for tick.

Units: times and durations are seconds (``_s``), rates are requests per second (``_rps``),
memory is MiB (``_mib``), CPU is cores, ratios are fractions in [0, 1] (``_ratio``).
"""

from __future__ import annotations

import collections
import enum
import functools
import hashlib
import math
from dataclasses import dataclass, field
from typing import Literal, Sequence

from controller.errors import FieldError, NotFound, ScenarioError

#: Characters Kubernetes uses for generated name suffixes (no vowels, no look-alikes).
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

#: Crash-loop backoff as the kubelet applies it: 10 s doubling per restart, capped at 5 min.
BACKOFF_INITIAL_S = 10.0
BACKOFF_MAX_S = 300.0


class Phase(enum.IntEnum):
    """Slot states. Ordered so that ``phase >= STARTING`` means "scheduled on a node" and the
    scale-down rank is ``(phase >= STARTING) + (phase == READY)``."""

    EMPTY = 0
    PENDING = 1  # created, waiting for the scheduling delay or for node capacity
    STARTING = 2  # scheduled; container starting, not ready until the startup delay has passed
    BACKOFF = 3  # crashed; waiting out the crash-loop backoff before the next start
    READY = 4  # serving


#: Scale-down removes pods with the lowest rank first: pending, then other not-ready, then ready.
PHASE_REMOVAL_RANK = {Phase.PENDING: 0, Phase.STARTING: 1, Phase.BACKOFF: 1, Phase.READY: 2}


@dataclass(frozen=True)
class RevisionProps:
    """What a revision (pod template) does differently: the knobs of a bad or broken release.

    A pod's error ratio is ``min(1, base_error_ratio * error_ratio_multiplier + extra_error_ratio)``;
    ``extra_latency_s`` is added to the requests its pods serve; ``crash_loop`` pods never get
    ready and restart with backoff.
    """

    error_ratio_multiplier: float = 1.0
    extra_error_ratio: float = 0.0
    extra_latency_s: float = 0.0
    crash_loop: bool = False
    label: str = ""

    def pod_error_ratio(self, base_error_ratio: float) -> float:
        """Share of the requests a pod of this revision fails (before any overload drops)."""
        return min(1.0, base_error_ratio * self.error_ratio_multiplier + self.extra_error_ratio)


@dataclass(frozen=True)
class Revision:
    """One entry of a workload's revision history (a ReplicaSet).

    ``number`` is the deployment.kubernetes.io/revision annotation: a rollback gives the
    revision it returns to the next number, as Kubernetes does. ``seq`` is its creation index
    in the history and never changes; ``hash`` is its pod-template-hash.
    """

    number: int
    seq: int
    hash: str
    props: RevisionProps
    created_s: float


MIB = 2 ** 20  # bytes
MAX_RETRY_RATIO = 0.9  # retries of retries compound: at most 1 / (1 - 0.9) = 10x the load


@dataclass(frozen=True)
class ReadinessProbe:
    """A service's load-sensitive readiness probe: the overload "death spiral".

    Probes run at ``start + k * period_s`` (k = 1, 2, ...), each evaluated at the first tick at
    or after its time (at most one per tick). A probe of a service with Ready pods fails when
    the service was saturated in the last tick (``dropped_rps > 0`` or ``queue_length > 0``)
    and succeeds otherwise; with no Ready pod it succeeds (no traffic reaches the pods: the
    kubelet probes an idle pod). After ``failure_threshold`` consecutive failures every Ready
    pod turns running-not-Ready (no restart) and pods through their start-up are held, as under
    a readiness outage; the service then gets no traffic, so after ``success_threshold``
    consecutive successes the held pods are Ready again and both counts restart.

    Aggregated on purpose: all pods of a service share its load evenly, so they fail and
    recover together. Real pods fail one by one and the load shifts onto the rest, which then
    fail too; the aggregate model gives the same spiral in fewer states.
    """

    period_s: float = 10.0
    failure_threshold: int = 3
    success_threshold: int = 1

    def field_errors(self, where: str, prefix: str) -> list[FieldError]:
        checks = [
            ("period_s", self.period_s > 0, "must be > 0"),
            ("failure_threshold", isinstance(self.failure_threshold, int) and self.failure_threshold >= 1,
             "must be an integer >= 1"),
            ("success_threshold", isinstance(self.success_threshold, int) and self.success_threshold >= 1,
             "must be an integer >= 1"),
        ]
        return [FieldError(where, None, f"{prefix}.readiness_probe.{name}", f"{rule}, got {getattr(self, name)!r}")
                for name, ok, rule in checks if not ok]


@dataclass(frozen=True)
class ServiceConfig:
    """One simulated workload (a Deployment).

    capacity_rps: requests/s one ready pod serves at 100 % utilization.
    scheduling_delay_s, startup_delay_s: Pending -> Starting -> Ready.
    base_latency_s: median service time at zero load; ``latency_tail_ratios`` scale it to the
        zero-load p50/p95/p99 (the service-time spread, see :mod:`simulators.queueing`).
    overload: ``drop`` rejects requests beyond capacity; ``queue`` holds up to ``queue_limit``
        requests (FIFO backlog) and drops the rest.
    timeout_s: latency reported when requests cannot be served at all, and the cap of every
        latency percentile.
    max_pods: the largest replica count this workload can have (``set_replicas`` clamps to it);
        slots for rollout surge come on top.
    cpu_request_cores / cpu_at_capacity_cores: utilization is reported as percent of the CPU
        request; a pod serving at capacity uses ``cpu_at_capacity_cores`` (default: the request).
    base_error_ratio: share of served requests that fail on a healthy revision.
    memory_*: per-pod working set without a leak, the limit above which a pod is degraded
        (capacity times ``degraded_capacity_ratio``, latency plus ``degraded_extra_latency_s``),
        and the OOM limit at which its container restarts.
    memory_request_mib: a pod's memory request (MiB): what an HPA memory Utilization target is a
        percent of (sim serve exports it as kube_pod_container_resource_requests{resource="memory"}).
    max_surge / max_unavailable: rolling update budgets, an int or a percent string ("25%").
    retry_ratio: share of the requests dropped in one tick that clients send again in the
        next tick, on top of that tick's load (0: no retries; at most 0.9 so that retries of
        retries stay finite: steady-state inflation 1 / (1 - ratio) when all is dropped).
    readiness_probe: a :class:`ReadinessProbe` that fails while the service is saturated (the
        overload spiral), or None (default): readiness depends on start-up and faults only.
    labels: (key, value) pairs a label selector can match.
    """

    name: str
    namespace: str = "default"
    capacity_rps: float = 100.0
    scheduling_delay_s: float = 2.0
    startup_delay_s: float = 30.0
    base_latency_s: float = 0.05
    latency_tail_ratios: tuple[float, float, float] = (1.0, 1.5, 2.0)
    overload: Literal["drop", "queue"] = "drop"
    queue_limit: float = 1000.0
    timeout_s: float = 10.0
    initial_replicas: int = 1
    max_pods: int = 32
    cpu_request_cores: float = 0.5
    cpu_at_capacity_cores: float | None = None
    base_error_ratio: float = 0.0
    memory_base_mib: float = 256.0
    memory_soft_limit_mib: float = 768.0
    memory_limit_mib: float = 1024.0
    memory_request_mib: float = 512.0
    termination_grace_s: float = 30.0  # the pods' terminationGracePeriodSeconds (sim serve's templates)
    degraded_capacity_ratio: float = 0.7
    degraded_extra_latency_s: float = 0.1
    max_surge: int | str = "25%"
    max_unavailable: int | str = "25%"
    initial_revision: RevisionProps = field(default_factory=RevisionProps)
    retry_ratio: float = 0.0
    readiness_probe: ReadinessProbe | None = None
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def cpu_ratio(self) -> float:
        """CPU used at capacity over CPU requested: utilization percent = load share * 100 * this."""
        at_capacity = self.cpu_request_cores if self.cpu_at_capacity_cores is None else self.cpu_at_capacity_cores
        return at_capacity / self.cpu_request_cores

    @property
    def memory_request_bytes(self) -> float:
        """A pod's memory request in bytes, as kube-state-metrics and an HPA state it."""
        return self.memory_request_mib * MIB

    @property
    def slots(self) -> int:
        """Pod slots needed: max_pods plus the surge a rollout at max_pods may add."""
        surge, _ = rollout_budget(self.max_pods, self.max_surge, self.max_unavailable)
        return self.max_pods + surge

    def field_errors(self, where: str = "services") -> list[FieldError]:
        """Every invalid field of this config, each naming the expected and the actual value."""
        checks = [
            ("capacity_rps", self.capacity_rps > 0, "must be > 0"),
            ("scheduling_delay_s", self.scheduling_delay_s >= 0, "must be >= 0"),
            ("startup_delay_s", self.startup_delay_s >= 0, "must be >= 0"),
            ("base_latency_s", self.base_latency_s > 0, "must be > 0"),
            ("latency_tail_ratios", len(self.latency_tail_ratios) == 3
             and 0 < self.latency_tail_ratios[0] <= self.latency_tail_ratios[1] <= self.latency_tail_ratios[2],
             "must be three increasing ratios > 0"),
            ("overload", self.overload in ("drop", "queue"), "must be 'drop' or 'queue'"),
            ("queue_limit", self.queue_limit >= 0, "must be >= 0"),
            ("timeout_s", self.timeout_s > 0, "must be > 0"),
            ("max_pods", self.max_pods >= 1, "must be >= 1"),
            ("initial_replicas", 0 <= self.initial_replicas <= self.max_pods, f"must be in [0, max_pods={self.max_pods}]"),
            ("cpu_request_cores", self.cpu_request_cores > 0, "must be > 0"),
            ("memory_request_mib", self.memory_request_mib > 0, "must be > 0"),
            ("base_error_ratio", 0 <= self.base_error_ratio <= 1, "must be in [0, 1]"),
            ("memory_limit_mib", self.memory_base_mib < self.memory_limit_mib, "must be > memory_base_mib"),
            ("memory_soft_limit_mib", self.memory_base_mib < self.memory_soft_limit_mib, "must be > memory_base_mib"),
            ("degraded_capacity_ratio", 0 < self.degraded_capacity_ratio <= 1, "must be in (0, 1]"),
            ("retry_ratio", 0 <= self.retry_ratio <= MAX_RETRY_RATIO, f"must be in [0, {MAX_RETRY_RATIO}]"),
        ]
        errors = [FieldError(where, None, f"{self.name}.{name}", f"{rule}, got {getattr(self, name)!r}")
                  for name, ok, rule in checks if not ok]
        for name in ("max_surge", "max_unavailable"):
            try:
                parse_int_or_percent(getattr(self, name))
            except ValueError as exc:
                errors.append(FieldError(where, None, f"{self.name}.{name}", str(exc)))
        if self.readiness_probe is not None:
            errors += self.readiness_probe.field_errors(where, self.name)
        return errors


@dataclass(frozen=True)
class ClusterConfig:
    """Services plus optional node capacity and the simulation's start time (epoch seconds).

    Node capacity: ``nodes * pods_per_node`` pods, or ``max_pods_total`` if given; ``None``
    means unlimited. Pods beyond capacity stay Pending.
    """

    services: tuple[ServiceConfig, ...]
    nodes: int | None = None
    pods_per_node: int | None = None
    max_pods_total: int | None = None
    start_s: float = 0.0

    @property
    def pod_capacity(self) -> int | None:
        """Cluster-wide number of pods that can be scheduled, or None for unlimited."""
        if self.max_pods_total is not None:
            return self.max_pods_total
        if self.nodes is not None and self.pods_per_node is not None:
            return self.nodes * self.pods_per_node
        return None

    def lost_capacity(self, share_ratio: float) -> int:
        """Pods of capacity lost when ``share_ratio`` of the nodes go away (whole nodes)."""
        if self.nodes is not None and self.pods_per_node is not None:
            return round(share_ratio * self.nodes) * self.pods_per_node
        capacity = self.pod_capacity
        return 0 if capacity is None else round(share_ratio * capacity)

    def validate(self) -> "ClusterConfig":
        """Raise :class:`ScenarioError` with every problem found; return self when valid."""
        errors = [e for s in self.services for e in s.field_errors()]
        counts = collections.Counter(s.name for s in self.services)  # (list.count per name: quadratic)
        errors += [FieldError("services", None, f"{n}.name", "must be unique, got a duplicate")
                   for n in sorted(n for n, c in counts.items() if c > 1)]
        if not self.services:
            errors.append(FieldError("services", None, "services", "must hold at least one service, got none"))
        if errors:
            raise ScenarioError(errors)
        return self

    @classmethod
    def of(cls, config: "ClusterConfig | Sequence[ServiceConfig]") -> "ClusterConfig":
        """Accept a ClusterConfig or a plain list of services."""
        return config if isinstance(config, ClusterConfig) else cls(services=tuple(config))


def parse_int_or_percent(value: int | str) -> tuple[float, bool]:
    """``3 -> (3, False)``, ``"25%" -> (0.25, True)``. Raises ValueError naming the value."""
    if isinstance(value, bool):
        raise ValueError(f"must be an int or a percent string, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"must be >= 0, got {value}")
        return float(value), False
    if isinstance(value, str) and value.endswith("%"):
        try:
            pct = float(value[:-1])
        except ValueError:
            raise ValueError(f"must be an int or a percent string like '25%', got {value!r}") from None
        if pct < 0:
            raise ValueError(f"must be >= 0%, got {value!r}")
        return pct / 100.0, True
    raise ValueError(f"must be an int or a percent string like '25%', got {value!r}")


def proportional_sizes(sizes: Sequence[int], old_spec: int, new_spec: int, max_surge: int | str,
                       max_unavailable: int | str) -> list[int]:
    """New pod counts of a Deployment's ReplicaSets (``sizes``, oldest first, the last one the
    current revision's) when spec.replicas changes from ``old_spec`` to ``new_spec`` during a
    rolling update, as Kubernetes' deployment controller does (pkg/controller/deployment/sync.go
    ``scale`` and util ``GetProportion``): with one active ReplicaSet (or none: the newest) it
    gets ``new_spec``; otherwise the change of the allowed total (spec + surge) is spread over the
    active ReplicaSets in proportion to their sizes, largest first (ties: newer first when
    scaling up, older first when scaling down), the rounding leftover to the largest one.
    """
    sizes = [int(n) for n in sizes]
    active = [j for j, n in enumerate(sizes) if n > 0]
    if len(active) <= 1:
        target = active[0] if active else len(sizes) - 1
        return [new_spec if j == target else n for j, n in enumerate(sizes)]
    total = sum(sizes)
    allowed = new_spec + rollout_budget(new_spec, max_surge, max_unavailable)[0] if new_spec > 0 else 0
    # the ReplicaSets' max-replicas annotation: the allowed total before this change
    before = old_spec + rollout_budget(old_spec, max_surge, max_unavailable)[0] if old_spec > 0 else total
    to_add = allowed - total
    if to_add == 0:
        return sizes
    order = sorted(active, key=(lambda j: (-sizes[j], -j)) if to_add > 0 else (lambda j: (-sizes[j], j)))
    new_sizes, added = list(sizes), 0
    for j in order:
        if added == to_add:
            break
        # math.Round: half away from zero (sizes are positive)
        fraction = (math.floor(sizes[j] * allowed / before + 0.5) - sizes[j]) if new_spec > 0 else -sizes[j]
        share = min(fraction, to_add - added) if to_add > 0 else max(fraction, to_add - added)
        new_sizes[j] += share
        added += share
    new_sizes[order[0]] = max(0, new_sizes[order[0]] + to_add - added)
    return new_sizes


# once per service at set-up (ServiceConfig.slots: 1.7 ms of a 1,000-service cluster's ~12) and per
# rollout step, with a few distinct arguments (validated ones: ints and percent strings, hashable;
# typed: True is not 1)
@functools.lru_cache(maxsize=1024, typed=True)
def rollout_budget(spec: int, max_surge: int | str, max_unavailable: int | str) -> tuple[int, int]:
    """(surge, unavailable) pods for ``spec`` replicas, rounded as Kubernetes does.

    Surge percentages round up, unavailable percentages round down; if both come out 0,
    unavailable is 1 so that a rollout can make progress.
    """
    surge_v, surge_pct = parse_int_or_percent(max_surge)
    unav_v, unav_pct = parse_int_or_percent(max_unavailable)
    # round() before ceil/floor so that 0.25 * 4 = 1.0000000000000002 does not become 2.
    surge = math.ceil(round(surge_v * spec, 9)) if surge_pct else int(surge_v)
    unavailable = math.floor(round(unav_v * spec, 9)) if unav_pct else int(unav_v)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def backoff_s(restarts: int) -> float:
    """Crash-loop wait after the ``restarts``-th restart: 10 s, 20 s, 40 s, ... capped at 300 s."""
    return min(BACKOFF_INITIAL_S * 2.0 ** max(restarts - 1, 0), BACKOFF_MAX_S)


def _digest_chars(text: str, n: int) -> str:
    digest = hashlib.blake2b(text.encode(), digest_size=16).digest()
    number = int.from_bytes(digest, "big")
    chars = []
    for _ in range(n):
        number, r = divmod(number, len(NAME_ALPHABET))
        chars.append(NAME_ALPHABET[r])
    return "".join(chars)


def revision_hash(salt: int, service: str, seq: int) -> str:
    """The pod-template-hash of a service's ``seq``-th revision: 10 chars, stable for a seed."""
    return _digest_chars(f"{salt}/{service}/rev/{seq}", 10)


def pod_name(salt: int, service: str, rev_hash: str, serial: int) -> str:
    """``<service>-<revisionhash>-<5 chars>``: stable for (seed, service, pod serial)."""
    return f"{service}-{rev_hash}-{_digest_chars(f'{salt}/{service}/pod/{serial}', 5)}"


def rollback_target(revisions: list[Revision], current: Revision, revision: int | str | None, name: str) -> Revision:
    """The revision to roll back to among ``revisions``: by number or hash, or (``None``) the
    highest-numbered one below ``current``'s; NotFound naming service ``name`` when there is none."""
    if revision is None:
        older = [r for r in revisions if r.number < current.number]
        if not older:
            raise NotFound(f"{name} has no revision before {current.number} to roll back to", target=name, status=404)
        return max(older, key=lambda r: r.number)
    found = [r for r in revisions if str(r.number) == str(revision) or r.hash == str(revision)]
    if not found:
        raise NotFound(f"{name} has no revision {revision!r} (have {sorted(r.number for r in revisions)})",
                       target=name, status=404)
    return found[0]


def removal_key(phase: int, is_current_revision: bool, serial: int) -> tuple[int, int, int]:
    """Sort key of the scale-down ranking; the smallest key is removed first.

    Not-ready before ready (pending first), then pods of older revisions, then the newest pod.
    """
    return (PHASE_REMOVAL_RANK[Phase(phase)], int(is_current_revision), -serial)
