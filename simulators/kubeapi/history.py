"""The simulated apiserver's recent changes, as the watch cache's history: what a watch resumed
from a resourceVersion replays (simulators.kubeapi.watch).

Every resourceVersion the store gives an object is one :class:`Change`, recorded with the
object's state just before it (None for a creation): the state after a change is the next
change's ``before`` or, for its last change, the object as it is now. That is all a watch from
resourceVersion X needs to send what the apiserver sends: every ADDED, MODIFIED and DELETED after
X for the objects its selectors match, including DELETED for an object that existed at X and
for one that stopped matching (the cacher's convertToWatchEvent).

Bounded as the watch cache is: changes older than the store's time window are forgotten, and at
most ``limit`` are kept (the oldest go first); a watch from before a forgotten change gets 410.
"""

from __future__ import annotations

import copy
import json
from collections import deque
from dataclasses import dataclass

#: Most changes kept at once over all kinds (each holds one state of an object, ~2 KB for a pod).
MAX_CHANGES = 10_000


@dataclass(frozen=True)
class Change:
    """One write: its resourceVersion, the object written and its state before (None: it was new,
    or first served; a str: an engine object's JSON without its resourceVersion, as fingerprinted)."""

    rv: int
    kind: str
    namespace: str
    name: str
    before: dict | str | None
    deleted: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name

    def state_before(self) -> dict | None:
        """A copy of the state before the change, with the resourceVersion it had if stored."""
        if isinstance(self.before, str):
            return json.loads(self.before)
        return copy.deepcopy(self.before)


class ChangeHistory:
    """The changes after :attr:`oldest_rv`, oldest first (see the module docstring)."""

    def __init__(self, limit: int = MAX_CHANGES):
        self.limit = limit
        self.changes: deque[Change] = deque()
        #: a watch can be served from this resourceVersion on: every change after it is kept
        self.oldest_rv = 0

    def record(self, change: Change) -> None:
        self.changes.append(change)
        if len(self.changes) > self.limit:
            self.oldest_rv = max(self.oldest_rv, self.changes.popleft().rv)

    def forget_through(self, rv: int) -> None:
        """Forget the changes up to ``rv`` (a watch from before it gets 410 from now on)."""
        while self.changes and self.changes[0].rv <= rv:
            self.changes.popleft()
        self.oldest_rv = max(self.oldest_rv, rv)

    def since(self, kind: str, rv: int) -> list[Change] | None:
        """The changes of ``kind`` objects after ``rv``, oldest first; None when some are forgotten."""
        if rv < self.oldest_rv:
            return None
        out = []
        for change in reversed(self.changes):  # newest first: a following watch asks for the last few
            if change.rv <= rv:
                break
            if change.kind == kind:
                out.append(change)
        out.reverse()
        return out
