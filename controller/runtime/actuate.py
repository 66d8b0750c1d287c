"""Applying one action: the one place a failed write is retried.

The adapters make one attempt per action and map the failure to an ActuationError. Here a
conflict (409: the action re-reads what it needs on the next attempt) or a temporary error
(5xx, 429, a timeout) is tried again, within a deadline measured from the first attempt on an
injected monotonic clock: waits double from ``backoff_s`` (an error's ``retry_after_s`` is the
floor) and never run past the deadline. Then the action is reported failed, and, because the
reconciler commits nothing of an action that was not applied, the next cycle observes again
and decides afresh: that is the retry outside the cycle. Permanent errors and NotLeader are
never retried.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from controller.errors import ActuationError, ConflictError, NotFound, TemporaryError
from controller.model import Action, ActionKind

RETRYABLE = (ConflictError, TemporaryError)


@dataclass(frozen=True)
class RetryPolicy:
    """deadline_s: no attempt starts later than this after the first (seconds); max_attempts:
    the first try included; backoff_s: the first wait, doubled per retry."""

    deadline_s: float = 2.0
    max_attempts: int = 3
    backoff_s: float = 0.1

    def wait_s(self, retry: int, error: ActuationError) -> float:
        """Seconds before retry number ``retry`` (0-based); a conflict is retried at once."""
        if isinstance(error, ConflictError):
            return 0.0
        return max(self.backoff_s * 2 ** retry, getattr(error, "retry_after_s", None) or 0.0)


def apply_with_retries(apply: Callable[[Action], None], action: Action, policy: RetryPolicy,
                       clock: Callable[[], float] = time.monotonic,
                       sleep: Callable[[float], None] = time.sleep) -> tuple[ActuationError | None, int]:
    """Apply ``action`` with ``apply``, retrying as the module docstring says.

    Returns (None when applied else the last error, attempts made).
    """
    started = clock()
    for attempt in range(1, max(policy.max_attempts, 1) + 1):
        try:
            apply(action)
            return None, attempt
        except NotFound as exc:
            if attempt > 1 and action.kind is ActionKind.RESTART_POD:
                return None, attempt  # an earlier delete went through before its answer was lost
            return exc, attempt
        except RETRYABLE as exc:
            error = exc
        except ActuationError as exc:  # permanent, or fenced (NotLeader): retrying cannot help
            return exc, attempt
        wait = policy.wait_s(attempt - 1, error)
        if attempt == policy.max_attempts or clock() + wait - started > policy.deadline_s:
            return error, attempt
        if wait > 0:
            sleep(wait)
    return error, attempt
