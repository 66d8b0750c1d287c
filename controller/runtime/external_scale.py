"""Replicas someone else set: noticed, left alone for a while, and fights said out loud.

During an incident someone runs ``kubectl scale deploy/api --replicas=30``; a GitOps tool syncs
spec.replicas from git; a forgotten script resets it. An autoscaler that writes its own number
back at its next cycle overrides the human silently, or fights the other writer forever (HPA
does both). So each cycle of a scaling policy compares each target's observed spec.replicas
with what this controller last wrote or last accepted:

- the same: nothing to say;
- different, and metadata.managedFields names this controller's own field manager as the writer
  of spec.replicas (another replica of it after a failover, a write that landed after its request
  timed out): accepted as ours;
- different otherwise: an **external change**, by the field manager that owns spec.replicas
  (``kubectl``, ``argocd-controller``; "someone" when the API server does not say). The target
  is left at that count for the policy's ``onExternalScale.handsOff`` (default 30m; reason
  ExternalOverride, core/scaling/external.py); a count someone raised is a floor (the on-call
  scaled up for more capacity: more if the load asks for it, never fewer), one they lowered is
  kept as it is (load shed, a consumer stopped). Said once: a log line, an ``ExternalScaleChange``
  Event, ``setpoint_external_scale_changes_total`` and ``setpoint_hands_off`` 1. Then it is
  scaled from the count it has under the policy's own windows and rate limits. ``0s`` disables
  the hands-off (the change is still said, and the policy's count is written back).

A **deploy** that carries spec.replicas (``kubectl apply``, Helm, an Argo CD or Flux sync of a
manifest with ``replicas:``; ``DEPLOY_MANAGERS``, or any server-side apply) resets the count as a
side effect, at any hour, to a number written down long ago: no hands-off for it (held for the
hands-off, a release at the peak would leave the service at the manifest's 3 pods for 30 minutes;
HPA takes it back within its 15 s sync, and so does this controller, at its next decision). It is
said as a Warning (take spec.replicas out of the manifest) and counts toward a fight. What comes
through the scale subresource, or from any other writer (``kubectl edit``, ``kubectl patch``, a
script), is a decision about capacity: hands off, unless the pod template changed with it (a new
revision seen in the same cycle, or in the next one: the Deployment controller bumps it a moment
after the write; not a revision of this controller's own rolling restart or rollback, nor with a
write that could not have changed the template: through the scale subresource, or by a
managedFields entry that owns the replicas alone, or no field of the pod template). A write
that changes the image and the replicas together is a release whatever
tool made it (a team's own pipeline writing the Deployment through client-go has no known name):
held at the manifest's count for the hands-off, a release at the peak would run short for 30
minutes.

A **fight**: an external change that reverts a write of this controller (it wrote since the
previous change it accepted), the ``FIGHT_REVERTS``-th within ``FIGHT_WINDOW_S`` plus twice the
hands-off (with a 30-minute hands-off, a writer that resets the count at each of this
controller's writes reverts it at most twice an hour; three reverts in 2 hours is a fight, not
an accident). A Warning Event ``ExternalScaleFight`` naming the other writer, a warning log,
``setpoint_scale_fight`` 1 until a whole window passes without a revert. The fix is for a human:
take spec.replicas out of git (Argo CD's ``ignoreDifferences``), stop the script, or leave the
workload out of the policy.

Health actions (restart, rollback, pause) are not affected; a scale-up that self-healing asks
for is held like any other write of spec.replicas while hands-off.

A restart or a failover during an incident (a node lost with the controller on it) must not end
the on-call's hands-off. The hands-offs in force are kept on the cluster
(controller/runtime/hands_off_state.py: a ConfigMap the reconciler writes when they change) and
taken back when read at start-up or on becoming leader: as they were for a target whose count is
still the one kept (or, under a floor, one this controller raised from it); as a new external
change for a count a person changed again meanwhile. The reverts inside the fight window are kept
with them, so a fight goes on counting (and its gauge stays up) across a restart. Without that record (the ConfigMap deleted,
a change made while no controller ran), what is first seen of a target is accepted as it is,
with one exception: a count set less than the hands-off ago by another writer than this
controller, an autoscaler (``AUTOSCALER_MANAGERS``: HPA's, which it took over from) or a deploy
tool, whose managedFields entry owns spec.replicas and nothing else (``kubectl scale`` through
the scale subresource, a ``kubectl edit`` or ``patch`` of the replicas alone, a script): held
until the change's own time plus the hands-off. An entry that owns more (an apply of the whole
manifest, a ``kubectl edit`` of anything else too) changes its time with any of its fields, an
image as well as the replicas: its time does not date the count.

``setpoint resume NAMESPACE/NAME`` (a new value of the setpoint.io/resume annotation) ends a
hands-off early: the on-call hands the workload back. At a first sight, a resume written after
the change keeps it from being resumed.

A count an autoscaler set (``AUTOSCALER_MANAGERS``) between two cycles is accepted as it is, as at a
first sight: a ``--shadow`` run sees its incumbent HPA's writes every few minutes, and a real run
may see the last write of an HPA deleted for the cut-over; neither is someone's decision to hold.

Under a rehearsal (``--dry-run``, ``--shadow``) nothing is written, so what this controller "last
wrote" is what it last observed: a change is external only when the count moved between two
cycles (never because the rehearsal's own decisions were not applied). It is said (at info: in
shadow mode the incumbent autoscaler changes it all the time) with what a real run would do,
and the rehearsal goes on deciding for the target, as it does for a workload an HPA scales.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Callable, Mapping, Sequence

import numpy as np

from controller.model import RESUME_ANNOTATION, TargetRef
from controller.policy.durations import format_duration
from controller.ports import ClusterView
from controller.runtime.hands_off_state import StoredHandsOff, StoredReverts, WatchState, target_key

log = logging.getLogger("setpoint.runtime")

#: External changes that revert this controller's writes, within the window below, that make a fight.
FIGHT_REVERTS = 3
#: The fight window without hands-off; with it, twice the hands-off is added (see the module docstring).
FIGHT_WINDOW_S = 3600.0
#: Who changed it when the API server does not say (no managedFields entry owns spec.replicas).
UNKNOWN_WRITER = "someone"
#: Field managers of deploy tools (their writes carry the whole manifest): a count they set is a
#: deploy's side effect, never a hands-off (see the module docstring). Any server-side apply too.
DEPLOY_MANAGERS = frozenset({"kubectl-client-side-apply", "kubectl-replace", "helm", "helm-controller",
                             "kustomize-controller", "argocd-controller", "argocd-application-controller",
                             "argocd-server"})
#: Field managers of autoscalers this controller takes a workload over from (HPA's writes, KEDA's
#: through HPA): a count they set is never a person's, whatever its time.
AUTOSCALER_MANAGERS = frozenset({"kube-controller-manager"})


@dataclass(frozen=True)
class ExternalChange:
    """One external change of a target's spec.replicas and what this controller does about it."""

    target: TargetRef
    by: str  # the field manager that set it ("someone" when not known)
    replicas: int  # the count it set
    before: int  # what this controller had written or accepted
    at: float  # the cycle that saw it (epoch s)
    until: float  # hands off until (epoch s); == at without hands-off
    reverted: bool = False  # it undid a write of this controller
    deploy: bool = False  # a deploy tool's write of the whole manifest: no hands-off (until == at)
    floor: bool = False  # raised by someone: at least ``replicas``, the policy may scale above it
    release: bool = False  # a deploy told by the pod template that changed with it, not by its writer's name

    def holds(self, replicas: int | None) -> bool:
        """Whether the hands-off holds a write of spec.replicas to ``replicas``: any write, or, for a
        count someone raised, one below it (more pods are what they asked for too)."""
        return not self.floor or replicas is None or replicas < self.replicas

    @property
    def kept(self) -> str:
        """How the count is kept, for people: 'at 3' or 'at 30 or more'."""
        return f"at {self.replicas} or more" if self.floor else f"at {self.replicas}"

    def record(self, rehearsal: bool) -> dict:
        """The ``externalScale`` field of the target's decision records."""
        return {"by": self.by, "replicas": self.replicas, "from": self.before, "at": self.at, "until": self.until,
                **({"deploy": True} if self.deploy else {}), **({"release": True} if self.release else {}),
                **({"floor": True} if self.floor else {}),
                **({"rehearsal": True} if rehearsal else {})}


def _key(t: TargetRef) -> str:
    """How ``t`` is keyed in the durable state."""
    return target_key(t.namespace, t.kind, t.name)


def _owns_more(status) -> bool:
    """Whether the writer of spec.replicas could have changed the pod template in the same write:
    not a write through the scale subresource, nor a managedFields entry owning the replicas alone
    or no field of the template (a person's ``kubectl edit`` of the replicas, seen with someone
    else's release in the same interval: the template's fields are the deployer's entry's)."""
    return not status.replicas_by_scale and not status.replicas_alone and status.replicas_template


def is_deploy(status, managers: frozenset[str] = DEPLOY_MANAGERS) -> bool:
    """Whether a TargetStatus's replicas were last set by a deploy tool's write of the manifest
    (``managers``: the known deploy tools and the policy's own ``deployManagers``)."""
    return not status.replicas_by_scale and (status.replicas_manager in managers or status.replicas_applied)


def _epoch_s(text: str) -> float | None:
    """An RFC 3339 time (the resume annotation) as epoch seconds; None when it is not one."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None
    except ValueError:
        return None


def clock_time(epoch_s: float) -> str:
    """``15:04 UTC`` in the process's local zone (the Events and logs a person reads)."""
    return datetime.fromtimestamp(epoch_s).astimezone().strftime("%H:%M %Z")


class ExternalScaleWatch:
    """Per reconciler: what this controller last wrote or accepted per target, the hands-offs in
    force, and the reverts that make fights. ``hands_off_s`` 0 disables the hands-off."""

    def __init__(self, policy: str, own_manager: str, hands_off_s: float, rehearsal: bool,
                 deploy_managers: Sequence[str] = ()):
        self.policy, self.own_manager, self.hands_off_s, self.rehearsal = policy, own_manager, hands_off_s, rehearsal
        self.deploy_managers = DEPLOY_MANAGERS | frozenset(deploy_managers)
        self._expected: dict[TargetRef, int] = {}  # spec.replicas as last written or accepted
        self._wrote: set[TargetRef] = set()  # wrote since the last change accepted (a change now reverts it)
        self._reverts: dict[TargetRef, deque[float]] = {}
        self._resume_seen: dict[TargetRef, str] = {}  # the setpoint.io/resume annotation as last seen
        self.hands_off: dict[TargetRef, ExternalChange] = {}  # in force (real runs), or last seen (rehearsals)
        self.fights: dict[TargetRef, str] = {}  # target -> the other writer, while it is a fight
        self.changes: list[ExternalChange] = []  # seen by the last cycle
        self.autoscaled: dict[TargetRef, str] = {}  # last cycle: an autoscaler changed this controller's write -> it
        self._stored: dict[str, StoredHandsOff] = {}  # read from the durable state, not yet taken back
        self._stored_reverts: dict[str, StoredReverts] = {}  # likewise the reverts (and fights)
        self._revisions: dict[TargetRef, str] = {}  # each target's pod-template revision as last seen
        self._own_releases: set[TargetRef] = set()  # its next revision change is this controller's (see released)
        self._last_observed_s: float | None = None  # the previous cycle's time
        self._said_short: set[tuple[TargetRef, float]] = set()  # hands-offs (target, change time) said below demand

    @property
    def fight_window_s(self) -> float:
        return FIGHT_WINDOW_S + 2 * self.hands_off_s

    def observe(self, targets: Sequence[TargetRef], view: ClusterView, now: float,
                event: Callable[[TargetRef, str, str, bool], None]) -> np.ndarray:
        """(N,) bool: the targets to leave at their current replicas this cycle (none under a
        rehearsal). Says each external change and each fight once (``event(target, reason,
        message, warning)``: an Event on the workload)."""
        self.changes = []
        self.autoscaled = {}
        statuses = {s.ref: s for s in view.statuses}
        for t in set(self._expected) - set(targets):  # gone from the policy: forget (a new sight is accepted)
            self._forget(t)
        for t in targets:
            status = statuses.get(t)
            if status is None:
                self._forget(t)
                continue
            self._read_resume(t, status, now)
            if self._stored:
                self._take_back(t, status, now, event)
            if self._stored_reverts:
                self._take_back_reverts(t, now)
            released = self._new_revision(t, status)
            observed, expected = int(status.spec_replicas), self._expected.get(t)
            self._expected[t] = observed
            if expected is None:
                self._first_sight(t, status, now, event)
                continue
            if observed == expected:
                if released and _owns_more(status):
                    self._released_after(t, event)
                continue
            if status.replicas_manager and status.replicas_manager == self.own_manager:
                self._wrote.discard(t)  # ours (another replica of this controller, a late write): accepted
                continue
            if status.replicas_manager in AUTOSCALER_MANAGERS:
                # an HPA's count: what a policy takes over, never a person's decision. Seen between two
                # cycles by a --shadow run (the incumbent HPA scales all the time) or just after the HPA
                # was deleted (its last write); a hands-off here would keep HPA's count for handsOff
                # after the cut-over, and a shadow run's records said "a real run would leave them as set".
                # After a write of this real run, though, only a live HPA writes: the HPA guard is told
                # (it could not list that HPA, else the workload would have been left alone)
                if t in self._wrote and not self.rehearsal:
                    self.autoscaled[t] = status.replicas_manager
                self._wrote.discard(t)
                continue
            deploy = is_deploy(status, self.deploy_managers)
            released = released and _owns_more(status)  # a write of the replicas alone changed no template
            self._external(t, expected, observed, status.replicas_manager or UNKNOWN_WRITER, now, event,
                           deploy=deploy or released, release=released and not deploy)
        self._last_observed_s = now
        self._expire(now)
        self._end_fights(now)
        if self.rehearsal:
            return np.zeros(len(targets), bool)
        if not self.hands_off:
            return np.zeros(len(targets), bool)
        return np.fromiter((t in self.hands_off for t in targets), bool, len(targets))

    def floors(self, rows: Mapping[TargetRef, int], n: int) -> np.ndarray:
        """(n,) replicas: the floor of a target under a hands-off someone started by raising its count
        (the policy may scale it further up, not below), NaN elsewhere; ``rows``: each target's row.
        Walks the hands-offs in force, not the targets."""
        out = np.full(n, np.nan)
        for t, change in self.hands_off.items():
            if change.floor and t in rows:
                out[rows[t]] = change.replicas
        return out

    def adopt(self, old: "ExternalScaleWatch") -> None:
        """Take over what the watch of the same policy before a reload knew (an edit of the policy
        during an incident must not end the hands-off): the counts written or accepted, the reverts,
        the fights, and the hands-offs, each now lasting this policy's ``hands_off_s`` from its change."""
        self._expected, self._wrote = dict(old._expected), set(old._wrote)
        self._reverts = {t: deque(r) for t, r in old._reverts.items()}
        self._resume_seen = dict(old._resume_seen)
        self.fights = dict(old.fights)
        self.stored(WatchState(old._stored, old._stored_reverts))
        self.hands_off = {t: replace(c, until=c.at + self.hands_off_s) for t, c in old.hands_off.items()
                          if self.hands_off_s > 0 or self.rehearsal}

    def stored(self, state: WatchState) -> None:
        """What was read from the durable state (at start-up, on becoming leader): each hands-off and
        each target's reverts are taken back at the next sight of the target (:meth:`_take_back`,
        :meth:`_take_back_reverts`)."""
        self._stored = dict(state.hands_off) if not self.rehearsal and self.hands_off_s > 0 else {}
        self._stored_reverts = dict(state.reverts) if not self.rehearsal else {}

    def durable(self, now: float) -> WatchState:
        """What to keep on the cluster: the hands-offs in force and the reverts inside the fight
        window, and those read and not yet taken back that have not ended (a workload briefly
        missing from a list keeps its entries)."""
        if self.rehearsal:
            return WatchState()
        hands_off = {k: e for k, e in self._stored.items() if e.at + self.hands_off_s > now}
        hands_off.update({_key(t): StoredHandsOff(c.by, c.replicas, c.before, c.at, c.floor)
                          for t, c in self.hands_off.items()})
        since = now - self.fight_window_s
        reverts = {k: r for k, r in self._stored_reverts.items() if r.times and r.times[-1] > since}
        for t, times in self._reverts.items():
            recent = tuple(x for x in times if x > since)
            if recent:
                reverts[_key(t)] = StoredReverts(recent, self.fights.get(t, ""))
        return WatchState(hands_off, reverts)

    def wrote(self, target: TargetRef, replicas: int) -> None:
        """This controller set ``target``'s spec.replicas to ``replicas`` (an applied scale)."""
        self._expected[target] = int(replicas)
        self._wrote.add(target)

    def _forget(self, t: TargetRef) -> None:
        self._expected.pop(t, None)
        self._revisions.pop(t, None)
        self._own_releases.discard(t)
        self._wrote.discard(t)
        self._reverts.pop(t, None)
        self.hands_off.pop(t, None)
        self.fights.pop(t, None)
        self._resume_seen.pop(t, None)

    def _read_resume(self, t: TargetRef, status, now: float) -> None:
        """A new value of the resume annotation (``setpoint resume``) ends the target's hands-off."""
        value = dict(status.annotations).get(RESUME_ANNOTATION, "")
        seen = self._resume_seen.get(t)
        self._resume_seen[t] = value
        if seen is None or seen == value or not value or t not in self.hands_off:  # a removal hands nothing back
            return
        change = self.hands_off.pop(t)
        log.log(logging.INFO if self.rehearsal else logging.WARNING,
                "policy %s scales %s %s again, from its current replicas: setpoint resume ended the hands-off "
                "(replicas set to %d by %s at %s)", self.policy, t.kind, t.key, change.replicas, change.by,
                clock_time(change.at), extra={"policy": self.policy, "target": str(t)})

    def released(self, target: TargetRef) -> None:
        """This controller changed ``target``'s pod template (a rolling restart, a rollback): the next
        revision change seen is its own, not a release that came with someone's count."""
        self._own_releases.add(target)

    def _new_revision(self, t: TargetRef, status) -> bool:
        """Whether ``t``'s pod-template revision changed since the previous cycle, by someone else
        than this controller (a release)."""
        before, self._revisions[t] = self._revisions.get(t), status.revision
        changed = bool(status.revision) and before is not None and status.revision != before
        if changed and t in self._own_releases:
            self._own_releases.discard(t)
            return False
        return changed

    def _released_after(self, t: TargetRef, event: Callable[[TargetRef, str, str, bool], None]) -> None:
        """A release seen one cycle after a count change that started a hands-off: the revision came
        after this controller's previous read (the Deployment controller bumps it a moment after the
        write), so that change was a deploy's: no hands-off for it, said as such."""
        change = self.hands_off.get(t)
        if change is None or change.at != self._last_observed_s or change.deploy:
            return
        del self.hands_off[t]
        message = (f"{self._change_message(replace(change, until=change.at, deploy=True, release=True))}; seen "
                   f"a cycle later, the hands-off started then is ended")
        log.log(logging.INFO if self.rehearsal else logging.WARNING, message,
                extra={"policy": self.policy, "target": str(t), "by": change.by})
        if not self.rehearsal:
            event(t, "ExternalScaleChange", message, True)

    def _take_back_reverts(self, t: TargetRef, now: float) -> None:
        """Take back ``t``'s stored reverts inside the fight window, and its fight (said before the
        restart: not said again, its gauge stays up)."""
        entry = self._stored_reverts.pop(_key(t), None)
        if entry is None or t in self._reverts:
            return
        recent = [x for x in entry.times if x > now - self.fight_window_s]
        if recent:
            self._reverts[t] = deque(recent)
            if entry.fight and len(recent) >= FIGHT_REVERTS:
                self.fights[t] = entry.fight

    def _take_back(self, t: TargetRef, status, now: float,
                   event: Callable[[TargetRef, str, str, bool], None]) -> None:
        """Take back the stored hands-off of ``t`` while it lasts and no ``setpoint resume`` came after
        the change: as it was while the count is still the one it keeps (or, under a floor, one this
        controller raised from it); as a new external change from now when a person changed the count
        again while no controller watched (an incident still going on); else drop it (a deploy or an
        autoscaler set the count since: the first-sight rules apply)."""
        entry = self._stored.pop(_key(t), None)
        if entry is None or t in self.hands_off or not entry.at + self.hands_off_s > now:
            return
        resumed = _epoch_s(dict(status.annotations).get(RESUME_ANNOTATION, ""))
        if resumed is not None and resumed >= entry.at:
            return
        observed, by = int(status.spec_replicas), status.replicas_manager
        if observed == entry.replicas or (entry.floor and observed > entry.replicas and by == self.own_manager):
            change = ExternalChange(t, entry.by, entry.replicas, entry.before, entry.at, entry.at + self.hands_off_s,
                                    floor=entry.floor)
            self.hands_off[t] = change
            self._expected[t] = observed  # seen: not a first sight, nor a change
            log.warning("policy %s still leaves %s %s %s until %s: the hands-off after %s set its replicas to %d at "
                        "%s (kept on the cluster across a restart or a new leader)", self.policy, t.kind, t.key,
                        change.kept, clock_time(change.until), change.by, change.replicas, clock_time(change.at),
                        extra={"policy": self.policy, "target": str(t)})
        elif (by and by != self.own_manager and by not in AUTOSCALER_MANAGERS
              and not is_deploy(status, self.deploy_managers)):
            self._expected[t] = observed
            self._external(t, entry.replicas, observed, by, now, event)

    def _first_sight(self, t: TargetRef, status, now: float, event: Callable[[TargetRef, str, str, bool], None]) -> None:
        """Resume the hands-off of a count another writer set through the scale subresource less than
        the hands-off ago and not handed back since (see the module docstring); anything else first
        seen is accepted."""
        by, at = status.replicas_manager, status.replicas_set_at
        if (not status.replicas_alone or not by or by == self.own_manager or by in AUTOSCALER_MANAGERS
                or is_deploy(status, self.deploy_managers)
                or at is None or self.hands_off_s <= 0 or not now - self.hands_off_s < at <= now + 1.0):
            return
        resumed = _epoch_s(dict(status.annotations).get(RESUME_ANNOTATION, ""))
        if resumed is not None and resumed >= at:
            return  # `setpoint resume` after the change: handed back
        replicas = int(status.spec_replicas)
        self._external(t, replicas, replicas, by, now, event, at=min(at, now))

    def _external(self, t: TargetRef, before: int, replicas: int, by: str, now: float,
                  event: Callable[[TargetRef, str, str, bool], None], at: float | None = None,
                  deploy: bool = False, release: bool = False) -> None:
        """Say an external change and start its hands-off (not for a ``deploy``); ``at``: when it was
        made, if before this cycle (a change from before this controller watched, at its first sight)."""
        reverted = t in self._wrote
        self._wrote.discard(t)
        at = now if at is None else at
        change = ExternalChange(t, by, replicas, before, at, at if deploy else at + self.hands_off_s, reverted, deploy,
                                floor=replicas > before, release=release)
        self.changes.append(change)
        if (self.hands_off_s > 0 or self.rehearsal) and not deploy:
            self.hands_off[t] = change
        else:
            self.hands_off.pop(t, None)
        message = self._change_message(change)
        log.log(logging.INFO if self.rehearsal else logging.WARNING, message,
                extra={"policy": self.policy, "target": str(t), "by": by, "replicas": replicas, "from": before})
        if not self.rehearsal:
            event(t, "ExternalScaleChange", message, deploy)
        if not reverted:
            return
        reverts = self._reverts.setdefault(t, deque())
        reverts.append(now)
        while reverts and reverts[0] <= now - self.fight_window_s:
            reverts.popleft()
        if len(reverts) >= FIGHT_REVERTS and self.fights.get(t) != by:
            self.fights[t] = by
            message = (f"{by} and policy {self.policy} are fighting over the replicas of {t.kind} {t.key}: {by} "
                       f"reverted {len(reverts)} of its writes within {format_duration(self.fight_window_s)} "
                       f"(last: {before} -> {replicas}); take spec.replicas away from one of them (e.g. Argo CD "
                       f"ignoreDifferences on /spec/replicas, or leave the workload out of the policy)")
            log.warning(message, extra={"policy": self.policy, "target": str(t), "by": by})
            event(t, "ExternalScaleFight", message, True)

    def below_demand(self, t: TargetRef, wanted: int, event: Callable[[TargetRef, str, str, bool], None]) -> None:
        """The hands-off on ``t`` keeps fewer replicas than the policy would set (``wanted``): said
        once per hands-off (a log line and a Warning Event ``HandsOffBelowDemand``). Someone lowered
        the count, and the load has since grown past it (or never fell): a load shed on purpose
        needs nothing, a count set during another incident may leave the service short."""
        c = self.hands_off.get(t)
        if c is None or (t, c.at) in self._said_short:
            return
        self._said_short = {(u, at) for u, at in self._said_short if u in self.hands_off} | {(t, c.at)}
        message = (f"policy {self.policy} would scale {t.kind} {t.key} to {wanted} replicas, but leaves it at "
                   f"{c.replicas} (set by {c.by} at {clock_time(c.at)}) until {clock_time(c.until)}: if the load "
                   f"should be served, `setpoint resume {t.key}` hands it back now")
        log.warning(message, extra={"policy": self.policy, "target": str(t), "by": c.by, "replicas": c.replicas,
                                    "wanted": wanted})
        event(t, "HandsOffBelowDemand", message, True)

    def _change_message(self, c: ExternalChange) -> str:
        what = f"replicas of {c.target.kind} {c.target.key} set to {c.replicas} by {c.by} " + (
            f"(from {c.before})" if c.before != c.replicas else f"at {clock_time(c.at)}, before policy {self.policy} "
                                                                 f"watched it (a restart or a new leader)")
        if c.deploy:
            would = "(a real run would) " if self.rehearsal else ""
            return (f"{what}, a deploy that carries spec.replicas{self._deploy_why(c)}: policy {self.policy} sets "
                    f"its own count {would}at its next decision, no hands-off for a deploy "
                    f"tool (take spec.replicas out of the manifest, or have the tool ignore it)")
        if self.rehearsal:
            return (f"{what}: a real run of policy {self.policy} would leave them alone"
                    + (f" until {clock_time(c.until)}" if self.hands_off_s > 0 else " for no time (handsOff 0s)")
                    + "; this rehearsal goes on deciding for it")
        if self.hands_off_s <= 0:
            return f"{what}: policy {self.policy} sets its own count again (onExternalScale.handsOff is 0s)"
        if c.floor:
            return (f"{what}: policy {self.policy} keeps {c.target.name} at {c.replicas} replicas or more until "
                    f"{clock_time(c.until)} (onExternalScale.handsOff {format_duration(self.hands_off_s)}; more if the "
                    f"load asks for it, never fewer), then scales it from there; `setpoint resume {c.target.key}` "
                    f"hands it back sooner")
        return (f"{what}: policy {self.policy} leaves {c.target.name} alone until {clock_time(c.until)} "
                f"(onExternalScale.handsOff {format_duration(self.hands_off_s)}), then scales it from there; "
                f"`setpoint resume {c.target.key}` hands it back sooner")

    @staticmethod
    def _deploy_why(c: ExternalChange) -> str:
        """Why a writer that is no known deploy tool's was taken for a deploy: its write changed the pod template."""
        return " (the pod template changed with it: a release)" if c.release else ""

    def _expire(self, now: float) -> None:
        for t, c in list(self.hands_off.items()):
            if c.until <= now:
                del self.hands_off[t]
                if not self.rehearsal and self.hands_off_s > 0:
                    log.info("policy %s scales %s %s again, from its current replicas (hands off since %s ended)",
                             self.policy, t.kind, t.key, clock_time(c.at), extra={"policy": self.policy,
                                                                                  "target": str(t)})

    def _end_fights(self, now: float) -> None:
        for t in list(self.fights):
            reverts = self._reverts.get(t)
            if not reverts or reverts[-1] <= now - self.fight_window_s:
                del self.fights[t]
                log.info("%s %s: no revert of policy %s's writes for %s, the fight is over", t.kind, t.key,
                         self.policy, format_duration(self.fight_window_s), extra={"policy": self.policy,
                                                                                  "target": str(t)})
