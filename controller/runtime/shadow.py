"""Shadow mode (``setpoint run --shadow``): decide live beside the incumbent autoscaler, act never.

A Cluster wrapper like dry-run: reads go through, ``apply`` records what would have been done
and writes nothing (no scale, no Event, no annotation: the wrapper has no ``record_event``).
Each cycle the shadow decision is compared with the replicas the incumbent has set (the spec
replicas observed that cycle), and exported:

- ``setpoint_shadow_desired_replicas{policy,target}``: what Setpoint would set now.
- ``setpoint_shadow_incumbent_replicas{policy,target}``: what the incumbent has set.
- ``setpoint_shadow_decisions_total{policy,target,outcome}``: cycles where Setpoint would set
  the same (``agree``), more (``above``) or fewer (``below``) replicas.
- ``setpoint_shadow_agreement_ratio{policy,target}``: agree / all cycles so far.
- ``setpoint_shadow_replica_difference_sum{policy,target}``: the sum over cycles of
  |desired - incumbent| (divide by the decisions for the mean difference).
"""

from __future__ import annotations

import logging
from collections import defaultdict

import numpy as np
from prometheus_client import Counter, Gauge

from controller.runtime.dryrun import DryRunCluster
from controller.runtime.reconciler import CycleResult
from controller.runtime.telemetry import Telemetry



class ShadowCluster(DryRunCluster):
    """Reads through to ``inner``; ``apply`` records and never writes (logged at debug: in shadow
    mode every cycle would log, and the shadow metrics carry the comparison)."""

    mode = "shadow"
    log_level = logging.DEBUG


class ShadowTelemetry(Telemetry):
    """Telemetry plus the shadow comparison with the incumbent."""

    def __init__(self, registry=None):
        super().__init__(registry)
        r = self.registry
        self.shadow_desired = Gauge("setpoint_shadow_desired_replicas", "Replicas Setpoint would set now (shadow mode).",
                                    ["policy", "target"], registry=r)
        self.shadow_incumbent = Gauge("setpoint_shadow_incumbent_replicas",
                                      "Replicas the incumbent autoscaler has set (shadow mode).", ["policy", "target"],
                                      registry=r)
        self.shadow_decisions = Counter("setpoint_shadow_decisions", "Shadow decisions compared with the incumbent: "
                                        "agree, above (Setpoint would set more) or below.",
                                        ["policy", "target", "outcome"], registry=r)
        self.shadow_agreement = Gauge("setpoint_shadow_agreement_ratio", "Share of shadow decisions equal to the "
                                      "incumbent's replicas.", ["policy", "target"], registry=r)
        self.shadow_difference = Counter("setpoint_shadow_replica_difference_sum",
                                         "Sum over shadow decisions of |desired - incumbent| replicas.",
                                         ["policy", "target"], registry=r)
        self._counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])  # agree, all

    def _forget_target(self, policy: str, target: str) -> None:
        """Drop the shadow series and agreement counts of a target the policy no longer selects (or
        whose workload is gone), with the base telemetry's: a shadow phase runs for weeks."""
        super()._forget_target(policy, target)
        self._counts.pop((policy, target), None)
        children = [(m, (policy, target)) for m in (self.shadow_desired, self.shadow_incumbent, self.shadow_agreement,
                                                    self.shadow_difference)]
        children += [(self.shadow_decisions, (policy, target, o)) for o in ("agree", "above", "below")]
        for metric, labels in children:
            try:
                metric.remove(*labels)
            except KeyError:  # never set for this target
                pass

    def observe_cycle(self, result: CycleResult) -> None:
        super().observe_cycle(result)
        d, view = result.decision, result.view
        if d is None or view is None:
            return
        for target, desired, incumbent, exists in zip(result.targets, d.desired.tolist(), view.spec.tolist(),
                                                      np.asarray(view.exists).tolist()):
            if not exists:
                continue
            key = (result.policy, target.key)
            outcome = "agree" if desired == incumbent else "above" if desired > incumbent else "below"
            self.shadow_desired.labels(*key).set(desired)
            self.shadow_incumbent.labels(*key).set(incumbent)
            self.shadow_decisions.labels(*key, outcome).inc()
            self.shadow_difference.labels(*key).inc(abs(desired - incumbent))
            counts = self._counts[key]
            counts[0] += outcome == "agree"
            counts[1] += 1
            self.shadow_agreement.labels(*key).set(counts[0] / counts[1])
