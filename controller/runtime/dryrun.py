"""Dry-run: a Cluster wrapper that reads through and applies nothing.

It is a wrapper, not a flag inside the logic: the reconciler decides exactly as it would,
and every action it would have applied is recorded here (and logged) instead.
"""

from __future__ import annotations

import logging
from typing import Sequence

from controller.model import Action, TargetRef, TargetSelector
from controller.ports import Cluster, ClusterView, FieldManaged, HpaLister, HpaRef, StateDeletion, StopsRequests, state_name

log = logging.getLogger("setpoint.dryrun")


class DryRunCluster:
    """Reads through to ``inner``; ``apply`` records the action (the last ``keep``) and logs it."""

    mode = "dry-run"  # the word in logs, and the log record's flag (dry_run / shadow)
    # the service logs each action a rehearsal would take at INFO, with its counts and reason
    # ("would scale shop/web: 3 -> 5 (ScaleUp)"): this line is the port's own trace, one level down
    log_level = logging.DEBUG

    def __init__(self, inner: Cluster, keep: int = 10_000):
        self.inner = inner
        self.would_apply: list[Action] = []
        self.keep = keep
        if isinstance(inner, FieldManaged):  # the capability of what it reads (external changes are seen)
            self.field_manager = inner.field_manager

    def resolve(self, selector: TargetSelector) -> list[TargetRef]:
        return self.inner.resolve(selector)

    def observe(self, targets: Sequence[TargetRef], with_pods: bool | None = None) -> ClusterView:
        return self.inner.observe(targets, with_pods=with_pods)

    def stop_requests(self) -> None:
        if isinstance(self.inner, StopsRequests):
            self.inner.stop_requests()

    def hpa_targets(self, namespace: str) -> dict[TargetRef, HpaRef]:
        """The inner cluster's (a read); none when it cannot list HPAs (a simulated cluster)."""
        return self.inner.hpa_targets(namespace) if isinstance(self.inner, HpaLister) else {}

    def apply(self, action: Action) -> None:
        self.would_apply.append(action)
        del self.would_apply[:-self.keep]
        log.log(self.log_level, "%s: would %s %s", self.mode, action.kind.word, action.target,
                extra={"policy": action.policy, "target": str(action.target), "action": action.kind.word,
                       "replicas": action.replicas, "from_replicas": action.from_replicas, "reason": action.reason,
                       self.mode.replace("-", "_"): True})


class DryRunStateStore:
    """Dry-run of a StateStore: reads through (a dry run sees the holds and budgets the live
    controller left), writes and deletes nothing; the last payload it would have written, and
    what it would have deleted, are kept."""

    def __init__(self, inner):
        self.inner = inner
        self.would_save: dict[str, dict] = {}
        self.would_delete: list[str] = []

    def load(self, policy: str, part: str = ""):
        return self.inner.load(policy, part)

    def save(self, policy: str, payload: dict, part: str = "") -> None:
        self.would_save[state_name(policy, part)] = payload
        log.debug("dry-run: would save the durable state of %s", policy, extra={"policy": policy, "dry_run": True})

    def foreign(self, policy: str, part: str = "") -> bool:
        return self.inner.foreign(policy, part)

    def delete(self, policy: str, part: str = "") -> StateDeletion:
        self.would_delete.append(state_name(policy, part))
        del self.would_delete[:-1000]
        log.info("dry-run: would delete the durable state %s", state_name(policy, part),
                 extra={"policy": policy, "dry_run": True})
        return StateDeletion.REHEARSED
