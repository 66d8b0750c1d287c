"""The scaling state a Reconciler keeps between cycles, decided in place by default.

With ``in_place`` (the default, live and in simulations) the state lives in one
DecisionWorkspace that ``decide_into`` updates in place and ``commit`` completes, for the
policies the compiled kernel covers: the decisions and states are those of the pure ``decide``
(same kernel, same state: tests/core/test_workspace.py, tests/runtime/test_live_in_place.py),
without copying the state each cycle (~4x less CPU per cycle for a forecast policy:
bench/decide.py's live rows). Without it (or for a policy the kernel does not cover) every cycle
calls the pure ``decide``, which copies the state into a fresh workspace each time.

The workspace becomes the state's keeper only once a cycle succeeded in it (a kernel failing
to compile on its first cycle leaves the numpy fallback the untouched state), and
``decide_into`` checks the observation before it touches the state, so a cycle that fails
before or in the decision leaves the last good state as it was. A cycle that fails after the
decision commits it with the changes that were applied so far (Reconciler.cycle), on either
path: the state never depends on the path.
"""

from __future__ import annotations

import numpy as np

from controller.core.scaling import compiled, hpa_decide
from controller.core.scaling.decide import Decision, Observation, ScalingState, decide
from controller.core.scaling.params import PolicyParams
from controller.core.scaling.workspace import DecisionWorkspace, decide_into


class ScalingMemory:
    """One policy's scaling state: ``state`` (a ScalingState, read or replaced by the Reconciler
    on a new target list or a warm start), ``decide`` and ``commit`` (the applied changes' scale
    events, Decision.state_after's rule)."""

    def __init__(self, state: ScalingState, in_place: bool = True):
        self._state: ScalingState | None = state
        self._ws: DecisionWorkspace | None = None  # holds the state instead of _state, in place
        self._decided: Decision | None = None  # the last decision made in place (its desired is the workspace's)
        self.in_place = in_place
        self._one_call = hpa_decide.OneCallOutputs()  # the hpa preset's outputs, decided without copies

    @property
    def state(self) -> ScalingState:
        """The state (without a decided cycle's pending scale events); the workspace, if any, is
        turned back into a ScalingState."""
        if self._ws is not None:
            self._state, self._ws = self._ws.state(), None
        return self._state

    @state.setter
    def state(self, state: ScalingState) -> None:
        self._state, self._ws = state, None

    def snapshot(self) -> ScalingState:
        """A copy of the state that leaves it where it is kept (the workspace, if any, stays)."""
        return self._ws.state() if self._ws is not None else self._state

    def events(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The scale events as (N, E) arrays: up changes, up times, down changes, down times
        (views: read them, never write them), without turning the workspace back into a state."""
        if self._ws is not None:
            ws = self._ws.flush()
            return ws.up_changes, ws.up_times, ws.down_changes, ws.down_times
        norm = self._state.norm
        return norm.up_changes, norm.up_times, norm.down_changes, norm.down_times

    @property
    def keeper(self) -> DecisionWorkspace | None:
        """The workspace holding the state, None when a ScalingState does (pure path, or not yet)."""
        return self._ws

    def decide(self, params: PolicyParams, obs: Observation, now: float, copy: bool = True) -> Decision:
        """The cycle's Decision. In place, its ``kept`` is None: the state stays in the workspace
        until :meth:`commit`; its outputs are copies (the decision outlives the next cycle), or
        with ``copy`` False the workspace's own arrays, overwritten by the next decide (for a
        caller that reads the decision before it only)."""
        if self.in_place and compiled.enabled() and compiled.supports(params):
            try:
                ws = self._ws if self._ws is not None else DecisionWorkspace.from_state(params, self._state)
                decide_into(params, ws, obs, now)
                self._ws, self._state = ws, None  # kept by the workspace once a cycle succeeded in it
                self._decided = ws.decision(obs, now, copy=copy)  # kept None: the state stays in the workspace
                return self._decided
            except compiled.KERNEL_ERRORS as exc:  # raised when compiling: on a workspace's first cycle,
                compiled.mark_broken(exc)  # whose copy the forecast kernel may have stepped; _state is untouched
        # without copies the caller reads the decision before the next decide and commits its kept
        # state: the old one is given up (the hpa preset's history is then updated in place)
        return decide(params, obs, self.state, now, own_state=not copy, outputs=None if copy else self._one_call)

    def commit(self, decision: Decision, applied: np.ndarray | bool, replicas: np.ndarray | None) -> None:
        """The state for the next cycle: ``decision``'s scale events for the ``applied`` rows
        (N,) bool, ``replicas`` (N,) the counts set; ``True, None``: every change, to the
        decision's desired counts."""
        if decision.kept is None:  # decided in place
            if replicas is None and decision is not self._decided:  # derived from it (core/scaling/external.py):
                replicas = decision.norm.desired  # its own counts, not the workspace's
            self._ws.commit(applied, replicas)
        else:
            self.state = decision.state_after(applied, replicas)

