"""Workloads a HorizontalPodAutoscaler also scales: a scaling policy leaves them alone.

Adopting Setpoint means replacing an HPA, and the natural mistake is to start `setpoint run`
before the HPA is deleted (or beside a KEDA ScaledObject, which scales through an HPA of its
own): the two write spec.replicas against each other every cycle, and nothing says so but a
flapping graph. So each cycle of a scaling policy lists the HPAs of its namespace (one request)
and leaves alone every selected workload one of them targets (``spec.scaleTargetRef``), saying so
once per workload: a warning, an Event on it, and ``setpoint_hpa_scaled_targets``. When the HPA is
deleted the policy takes the workload over at its next cycle, from the count the HPA left, warm:
its windows and rate limits rebuilt from Prometheus, HPA's own scale events included (the whole
policy's warm start when it governed nothing yet, as an imported policy naming one workload; else
the workload's rows alone, the other targets' state untouched: Reconciler._warm_joiners). Cold
(no scale-down for one stabilization window) only without that history, or without --warm-start.

Under a rehearsal (``--dry-run``, ``--shadow``) nothing is written, so the workload keeps being
decided for (``--shadow`` exists to compare with the HPA); the message says what a real run would
do. A health-only policy never fights an HPA and is not checked. When the HPAs cannot be listed
(RBAC without ``list`` on horizontalpodautoscalers, an API server without autoscaling/v2, an
outage) the last list read stands, and the reason is logged once; while it fails, a workload
whose count an autoscaler changed after this policy wrote it (ExternalScaleWatch.autoscaled: an
HPA the list cannot show) is left alone too, until a list succeeds.
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

from controller.errors import ActuationError
from controller.model import TargetRef
from controller.ports import HpaLister, HpaRef

log = logging.getLogger("setpoint.runtime")


class HpaGuard:
    """Per reconciler: which selected workloads an HPA scales, and what was said about them."""

    def __init__(self, lister: HpaLister, policy: str, rehearsal: bool):
        self.lister, self.policy, self.rehearsal = lister, policy, rehearsal
        self._known: dict[TargetRef, HpaRef] = {}  # the last list read (kept while the list fails)
        self._said: dict[TargetRef, HpaRef] = {}  # workload -> HPA, as last said
        self._failure_said: str | None = None
        self._unlisted: dict[TargetRef, HpaRef] = {}  # seen scaled by an HPA the failing list does not show
        self.scaled_by: dict[TargetRef, HpaRef] = {}  # selected workloads an HPA scales (last cycle) -> the HPA

    @property
    def scaled(self) -> int:
        """How many selected workloads an HPA scales (last cycle)."""
        return len(self.scaled_by)

    def filter(self, targets: Sequence[TargetRef], namespace: str,
               event: Callable[[TargetRef, str, str], None]) -> list[TargetRef]:
        """``targets`` without the ones an HPA scales (all of them under a rehearsal); says what
        changed since the last cycle (``event(target, reason, message)``: an Event on the workload)."""
        self._read(namespace)
        known = {**self._unlisted, **self._known}
        scaled = self.scaled_by = {t: known[t] for t in targets if t in known}
        for target, hpa in scaled.items():
            if self._said.get(target) != hpa:
                message = self._message(target, hpa)
                log.warning(message, extra={"policy": self.policy, "target": str(target), "hpa": hpa.name})
                event(target, "ScaledByHPA", message)
        for target in self._said.keys() - scaled.keys():
            if target in targets:
                log.info("the HorizontalPodAutoscaler of %s %s is gone: policy %s scales it from now on",
                         target.kind, target.key, self.policy, extra={"policy": self.policy, "target": str(target)})
        self._said = scaled
        return list(targets) if self.rehearsal else [t for t in targets if t not in scaled]

    def reverted(self, autoscaled: dict[TargetRef, str]) -> None:
        """``autoscaled`` {workload: field manager}: an autoscaler (kube-controller-manager, for an
        HPA) changed the replicas this policy had just written. While the HPAs cannot be listed
        (RBAC without the rule, from the first cycle on) nothing else shows that HPA, and the two
        would write against each other every 15 s, its writes taken as a take-over's: the workload
        is left alone from the next cycle until a list succeeds (which then says whether it still is)."""
        if self._failure_said is None:
            return  # the list works: a write in between (an HPA created since) is the next list's to show
        for target, manager in autoscaled.items():
            self._unlisted.setdefault(target, HpaRef("", writer=manager))

    def _read(self, namespace: str) -> None:
        try:
            self._known = self.lister.hpa_targets(namespace)
        except ActuationError as exc:
            if self._failure_said != str(exc):
                log.warning("policy %s cannot check for HorizontalPodAutoscalers in %s (%s): the workloads they "
                            "scale cannot be told apart%s; grant list on horizontalpodautoscalers.autoscaling (as "
                            "deploy/ does)", self.policy, namespace, exc,
                            f", {len(self._known)} known from before" if self._known else "",
                            extra={"policy": self.policy, "error": str(exc)})
                self._failure_said = str(exc)
            return
        if self._failure_said is not None:
            log.info("policy %s can check for HorizontalPodAutoscalers in %s again", self.policy, namespace,
                     extra={"policy": self.policy})
            self._failure_said = None
            self._unlisted = {}  # the list says which of them an HPA scales

    def _message(self, target: TargetRef, hpa: HpaRef) -> str:
        if not hpa.name:  # known from its writes alone (reverted)
            return (f"{hpa.writer} (a HorizontalPodAutoscaler's writer) changed spec.replicas of {target.kind} "
                    f"{target.key} after policy {self.policy} wrote it, and the HPAs of {target.namespace} cannot "
                    f"be listed ({self._failure_said}): policy {self.policy} leaves it alone until they can (two "
                    f"autoscalers would scale it against each other); grant list on "
                    f"horizontalpodautoscalers.autoscaling (as deploy/ does), or delete the HPA")
        what = f"HorizontalPodAutoscaler {target.namespace}/{hpa.name} also scales {target.kind} {target.key}"
        if hpa.owner_kind:
            what += f" (the HPA of {hpa.owner_kind} {hpa.owner_name})"
        if self.rehearsal:
            return (f"{what}: a real run of policy {self.policy} would leave it alone while the HPA exists; this "
                    f"rehearsal (--dry-run or --shadow) goes on deciding for it")
        return (f"{what}: policy {self.policy} leaves it alone while the HPA exists (two autoscalers would scale it "
                f"against each other); to move it to Setpoint, compare the two with setpoint run --shadow, then "
                f"{_hand_over(target, hpa)}")


def _hand_over(target: TargetRef, hpa: HpaRef) -> str:
    """What to delete to hand ``target`` over: the HPA, or the object that owns it (KEDA's
    ScaledObject re-creates an HPA of its own deleted alone)."""
    if not hpa.owner_kind:
        return "delete the HPA"
    return (f"delete the {hpa.owner_kind} (kubectl delete {hpa.owner_kind.lower()} {hpa.owner_name} -n "
            f"{target.namespace}), not the HPA: its owner re-creates it")
