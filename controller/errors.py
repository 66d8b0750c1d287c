"""The error hierarchy. Every error that crosses a layer is one of these."""

from __future__ import annotations

from dataclasses import dataclass


class SetpointError(Exception):
    """Base class of every error Setpoint raises on purpose."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command was, as Ctrl-C's KeyboardInterrupt is."""


class SignalFlag:
    """A flag a signal handler sets: no lock (a threading.Event's set() takes one, and a handler
    runs in the main thread between two bytecodes: inside that Event's own clear() or wait(), it
    waited forever for the lock its own thread held)."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def clear(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set


#: Set by the command's SIGTERM or SIGINT (Ctrl-C) handler (controller/cli/root.py) before it raises
#: Terminated or KeyboardInterrupt. That raise can be lost: a signal handler runs wherever the main
#: thread is, and inside a weakref callback or a __del__ (a logging handler's, a lock's) Python prints
#: "Exception ignored ... Terminated" and goes on; and the handler does not raise at all while stops
#: are deferred (STOPS_DEFERRED). Long waits (a sweep's, a tune's) read this too, so the stop holds.
TERMINATION = SignalFlag()
#: What :func:`raise_if_terminated` raises: the first stop's exception class (Terminated for
#: SIGTERM, KeyboardInterrupt for Ctrl-C); empty until one comes.
STOPPED_BY: list[type[KeyboardInterrupt]] = []
#: Non-empty while code that starts worker processes defers stops (simulators/parallel.py's
#: stops_deferred): the command's handlers then only set TERMINATION, and that code raises after,
#: with every worker it started known (so stopped), none half-started and lost.
STOPS_DEFERRED: list[bool] = []


def ask_stop(kind: type[KeyboardInterrupt]) -> None:
    """Record a stop asked by a signal: Terminated (SIGTERM) or KeyboardInterrupt (Ctrl-C)."""
    if not STOPPED_BY:
        STOPPED_BY.append(kind)
    TERMINATION.set()


def clear_stop() -> None:
    """No stop asked (a command starting)."""
    STOPPED_BY.clear()
    TERMINATION.clear()


def raise_if_terminated() -> None:
    """Raise the stop a signal asked for (Terminated for SIGTERM, KeyboardInterrupt for Ctrl-C),
    if any: its handler's own raise lost or deferred."""
    if TERMINATION.is_set():
        raise (STOPPED_BY[0] if STOPPED_BY else Terminated)()


#: A warning's message starts so (controller/policy/units.py, a scenario's); in JSON its list says it instead.
WARNING_PREFIX = "warning: "


@dataclass(frozen=True)
class FieldError:
    """One problem in an input file: where, which field, what was expected, what was found."""

    file: str
    line: int | None
    path: str
    message: str
    #: the object of a file of several the problem is in (import: ``HorizontalPodAutoscaler shop/web``)
    object: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        said = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        return f"{said} [{self.object}]" if self.object else said

    def to_json(self, file: str | None = None) -> dict:
        """{file, line, field, message} as ``validate --format json`` and result.json list them
        (``file``: as shown, else its own; the message without "warning: ": its list says so), and
        ``object`` where the problem is in one (import's)."""
        entry = {"file": self.file if file is None else file, "line": self.line, "field": self.path,
                 "message": self.message.removeprefix(WARNING_PREFIX)}
        return {**entry, "object": self.object} if self.object else entry


class InvalidInput(SetpointError):
    """An input file (policy, scenario) is invalid; holds every error found, not just the first."""

    def __init__(self, errors: list[FieldError]):
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


class PolicyError(InvalidInput):
    """A policy file is invalid. Rejected whole."""


class PolicyUnreadable(PolicyError):
    """A policy file or folder could not be read (permissions, a file gone mid-read): the same
    files may read fine a moment later, so a reload rejected for it is tried again."""


class ScenarioError(InvalidInput):
    """A scenario file is invalid."""


class ManifestError(InvalidInput):
    """A Kubernetes manifest given to ``setpoint import`` cannot be converted."""


class BacktestError(SetpointError):
    """A backtest cannot run as asked (empty window, no data, too many points)."""


class MetricsUnavailable(SetpointError):
    """The metrics source as a whole failed (not one series): nothing may be concluded from it."""


class PrometheusError(MetricsUnavailable):
    """Base of the Prometheus adapter's errors."""


class PrometheusUnreachable(PrometheusError):
    """Connection refused, DNS failure or timeout."""


class PrometheusBadQuery(PrometheusError):
    """Prometheus rejected the PromQL (HTTP 400/422). Permanent until the policy changes."""


class PrometheusBadResponse(PrometheusError):
    """Prometheus answered with something we cannot read."""


class ActuationError(SetpointError):
    """A change to the cluster failed. ``kind`` says whether retrying can help."""

    kind = "permanent"

    def __init__(self, message: str, *, target: str = "", status: int | None = None,
                 retry_after_s: float | None = None):
        self.target = target
        self.status = status
        self.retry_after_s = retry_after_s  # the server asked to wait this long before a retry
        super().__init__(message)


class NotLeader(ActuationError):
    """Fenced: this replica does not hold the leader Lease (or has not renewed it within its
    renew deadline), so the write was not sent. Never retried: the new leader acts instead."""

    kind = "not-leader"


class Stopping(ActuationError):
    """The controller is stopping (SIGTERM): the request was not sent, so that a cycle stuck
    behind a stalled API server ends within the stop's grace period. Never retried."""

    kind = "stopping"


class Superseded(ActuationError):
    """The workload's spec changed since the observation a change was decided on (a deploy, another
    leader's restart or pause): the change was not sent, and the next cycle decides again on what
    is there. Never retried within the cycle."""

    kind = "superseded"


class ConflictError(ActuationError):
    """The object changed under us (HTTP 409): re-read and try again."""

    kind = "conflict"


class RevisionChanged(ActuationError):
    """A write meant for one revision of a workload was not made: its current revision is another
    (``current``; '' not known) since it was read (a rollout between the read and the write)."""

    kind = "superseded"

    def __init__(self, message: str, *, current: str, target: str = ""):
        self.current = current
        super().__init__(message, target=target)


class TemporaryError(ActuationError):
    """5xx, 429 or a timeout: retry later."""

    kind = "temporary"


class PermanentError(ActuationError):
    """403, 404, 422: retrying will not help; report it."""

    kind = "permanent"


class NotFound(PermanentError):
    """The target does not exist (HTTP 404)."""


class Forbidden(PermanentError):
    """RBAC denies the request (HTTP 403)."""


class KubernetesConfigError(SetpointError):
    """No usable Kubernetes configuration: no kubeconfig where one was looked for, a file that is
    not one, a context it does not have, or an in-cluster service account that cannot be read."""


class StateStoreError(SetpointError):
    """The durable state could not be read or written (the store is unreachable, RBAC denies
    it, or a write kept conflicting). The caller keeps its state and tries again next cycle."""


class StatusError(SetpointError):
    """`setpoint status` could not build the view: bad arguments, no records, a bad answer."""


class StatusUnreachable(StatusError):
    """The controller's HTTP port did not answer (refused, timed out, not Setpoint)."""
