"""The one retry owner (controller/runtime/actuate.py): which errors are retried, how long it
waits, and the deadline that bounds it. A fake monotonic clock that only sleeping advances."""

from __future__ import annotations

import pytest

from controller.errors import ConflictError, NotFound, NotLeader, PermanentError, TemporaryError
from controller.model import Action, ActionKind, TargetRef
from controller.runtime.actuate import RetryPolicy, apply_with_retries

WEB = TargetRef("shop", "web")
SCALE = Action(ActionKind.SCALE, WEB, "ScaleUp", replicas=3, from_replicas=2)
RESTART = Action(ActionKind.RESTART_POD, WEB, "PodUnhealthy", pod="web-1")
OK = None


def temporary(after_s: float | None = None) -> TemporaryError:
    return TemporaryError("503", status=503, retry_after_s=after_s)


def run(outcomes: list, policy: RetryPolicy, action: Action = SCALE):
    """Apply with a cluster answering ``outcomes`` in turn (None: success, else the error raised)."""
    now, waits, calls = [0.0], [], []

    def apply(_action: Action) -> None:
        calls.append(now[0])
        outcome = outcomes[min(len(calls), len(outcomes)) - 1]
        if outcome is not None:
            raise outcome

    def sleep(s: float) -> None:
        waits.append(s)
        now[0] += s

    error, attempts = apply_with_retries(apply, action, policy, lambda: now[0], sleep)
    assert attempts == len(calls)
    return error, calls, waits


ROWS = [
    pytest.param([OK], RetryPolicy(), None, [0.0], [], id="applied-first-time"),
    pytest.param([ConflictError("409"), OK], RetryPolicy(), None, [0.0, 0.0], [], id="conflict-retried-at-once"),
    pytest.param([temporary(), temporary(), OK], RetryPolicy(backoff_s=0.1, deadline_s=5), None,
                 [0.0, 0.1, pytest.approx(0.3)], [0.1, 0.2], id="temporary-backs-off-doubling"),
    pytest.param([temporary(after_s=1.0), OK], RetryPolicy(backoff_s=0.1, deadline_s=5), None, [0.0, 1.0], [1.0],
                 id="retry-after-is-the-floor"),
    pytest.param([temporary()], RetryPolicy(backoff_s=0.1, deadline_s=5, max_attempts=3), TemporaryError,
                 [0.0, 0.1, pytest.approx(0.3)], [0.1, 0.2], id="attempts-bounded"),
    pytest.param([temporary()], RetryPolicy(backoff_s=0.4, deadline_s=1.0, max_attempts=10), TemporaryError,
                 [0.0, 0.4], [0.4], id="deadline-bounds-the-waits"),
    pytest.param([temporary(after_s=30.0)], RetryPolicy(deadline_s=2.0), TemporaryError, [0.0], [],
                 id="retry-after-beyond-the-deadline-gives-up-at-once"),
    pytest.param([ConflictError("409")], RetryPolicy(deadline_s=0.0, max_attempts=3), ConflictError, [0.0] * 3, [],
                 id="zero-deadline-still-retries-conflicts"),
    pytest.param([PermanentError("422")], RetryPolicy(), PermanentError, [0.0], [], id="permanent-not-retried"),
    pytest.param([NotFound("404")], RetryPolicy(), NotFound, [0.0], [], id="not-found-not-retried"),
    pytest.param([NotLeader("fenced")], RetryPolicy(), NotLeader, [0.0], [], id="fenced-not-retried"),
]


@pytest.mark.parametrize("outcomes, policy, expected, calls, waits", ROWS)
def test_retries(outcomes, policy, expected, calls, waits):
    error, got_calls, got_waits = run(outcomes, policy)
    assert (error is None) if expected is None else isinstance(error, expected)
    assert got_calls == calls and got_waits == waits


def test_a_pod_already_gone_after_a_lost_answer_counts_as_restarted():
    """The first delete timed out after it went through: the retry's 404 means it is done."""
    error, calls, _ = run([temporary(), NotFound("404")], RetryPolicy(backoff_s=0.1, deadline_s=5), RESTART)
    assert error is None and len(calls) == 2


def test_a_pod_missing_at_the_first_attempt_is_not_found():
    error, _, _ = run([NotFound("404")], RetryPolicy(), RESTART)
    assert isinstance(error, NotFound)
