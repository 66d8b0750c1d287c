"""Builders shared by the health-core tests: checks, parameters, observations and a tiny world
that applies the chosen actions (restarted pods come back under new names, a rollback changes
the revision) so that sequences of cycles can be driven at fixed times."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from controller.core.health.heal import HealingDecision, HealthObservation, HealthState, heal
from controller.core.health.checks import PodTable
from controller.core.health.params import (Act, BudgetParams, CheckParams, Direction, HealthParams, Remedy, Scope)

T0 = 1_700_000_000.0


def check(name: str = "errors", scope: Scope = Scope.WORKLOAD, direction: Direction = Direction.ABOVE,
          unhealthy: float = 0.05, for_s: float = 30.0, recovered: float = 0.02, recovered_for_s: float = 30.0,
          action: Remedy = Remedy.ROLLBACK, **kw) -> CheckParams:
    return CheckParams(name, scope, direction, unhealthy, for_s, recovered, recovered_for_s, action, **kw)


def pod_check(name: str = "mem", action: Remedy = Remedy.RESTART_POD, for_s: float = 30.0,
              recovered_for_s: float = 0.0, **kw) -> CheckParams:
    """A pod-scope check: unhealthy above 0.9, recovered below 0.8."""
    return check(name, Scope.POD, Direction.ABOVE, 0.9, for_s, 0.8, recovered_for_s, action, **kw)


def params(*checks: CheckParams, **kw) -> HealthParams:
    kw.setdefault("budgets", BudgetParams(restarts_per_hour=6, rollbacks_per_day=2, max_unavailable_ratio=0.5))
    return HealthParams.of(tuple(checks), **kw)


@dataclass
class World:
    """Targets with named pods. ``bad`` pods report 1.0 on every pod-scope check, others 0.0;
    ``errors`` is each target's workload-check value (one column per workload check)."""

    p: HealthParams
    pods: list[list[str]]
    revision: list[str]
    errors: np.ndarray  # (N, Cw)
    bad: set[str] = field(default_factory=set)
    unready: set[str] = field(default_factory=set)
    rollout: np.ndarray | None = None
    revision_since: list[float] | None = None
    utilization: np.ndarray | None = None
    serial: dict = field(default_factory=dict)  # per target, so a target's names do not depend on others
    replace_bad: bool = False  # a restarted bad pod comes back bad
    listed: list[list[str]] | None = None  # per target, the revisions the cluster lists (None: unknown)

    @property
    def n(self) -> int:
        return len(self.pods)

    def observe(self) -> HealthObservation:
        c = len(self.p.checks)
        rows, keys, values, ready = [], [], [], []
        pod_cols = self.p.pod_columns
        for i, names in enumerate(self.pods):
            for name in names:
                v = np.full(c, np.nan)
                v[pod_cols] = 1.0 if name in self.bad else 0.0
                rows.append(i), keys.append(name), values.append(v), ready.append(name not in self.unready)
        table = PodTable.of(rows, keys, np.asarray(values).reshape(len(rows), c), ready=ready, checks=c)
        values = np.full((self.n, c), np.nan)
        values[:, self.p.workload_columns] = self.errors
        current = [len(x) for x in self.pods]
        ready_n = [sum(1 for x in names if x not in self.unready) for names in self.pods]
        return HealthObservation.of(current, ready_n, values, checks=c, revision=self.revision, pods=table,
                                    rollout=self.rollout, revision_since=self.revision_since,
                                    utilization=self.utilization, revisions=self.listed)

    def apply(self, d: HealingDecision) -> None:
        for i in range(self.n):
            act = Act(int(d.action[i]))
            if act is Act.RESTART_POD:
                for name in d.restart_pods(i):
                    self._replace(i, name)
            elif act is Act.ROLLING_RESTART:
                for name in list(self.pods[i]):
                    self._replace(i, name)
            elif act is Act.ROLLBACK:
                self.revision[i] = str(d.rollback_to[i])
                self.errors[i] = 0.0
                for name in list(self.pods[i]):
                    self._replace(i, name, healthy=True)
            elif act is Act.SCALE:
                want = int(d.replicas[i])
                while len(self.pods[i]) < want:
                    self.pods[i].append(self._name(i))
                del self.pods[i][want:]

    def _name(self, i: int) -> str:
        self.serial[i] = self.serial.get(i, 0) + 1
        return f"t{i}-new{self.serial[i]:04d}"

    def _replace(self, i: int, name: str, healthy: bool = False) -> None:
        new = self._name(i)
        k = self.pods[i].index(name)
        self.pods[i][k] = new
        if name in self.bad and self.replace_bad and not healthy:
            self.bad.add(new)
        self.bad.discard(name)
        self.unready.discard(name)


def world(p: HealthParams, pods_per_target=(4,), revision="1", errors=0.0, **kw) -> World:
    pods = [[f"t{i}-p{k}" for k in range(n)] for i, n in enumerate(pods_per_target)]
    n = len(pods)
    cw = p.workload_columns.size
    return World(p, pods, [revision] * n, np.full((n, cw), float(errors)), **kw)


def drive(w: World, state: HealthState | None, times, now0: float = T0, scaling=None, rearm=None,
          before=None) -> tuple[list[HealingDecision], HealthState]:
    """Run heal at now0 + t for each t, applying every decision to the world."""
    state = HealthState.empty(w.n, w.p) if state is None else state
    out = []
    for t in times:
        if before is not None:
            before(t, w)
        d = heal(w.p, w.observe(), state, now0 + t, scaling, rearm_rows=rearm(t) if rearm else None)
        w.apply(d)
        out.append(d)
        state = d.state
    return out, state
