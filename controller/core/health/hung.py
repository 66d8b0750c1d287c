"""Hung pods: not Ready for long while most of their peers are.

A pod that runs but is not Ready (a deadlocked worker, a readiness probe stuck on a local fault)
is cured by its restart. A pod not Ready because a dependency every pod checks is down is not:
then most pods of its workload are not Ready at once, and restarting them (pod by pod, or as a
rolling restart once "most pods fire" counts as systemic) only adds churn. A hung-pod check tells
the two apart per pod, from the pod list alone (no query):

    hung seconds = now - max(not Ready since, created + startup)   while
        the pod runs (not Pending, no container waiting to start again), is not Ready, and
        more than half of its peers (the other pods of its target on the same revision) are Ready;
    0 otherwise.

The check fires on a pod whose hung seconds exceed its ``notReadyFor``. A pod within its start-up
allowance is not hung; a pod alone on its revision (no peers) never is: with one pod, a hung
process and a dependency outage look the same. During a rollout the new revision's pods are
compared with the new revision's, the old with the old.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controller.core.health.checks import PodTable


def most_peers_ready(table: PodTable) -> np.ndarray:
    """(P,) bool: more than half of each pod's peers (the other pods of its target, ``row``, on its
    revision, ``new_revision``; one group per target when unknown) are Ready."""
    if table.size == 0:
        return np.zeros(0, bool)
    on_new = np.zeros(table.size, np.int64) if table.new_revision is None else table.new_revision.astype(np.int64)
    group = table.row * 2 + on_new
    size = np.bincount(group)
    ready = np.bincount(group, weights=table.ready.astype(np.float64))
    peers = size[group] - 1
    ready_peers = ready[group] - table.ready
    return 2 * ready_peers > peers  # strictly more than half; no peers: never


def not_ready_seconds(table: PodTable, first_seen: np.ndarray, startup_s: np.ndarray, now: float) -> np.ndarray:
    """(P, H) seconds each pod has been not Ready past its start-up for each of H hung checks, peers
    aside (0 where it is Ready or does not run). Arguments as ``hung_seconds``'."""
    startup_s = np.asarray(startup_s, np.float64).reshape(-1)
    p = table.size
    if p == 0 or startup_s.size == 0:
        return np.zeros((p, startup_s.size))
    first_seen = np.asarray(first_seen, np.float64).reshape(p)
    born = first_seen if table.born is None else np.where(np.isfinite(table.born), table.born, first_seen)
    since = born if table.not_ready_since is None else np.where(
        np.isfinite(table.not_ready_since), table.not_ready_since, born)
    running = np.ones(p, bool) if table.running is None else table.running
    start = np.maximum(since[:, None], born[:, None] + startup_s[None, :])
    return np.where((~table.ready & running)[:, None], np.maximum(now - start, 0.0), 0.0)


def hung_seconds(table: PodTable, first_seen: np.ndarray, startup_s: np.ndarray, now: float) -> np.ndarray:
    """(P, H) seconds each pod has been hung for each of H hung checks, 0 where it is not.

    table: the pods at ``now`` (epoch s); first_seen: (P,) epoch s the controller first saw each
    pod (stands in for an unknown creation or Ready transition time); startup_s: (H,) each check's
    start-up allowance, s.
    """
    return evaluate_hung(table, first_seen, startup_s, np.full(np.size(startup_s), np.inf), now, 0).seconds


def pods_starting(ready: np.ndarray, stuck: np.ndarray, current: np.ndarray, hung: np.ndarray | None = None
                  ) -> np.ndarray:
    """(N,) bool: fewer pods Ready than ``current`` (spec replicas) beyond those not Ready for a
    cause other than load, the larger of ``stuck`` (crash-looping, withheld: the shell's count) and
    ``hung`` (judged hung by a hung-pod check; None: none): pods still starting, the overload
    signal's part that a restart would not cure. All (N,)."""
    if hung is not None:
        stuck = np.maximum(stuck, hung)
    return ready + stuck < current


@dataclass(frozen=True)
class HungPods:
    """One evaluation of H hung checks over P pods of N targets (``evaluate_hung``).

    seconds: (P, H) hung seconds (the checks' values); past: (N, H) pods not Ready past their
    start-up for longer than each check's notReadyFor, peers aside; held_back: (N, H) of those, the
    pods the peer rule holds back (most of their revision's pods are not Ready: an outage, not a hung
    pod); held_back_old: (N, H) bool, some held-back pod is off its workload's current revision;
    hung: (N,) pods past notReadyFor that some check judges hung (the overload signal's count).
    """

    seconds: np.ndarray
    past: np.ndarray
    held_back: np.ndarray
    held_back_old: np.ndarray
    hung: np.ndarray


def evaluate_hung(table: PodTable, first_seen: np.ndarray, startup_s: np.ndarray, not_ready_for_s: np.ndarray,
                  now: float, n: int) -> HungPods:
    """Evaluate H hung checks (start-up allowances ``startup_s`` (H,) s, ``not_ready_for_s`` (H,) s)
    on the pods of ``table`` at ``now`` for N = ``n`` targets; arguments as ``hung_seconds``'."""
    startup_s = np.asarray(startup_s, np.float64).reshape(-1)
    limit = np.asarray(not_ready_for_s, np.float64).reshape(-1)
    h = startup_s.size
    raw = not_ready_seconds(table, first_seen, startup_s, now)
    peers = most_peers_ready(table)
    seconds = np.where(peers[:, None], raw, 0.0)
    past = raw > limit[None, :]
    held = past & ~peers[:, None]
    old = held & (np.zeros((table.size, 1), bool) if table.new_revision is None else ~table.new_revision[:, None])
    hung = (past & peers[:, None]).any(axis=1)

    def per_target(mask: np.ndarray) -> np.ndarray:
        return np.stack([np.bincount(table.row[mask[:, j]], minlength=n)[:n] for j in range(h)], axis=1) \
            if h and n else np.zeros((n, h), np.int64)

    return HungPods(seconds, per_target(past), per_target(held), per_target(old) > 0,
                    np.bincount(table.row[hung], minlength=n)[:n] if n else np.zeros(0, np.int64))
