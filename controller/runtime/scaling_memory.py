"""The scaling state a Reconciler keeps between cycles, optionally decided in place.

By default the state is a ScalingState and every cycle calls the pure ``decide`` (the compiled
path copies the state into a fresh DecisionWorkspace each time). With ``in_place`` (the
simulator's choice: it decides the same targets thousands of times) the state lives in one
DecisionWorkspace that ``decide_into`` updates in place and ``commit`` completes, for the
policies the compiled kernel covers; the decisions are the same (same kernel, same state:
tests/core/test_workspace.py), without copying the state each cycle.

Not the live default: in place, the smoothing and recommendation history advance when the
decision is made, so a cycle that raised after deciding would still have moved them (the pure
path keeps the state of the last completed cycle).
"""

from __future__ import annotations

import numpy as np

from controller.core.scaling import compiled
from controller.core.scaling.decide import Decision, Observation, ScalingState, decide
from controller.core.scaling.params import PolicyParams
from controller.core.scaling.workspace import DecisionWorkspace, decide_into


class ScalingMemory:
    """One policy's scaling state: ``state`` (a ScalingState, read or replaced by the Reconciler
    on a new target list or a warm start), ``decide`` and ``commit`` (the applied changes' scale
    events, Decision.state_after's rule)."""

    def __init__(self, state: ScalingState, in_place: bool = False):
        self._state: ScalingState | None = state
        self._ws: DecisionWorkspace | None = None  # holds the state instead of _state, in place
        self.in_place = in_place

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

    def decide(self, params: PolicyParams, obs: Observation, now: float) -> Decision:
        """The cycle's Decision. In place, its ``kept`` is None: the state stays in the workspace
        until :meth:`commit`; its outputs are copies (the decision outlives the next cycle)."""
        if self.in_place and compiled.enabled() and compiled.supports(params):
            try:
                ws = self._ws if self._ws is not None else DecisionWorkspace.from_state(params, self._state)
                decide_into(params, ws, obs, now)
                self._ws, self._state = ws, None  # kept by the workspace once a cycle succeeded in it
                return ws.decision(obs, now, copy=True)  # kept None: the state stays in the workspace
            except compiled.KERNEL_ERRORS as exc:  # raised when compiling: on a workspace's first cycle,
                compiled.mark_broken(exc)  # whose copy the forecast kernel may have stepped; _state is untouched
        return decide(params, obs, self.state, now)

    def commit(self, decision: Decision, applied: np.ndarray, replicas: np.ndarray) -> None:
        """The state for the next cycle: ``decision``'s scale events for the ``applied`` rows
        (N,) bool, ``replicas`` (N,) the counts set."""
        if decision.kept is None:  # decided in place
            self._ws.commit(applied, replicas)
        else:
            self.state = decision.state_after(applied, replicas)

