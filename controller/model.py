"""Frozen data shared by every layer: targets, statuses, actions, reasons, decision records.

Layer 1: imports nothing from the project.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Any

import numpy as np


def direct_init(cls: type) -> type:
    """Give a frozen dataclass an ``__init__`` that writes its fields straight into the
    instance's dict: the dataclass's own sets each through ``object.__setattr__`` (its frozen
    check's way round), ~0.25 us a field. Same signature, defaults and default factories; for
    the small records a control cycle makes many of (Action, the decision's parts). Apply it
    above ``@dataclass(frozen=True)``; not for classes with ``__post_init__``, InitVars or slots."""
    fields = dataclasses.fields(cls)
    if (hasattr(cls, "__post_init__") or "__slots__" in cls.__dict__ or not all(f.init for f in fields)
            or any(f.kw_only is True for f in fields)):
        raise TypeError(f"direct_init: {cls.__name__} has __post_init__, slots, keyword-only fields or fields "
                        f"outside __init__")
    env: dict[str, Any] = {"MISSING": dataclasses.MISSING}
    params, lines = [], []
    for f in fields:
        if f.default is not dataclasses.MISSING:
            env[f"_d_{f.name}"] = f.default
            params.append(f"{f.name}=_d_{f.name}")
            lines.append(f"d[{f.name!r}] = {f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            env[f"_f_{f.name}"] = f.default_factory
            params.append(f"{f.name}=MISSING")
            lines.append(f"d[{f.name!r}] = _f_{f.name}() if {f.name} is MISSING else {f.name}")
        else:
            params.append(f.name)
            lines.append(f"d[{f.name!r}] = {f.name}")
    body = "\n    ".join(["d = self.__dict__", *lines])
    exec(f"def __init__(self, {', '.join(params)}) -> None:\n    {body}\n", env)  # noqa: S102 (fixed text of field names)
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__annotations__ = {f.name: f.type for f in fields} | {"return": None}
    cls.__init__ = init
    return cls


class CodeEnum(enum.IntEnum):
    """An IntEnum numpy takes for the plain int it is. Each ufunc call asks its operands' types for
    ``__array_ufunc__``, and an IntEnum class answers through ``EnumType.__getattr__``, which raises
    AttributeError: ~1 us per ``array == ActionKind.NONE``, ~150 such operands in a healing cycle.
    numpy ignores an ``__array_ufunc__`` that is ndarray's own (no override), found at once here."""

    __array_ufunc__ = np.ndarray.__array_ufunc__


class Reason(CodeEnum):
    """Why a target got the replica count it got. Stored as int codes in the core's arrays."""

    WITHIN_TOLERANCE = 0
    SCALE_UP = 1
    SCALE_DOWN = 2
    STABILIZED_UP = 3
    STABILIZED_DOWN = 4
    RATE_LIMITED_UP = 5
    RATE_LIMITED_DOWN = 6
    CLAMPED_TO_MIN = 7
    CLAMPED_TO_MAX = 8
    METRICS_MISSING = 9
    FALLBACK_REPLICAS = 10
    TARGET_NOT_READY = 11
    SCALING_DISABLED = 12
    BELOW_MIN = 13
    ABOVE_MAX = 14
    SCALE_DOWN_BLOCKED = 15
    #: a scale-down proposed on a reading taken less than its metric's read window after the metric
    #: was last missing (or first read): the range query covers only part of its window and reads
    #: low (core/scaling/recovering.py); held at current replicas
    METRICS_RECOVERING = 16
    #: someone else set spec.replicas (kubectl scale, a GitOps sync, a script): the target is left at
    #: the count they set for the policy's ``onExternalScale.handsOff`` (core/scaling/external.py)
    EXTERNAL_OVERRIDE = 17

    @property
    def code(self) -> str:
        """CamelCase name used in records, logs and metrics (``RateLimitedUp``)."""
        return "".join(part.capitalize() for part in self.name.split("_"))


REASON_CODES: tuple[str, ...] = tuple(r.code for r in Reason)


#: Annotation on a workload that re-arms self-healing for it (written by ``setpoint resume``):
#: any new value resumes a target whose budget or circuit breaker stopped it.
RESUME_ANNOTATION = "setpoint.io/resume"
#: On a workload: the revision an SRE keeps on purpose although a record revision check judged it
#: worse (kubectl annotate or ``setpoint accept``); it counts only while that revision is current.
ACCEPT_REVISION_ANNOTATION = "setpoint.io/accept-revision"


class ActionKind(CodeEnum):
    """What to do to a target: one type from the policy file through the core's arrays to the
    cluster. The value is the arbitration rank (higher wins: rollback beats restart beats scale)
    and the int code in the core's arrays; ``word`` is the name in policies, records and logs
    (a policy's ``scale-up`` is SCALE: health only ever scales up). NONE: nothing to do."""

    NONE = 0
    RECORD = 1
    SCALE = 2
    RESTART_POD = 3
    ROLLING_RESTART = 4
    ROLLBACK = 5
    # A rollout hold (controller/core/health/rollout_hold.py): spec.paused of a Deployment while
    # its revision test is undecided. Never arbitrated (a hold goes along with the one remedy of a
    # target) and never a policy's remedy: ranked last so that no arbitration rank moves.
    PAUSE = 6
    RESUME = 7
    SCALE_UP = 2  # alias of SCALE: the health remedy's name in policies

    @property
    def word(self) -> str:
        """``scale``, ``restart-pod``, ...; '' for NONE (made once per kind: read for every action applied)."""
        return _ACTION_WORDS[self]

    @property
    def policy_word(self) -> str:
        """The word in policy files and the durable health state: ``scale-up`` for SCALE."""
        return "scale-up" if self is ActionKind.SCALE else self.word

    @classmethod
    def _missing_(cls, value: object) -> "ActionKind | None":
        """``ActionKind("rolling-restart")``, ``ActionKind("scale-up")``: from a word."""
        if isinstance(value, str):
            for member in cls:
                if value in (member.word, member.policy_word) and member is not cls.NONE:
                    return member
        return None


#: ActionKind.word of each kind
_ACTION_WORDS = {kind: "" if kind is ActionKind.NONE else kind.name.lower().replace("_", "-") for kind in ActionKind}


@dataclass(frozen=True, order=True)
class TargetRef:
    """One workload: ``kind`` is Deployment or StatefulSet."""

    namespace: str
    name: str
    kind: str = "Deployment"

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


#: The kinds of workload Setpoint scales, in the order ``--target-labels`` names them.
WORKLOAD_KINDS: tuple[str, ...] = ("Deployment", "StatefulSet")


@dataclass(frozen=True)
class TargetLabels:
    """The labels a series names its workload by, per kind: ``pairs`` ((kind, (namespace label,
    name label)), ...), one per kind of ``WORKLOAD_KINDS``. A kind not listed (a hand-made
    TargetRef's) is matched as a Deployment."""

    pairs: tuple[tuple[str, tuple[str, str]], ...]

    @classmethod
    def every_kind(cls, namespace: str, name: str) -> "TargetLabels":
        """The same two labels for every kind (``--target-labels namespace,deployment``)."""
        return cls(tuple((kind, (namespace, name)) for kind in WORKLOAD_KINDS))

    @classmethod
    def of(cls, value: "TargetLabels | tuple[str, str] | list[str]") -> "TargetLabels":
        """``value`` itself, or a (namespace label, name label) pair for every kind."""
        if isinstance(value, TargetLabels):
            return value
        pair = tuple(value)
        if len(pair) != 2:
            raise ValueError(f"expected (namespace label, name label), got {value!r}")
        return cls.every_kind(*pair)

    def for_kind(self, kind: str) -> tuple[str, str]:
        """(namespace label, name label) of ``kind``'s series."""
        for k, pair in self.pairs:
            if k == kind:
                return pair
        return self.pairs[0][1]

    def replaced(self, kind: str, pair: tuple[str, str]) -> "TargetLabels":
        """These labels with ``kind``'s set to ``pair``."""
        return TargetLabels(tuple((k, pair if k == kind else p) for k, p in self.pairs))

    def names(self, kinds=WORKLOAD_KINDS) -> tuple[str, ...]:
        """The distinct label names of ``kinds``, namespace labels first: what a ``group by``
        keeps so that every target of those kinds can be told apart."""
        pairs = [self.for_kind(k) for k in kinds]
        return tuple(dict.fromkeys([p[0] for p in pairs] + [p[1] for p in pairs]))

    def key(self, metric: dict, kind: str) -> tuple[str, str] | None:
        """(namespace, name) a series' labels ``metric`` give a workload of ``kind``; None
        without either label."""
        ns_label, name_label = self.for_kind(kind)
        ns, name = metric.get(ns_label), metric.get(name_label)
        return (ns, name) if ns is not None and name is not None else None

    def said(self) -> str:
        """``deployment=namespace,deployment statefulset=namespace,statefulset`` (the option's form)."""
        return " ".join(f"{kind.lower()}={','.join(pair)}" for kind, pair in self.pairs)

    def __str__(self) -> str:
        return self.said()


#: ``setpoint run --target-labels``' default: kube-state-metrics' convention, a workload's name in
#: the label named after its kind (kube_deployment_* carry ``deployment``, kube_statefulset_*
#: ``statefulset``), both beside ``namespace``.
DEFAULT_TARGET_LABELS = TargetLabels((("Deployment", ("namespace", "deployment")),
                                      ("StatefulSet", ("namespace", "statefulset"))))


class TargetIndex:
    """Which of ``targets`` (N) a series names: a target's series are those whose labels of its
    kind (``TargetLabels.for_kind``) hold its namespace and name. The one matching rule of the
    live queries, the backtest, the warm start and the checks' history.

    A series naming two targets of different kinds (``deployment="a"`` and ``statefulset="b"``
    both, or one pair of labels shared by a Deployment and a StatefulSet of one name) is each
    one's, as if each kind were queried alone; one naming none (neither label) is no target's.
    """

    def __init__(self, targets, labels: TargetLabels):
        labels = TargetLabels.of(labels)
        pair_of = {kind: labels.for_kind(kind) for kind in {t.kind for t in targets}}
        by_pair: dict[tuple[str, str], dict[tuple[str, str], tuple[int, ...]]] = {}
        if len(set(pair_of.values())) == 1:  # one pair for all (built per query: 10,000 targets in ~1 ms)
            by_pair[next(iter(pair_of.values()))] = {(t.namespace, t.name): (i,) for i, t in enumerate(targets)}
        if sum(map(len, by_pair.values())) < len(targets):  # several pairs, or one workload listed twice
            by_pair.clear()
            for i, t in enumerate(targets):
                table = by_pair.setdefault(pair_of[t.kind], {})
                table[(t.namespace, t.name)] = table.get((t.namespace, t.name), ()) + (i,)
        self._pairs = list(by_pair.items())
        #: every label name the targets are matched by (a series with none of them is unlabelled)
        self.label_names = tuple(dict.fromkeys(x for pair in by_pair for x in pair))
        if len(self._pairs) == 1:  # one kind (or one pair for all): a single lookup, the common case
            (ns, name), table = self._pairs[0]
            get = table.get
            self.rows = lambda metric: get((metric.get(ns), metric.get(name)), ())

    def rows(self, metric: dict) -> tuple[int, ...]:
        """The rows of the targets the series with labels ``metric`` names; () for none."""
        out: tuple[int, ...] = ()
        for (ns, name), table in self._pairs:
            out += table.get((metric.get(ns), metric.get(name)), ())
        return out

    def unlabelled(self, metric: dict) -> bool:
        """Whether a series' labels hold none of the labels the targets are matched by."""
        return not any(label in metric for label in self.label_names)


@dataclass(frozen=True)
class TargetSelector:
    """The workloads of a policy: explicit ``names``, or every workload matching ``match_labels``."""

    kind: str
    namespace: str
    names: tuple[str, ...] = ()
    match_labels: tuple[tuple[str, str], ...] = ()
    # (key, operator, values): In, NotIn, Exists, DoesNotExist, as Kubernetes' matchExpressions
    match_expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()

    @property
    def by_name(self) -> bool:
        return bool(self.names)

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.match_labels)

    @property
    def label_selector(self) -> str:
        """Kubernetes ``labelSelector`` query syntax: ``app=web,tier in (front,edge),!legacy``."""
        terms = [f"{k}={v}" for k, v in self.match_labels]
        for key, operator, values in self.match_expressions:
            terms.append({"In": f"{key} in ({','.join(values)})", "NotIn": f"{key} notin ({','.join(values)})",
                          "Exists": key, "DoesNotExist": f"!{key}"}[operator])
        return ",".join(terms)

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether a workload with ``labels`` is selected by the labels and expressions (as the
        apiserver's labelSelector; an absent key is not In any set, and is NotIn every one)."""
        if any(labels.get(k) != v for k, v in self.match_labels):
            return False
        for key, operator, values in self.match_expressions:
            present = key in labels
            if (operator == "In" and not (present and labels[key] in values)
                    or operator == "NotIn" and present and labels[key] in values
                    or operator == "Exists" and not present or operator == "DoesNotExist" and present):
                return False
        return True

    def within(self, other: "TargetSelector") -> bool:
        """Whether every workload this label selector selects, ``other`` selects too (same kind
        and namespace; set-based requirements as Kubernetes reads them). Decided per key of
        ``other``'s requirements on the label states this selector allows (absent, or a value)."""
        if (self.kind, self.namespace) != (other.kind, other.namespace) or self.by_name or other.by_name:
            return False
        mine = _requirements(self)
        return self.selects_nothing or all(_states(mine.get(key, ())) <= _states(((op, values),))
                                           for key, op, values in _requirements_list(other))

    @property
    def selects_nothing(self) -> bool:
        """Whether the label requirements contradict each other (``app In (x)`` and ``app In (y)``):
        no workload can meet them."""
        return any(_states(reqs).empty for reqs in _requirements(self).values())

    def refs(self) -> tuple[TargetRef, ...]:
        """The named targets; empty for a label selector (resolved against the cluster)."""
        return tuple(TargetRef(namespace=self.namespace, name=n, kind=self.kind) for n in self.names)

    def describe(self) -> str:
        """``2 targets`` or ``selector app=web``."""
        if self.by_name:
            return f"{len(self.names)} target{'s' if len(self.names) != 1 else ''}"
        return f"selector {self.label_selector}"


def _requirements_list(selector: TargetSelector) -> list[tuple[str, str, tuple[str, ...]]]:
    """Every requirement, a matchLabels pair as ``key In (value)``."""
    return [(k, "In", (v,)) for k, v in selector.match_labels] + list(selector.match_expressions)


def _requirements(selector: TargetSelector) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    """Key -> its (operator, values) requirements."""
    out: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for key, operator, values in _requirements_list(selector):
        out.setdefault(key, []).append((operator, values))
    return out


@dataclass(frozen=True)
class _LabelStates:
    """The states of one label some requirements allow: absent (``absent``), and the values
    ``values`` (finite) or every value but ``values`` (``cofinite``)."""

    absent: bool
    values: frozenset
    cofinite: bool

    @property
    def empty(self) -> bool:
        return not self.absent and not self.cofinite and not self.values

    def __le__(self, other: "_LabelStates") -> bool:
        if self.absent and not other.absent:
            return False
        if not self.cofinite:
            return self.values.isdisjoint(other.values) if other.cofinite else self.values <= other.values
        return other.cofinite and other.values <= self.values


def _states(requirements) -> _LabelStates:
    """What a conjunction of one key's (operator, values) requirements allows."""
    absent, values, cofinite = True, frozenset(), True  # no requirement: anything
    for operator, vals in requirements:
        vals = frozenset(vals)
        if operator in ("In", "Exists"):
            absent = False
        if operator == "In":
            values, cofinite = (vals - values, False) if cofinite else (values & vals, False)
        elif operator == "NotIn":
            values = values | vals if cofinite else values - vals
        elif operator == "DoesNotExist":
            values, cofinite = frozenset(), False
    return _LabelStates(absent, values, cofinite)


@dataclass(frozen=True)
class PodStatus:
    """One pod as the controller sees it. Times are epoch seconds (None: not known)."""

    name: str
    phase: str = "Running"
    ready: bool | None = True
    deleted: bool = False
    start_time: float | None = None
    ready_transition_time: float | None = None
    restarts: int = 0
    revision: str = ""
    created_time: float | None = None  # metadata.creationTimestamp (start_time is status.startTime)
    # a container's waiting reason (CrashLoopBackOff: restarting after a crash, in back-off); "" when
    # its containers run (a running pod that is not Ready, e.g. failing its readiness probe, has none)
    waiting: str = ""
    # metadata.uid ("" when the source has none): a pod recreated under its old name (a
    # StatefulSet's) is a new object with a new uid, the one identity its name is not
    uid: str = ""


@dataclass(frozen=True)
class TargetStatus:
    """What the cluster says about one workload when observed. Times are epoch seconds.

    It carries no observation time (an ``observed_at`` field was removed: no controller code read
    it, and a time that changes every read made every status a new object): a source may hand out
    the same object again while the workload has not changed (the simulated cluster does), and a
    reader may keep what it made of it by identity (``StatusColumns``)."""

    ref: TargetRef
    spec_replicas: int
    status_replicas: int
    ready_replicas: int
    revision: str = ""
    rollout_in_progress: bool = False
    revisions: tuple[str, ...] = ()
    pods: tuple[PodStatus, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()  # the workload's metadata annotations
    paused: bool = False  # spec.paused (Deployments): its rollout makes no progress
    # who last set spec.replicas, from metadata.managedFields: the field manager owning f:spec.f:replicas
    # ('' when the source does not say) and when its entry last changed (epoch s; None: not known)
    replicas_manager: str = ""
    replicas_set_at: float | None = None
    replicas_by_scale: bool = False  # that entry is a write through the scale subresource (kubectl scale)
    replicas_alone: bool = False  # that entry owns spec.replicas and nothing else: its time is when they were set
    replicas_applied: bool = False  # that entry is a server-side apply (operation Apply: a manifest)
    # that entry owns fields of the pod template too: its writer could have changed the template with
    # the replicas (a release); True when not known
    replicas_template: bool = True
    # when the current revision's rollout completed (epoch s; Deployments: the Progressing condition's
    # lastUpdateTime once it says NewReplicaSetAvailable), never earlier than the truth; None while a
    # rollout is in progress or when the source does not say
    rollout_completed_at: float | None = None
    # how many old ReplicaSets the Deployment keeps (spec.revisionHistoryLimit; 0: a rollback has
    # nowhere to go); None for other kinds or when the source does not say
    revision_history_limit: int | None = None
    # a StatefulSet's spec.updateStrategy.rollingUpdate.partition (a canary's: the ordinals below it
    # keep the old revision); 0 for none and for other kinds
    partition: int = 0
    # an OrderedReady StatefulSet (spec.podManagementPolicy's default): its controller creates a
    # scale-up's pods one at a time, each once every lower ordinal is Ready, and removes a scale-down's
    # highest ordinal first; False for a Parallel one and for other kinds
    ordered: bool = False
    # a StatefulSet's spec.ordinals.start: its pods are numbered from it (0 for none and other kinds)
    ordinal_start: int = 0


@direct_init  # a cycle makes one per target it scales
@dataclass(frozen=True)
class Action:
    """A change to make on one target, carrying the reason it was decided."""

    kind: ActionKind
    target: TargetRef
    reason: str
    replicas: int | None = None
    from_replicas: int | None = None
    pod: str | None = None
    revision: str | None = None
    policy: str = ""
    fast: bool = False  # ROLLBACK of a release caught during its rollout: stop it at once (see SimCluster.rollback)
    resume: bool = False  # ROLLBACK of a Deployment this controller paused: the same write sets spec.paused false


def first_by_direction(from_replicas: np.ndarray, replicas: np.ndarray) -> tuple[int, int, int]:
    """The position of the first of the scales ((K,) counts before and after) that goes down,
    stays (a fractional desired count truncated to the current one), goes up; -1 where none
    goes that way."""
    direction = np.sign(np.asarray(replicas, np.int64) - np.asarray(from_replicas, np.int64)) + 1
    down, same, up = (int(np.argmax(direction == d)) if (direction == d).any() else -1 for d in range(3))
    return down, same, up


class ScaleActions(Sequence):
    """A cycle's SCALE actions as arrays, all by one ``policy``: ``scales`` (4, K) int64, one
    column per scaled target, its rows ``rows`` (the targets' rows in ``targets``, the cycle's
    list), ``replicas`` and ``from_replicas`` (the counts set and replaced) and ``codes`` (the
    reasons, REASON_CODES); one array, so that a reader takes all four as lists in one call.
    A Sequence of Action: the objects are made on first read (a live adapter, explain, a failed
    action's record) and kept, so that every read sees the same ones; a simulation carries the
    arrays through its cluster port and its action log without making them."""

    __slots__ = ("targets", "scales", "policy", "_first", "_actions")

    def __init__(self, targets: Sequence[TargetRef], scales: np.ndarray, policy: str = "",
                 first: tuple[int, int, int] | None = None):
        self.targets, self.scales, self.policy, self._first = targets, scales, policy, first
        self._actions: list[Action] | None = None

    @classmethod
    def of(cls, targets: Sequence[TargetRef], rows, replicas, from_replicas, codes, policy: str = "") -> "ScaleActions":
        """From the four (K,) sequences."""
        return cls(targets, np.array([rows, replicas, from_replicas, codes], dtype=np.int64).reshape(4, -1), policy)

    rows = property(lambda self: self.scales[0], doc="(K,) int64 the scaled targets' rows in ``targets``")
    replicas = property(lambda self: self.scales[1], doc="(K,) int64 the counts set")
    from_replicas = property(lambda self: self.scales[2], doc="(K,) int64 the counts replaced")
    codes = property(lambda self: self.scales[3], doc="(K,) int64 the reason codes (REASON_CODES)")

    @property
    def first(self) -> tuple[int, int, int]:
        """The position of the first scale down, to the same count, up; -1 where none
        (first_by_direction; given by the maker, or worked out once)."""
        if self._first is None:
            self._first = first_by_direction(self.from_replicas, self.replicas)
        return self._first

    @property
    def actions(self) -> list[Action]:
        """The Action of each entry, in order (made once)."""
        if self._actions is None:
            targets, reasons, scale, policy = self.targets, REASON_CODES, ActionKind.SCALE, self.policy
            self._actions = [Action(scale, targets[i], reasons[c], n, f, None, None, policy)
                             for i, n, f, c in zip(*self.scales.tolist())]
        return self._actions

    def counts(self) -> dict[TargetRef, int]:
        """{target: the count its scale sets} (without making the actions)."""
        targets = self.targets
        rows, replicas = self.scales[:2].tolist()
        return {targets[i]: n for i, n in zip(rows, replicas)}

    def __len__(self) -> int:
        return self.scales.shape[1]

    def __getitem__(self, k):
        return self.actions[k]

    def __iter__(self):
        return iter(self.actions)

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same actions (a list of them, as the cycle kept before)."""
        if not isinstance(other, (list, tuple, ScaleActions)):
            return NotImplemented
        return self.actions == list(other)

    __hash__ = None  # type: ignore[assignment]  (mutable-looking: compared by content, as a list)

    def __repr__(self) -> str:
        return f"ScaleActions({self.actions!r})"

    def __reduce__(self):
        return ScaleActions, (self.targets, self.scales, self.policy, self._first)


@dataclass(frozen=True)
class DecisionRecord:
    """Everything the core computed for one target in one cycle: why each number.

    Values are per metric, in the order of the policy's metrics. Times are UTC epoch seconds.
    """

    policy: str
    target: str
    at: float
    current: int
    ready: int
    metrics: tuple[str, ...]
    raw: tuple[float | None, ...]
    smoothed: tuple[float | None, ...]
    proposals: tuple[int | None, ...]
    missing: tuple[bool, ...]
    combined: int
    stabilized: int
    limited: int
    desired: int
    reason: str
    action: str | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "policy": self.policy, "target": self.target, "at": self.at,
            "current": self.current, "ready": self.ready,
            "metrics": {
                name: {"raw": r, "smoothed": s, "proposal": p, "missing": m}
                for name, r, s, p, m in zip(self.metrics, self.raw, self.smoothed, self.proposals, self.missing)
            },
            "combined": self.combined, "stabilized": self.stabilized, "limited": self.limited,
            "desired": self.desired, "reason": self.reason, "action": self.action, **self.extra,
        }


def finite_number(x: object) -> bool:
    """A finite number, not a bool; an integer too large for a float (JSON's 10**400) is not:
    for values read back from JSON files (records, sweep cells) before arithmetic on them."""
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:
        return False


def jsonable(x: Any) -> Any:
    """``x`` with numpy scalars and arrays turned into Python values and NaN / inf into None
    (JSON has neither), for records, logs and result files."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


def json_text(x: Any) -> str:
    """``x`` as one compact JSON text, as records and result lines are written (:func:`jsonable`:
    NaN and inf as null)."""
    return json.dumps(jsonable(x), separators=(",", ":"))
