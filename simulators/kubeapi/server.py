"""The simulated cluster's Kubernetes API server: ``setpoint sim serve``.

Serves a :class:`~simulators.cluster.SimCluster` built from a scenario through the subset of
the Kubernetes REST API the controller uses (see :mod:`simulators.kubeapi.routes` for the table
and :mod:`simulators.kubeapi.store` for how objects map to the engine), with the scenario's load
driving the engine in real time, and the workloads' metrics in Prometheus format (see
:mod:`simulators.kubeapi.metrics`).

Pieces, usable on their own in tests:

- :class:`SimWorld`: the engine, its object store, the metrics exporter, the load and the HPA
  controller that runs the stored HPAs (:mod:`simulators.kubeapi.hpa_controller`);
  ``advance(ticks)`` steps it by hand (tests), :class:`EngineDriver` steps it on wall time.
- :class:`SimKubeApi`: the apiserver as an HTTP app (routing, bearer token, Status errors,
  request log, fault injection).

**Authentication.** Every request but the health probes (/healthz, /readyz, /livez) must carry
``Authorization: Bearer <token>``, test hooks included; else 401 with a Status. The server
makes a random token unless given one; only ``auth=False`` (``--no-auth``) turns this off.
Files holding the token (kubeconfig, token file) are written 0600.

**TLS.** The API is served over HTTPS with a certificate signed by a CA made at start-up (see
:mod:`simulators.kubeapi.tls`); the kubeconfig carries that CA as ``certificate-authority-data``,
so kubectl and the Python client verify the server. ``tls=False`` (``--insecure-http``) serves
plain HTTP. The metrics endpoint stays plain HTTP (what Prometheus scrapes by default).
- :class:`SimKubeServer`: both HTTP services plus the driver; a context manager.

**Test hooks.** ``api.faults.inject(path_regex, status=503, times=2)`` makes the next matching
requests fail with that status (a real Status body), ``delay_s=`` delays them (to provoke
client timeouts), ``gate=threading.Event()`` (in process only) holds them until it is set, the
rule's ``arrived`` set once one came (a race made on purpose: a write held between a client's read
and its write); ``api.requests.count(method, path_regex)`` counts what clients sent. Over
HTTP the same hooks are at ``/_sim/faults`` (POST a JSON rule, DELETE to clear) and
``/_sim/requests`` (GET counts: total and byMethod), only when the server was started with ``test_hooks=True``
(``--test-hooks``): they are not part of the Kubernetes API, but need the token like it.

**Scenario clock.** ``start_paused=True`` (``--start-paused``) holds the scenario's clock at its
start, t=0, until a start request: the initial pods are Ready, the API answers (writes included),
the metrics are served and their counters go on at t=0's rates (see :meth:`SimWorld.hold`), but
no load change, fault or pod start-up happens. ``POST /_sim/clock/start`` or SIGUSR1 (``serve``)
starts it: the scenario's times then count from that moment; a second start is a no-op. ``GET
/_sim/clock`` says whether it is paused and how far the scenario has run. Both are served with
or without ``--test-hooks`` (they change no object), and need the token.
"""

from __future__ import annotations

import hmac
import logging
import math
import re
import secrets
import signal
import ssl
import threading
import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence
from re import _parser as sre_parser  # the regex parser, to refuse patterns that backtrack badly

import numpy as np
import yaml

from controller.runtime.files import SPECIAL_FILE, special_file, write_private_file
from controller.runtime.http import parse_listen as http_listen
from controller.runtime.stop_signals import StopSignals
from simulators.kubeapi import objects as K
from simulators.cluster import SimCluster
from simulators.kubeapi.hpa_controller import HpaController
from simulators.kubeapi.http import IDLE_TIMEOUT_S, MAX_CONNECTIONS, READ_TIMEOUT_S, HttpService, Request, Response
from simulators.kubeapi.metrics import SimMetricsExporter
from simulators.kubeapi.routes import ResourceHandler, build_resources, discovery, error_response, parse_path
from simulators.kubeapi.store import EVENT_TTL_S, KubeStore, SimTime
from simulators.kubeapi.tls import ServingIdentity, make_serving_identity
from simulators.scenario import Scenario, load_scenario

log = logging.getLogger("setpoint.sim.kubeapi")

#: Paths served without a token, as the real apiserver serves them to anyone.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/livez"})
#: The scenario clock's state (GET) and its start request (POST), served with or without test hooks.
CLOCK_PATH = "/_sim/clock"
CLOCK_START_PATH = "/_sim/clock/start"
CLOCK_PATHS = frozenset({CLOCK_PATH, CLOCK_START_PATH})
NO_CLOCK = "this server's world is stepped by hand: it has no clock to start"

#: Most wall time (s) the driver catches up in one step: a late wake-up (scheduling, a slow step,
#: a GC pause) is replayed; the rest of a longer lag (SIGSTOP, a debugger, an engine slower than
#: the speed) is skipped, not replayed as a burst. See EngineDriver.
MAX_CATCH_UP_S = 1.0
#: Skipped pauses are logged at most once per this many (monotonic) seconds, the others counted.
SKIP_WARNING_EVERY_S = 60.0
#: Fastest speed (simulated seconds per wall second): a day in under 90 s. At inf the engine's
#: thread died on its first step (a division by zero) and the API served a frozen cluster.
MAX_SPEED = 1000.0


class ListenError(OSError):
    """An address the server cannot listen on (in use, not this machine's, no such host); ``role``:
    the Kubernetes API or the metrics endpoint."""

    def __init__(self, role: str, host: str, port: int, reason: str):
        super().__init__(f"cannot serve the {role} on {host}:{port}: {reason}")
        self.role = role


# --------------------------------------------------------------------------- the simulated world
class SimWorld:
    """The engine of a scenario, as objects and metrics, stepped tick by tick.

    ``speed``: simulated seconds per wall second (objects show wall-clock times, see SimTime).
    ``event_ttl_s``: wall seconds an Event is kept after its last write (``--event-ttl``, see
    KubeStore: expired at the first tick after). ``cluster_events``: record the Events of the
    cluster's own controllers and kubelets (simulators/kubeapi/cluster_events.py). ``statefulsets``:
    services served as StatefulSets besides the scenario's ``kind: StatefulSet`` ones.
    """

    def __init__(self, scenario: Scenario, speed: float = 1.0, statefulsets: frozenset[str] = frozenset(),
                 wall_start_s: float | None = None, hpa_controller: bool = True, event_ttl_s: float = EVENT_TTL_S,
                 cluster_events: bool = True):
        if not 0 < speed <= MAX_SPEED:  # NaN too
            raise ValueError(f"speed must be > 0 and at most {MAX_SPEED:g}, got {speed:g}")
        self.scenario = scenario
        self.speed = speed
        self.tick_s = scenario.tick_s
        engine = SimCluster(scenario.cluster, np.random.default_rng(scenario.seed), faults=scenario.faults)
        clock = SimTime(scenario.start_s, time.time() if wall_start_s is None else wall_start_s, speed)
        # the scenario's services of kind StatefulSet, and those the caller names (tests)
        self.store = KubeStore(engine, clock, scenario.statefulsets | frozenset(statefulsets), event_ttl_s,
                               cluster_events, parallel=scenario.parallel_statefulsets)
        self.metrics = SimMetricsExporter(self.store)
        #: kube-controller-manager's HPA controller over the stored HPAs (None: they are only stored)
        self.hpa_controller = HpaController(scenario, self.store) if hpa_controller else None
        # kept: a fresh one per tick regrouped 1,000 services' shapes and redrew their noise knots
        self._offered = scenario.offered_function()
        self.next_tick_s = scenario.start_s
        self.ticks = 0
        self.advance(1)  # signals exist from the start

    @property
    def engine(self) -> SimCluster:
        return self.store.engine

    def offered(self, t_s: float) -> np.ndarray:
        """(S,) offered load (requests/s) at simulation time ``t_s``: the scenario's shapes, which
        go on past the scenario's duration (a server may run longer than the scenario)."""
        return self._offered(np.array([t_s], dtype=np.float64))[0]

    def advance(self, ticks: int = 1) -> None:
        """Step the engine ``ticks`` ticks of ``tick_s`` simulated seconds."""
        for _ in range(ticks):
            t = self.next_tick_s
            self.store.step(t, self.tick_s, self.offered(t))
            observed = self.engine.signals()
            self.metrics.record(observed, self.tick_s)
            if self.hpa_controller is not None:
                self.hpa_controller.tick(observed)
            self.next_tick_s = t + self.tick_s
            self.ticks += 1

    def hold(self, ticks: int = 1, wall_s: float = 0.0) -> None:
        """Let ``ticks`` ticks of wall time pass with the scenario clock held (``--start-paused``):
        the engine, its objects, the load and the faults stay as they are, and the metrics count
        the last tick's signals again, so that PromQL ``rate()`` reads the held state's steady
        rates (counters standing still would read as no requests at all, and a controller
        started during the hold would scale down to its minimum). ``wall_s``: wall seconds the
        wall clock is ahead of the time objects show, skipped at the last tick (the store's
        SimTime), so that what clients write during the hold (managedFields, Events, deletions)
        shows the wall clock's time; objects from before the last tick keep theirs."""
        for _ in range(ticks):
            self.metrics.record(self.metrics.last, self.tick_s)
        if wall_s > 0:
            self.store.clock.skip(self.next_tick_s - self.tick_s, wall_s)

    @property
    def scenario_s(self) -> float:
        """The scenario time of the last tick stepped (s since the scenario's start; 0 until the
        first tick after the one made with the world)."""
        return self.next_tick_s - self.tick_s - self.scenario.start_s

    def skip(self, wall_s: float) -> None:
        """Let ``wall_s`` wall seconds pass without simulating them: simulated time resumes where
        it stopped, and the times objects show from the next tick on are ``wall_s`` later (the
        store's SimTime), so they stay in line with the wall clock; earlier ones keep theirs."""
        self.store.clock.skip(self.next_tick_s, wall_s)


class EngineDriver:
    """Steps a SimWorld every ``tick_s / speed`` wall seconds on a background thread.

    A tick due late is caught up, at most :data:`MAX_CATCH_UP_S` of wall time's worth of ticks in
    one step (at least one tick). A longer lag means the process was paused (SIGSTOP, a debugger)
    or the engine is slower than the speed: the rest is skipped (:meth:`SimWorld.skip`), so the
    simulation resumes where it stopped rather than replaying minutes in a burst that watchers
    would take for a surge. The monotonic clock stops during a suspend (of the machine) while the
    wall clock goes on: a wall clock more than MAX_CATCH_UP_S ahead of where the monotonic one
    says it should be is skipped too, so that objects' times stay in line with the wall clock.
    ``paused``: hold the scenario clock at its start (each tick due is :meth:`SimWorld.hold`)
    until :meth:`start_clock`. ``monotonic``, ``wall``: the clocks (tests pass fake ones).
    """

    def __init__(self, world: SimWorld, monotonic=time.monotonic, wall=time.time, paused: bool = False):
        self.world = world
        self.monotonic = monotonic
        self.wall = wall
        self.paused = paused
        self.paused_since = monotonic()  # (monotonic s) when the hold began: the driver's start
        # step_due (the driver's thread) against start_clock (a request's thread, a signal handler)
        self._lock = threading.Lock()
        self.interval_s = world.tick_s / world.speed
        #: Most ticks stepped at once: MAX_CATCH_UP_S of wall time's, at least the tick due.
        self.max_catch_up_ticks = max(1, int(MAX_CATCH_UP_S / self.interval_s))
        self.due = monotonic() + self.interval_s  # when the next tick is due
        self.skipped_ticks = 0  # ticks skipped since the start
        self._unlogged_skips: list[tuple[float, float]] = []  # (paused, skipped) wall s, not yet logged
        self._last_warning = -math.inf
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-engine", daemon=True)

    def start(self) -> "EngineDriver":
        self.align()
        self.paused_since = self.monotonic()
        self._thread.start()
        return self

    def start_clock(self, by: str) -> bool:
        """Start the scenario clock held since :meth:`start` (``paused``): the next tick, the
        scenario's second tick, is due one interval from now, and the wall time held is skipped
        (:meth:`align`), so that objects' times go on in line with the wall clock. ``by``: what
        asked, for the log. True if this call started it; False if it was running (a no-op)."""
        with self._lock:
            if not self.paused:
                log.info("start request (%s): the scenario clock is already running, at %gs; nothing to do",
                         by, self.world.scenario_s)
                return False
            self.paused = False
            self.align()
            held_s = self.monotonic() - self.paused_since
        log.info("scenario clock started (%s) after %.1fs paused at its start: the load and faults of scenario %s "
                 "count from now", by, held_s, self.world.scenario.name)
        return True

    def align(self) -> None:
        """Pace from now on: the next tick is due in ``interval_s``, and the wall time since the
        world's last tick (the server's set-up) is skipped, so that ticks line up with the wall clock
        (while :attr:`paused`, so that the time objects show is the wall clock's: see _hold_due)."""
        now = self.monotonic()
        self.due = now + self.interval_s
        if self.paused:
            self.world.hold(0, self._held_wall_s())
            return
        ahead_s = self._wall_ahead_s(now)
        if ahead_s > 0:
            self.world.skip(ahead_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(max(0.0, self.due - self.monotonic())):
            try:
                self.step_due(self.monotonic())
            except Exception:  # keep serving the API even if the engine breaks
                log.exception("engine step failed; the driver stops")
                return

    def step_due(self, now: float) -> int:
        """Step the ticks due by monotonic time ``now`` (none before the next is due), skipping
        those beyond :attr:`max_catch_up_ticks`; the ticks stepped. While :attr:`paused`, the
        ticks due are held instead (none stepped)."""
        with self._lock:
            if now < self.due:
                return 0
            if self.paused:
                self._hold_due(now)
                return 0
            return self._step_due(now)

    def _ticks_due(self, now: float) -> int:
        """The ticks due by monotonic time ``now`` (at least 1: the next is due)."""
        return int((now - self.due) / self.interval_s) + 1

    def _hold_due(self, now: float) -> None:
        """Hold the ticks due by ``now`` (at most :attr:`max_catch_up_ticks`, as stepping them),
        the time objects show kept up with the wall clock."""
        due = self._ticks_due(now)
        self.world.hold(min(due, self.max_catch_up_ticks), self._held_wall_s())
        self.due += due * self.interval_s

    def _held_wall_s(self) -> float:
        """How far the wall clock is ahead of the time objects show (the set-up, the hold so far)."""
        return self.wall() - self.world.store.wall_now()

    def _step_due(self, now: float) -> int:
        self._skip_suspend(now)
        due = self._ticks_due(now)
        stepped = min(due, self.max_catch_up_ticks)
        if due > stepped:
            self.world.skip((due - stepped) * self.interval_s)
            self.skipped_ticks += due - stepped
            self._warn_skipped(now, now - self.due, (due - stepped) * self.interval_s)
        self.world.advance(stepped)
        self.due += due * self.interval_s
        return stepped

    def _skip_suspend(self, now: float) -> None:
        """Skip the wall time the wall clock ran ahead of the monotonic one since the last tick
        stepped (a suspend), when it exceeds MAX_CATCH_UP_S (slow drift and slewing stay below)."""
        ahead_s = self._wall_ahead_s(now)
        if ahead_s > MAX_CATCH_UP_S:
            self.world.skip(ahead_s)
            self._warn_skipped(now, ahead_s, ahead_s)

    def _wall_ahead_s(self, now: float) -> float:
        """How far the wall clock is ahead of the time the next tick shows, less the time until
        it is due by the monotonic clock at ``now``: 0 when both clocks ran alike."""
        next_tick_wall_s = self.world.store.clock.wall(self.world.next_tick_s)
        return self.wall() - (next_tick_wall_s - (self.due - now))

    def _warn_skipped(self, now: float, paused_s: float, skipped_s: float) -> None:
        """Log a pause of ``paused_s`` wall seconds of which ``skipped_s`` were skipped, at most once
        per SKIP_WARNING_EVERY_S (the others summed into the next warning)."""
        self._unlogged_skips.append((paused_s, skipped_s))
        if now - self._last_warning < SKIP_WARNING_EVERY_S:
            return
        count = len(self._unlogged_skips)
        paused_s, skipped_s = (sum(column) for column in zip(*self._unlogged_skips))
        more = f" ({count} pauses since the last warning)" if count > 1 else ""
        log.warning("paused for %.1fs%s; simulated time resumed without catching up (%.0f simulated s skipped; "
                    "the process or the machine paused, or the engine is slower than speed %g)", paused_s, more,
                    skipped_s * self.world.speed, self.world.speed)
        self._unlogged_skips.clear()
        self._last_warning = now


# --------------------------------------------------------------------------- test hooks
#: Bounds of a fault rule: its delay (s), its uses, its path pattern and the paths it is matched
#: against (longer ones never match). A pattern may hold at most MAX_VARIABLE_REPEATS repeats of
#: variable length, none nested and no alternation inside one: matching then takes at most
#: ~0.2 s on a MAX_MATCHED_PATH path, where ``(a+)+$`` would take forever (and hold the GIL).
MAX_FAULT_DELAY_S = 60.0
MAX_FAULT_TIMES = 1_000_000
MAX_PATTERN_CHARS = 1000
MAX_MATCHED_PATH = 1024
MAX_VARIABLE_REPEATS = 2
_REPEATS = (sre_parser.MAX_REPEAT, sre_parser.MIN_REPEAT, sre_parser.POSSESSIVE_REPEAT)


def _variable_repeats(pattern, in_repeat: bool = False) -> int:
    """How many variable-length repeats a parsed regex holds; ValueError for a construct that
    can backtrack exponentially (a repeat or an alternation inside a repeat, a back-reference)."""
    count = 0
    for op, av in pattern:
        if op in _REPEATS:
            low, high, body = av
            if in_repeat:
                raise ValueError("nested repeats are not allowed")
            count += (low != high) + _variable_repeats(body, True)
        elif op is sre_parser.BRANCH:
            if in_repeat:
                raise ValueError("an alternation inside a repeat is not allowed")
            count += sum(_variable_repeats(alt, in_repeat) for alt in av[1])
        elif op in (sre_parser.GROUPREF, sre_parser.GROUPREF_EXISTS):
            raise ValueError("back-references are not allowed")
        else:
            children = [av] if isinstance(av, sre_parser.SubPattern) else \
                [x for x in av if isinstance(x, sre_parser.SubPattern)] if isinstance(av, tuple) else []
            count += sum(_variable_repeats(sub, in_repeat) for sub in children)
    return count


def compile_path_pattern(path: str) -> re.Pattern:
    """A fault rule's path regex, compiled; ValueError (re.error) when it is not a string, too
    long, invalid, or could take long to match (see MAX_VARIABLE_REPEATS)."""
    if not isinstance(path, str) or not path or len(path) > MAX_PATTERN_CHARS:
        raise ValueError(f"path must be a regex of 1 to {MAX_PATTERN_CHARS} characters")
    if _variable_repeats(sre_parser.parse(path)) > MAX_VARIABLE_REPEATS:
        raise ValueError(f"path may hold at most {MAX_VARIABLE_REPEATS} variable-length repeats")
    return re.compile(path)


@dataclass
class FaultRule:
    """The next ``times`` requests whose path matches ``path`` (a regex, searched) and whose
    method is ``method`` (any if None) wait ``delay_s`` seconds, then fail with ``status``
    (if set) or are served normally. Validated when made (ValueError), so that no rule can
    break or freeze the server: see :func:`compile_path_pattern` and the bounds above."""

    path: str
    status: int | None = None
    times: int = 1
    delay_s: float = 0.0
    method: str | None = None
    message: str = ""
    #: in-process only (tests): a matching request waits until it is set (at most MAX_FAULT_DELAY_S),
    #: then is served; ``arrived`` is set when one comes (a write held between a client's read and its write)
    gate: threading.Event | None = field(default=None, repr=False)
    arrived: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    pattern: re.Pattern = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.pattern = compile_path_pattern(self.path)
        if self.status is not None and (isinstance(self.status, bool) or not isinstance(self.status, int)
                                        or not 400 <= self.status <= 599):
            raise ValueError("status must be an HTTP error code from 400 to 599")
        if isinstance(self.times, bool) or not isinstance(self.times, int) or not 1 <= self.times <= MAX_FAULT_TIMES:
            raise ValueError(f"times must be a whole number from 1 to {MAX_FAULT_TIMES}")
        if (isinstance(self.delay_s, bool) or not isinstance(self.delay_s, (int, float))
                or not math.isfinite(self.delay_s) or not 0 <= self.delay_s <= MAX_FAULT_DELAY_S):
            raise ValueError(f"delaySeconds must be a number from 0 to {MAX_FAULT_DELAY_S:g}")
        if self.method is not None and not isinstance(self.method, str):
            raise ValueError("method must be a string")
        if not isinstance(self.message, str):
            raise ValueError("message must be a string")

    def matches(self, method: str, path: str) -> bool:
        return (self.times > 0 and (self.method is None or self.method == method) and len(path) <= MAX_MATCHED_PATH
                and self.pattern.search(path) is not None)

    def describe(self) -> dict:
        return {k: v for k, v in vars(self).items() if k not in ("pattern", "gate", "arrived")}


class FaultInjector:
    """Test hook: scripted failures and delays for the next matching requests."""

    def __init__(self):
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def inject(self, path: str, status: int | None = None, times: int = 1, delay_s: float = 0.0,
               method: str | None = None, message: str = "", gate: threading.Event | None = None) -> FaultRule:
        """Add a rule (ValueError when it is not valid, see FaultRule)."""
        rule = FaultRule(path, status, times, delay_s, method, message, gate)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def take(self, method: str, path: str) -> FaultRule | None:
        """The first rule that matches (one use of it consumed), or None. The regexes run outside
        the lock: a slow match delays only its own request."""
        with self._lock:
            rules = [r for r in self._rules if r.times > 0]
        for rule in rules:
            if rule.matches(method, path):
                with self._lock:
                    if rule.times > 0:  # another request may have used it up meanwhile
                        rule.times -= 1
                        return rule
        return None

    def describe(self) -> list[dict]:
        with self._lock:
            return [r.describe() for r in self._rules if r.times > 0]


#: Requests the log keeps in ``recent`` by default (in-process tests read it); ``sim serve`` keeps none.
RECENT_REQUESTS = 100_000
#: Distinct (method, path) pairs the log counts: the least recently requested beyond it are forgotten.
MAX_COUNTED_PATHS = 10_000


class RequestLog:
    """Counts of the requests served, by method and path (test hook and benchmark probe).

    Bounded for a server that runs for days: the total and the counts by method are exact; the
    counts by path are kept for the :data:`MAX_COUNTED_PATHS` most recently requested (method,
    path) pairs (paths name pods and Events, which come and go), older ones forgotten; ``recent``
    holds the last ``keep`` requests (monotonic time, method, path) for in-process tests; ``sim
    serve`` keeps none (nothing serves it over HTTP, and at 100 000 it held ~20 MB)."""

    def __init__(self, keep: int = RECENT_REQUESTS, max_paths: int = MAX_COUNTED_PATHS):
        self._counts: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._by_method: Counter[str] = Counter()
        self.max_paths = max_paths
        self.recent: deque[tuple[float, str, str]] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def add(self, method: str, path: str) -> None:
        with self._lock:
            key = (method, path)
            self._counts[key] = self._counts.get(key, 0) + 1
            self._counts.move_to_end(key)
            if len(self._counts) > self.max_paths:
                self._counts.popitem(last=False)
            self._by_method[method] += 1
            if self.recent.maxlen:
                self.recent.append((time.monotonic(), method, path))

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """Requests with this method (any if None) whose path matches the regex ``path`` (among
        the MAX_COUNTED_PATHS paths last requested)."""
        with self._lock:
            if path is None:
                return sum(n for m, n in self._by_method.items() if method is None or m == method)
            return sum(n for (m, p), n in self._counts.items()
                       if (method is None or m == method) and re.search(path, p))

    def by_method(self) -> dict[str, int]:
        """Request counts by HTTP method."""
        with self._lock:
            return dict(self._by_method)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._by_method.clear()
            self.recent.clear()


def _fault_status(code: int, message: str) -> K.KubeApiError:
    return K.KubeApiError(code, message or {
        403: 'deployments.apps is forbidden: User "system:serviceaccount:setpoint:setpoint" cannot patch resource',
        429: "Too many requests, please try again later.",
        500: "Internal error occurred: injected by the simulator",
        503: "the server is currently unable to handle the request",
    }.get(code, f"injected error {code}"))


# --------------------------------------------------------------------------- the apiserver app
class SimKubeApi:
    """The apiserver as an HTTP app over a SimWorld.

    ``token``: requests must carry ``Authorization: Bearer <token>`` (else 401); None serves
    everyone (only for an explicit ``--no-auth``: :class:`SimKubeServer` always makes one).
    ``test_hooks``: serve ``/_sim/faults`` and ``/_sim/requests`` (see the module docstring).
    ``driver``: the EngineDriver whose clock ``/_sim/clock`` reports and starts (None: the world
    is stepped by hand; set by SimKubeServer).
    """

    def __init__(self, world: SimWorld, token: str | None = None, test_hooks: bool = False,
                 request_history: int = RECENT_REQUESTS):
        self.world = world
        self.driver: EngineDriver | None = None
        self.token = token
        self.test_hooks = test_hooks
        self.resources = build_resources(world.store)
        self.stopping = threading.Event()  # set on stop: ends watches
        self.handler = ResourceHandler(world.store, self.stopping)
        self.faults = FaultInjector()
        self.requests = RequestLog(request_history)
        self.address = "127.0.0.1:0"

    def handle(self, request: Request) -> Response:
        if request.path not in PUBLIC_PATHS and not self.authorized(request):
            return error_response(K.KubeApiError(401, "Unauthorized", "Unauthorized"))
        if request.path in CLOCK_PATHS:
            return self._clock(request)
        if request.path.startswith("/_sim/") and self.test_hooks:
            return self._hook(request)
        self.requests.add(request.method, request.path)
        rule = self.faults.take(request.method, request.path)
        if rule is not None:
            rule.arrived.set()
            if rule.gate is not None:
                rule.gate.wait(MAX_FAULT_DELAY_S)
            if rule.delay_s and self.stopping.wait(rule.delay_s):
                return error_response(_fault_status(503, ""))  # the server stops: do not hold it up
            if rule.status:
                return error_response(_fault_status(rule.status, rule.message))
        try:
            return self._serve(request)
        except K.KubeApiError as exc:
            return error_response(exc)

    def _serve(self, request: Request) -> Response:
        if request.path in ("/healthz", "/readyz", "/livez"):
            return Response.text(200, "ok")
        if request.method == "GET":
            doc = discovery(request.path, self.resources, self.address)
            if doc is not None:
                return Response.json(200, doc)
        route = parse_path(request.path, self.resources)
        if route is None:
            raise K.no_such_route()
        return self.handler.serve(route, request)

    def authorized(self, request: Request) -> bool:
        """Whether the request carries the bearer token (compared in constant time)."""
        if self.token is None:
            return True
        sent = request.headers.get("authorization", "").encode("latin-1", "replace")
        return hmac.compare_digest(sent, f"Bearer {self.token}".encode())

    def _clock(self, request: Request) -> Response:
        """``GET /_sim/clock``: the scenario clock's state; ``POST /_sim/clock/start``: start it
        (200 either way; ``started`` says whether this request did)."""
        want = "POST" if request.path == CLOCK_START_PATH else "GET"
        if request.method != want:
            return error_response(K.KubeApiError(405, f"{request.path} takes {want} only"))
        if want == "GET":
            return Response.json(200, self.clock_state())
        if self.driver is None:
            return error_response(K.KubeApiError(409, NO_CLOCK))
        return Response.json(200, {"started": self.driver.start_clock(f"POST {request.path}"), **self.clock_state()})

    def clock_state(self) -> dict:
        """``paused``: whether the scenario clock is held at its start; ``scenarioSeconds``: the
        scenario time of the last tick (s since its start)."""
        return {"paused": self.driver is not None and self.driver.paused, "scenarioSeconds": self.world.scenario_s}

    def _hook(self, request: Request) -> Response:
        if request.path == "/_sim/requests" and request.method == "GET":
            return Response.json(200, {"total": self.requests.count(), "byMethod": self.requests.by_method()})
        if request.path == "/_sim/faults":
            if request.method == "GET":
                return Response.json(200, {"rules": self.faults.describe()})
            if request.method == "DELETE":
                self.faults.clear()
                return Response.json(200, {"rules": []})
            if request.method == "POST":
                try:
                    spec = request.json() or {}
                    rule = self.faults.inject(spec["path"], spec.get("status"), spec.get("times", 1),
                                              spec.get("delaySeconds", 0.0), spec.get("method"),
                                              spec.get("message", ""))
                except (ValueError, KeyError, TypeError, AttributeError, re.error, RecursionError) as exc:
                    return error_response(K.bad_request(f"a fault rule needs a JSON object with a path regex: {exc}"))
                return Response.json(201, rule.describe())
        return Response.json(404, K.no_such_route().status())


class MetricsApp:
    """``GET /metrics``: the Prometheus exposition of a SimWorld."""

    def __init__(self, world: SimWorld):
        self.world = world

    def handle(self, request: Request) -> Response:
        if request.path != "/metrics":
            return Response.text(404, "not found; try /metrics\n")
        return Response.text(200, self.world.metrics.render(), "text/plain; version=0.0.4; charset=utf-8")


# --------------------------------------------------------------------------- the server
def parse_listen(value: str) -> tuple[str, int]:
    """``127.0.0.1:8001`` -> ("127.0.0.1", 8001); ``:8001`` -> loopback (the controller's
    parse_listen: the same form and port range)."""
    return http_listen(value, default_host="127.0.0.1")


def _option_listen(option: str, value: str) -> tuple[str, int]:
    """parse_listen's (host, port), its ValueError naming ``option``."""
    try:
        return parse_listen(value)
    except ValueError as exc:
        raise ValueError(f"{option}: {exc}") from None


def kubeconfig(server_url: str, token: str | None, namespace: str = "default", ca_data: str | None = None) -> dict:
    """A kubeconfig for the simulated cluster (context and cluster named ``setpoint-sim``);
    ``ca_data``: the base64 PEM of the CA that signed the server's certificate."""
    user = {"token": token} if token else {}
    cluster = {"server": server_url, **({"certificate-authority-data": ca_data} if ca_data else {})}
    return {"apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "setpoint-sim", "cluster": cluster}],
            "users": [{"name": "setpoint-sim", "user": user}],
            "contexts": [{"name": "setpoint-sim", "context": {"cluster": "setpoint-sim", "user": "setpoint-sim",
                                                                "namespace": namespace}}],
            "current-context": "setpoint-sim"}


class SimKubeServer:
    """The simulated apiserver (and optionally its metrics endpoint) for one scenario.

    ``drive=False`` leaves the engine still (call ``world.advance``), for deterministic tests.
    ``start_paused``: hold the scenario clock at its start until :meth:`start_clock` (or
    ``POST /_sim/clock/start``); needs ``drive``.
    ``hpa_controller``: run the stored HPAs (simulators/kubeapi/hpa_controller.py); False only stores them.
    ``cluster_events``: record the Events of the cluster's controllers and kubelets (see SimWorld).
    ``wall_start_s``: the wall-clock time objects show for the scenario's start (None: now; tests
    driving a controller on simulated time pass the scenario's start, so both clocks agree).
    Use as a context manager, or ``start()`` / ``stop()``.
    """

    def __init__(self, scenario: Scenario | str | Path, *, host: str = "127.0.0.1", port: int = 0,
                 metrics_port: int | None = None, metrics_host: str | None = None, speed: float = 1.0,
                 drive: bool = True, token: str | None = None, auth: bool = True, test_hooks: bool = False,
                 statefulsets: frozenset[str] = frozenset(), max_connections: int = MAX_CONNECTIONS,
                 idle_timeout_s: float = IDLE_TIMEOUT_S, read_timeout_s: float = READ_TIMEOUT_S, tls: bool = True,
                 hpa_controller: bool = True, event_ttl_s: float = EVENT_TTL_S,
                 request_history: int = RECENT_REQUESTS, wall_start_s: float | None = None,
                 cluster_events: bool = True, start_paused: bool = False):
        if start_paused and not drive:
            raise ValueError("start_paused needs drive: a world stepped by hand has no clock to hold")
        if token is not None and not auth:
            raise ValueError("a token and auth=False contradict each other")
        if token is not None and not token.strip():
            raise ValueError("the token must not be empty")
        sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        self.world = SimWorld(sc, speed, statefulsets, wall_start_s=wall_start_s, hpa_controller=hpa_controller,
                              event_ttl_s=event_ttl_s, cluster_events=cluster_events)
        self.api = SimKubeApi(self.world, (token or new_token()) if auth else None, test_hooks, request_history)
        #: The CA and serving certificate (None over plain HTTP).
        self.identity: ServingIdentity | None = make_serving_identity((host,)) if tls else None
        self.http = _listening("Kubernetes API", self.api, host, port, max_connections, idle_timeout_s,
                               read_timeout_s, self.identity.server_context() if self.identity else None)
        self.api.address = f"{self.http.host}:{self.http.port}"
        try:
            self.metrics_http = (_listening("metrics endpoint", MetricsApp(self.world), metrics_host or host,
                                            metrics_port, 16, idle_timeout_s, read_timeout_s)
                                 if metrics_port is not None else None)
        except ListenError:
            self.http.stop()
            raise
        self.driver = EngineDriver(self.world, paused=start_paused) if drive else None
        self.api.driver = self.driver

    @property
    def url(self) -> str:
        return self.http.url

    @property
    def metrics_url(self) -> str | None:
        return f"{self.metrics_http.url}/metrics" if self.metrics_http else None

    @property
    def token(self) -> str | None:
        """The bearer token clients must send (None when auth is off)."""
        return self.api.token

    def client_ssl_context(self) -> ssl.SSLContext | None:
        """An SSLContext that trusts this server's CA (None over plain HTTP), for urllib and the like."""
        return self.identity.client_context() if self.identity else None

    def start_clock(self, by: str) -> bool:
        """Start the scenario clock held by ``start_paused`` (EngineDriver.start_clock): True if
        this call started it, False if it was running. ``by``: what asked, for the log."""
        if self.driver is None:
            raise ValueError(NO_CLOCK)
        return self.driver.start_clock(by)

    def write_kubeconfig(self, path: str | Path, namespace: str = "default") -> Path:
        """A kubeconfig with the server's URL, CA and token, written 0600 (see write_private_file)."""
        ca_data = self.identity.ca_data if self.identity else None
        text = yaml.safe_dump(kubeconfig(self.url, self.api.token, namespace, ca_data), sort_keys=False)
        return write_private_file(path, text)

    def write_token_file(self, path: str | Path) -> Path:
        """The bearer token alone (one line), written 0600."""
        if self.api.token is None:
            raise ValueError("there is no token to write: auth is off")
        return write_private_file(path, self.api.token + "\n")

    def start(self) -> "SimKubeServer":
        self.http.start()
        if self.metrics_http:
            self.metrics_http.start()
        if self.driver:
            self.driver.start()
        return self

    def stop(self) -> None:
        self.api.stopping.set()
        if self.driver:
            self.driver.stop()
        self.http.stop()
        if self.metrics_http:
            self.metrics_http.stop()

    def __enter__(self) -> "SimKubeServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _listening(role: str, app, host: str, port: int, *args) -> HttpService:
    """An HttpService bound to ``host:port``, or ListenError naming them and the ``role``."""
    try:
        return HttpService(app, host, port, *args)
    except OSError as exc:
        raise ListenError(role, host, port, exc.strerror or str(exc)) from None


def output_problem(path: str | Path, kind: str) -> str | None:
    """Why ``serve`` may not write its ``kind`` file (kubeconfig, token) at ``path``, or None: a
    folder there or no folder for it (found only after the server started, as an OSError naming
    a temporary file), or a file that is not one of these of an earlier run (a user's
    ~/.kube/config lost every other cluster to --kubeconfig-out)."""
    path = Path(path)
    if path.is_dir():
        return f"{path} is a folder; name the file to write"
    if special_file(path):
        return f"{path} {SPECIAL_FILE}; name a file"
    if not path.absolute().parent.is_dir():
        return f"{path}: no such folder {path.absolute().parent}; create it or name another file"
    try:
        if not path.exists() or path.stat().st_size == 0:
            return None
        with path.open("rb") as fh:
            data = fh.read(MAX_OWN_FILE_BYTES + 1)
    except OSError as exc:
        return f"{path}: cannot read it to check it can be replaced ({exc.strerror or exc})"
    if len(data) <= MAX_OWN_FILE_BYTES and (_own_kubeconfig(data) if kind == "kubeconfig" else _own_token(data)):
        return None
    what = "a kubeconfig of the setpoint-sim cluster alone" if kind == "kubeconfig" else "a token file (one line)"
    return f"{path} exists and is not {what}, as this command writes; name another file (it would be replaced)"


#: A kubeconfig or token file this server wrote is a few KiB (the CA's certificate).
MAX_OWN_FILE_BYTES = 64 * 1024


def _own_kubeconfig(data: bytes) -> bool:
    try:
        doc = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError, RecursionError):
        return False
    clusters = doc.get("clusters") if isinstance(doc, dict) else None
    return (isinstance(clusters, list) and bool(clusters)
            and all(isinstance(c, dict) and c.get("name") == "setpoint-sim" for c in clusters))


def _own_token(data: bytes) -> bool:
    return b"\n" not in data.rstrip(b"\n")


def new_token() -> str:
    """A fresh random bearer token (32 URL-safe characters)."""
    return secrets.token_urlsafe(24)


def serve(scenario: str | Path, kube_listen: str = "127.0.0.1:8001", metrics_listen: str | None = None,
          kubeconfig_out: str | Path | None = None, speed: float = 1.0, test_hooks: bool = False,
          token: str | None = None, on_ready=None, *, auth: bool = True, token_file: str | Path | None = None,
          read_timeout_s: float = READ_TIMEOUT_S, max_connections: int = MAX_CONNECTIONS, tls: bool = True,
          hpa_controller: bool = True, event_ttl_s: float = EVENT_TTL_S, statefulsets: Sequence[str] = (),
          start_paused: bool = False) -> None:
    """Run the simulated apiserver until SIGTERM or SIGINT (the ``setpoint sim serve`` command).

    ``start_paused``: hold the scenario clock at its start until ``POST /_sim/clock/start`` or
    SIGUSR1 (which, the clock running, is logged and ignored).

    ``statefulsets``: services served as StatefulSets besides the scenario's ``kind: StatefulSet``
    ones (``--statefulset``); a name that is not a service of the scenario is a ValueError.

    The bearer token (``token``, or a fresh random one) is always required unless ``auth`` is
    False; it is written into ``kubeconfig_out`` and ``token_file`` (both 0600).
    """
    host, port = _option_listen("--kube-listen", kube_listen)
    m_host, m_port = _option_listen("--metrics-listen", metrics_listen) if metrics_listen else (None, None)
    if token_file and not auth:
        raise ValueError("--token-file needs auth: there is no token with --no-auth")
    outputs = (("--kubeconfig-out", kubeconfig_out, "kubeconfig"), ("--token-file", token_file, "token"))
    for option, path, kind in outputs:
        problem = output_problem(path, kind) if path else None
        if problem:  # before anything listens or is written
            raise ValueError(f"{option}: {problem}")
    sc = load_scenario(scenario)
    unknown = sorted(set(statefulsets) - set(sc.services))
    if unknown:
        raise ValueError(f"--statefulset {unknown[0]}: scenario {sc.name} has no such service (its services: "
                         f"{', '.join(sc.services)})")
    try:
        server = SimKubeServer(sc, host=host, port=port, metrics_host=m_host, metrics_port=m_port, speed=speed,
                               token=token, auth=auth, test_hooks=test_hooks, read_timeout_s=read_timeout_s,
                               max_connections=max_connections, tls=tls, hpa_controller=hpa_controller,
                               event_ttl_s=event_ttl_s, request_history=0, statefulsets=frozenset(statefulsets),
                               start_paused=start_paused)
    except ListenError as exc:
        option, value = ("--metrics-listen", metrics_listen) if exc.role == "metrics endpoint" else ("--kube-listen",
                                                                                                  kube_listen)
        raise ValueError(f"{option} {value}: {exc}") from None
    # SIGUSR1's handler takes the clock's lock, which only the server's threads hold, never the
    # main thread that the handler interrupts (it waits on the stop signals' pipe)
    with StopSignals(signal.SIGTERM, signal.SIGINT) as stops:
        previous_usr1 = signal.signal(signal.SIGUSR1, lambda *_: server.start_clock("SIGUSR1"))
        server.start()
        try:
            if kubeconfig_out:
                server.write_kubeconfig(kubeconfig_out)
            if token_file:
                server.write_token_file(token_file)
            log.info("serving scenario %s: Kubernetes API at %s, metrics at %s, speed %gx%s", server.world.scenario.name,
                     server.url, server.metrics_url or "-", speed,
                     f"; its clock paused at its start until POST {CLOCK_START_PATH} or SIGUSR1" if start_paused else "")
            if on_ready:
                on_ready(server)
            stops.wait()
        finally:
            server.stop()
            signal.signal(signal.SIGUSR1, previous_usr1)
