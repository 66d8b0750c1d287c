"""Per-target status (`setpoint status`, GET /status): the latest decision record of each
target folded with what came before it (the last action, when each condition last changed).

The same :class:`StatusBook` is fed by the running controller (each cycle's records) and by a
decision-records file, so both give the same view. Inside, times are UTC epoch seconds; the
JSON document writes them as RFC 3339 in a given zone (the server: UTC; the CLI: local).
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone, tzinfo
from typing import Callable, Iterable

from controller.core.scaling.hpa_conditions import CONDITION_TYPES
from controller.errors import StatusError, StatusUnreachable
from controller.policy.durations import describe_value
from controller.runtime.records import applied_replicas
from controller.model import finite_number
from controller.ports import PriorAction

KIND = "SetpointStatus"
#: Times below this are seconds since a simulation's start (`setpoint simulate` records), not epoch.
EPOCH_FLOOR_S = 1e9
#: Times of a record are below this (9999-01-01T00:00:00Z): shown in any zone, they stay datetimes.
MAX_TIME_S = 253_370_764_800.0


def last_action(record: dict) -> dict | None:
    """The action a record applied (the health side's arbitrated one when the policy heals; a
    scaling decision the health side held is none), or None. An action the cluster did not take
    (``actionFailed``: refused, conflicted, timed out) is none: the last applied one stays."""
    if record.get("actionFailed"):
        return None
    health = record.get("health") or {}
    if health.get("action"):
        to = health.get("replicas") if health["action"] == "scale" else None
        return {"action": health["action"], "reason": health.get("reason"), "from": record.get("current"),
                "to": to, "at": record.get("at")}
    if isinstance(health.get("replicas"), int) and applied_replicas(record) == record.get("current"):
        return None  # arbitration held the scaling decision (a rollout in progress, a health scale-up's floor)
    if record.get("action"):
        return {"action": record["action"], "reason": record.get("reason"), "from": record.get("current"),
                "to": record.get("desired"), "at": record.get("at")}
    return None


def prior_last_action(action: PriorAction) -> dict:
    """The last action of a status from an action applied before this process led (read back
    from the cluster at a take-over): marked ``before_leading``, with the process that applied it
    (``by``) when known."""
    return {"action": action.action, "reason": action.reason, "from": action.from_replicas, "to": action.to_replicas,
            "at": action.at, "before_leading": True, **({"by": action.by} if action.by else {})}


def _newer(last: dict | None, other: dict | None) -> dict | None:
    """The newer of two last actions (``last`` on a tie or when ``other`` is None)."""
    return other if other is not None and (last is None or other["at"] > last["at"]) else last


def _rollout_view(health: dict, previous: dict | None, at) -> dict | None:
    """The rollout hold of a target: whether this controller holds its Deployment's rollout paused
    (``spec.paused``, waiting for a revision test's verdict), since when, and the last pause or
    resume with its reason. None while the policy never paused or resumed this target's rollout."""
    before = (previous or {}).get("rollout")
    held = bool(health.get("rollout_held"))
    if not held and not health.get("rollout") and before is None:
        return None
    last = ({"action": health["rollout"], "reason": health.get("rollout_reason"), "at": at}
            if health.get("rollout") else (before or {}).get("last"))
    since = None
    if held:  # the first cycle of the run of held cycles that ends here
        since = before["since"] if before and before.get("held") and before.get("since") is not None else at
    return {"held": held, "since": since, "last": last}


def _health_view(health: dict | None, previous: dict | None = None, at=None) -> dict | None:
    """The health side of a status from a record's ``health`` and the status's ``previous`` health view."""
    if not health:
        return None
    checks = []
    for name, c in (health.get("checks") or {}).items():
        value = c.get("smoothed") if c.get("smoothed") is not None else c.get("raw")
        checks.append({"name": name, "scope": c.get("scope"), "phase": c.get("phase"), "value": value,
                       "since": c.get("since"), "firing_pods": c.get("firing_pods", 0), "pods": c.get("pods", 0)})
    return {"held": bool(health.get("held")), "held_reason": health.get("held_reason"),
            "action": health.get("action"), "reason": health.get("reason"), "checks": checks,
            "rollout": _rollout_view(health, previous, at),
            # judged worse by a record check, until rolled back or replaced (whatever this cycle's reason)
            "revision_worse": bool(health.get("revision_worse")),
            # the accept-revision annotation: accepting the revision judged worse, or naming another
            "revision_accepted": bool(health.get("revision_accepted")),
            "accept_revision": health.get("accept_revision") or "",
            # the verification windows open: the action and the check each judges
            "verifying": [{"action": w.get("action"), "check": w.get("check")} for w in health.get("verifying") or []
                          if isinstance(w, dict)]}


def _hands_off_view(external: dict | None) -> dict | None:
    """A record's ``externalScale`` (controller/runtime/external_scale.py): who set the replicas to
    what, when, and until when the policy leaves them alone (``rehearsal``: a real run would)."""
    if not isinstance(external, dict) or external.get("deploy"):  # a deploy's reset: no hands-off
        return None
    return {"by": external.get("by"), "replicas": external.get("replicas"), "at": external.get("at"),
            "until": external.get("until"), "rehearsal": bool(external.get("rehearsal")),
            "floor": bool(external.get("floor")),
            **({"wanted": external["wanted"]} if external.get("wanted") is not None else {})}


def hands_off_line(key: str, hands_off: dict | None, now: float | None = None) -> str:
    """``shop/api: hands off until 15:04 (replicas set to 30 by kubectl)``; '' without a hands-off."""
    if not hands_off or hands_off.get("until") is None:
        return ""
    until = float(hands_off["until"])
    when = datetime.fromtimestamp(until).astimezone().strftime("%H:%M") if until >= EPOCH_FLOOR_S else \
        wall_clock(until, until)
    what = f"replicas set to {hands_off.get('replicas')} by {hands_off.get('by')}"
    if hands_off.get("rehearsal"):
        return f"{key}: a real run would leave it alone until {when} ({what}); this rehearsal goes on deciding"
    if hands_off.get("floor"):
        return f"{key}: hands off until {when}, at {hands_off.get('replicas')} or more ({what})"
    short = f"; the policy would set {hands_off['wanted']} (`setpoint resume {key}`)" if hands_off.get("wanted") else ""
    return f"{key}: hands off until {when} ({what}){short}"


def _condition_order(kind: str) -> tuple:
    return (CONDITION_TYPES.index(kind) if kind in CONDITION_TYPES else len(CONDITION_TYPES), kind)


def fold(previous: dict | None, record: dict) -> dict:
    """The status of a target after ``record`` (a decision-record dict), given its status before."""
    at = record.get("at")
    conditions = dict((previous or {}).get("conditions") or {})
    for kind, new in (record.get("conditions") or {}).items():
        old = conditions.get(kind)
        changed = old is None or old.get("status") != new.get("status")
        conditions[kind] = {**new, "last_transition": at if changed else old.get("last_transition")}
    conditions = {k: conditions[k] for k in sorted(conditions, key=_condition_order)}
    return {
        "policy": record.get("policy"), "target": record.get("target"), "at": at,
        "current": record.get("current"), "ready": record.get("ready"), "desired": record.get("desired"),
        # replicas whose pods run but stay not Ready, sized on top of the decision (core/scaling/withheld.py)
        "withheld": record.get("withheld", 0),
        # a health-only policy has no scaling reason of its own: its health side's is the one
        "reason": (record.get("health") or {}).get("reason") if not record.get("metrics") and record.get("health")
        else record.get("reason"),
        "metrics": {name: {"value": m.get("smoothed"), "proposal": m.get("proposal"), "missing": m.get("missing")}
                    for name, m in (record.get("metrics") or {}).items()},
        "last_action": last_action(record) or (previous or {}).get("last_action"),
        "conditions": conditions,
        "health": _health_view(record.get("health"), (previous or {}).get("health"), at),
        # how the controller's state started (warm from Prometheus' history, or cold), kept until the next start
        "warm_start": record.get("warm_start") or (previous or {}).get("warm_start"),
        # someone else set the replicas: left alone until then (controller/runtime/external_scale.py)
        "hands_off": _hands_off_view(record.get("externalScale")),
    }


class StatusBook:
    """Latest status per policy and target; thread-safe (cycles write, the HTTP server reads)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._targets: dict[str, dict[str, dict]] = {}  # policy -> target key -> status
        self._cycle_at: dict[str, float] = {}
        self._left_alone: dict[str, dict[str, str]] = {}  # policy -> target key -> why it is not governed
        # (policy, target key) -> the newest action applied before this process led (recall); policy
        # '' where the record does not name it (an older version's): it counts for any policy
        self._prior: dict[tuple[str, str], dict] = {}

    def add(self, record: dict) -> None:
        """Fold one record in (a records file, oldest first)."""
        policy = str(record.get("controller") or record.get("policy"))
        with self._lock:
            targets = self._targets.setdefault(policy, {})
            targets[record["target"]] = fold(targets.get(record["target"]), record)
            self._cycle_at[policy] = max(self._cycle_at.get(policy, record["at"]), record["at"])

    def add_cycle(self, policy: str, at: float, records: Iterable[dict],
                  left_alone: dict[str, str] | None = None) -> None:
        """One cycle of a policy: its targets now are exactly those of ``records``; ``left_alone``:
        the workloads it selects but leaves alone, each with why (another policy, an HPA)."""
        records = list(records)
        with self._lock:
            old = self._targets.get(policy, {})
            self._targets[policy] = {r["target"]: self._with_prior(policy, fold(old.get(r["target"]), r))
                                     for r in records}
            self._cycle_at[policy] = at
            self._left_alone[policy] = dict(left_alone or {})

    def recall(self, actions: Iterable[PriorAction]) -> int:
        """The actions applied before this process led (read back at a take-over): each target's
        newest becomes its last action where its status knows none newer (this process's own
        come later), at once for the targets shown, at their first cycle for the others. Returns
        how many targets have one."""
        prior: dict[tuple[str, str], dict] = {}
        for a in actions:
            key = (a.policy, a.target.key)
            prior[key] = _newer(prior.get(key), prior_last_action(a))
        with self._lock:
            self._prior = prior
            for policy, targets in self._targets.items():
                for key, status in targets.items():
                    targets[key] = self._with_prior(policy, status)
        return len({key for _, key in prior})

    def _with_prior(self, policy: str, status: dict) -> dict:
        """``status`` with the newer of its last action and the policy's prior one (a copy when it
        changes: a view handed out keeps what it was). Under the lock."""
        if not self._prior:
            return status
        key, last = status["target"], status.get("last_action")
        newest = _newer(_newer(last, self._prior.get((policy, key))), self._prior.get(("", key)))
        return status if newest is last else {**status, "last_action": newest}

    def forget(self, keep: Iterable[str]) -> None:
        """Drop the policies not in ``keep`` (removed by a reload)."""
        keep = set(keep)
        with self._lock:
            for policy in set(self._targets) - keep:
                del self._targets[policy]
                self._cycle_at.pop(policy, None)
                self._left_alone.pop(policy, None)

    def view(self, policies: Iterable[str] = ()) -> dict:
        """``{policy: {"at": last cycle, "targets": {key: status}}}``, with ``"left_alone": {key:
        why}`` when the policy's last cycle left selected workloads alone; ``policies`` adds
        loaded policies that have not cycled yet."""
        with self._lock:
            names = sorted(set(self._targets) | set(policies))
            return {p: {"at": self._cycle_at.get(p),
                        "targets": {k: self._targets.get(p, {})[k] for k in sorted(self._targets.get(p, {}))},
                        **({"left_alone": dict(sorted(self._left_alone[p].items()))} if self._left_alone.get(p)
                           else {})}
                    for p in names}

    def __len__(self) -> int:
        with self._lock:
            return sum(len(t) for t in self._targets.values())


# ---------------------------------------------------------------------------------- JSON


def _map_times(policies: dict, fn: Callable) -> dict:
    """A copy of a view with every time passed through ``fn`` (None stays None)."""
    def t(x):
        return None if x is None else fn(x)

    out = {}
    for name, p in policies.items():
        targets = {}
        for key, s in p["targets"].items():
            s = dict(s, at=t(s.get("at")))
            if s.get("last_action"):
                s["last_action"] = dict(s["last_action"], at=t(s["last_action"].get("at")))
            s["conditions"] = {k: dict(c, last_transition=t(c.get("last_transition")))
                               for k, c in (s.get("conditions") or {}).items()}
            if s.get("hands_off"):
                s["hands_off"] = dict(s["hands_off"], at=t(s["hands_off"].get("at")),
                                      until=t(s["hands_off"].get("until")))
            if s.get("warm_start"):
                w = s["warm_start"]
                s["warm_start"] = dict(w, at=t(w.get("at")), **{"from": t(w.get("from")), "to": t(w.get("to"))})
            if s.get("health"):
                h = s["health"] = dict(s["health"], checks=[dict(c, since=t(c.get("since")))
                                                            for c in s["health"].get("checks", [])])
                if h.get("rollout"):
                    r = h["rollout"]
                    h["rollout"] = dict(r, since=t(r.get("since")),
                                        last=dict(r["last"], at=t(r["last"].get("at"))) if r.get("last") else None)
            targets[key] = s
        out[name] = {"at": t(p.get("at")), "targets": targets,
                     **({"left_alone": dict(p["left_alone"])} if p.get("left_alone") else {})}
    return out


def rfc3339(epoch_s: float, tz: tzinfo | None) -> str:
    """``2026-12-01T15:02:11Z`` in UTC, ``2026-12-01T20:32:11+05:30`` in a zone; None: local."""
    d = datetime.fromtimestamp(epoch_s, tz or timezone.utc)
    if tz is None:
        d = d.astimezone()
    text = d.isoformat(timespec="seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


#: The modes of a controller that writes nothing, and what `setpoint status` says of each.
REHEARSALS = {
    "shadow": ("this controller runs --shadow: it writes nothing, the incumbent autoscaler (the HPA) scales these "
               "workloads; cur is what that set, want what Setpoint would set (setpoint_shadow_* on /metrics "
               "compare the two over time)"),
    "dry-run": "this controller runs --dry-run: it writes nothing; want is what it would set",
}


def to_document(policies: dict, now: float, tz: tzinfo | None = timezone.utc, leader: bool | None = None,
                rejected: dict | None = None, mode: str | None = None, lease: str | None = None,
                started: float | None = None) -> dict:
    """The JSON document of a view (GET /status, `setpoint status --json`); tz None: local time.
    ``leader``: whether the serving replica acts (False: a standby of leader election, whose view
    is empty or from before it stood by); left out when unknown (a records file). ``rejected``:
    the policy files' errors while they are rejected (``{"errors": [...], "running": what runs}``).
    ``mode``: ``live``, ``dry-run`` or ``shadow`` (a rehearsal writes nothing: its desired counts are
    what it would set); left out when unknown (a records file). ``lease``: the leader-election
    Lease, ``NAMESPACE/NAME`` (left out without leader election). ``started``: when the controller
    process started (epoch s; ``startedAt``), left out when unknown (a records file). Times are RFC
    3339; those of a simulation's records (below EPOCH_FLOOR_S) stay seconds since its start."""
    doc = {"kind": KIND, "generated_at": rfc3339(now, tz)}
    if started is not None:
        doc["startedAt"] = rfc3339(started, tz)
    if mode is not None:
        doc["mode"] = mode
    if leader is not None:
        doc["leader"] = bool(leader)
    if lease:
        doc["lease"] = lease
    if rejected:
        doc["rejectedPolicyFiles"] = rejected
    # a simulation's times are seconds since its start: as such, not as dates of January 1970
    doc["policies"] = _map_times(policies, lambda x: rfc3339(x, tz) if x >= EPOCH_FLOOR_S else x)
    return doc


def from_document(doc, source: str) -> dict:
    """The view of a JSON document; StatusError naming ``source`` if it is not one."""
    if not isinstance(doc, dict) or doc.get("kind") != KIND or not isinstance(doc.get("policies"), dict):
        raise StatusError(f"{source}: not a Setpoint status document (expected kind {KIND})")
    try:
        return _map_times(doc["policies"], lambda x: x if isinstance(x, (int, float)) and not isinstance(x, bool)
                          else datetime.fromisoformat(x).timestamp())
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise StatusError(f"{source}: malformed status document ({exc})") from None


#: The largest /status answer read: a controller governing 10,000 targets answers a few MiB.
MAX_STATUS_BYTES = 64 * 1024 * 1024


def _get_within(url: str, timeout_s: float) -> bytes:
    """The body of GET ``url``, answered in full within ``timeout_s`` seconds, else TimeoutError.

    urllib's timeout bounds each socket read, not the request: a server sending a byte every
    0.5 s held `setpoint status --timeout 3` for minutes. The request runs on a daemon thread
    that is abandoned at the deadline (this is a one-shot command; its socket times out too).
    """
    answer: list = []

    def get() -> None:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (the user's URL)
                answer.append(response.read(MAX_STATUS_BYTES))
        except BaseException as exc:  # noqa: BLE001 -- handed to the caller's thread as it is
            answer.append(exc)

    worker = threading.Thread(target=get, name="status-request", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if not answer:
        raise TimeoutError(url)
    if isinstance(answer[0], BaseException):
        raise answer[0]
    return answer[0]


def fetch_status(server: str, timeout_s: float = 5.0, about: dict | None = None) -> dict:
    """GET SERVER/status of a running controller; its view. StatusUnreachable names the next step.
    ``about`` receives what the document says of the replica itself (``leader``, when it says)."""
    url = server.rstrip("/") + "/status"
    try:  # "Invalid IPv6 URL", a port that is not a number from 0 to 65535
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 -- raises for a bad port
        problem = None if parts.scheme in ("http", "https") and parts.hostname else ""
    except ValueError as exc:
        problem = f" ({exc})"
    if problem is not None:
        raise StatusError(f"--server: expected a URL such as http://127.0.0.1:8080, got {server!r}{problem}")
    hint = ("check that `setpoint run` is running and that --server names its --listen address (from outside "
            "the cluster: kubectl port-forward to the controller's port 8080, then --server http://127.0.0.1:8080)")
    try:
        body = _get_within(url, timeout_s)
    except TimeoutError:
        raise StatusUnreachable(f"{url} gave no complete answer within {timeout_s:g}s (--timeout); {hint}") from None
    except urllib.error.HTTPError as exc:
        raise StatusUnreachable(f"{url} answered HTTP {exc.code}: not a Setpoint controller serving /status; "
                                f"{hint}") from None
    except (urllib.error.URLError, OSError) as exc:
        why = getattr(exc, "reason", None) or exc
        raise StatusUnreachable(f"cannot reach the controller at {server} ({why}); {hint}") from None

    try:
        doc = json.loads(body)
    except ValueError:
        raise StatusUnreachable(f"{url} did not answer JSON: not a Setpoint controller; {hint}") from None
    view = from_document(doc, url)
    if about is not None:  # what the document says of the controller beside its view, where well-formed
        for key, field, kind in (("leader", "leader", bool), ("mode", "mode", str), ("lease", "lease", str),
                                 ("rejected", "rejectedPolicyFiles", dict)):
            if isinstance(doc.get(field), kind):
                about[key] = doc[field]
        started = _epoch_of(doc.get("startedAt"))
        if started is not None:
            about["started"] = started
    return view


def _epoch_of(text: object) -> float | None:
    """An RFC 3339 time of a document as epoch seconds; None when absent or not one."""
    if not isinstance(text, str):
        return None
    try:
        epoch = datetime.fromisoformat(text).timestamp()
    except (ValueError, OverflowError, OSError):
        return None
    return epoch if _time(epoch) else None


def book_from_records(records: Iterable[dict], on_skip: Callable[[str], None] | None = None) -> StatusBook:
    """A status book from decision records, oldest first (`setpoint status --records`). A record
    that does not read as a decision record (a hand edit, another program's line) is skipped, and
    ``on_skip`` is told why."""
    book = StatusBook()
    for r in records:
        problem = record_problem(r)
        if problem is None:
            book.add(r)
        elif on_skip is not None:
            on_skip(problem)
    return book


def _time(x) -> bool:
    """A time a datetime can show in any zone: seconds since a simulation's start, or epoch
    seconds before the year 9999 (1e15 or 1e300 stopped `setpoint status` with exit 70)."""
    return finite_number(x) and 0 <= x < MAX_TIME_S


def _optional(check: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda x: x is None or check(x)


def _mapping_of(fields: dict) -> Callable[[object], bool]:
    """A mapping of names to mappings whose ``fields`` pass their checks."""
    return lambda x: isinstance(x, dict) and all(
        isinstance(k, str) and isinstance(v, dict) and all(check(v.get(f)) for f, check in fields.items())
        for k, v in x.items())


def _fields(fields: dict) -> Callable[[object], bool]:
    """A mapping whose ``fields`` pass their checks (other keys are not read)."""
    return lambda x: isinstance(x, dict) and all(check(x.get(f)) for f, check in fields.items())


_TEXT = _optional(lambda x: isinstance(x, str))
_COUNT = _optional(finite_number)
_TIME = _optional(_time)
_HEALTH_FIELDS = {"action": _TEXT, "reason": _TEXT, "held_reason": _TEXT, "replicas": _COUNT,
                  "checks": _optional(_mapping_of({"phase": _TEXT, "scope": _TEXT, "smoothed": _COUNT, "raw": _COUNT,
                                                   "since": _TIME, "firing_pods": _COUNT, "pods": _COUNT}))}
#: What `setpoint status` reads of a decision record, and what each must be.
RECORD_FIELDS: dict[str, Callable[[object], bool]] = {
    "target": lambda x: isinstance(x, str), "at": _time, "policy": _TEXT, "controller": _TEXT, "reason": _TEXT,
    "action": _TEXT, "current": _COUNT, "ready": _COUNT, "desired": _COUNT, "withheld": _COUNT,
    "conditions": _optional(_mapping_of({"status": _TEXT, "reason": _TEXT, "message": _TEXT})),
    "metrics": _optional(_mapping_of({"smoothed": _COUNT, "proposal": _COUNT})),
    "health": _optional(_fields(_HEALTH_FIELDS)),
    "externalScale": _optional(_fields({"by": _TEXT, "replicas": _COUNT, "at": _TIME, "until": _TIME,
                                         "wanted": _COUNT})),
    "actionFailed": _optional(_fields({"action": _TEXT, "error": _TEXT})),
    "warm_start": _optional(_fields({"at": _TIME, "from": _TIME, "to": _TIME, "window_s": _COUNT, "source": _TEXT,
                                     "why": _TEXT, "cause": _TEXT})),
}


def record_problem(record: object) -> str | None:
    """Why ``record`` does not read as a decision record (its first odd field), or None."""
    if not isinstance(record, dict):
        return f"expected a mapping, got {describe_value(record)}"
    for field, check in RECORD_FIELDS.items():
        if not check(record.get(field)):
            return f"{field}: unexpected {describe_value(record.get(field))}"
    return None


# ---------------------------------------------------------------------------------- text


def ago(seconds: float) -> str:
    """``12s ago``, ``4m ago``, ``1h05m ago``, ``3d ago``; ``in 5s`` for the future."""
    s = abs(seconds)
    if s < 1:
        return "now"
    if s < 60:
        text = f"{s:.0f}s"
    elif s < 3600:
        text = f"{s // 60:.0f}m"
    elif s < 86400:
        text = f"{s // 3600:.0f}h{s % 3600 // 60:02.0f}m"
    else:
        text = f"{s // 86400:.0f}d"
    return f"{text} ago" if seconds >= 0 else f"in {text}"


def wall_clock(epoch_s: float | None, now: float) -> str:
    """Local wall-clock time (``15:02:11``, with the date when not today) and how long ago.

    Times of a simulation (seconds since its start) print as ``t+1h02m``."""
    if epoch_s is None:
        return "-"
    if epoch_s < EPOCH_FLOOR_S:
        return f"t+{ago(epoch_s)[:-4] if epoch_s >= 1 else '0s'}"
    when = datetime.fromtimestamp(epoch_s).astimezone()
    today = datetime.fromtimestamp(now).astimezone().date() == when.date()
    return f"{when.strftime('%H:%M:%S' if today else '%Y-%m-%d %H:%M')} ({ago(now - epoch_s)})"


def zone_name(now: float) -> str:
    """The local zone as ``UTC+05:30 (IST)``."""
    d = datetime.fromtimestamp(now).astimezone()
    offset = d.strftime("%z")
    return f"UTC{offset[:3]}:{offset[3:]} ({d.tzname()})"
