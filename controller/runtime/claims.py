"""Which policy governs a workload that several policies select at run time.

`setpoint validate` refuses two policies naming the same workload, but a label selector is
resolved only at run time: a named policy next to a namespace-wide selector policy (or the
bundled policies, which all select ``setpoint.io/autoscale=true``) both matched one Deployment
and scaled it against each other, every cycle, silently. Here the first policy to select a
workload keeps it while it goes on selecting it (its claim is renewed every cycle and lapses
after ``LAPSE_INTERVALS`` of its intervals without one: the policy was removed, or stopped
selecting it); the others skip it and say so. The incumbent keeps it rather than, say, the
first name in sort order: adding a policy must not take workloads from one that runs.
"""

from __future__ import annotations

import threading
from typing import Sequence

from controller.model import TargetRef

#: A claim not renewed for this many intervals of its policy lapses.
LAPSE_INTERVALS = 3.0


class TargetClaims:
    """The governing policy of each claimed workload. Thread-safe (cycles run in a pool)."""

    def __init__(self) -> None:
        self._owner: dict[TargetRef, tuple[str, float]] = {}  # target -> (policy, claim lapses at, s)
        self._claimed: dict[str, set[TargetRef]] = {}  # policy -> the targets it governs
        self._lock = threading.Lock()

    def claim(self, policy: str, targets: Sequence[TargetRef], now: float,
              interval_s: float) -> tuple[list[TargetRef], dict[TargetRef, str]]:
        """``policy`` selects ``targets`` at ``now`` (epoch seconds): (the ones it governs, in
        order; {target: governing policy} of the others)."""
        lapse = now + LAPSE_INTERVALS * interval_s
        governed, taken = [], {}
        with self._lock:
            for gone in self._claimed.get(policy, set()) - set(targets):  # no longer selected: free
                if self._owner.get(gone, ("",))[0] == policy:
                    del self._owner[gone]
            for target in targets:
                owner = self._owner.get(target)
                if owner is None or owner[0] == policy or owner[1] <= now:
                    self._owner[target] = (policy, lapse)
                    governed.append(target)
                else:
                    taken[target] = owner[0]
            self._claimed[policy] = set(governed)
        return governed, taken

    def forget(self, policy: str) -> None:
        """Free every workload ``policy`` governs (a reload removed or changed it)."""
        with self._lock:
            for target in self._claimed.pop(policy, set()):
                if self._owner.get(target, ("",))[0] == policy:
                    del self._owner[target]
