"""Load-sensitive readiness probes: the overload "death spiral" (:class:`~simulators.workload.ReadinessProbe`).

A service with a ``readiness_probe`` is probed at ``start + k * period`` (k = 1, 2, ...), each
probe evaluated at the first tick at or after its time, at most once per tick (a tick longer
than the period skips the probes in between). A probe FAILS when the service has Ready pods
and was saturated in the last tick (``dropped_rps > 0`` or ``queue_length > 0``) and SUCCEEDS
otherwise. After ``failure_threshold`` consecutive failures the service goes dark: its
``_probe_down`` flag is set, every Ready pod turns running-not-Ready (no restart) and pods
through their start-up are held, exactly as under a readiness outage (the same hold,
``_readiness_held`` = outage count > 0 OR probe flag, see :mod:`.fault_injection`). Dark, the
service has no ready capacity and gets no traffic, so its probes succeed; after
``success_threshold`` consecutive successes the flag clears and the held pods are Ready at once
(unless a readiness outage still holds them); both counts restart at each transition.

Aggregated on purpose: a service's pods share its load evenly, so they fail and recover together
(real pods fail one by one and the load shifts onto the others, which fail next: the same spiral).

Runs in ``step`` after the fault events and pod lifecycles, before rollouts and the signals. A
cluster without probes costs one bool check per tick.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from simulators.simcluster.slots import INF
from simulators.workload import ServiceConfig


def next_probe_index(now: float, start_s: float, period_s, index):
    """k of the first probe time ``start + k * period`` after ``now``, and after ``index``
    (the reference engine evaluates the same formula on floats)."""
    return np.maximum(index + 1, np.floor((now - start_s) / period_s) + 1)


class ReadinessProbes:
    """SimCluster's readiness probes (a mixin of :class:`~simulators.simcluster.cluster.SimCluster`)."""

    def _init_probes(self, services: Sequence[ServiceConfig]) -> None:
        S = self.n_services
        probes = [s.readiness_probe for s in services]
        self._probe_down = np.zeros(S, dtype=bool)
        self._any_probe = any(p is not None for p in probes)  # the default path skips probes entirely
        self._probe_next_min_s = INF
        if not self._any_probe:
            return
        self._probe_start_s = self.config.start_s
        self._probe_period_s = np.array([p.period_s if p else INF for p in probes])
        self._probe_failure_threshold = np.array([p.failure_threshold if p else 0 for p in probes], dtype=np.int64)
        self._probe_success_threshold = np.array([p.success_threshold if p else 0 for p in probes], dtype=np.int64)
        self._probe_index = np.where(np.isfinite(self._probe_period_s), 1.0, INF)  # k of the next probe
        self._probe_next_s = self._probe_start_s + self._probe_index * self._probe_period_s
        self._probe_next_min_s = float(self._probe_next_s.min())
        self._probe_failures = np.zeros(S, dtype=np.int64)
        self._probe_successes = np.zeros(S, dtype=np.int64)

    def _run_probes(self, now: float) -> None:
        """Evaluate the probes due at ``now``; services crossing a threshold go dark or come back."""
        due = np.flatnonzero(self._probe_next_s <= now)
        period = self._probe_period_s[due]
        self._probe_index[due] = next_probe_index(now, self._probe_start_s, period, self._probe_index[due])
        self._probe_next_s[due] = self._probe_start_s + self._probe_index[due] * period
        self._probe_next_min_s = float(self._probe_next_s.min())
        last = self._last_tick
        if last is None:
            saturated = np.zeros(due.size, dtype=bool)
        else:
            saturated = (last.dropped_rps[due] > 0) | (last.queue_length[due] > 0)
        down = self._probe_down[due]
        fail = saturated & (self._n_ready[due] > 0) & ~down
        failures = np.where(fail, self._probe_failures[due] + 1, 0)
        successes = np.where(fail, 0, self._probe_successes[due] + 1)
        dark = ~down & (failures >= self._probe_failure_threshold[due])
        back = down & (successes >= self._probe_success_threshold[due])
        flip = dark | back
        self._probe_failures[due] = np.where(flip, 0, failures)
        self._probe_successes[due] = np.where(flip, 0, successes)
        if not flip.any():
            return
        self._probe_down[due[dark]] = True
        self._probe_down[due[back]] = False
        self._update_readiness_hold()
        if dark.any():
            self._hold_ready_pods(due[dark], now)
        if back.any():
            rows = due[back]
            self._release_held_pods(rows[~self._readiness_held[rows]], now)

