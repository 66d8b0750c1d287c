"""Which policy governs a workload that several policies select at run time.

`setpoint validate` refuses two policies naming the same workload, but a label selector is
resolved only at run time: a named policy next to a namespace-wide selector policy (or the
bundled policies, which all select ``setpoint.io/autoscale=true``) both matched one Deployment
and scaled it against each other, every cycle, silently. Here the first policy to select a
workload keeps it while it goes on selecting it (its claim is renewed every cycle and lapses
after ``LAPSE_INTERVALS`` of its intervals without one: the policy was removed, or stopped
selecting it); the others skip it and say so. The incumbent keeps it rather than, say, the
first name in sort order: adding a policy must not take workloads from one that runs.

A claim is per role: ``scale`` (a policy with a scaling section) and ``heal`` (one with a health
section). A workload has at most one scaler and one healer, so a health-only policy next to a
scaling policy without health checks governs it beside it (what `setpoint validate` accepts: the
scaling policy sets its count, the other only heals it); before, whichever of the two cycled first
took the workload and the other left it alone, so adding a probe check stopped its scaling. A
policy governs a workload only when every role it has is free there (or its own): it never
governs half of one.
"""

from __future__ import annotations

import threading
from typing import Sequence

from controller.model import TargetRef

#: A claim not renewed for this many intervals of its policy lapses.
LAPSE_INTERVALS = 3.0


#: The roles a policy claims a workload for: setting its replica count, healing its pods.
SCALE, HEAL = "scale", "heal"


class TargetClaims:
    """The governing policy of each claimed workload, per role. Thread-safe (cycles run in a pool)."""

    def __init__(self) -> None:
        # (target, role) -> (policy, claim lapses at, s)
        self._owner: dict[tuple[TargetRef, str], tuple[str, float]] = {}
        self._claimed: dict[str, set[tuple[TargetRef, str]]] = {}  # policy -> the (target, role)s it holds
        self._lock = threading.Lock()

    def claim(self, policy: str, targets: Sequence[TargetRef], now: float, interval_s: float,
              roles: Sequence[str] = (SCALE,)) -> tuple[list[TargetRef], dict[TargetRef, str]]:
        """``policy``, with ``roles``, selects ``targets`` at ``now`` (epoch seconds): (the ones it
        governs, in order; {target: the policy holding one of its roles there} of the others)."""
        lapse = now + LAPSE_INTERVALS * interval_s
        governed, taken = [], {}
        with self._lock:
            selected = {(t, role) for t in targets for role in roles}
            for gone in self._claimed.get(policy, set()) - selected:  # no longer selected: free
                if self._owner.get(gone, ("",))[0] == policy:
                    del self._owner[gone]
            held = set()
            for target in targets:
                others = [owner[0] for owner in (self._owner.get((target, role)) for role in roles)
                          if owner is not None and owner[0] != policy and owner[1] > now]
                if others:
                    taken[target] = others[0]
                    continue
                for role in roles:
                    self._owner[(target, role)] = (policy, lapse)
                    held.add((target, role))
                governed.append(target)
            for lost in self._claimed.get(policy, set()) - held:  # selected, yet now another's
                if self._owner.get(lost, ("",))[0] == policy:
                    del self._owner[lost]
            self._claimed[policy] = held
        return governed, taken

    def roles_of(self, policy: str, target: TargetRef) -> list[str]:
        """The roles ``policy`` holds on ``target`` (SCALE, HEAL; none: it holds nothing there)."""
        with self._lock:
            return [role for (t, role) in self._claimed.get(policy, set()) if t == target]

    def forget(self, policy: str) -> None:
        """Free every workload ``policy`` governs (a reload removed or changed it)."""
        with self._lock:
            for held in self._claimed.pop(policy, set()):
                if self._owner.get(held, ("",))[0] == policy:
                    del self._owner[held]
