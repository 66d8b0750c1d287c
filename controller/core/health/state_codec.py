"""The durable part of the health state as a versioned JSON payload, and back. Pure.

What must survive a controller restart, a failover or a policy edit (so that they cannot re-arm
self-healing): the budgets' sliding windows (pods restarted, rollbacks, with their times), the
circuit breaker (held, why, since when), the open verification window and pending escalation
(by check *name*, so a reordered policy still finds them), the health scale-up floor and
cooldown, the revision memory (current revision, the two known-healthy ones, rollback and
restart markers), and the revision checks' sequential tests (by check *name*: the revision under
test, the statistic, each revision's summed counts, the verdict, and the current revision's
recent totals, the baseline its successor is compared with). Check phases and pod memory are
not kept: they are re-derived from metrics (the workload checks replayed from their history in
Prometheus at the next cycle, runtime/check_history.py; pod checks must satisfy their ``for``
again after a restart, which only delays an action).

A test restarted from nothing would spend its false-rollback rate a second time on the same
rollout (each fresh start is another chance of a false alarm) and a completed rollout would
lose the baseline it is compared with; so the test state is kept. It is written with the rest
of the durable state: when its verdict or the revision under test changes (a rollout starts:
the stable revision's baseline is saved then), and along with any other save; the summed
counts moving every cycle do not on their own cause a write. After a restart the test resumes
from the last saved counts (the evidence since then is not used: a dropped stretch of data
does not change the false-rollback bound). A record written before the tests were kept has no
``revision_tests``: the tests start empty.

Payload (JSON, times in epoch seconds, null for unknown)::

    {"schema_version": 1, "policy": "web", "saved_at": 1800000000.0,
     "targets": {"shop/Deployment/web": {
        "budgets": {"restarts": [[pods, t], ...], "rollbacks": [[1, t], ...]},
        "breaker": {"held": true, "reason": "RestartBudgetExhausted", "at": t},
        "verification": {"action": "rolling-restart", "check": "memory", "started": t, "until": t,
                         "seen": t | null} | null,
        "pod_verification": {"check": "memory", "started": t, "until": t, "seen": t | null} | null,
        "escalation": {"action": "rollback", "check": "memory"} | null,
        "floor": {"replicas": 6, "until": t, "cooldown_until": t},
        "revisions": {"current": "abc", "since": t, "rollout_done_at": t, "healthy": "abc",
                      "older_healthy": "", "rolled_back_to": "", "restarted": "", "trusted": false},
        "revision_tests": {"revision": "abc", "checks": {"release-errors": {
            "llr": 1.2, "during": 0.8, "verdict": "undecided" | "bad" | "good", "decided_at": t, "drifted": false,
            "new": [requests, errors, 0], "old": [...], "after": [...], "base": [...], "stable": [...]}}},
        "rollout_hold": {"revision": "abc", "paused_at": t | null, "over": false} | null,
        "resume_seen": "2026-12-01T14:00:00+00:00" | null}}}

``rollout_hold`` says that *this controller* paused the Deployment (``paused_at``) to hold its
rollout for evidence (controller/core/health/rollout_hold.py): after a restart the hold is
kept or ended by the same rules, and a Deployment someone else paused is never resumed. It
is written before the pause goes out. A record without it holds nothing.

Unreadable input is never a silent fresh start. A payload that cannot be read (not JSON, not an
object, another schema version) or a target record that cannot be decoded restores that target
*conservatively*: its restart and rollback budgets are charged in full at load time, so no
disruptive action (restart, rolling restart, rollback) runs until the budget's own window has
passed (an hour, a day), while non-disruptive remedies (scale-up, record) still work; and a
problem is reported so the shell warns loudly. Holding the breaker instead would stop healing
until a human acts; trusting an empty state would re-arm every budget, the failure this module
exists to prevent. An absent payload (None) is a first start: empty state, no problem.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np

from controller.core import history
from controller.core.health.heal import HealthState
from controller.core.health.params import HEALTH_REASON_CODES, HealthParams, Remedy
from controller.core.health.remediate import DAY_S, HOUR_S, BudgetState, RemedyState
from controller.core.health.revision_test import RevisionTestState, Verdict
from controller.core.health.rollout_hold import HoldState

SCHEMA_VERSION = 1
_REMEDY_NAMES = {r: r.policy_word or "none" for r in Remedy}  # the policy's words (scale-up), as stored since v1
_REMEDY_BY_NAME = {v: k for k, v in _REMEDY_NAMES.items()}
_REASON_BY_CODE = {c: i for i, c in enumerate(HEALTH_REASON_CODES)}
_REVISION_TEXT = ("current", "healthy", "older_healthy", "rolled_back_to", "restarted")
_REVISION_TIMES = ("since", "rollout_done_at")
_VERDICT_NAMES = {v: v.name.lower() for v in Verdict}
_VERDICT_BY_NAME = {v: k for k, v in _VERDICT_NAMES.items()}
_TEST_SUMS = ("new", "old", "after", "base", "stable")  # (N, C, 3) sufficient statistics
_TEST_STATS = ("llr", "during")  # (N, C) log likelihood ratios


def target_key(namespace: str, kind: str, name: str) -> str:
    """How a target is keyed in the payload: ``namespace/kind/name``."""
    return f"{namespace}/{kind}/{name}"


# --- change detection ------------------------------------------------------------------------


def durable_arrays(state: HealthState) -> tuple[np.ndarray, ...]:
    """The arrays the payload is made of, to tell cheaply whether anything durable changed.

    ``clean_since`` is left out on purpose: it moves every cycle while a check fires, and it
    is not restored (a restored revision proves itself healthy again from the load time).
    The revision tests count by their revision and verdicts only: their summed counts move every
    cycle of a rollout and are written along with the next save (see the module docstring).
    """
    b, rem, rev, rt = state.budgets, state.remedy, state.revisions, state.revision_tests
    tests = () if rt is None else (rt.revision, rt.verdict, rt.decided_at)
    h = state.hold if state.hold is not None else HoldState.empty(b.restarts.shape[0])  # None: holds nothing
    hold = (h.revision, h.since, h.over)
    return ((b.restarts, b.restart_at, b.rollbacks, b.rollback_at)
            + tuple(getattr(rem, k) for k in rem.__dataclass_fields__)
            + tuple(getattr(rev, k) for k in rev.__dataclass_fields__ if k != "clean_since") + tests + hold)


def same_arrays(a: Sequence[np.ndarray] | None, b: Sequence[np.ndarray]) -> bool:
    """Whether two ``durable_arrays`` results hold the same values (NaN equals NaN)."""
    if a is None or len(a) != len(b):
        return False
    return all(x.shape == y.shape and np.array_equal(x, y, equal_nan=x.dtype.kind == "f" and y.dtype.kind == "f")
               for x, y in zip(a, b))


# --- encode ----------------------------------------------------------------------------------


def _t(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _entries(values: np.ndarray, times: np.ndarray) -> list[list[float]]:
    """[[value, time], ...] of the filled slots of one history row, oldest first."""
    filled = np.isfinite(times)
    order = np.argsort(times[filled], kind="stable")
    return [[float(v), float(t)] for v, t in zip(values[filled][order], times[filled][order])]


def _check_name(params: HealthParams, index: int) -> str | None:
    return params.check_names[index] if 0 <= index < len(params.check_names) else None


def _floats(a: np.ndarray) -> list[float]:
    return [float(x) for x in np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0).ravel()]


def encode_tests(params: HealthParams, tests: RevisionTestState | None, i: int) -> dict | None:
    """Row ``i`` of the revision checks' tests, keyed by check name (None without checks)."""
    if tests is None or not params.revision_checks or tests.llr.shape[1] != len(params.revision_checks):
        return None
    checks = {}
    for j, c in enumerate(params.revision_checks):
        checks[c.name] = {**{k: float(np.nan_to_num(getattr(tests, k)[i, j])) for k in _TEST_STATS},
                          "verdict": _VERDICT_NAMES[Verdict(int(tests.verdict[i, j]))],
                          "decided_at": _t(tests.decided_at[i, j]), "drifted": bool(tests.drifted[i, j]),
                          **{k: _floats(getattr(tests, k)[i, j]) for k in _TEST_SUMS}}
    return {"revision": str(tests.revision[i]), "checks": checks}


def encode_hold(hold: HoldState | None, i: int) -> dict | None:
    """Row ``i`` of the rollout holds, None when there is nothing to remember."""
    if hold is None or (not hold.revision[i] and not hold.ours[i]):
        return None
    return {"revision": str(hold.revision[i]), "paused_at": _t(hold.since[i]), "over": bool(hold.over[i])}


def decode_hold(record: Any) -> tuple[str, float, bool] | None:
    """(revision, paused_at, over) of one record's rollout_hold; None when absent."""
    if record is None:
        return None
    if not isinstance(record, Mapping):
        raise ValueError("rollout_hold: expected an object")
    if not isinstance(record.get("over"), bool):
        raise ValueError("rollout_hold.over: expected true or false")
    return (_text(record.get("revision"), "rollout_hold.revision"), _time(record.get("paused_at"),
            "rollout_hold.paused_at"), record["over"])


def encode_target(params: HealthParams, state: HealthState, i: int, resume_seen: str | None = None) -> dict:
    """The durable record of row ``i``."""
    b, rem, rev = state.budgets, state.remedy, state.revisions
    verify = int(rem.verify_action[i])
    escalation = int(rem.escalation[i])
    return {
        "budgets": {"restarts": _entries(b.restarts[i], b.restart_at[i]),
                    "rollbacks": _entries(b.rollbacks[i], b.rollback_at[i])},
        "breaker": {"held": bool(rem.held[i]),
                    "reason": HEALTH_REASON_CODES[int(rem.held_reason[i])] if rem.held_reason[i] >= 0 else None,
                    "at": _t(rem.held_at[i])},
        "verification": None if verify == Remedy.NONE else {
            "action": _REMEDY_NAMES[Remedy(verify)], "check": _check_name(params, int(rem.verify_check[i])),
            "started": _t(rem.verify_started[i]), "until": _t(rem.verify_until[i]), "seen": _t(rem.verify_seen[i])},
        "pod_verification": None if rem.pod_verify_check[i] < 0 else {
            "check": _check_name(params, int(rem.pod_verify_check[i])), "started": _t(rem.pod_verify_started[i]),
            "until": _t(rem.pod_verify_until[i]), "seen": _t(rem.pod_verify_seen[i])},
        "escalation": None if escalation == Remedy.NONE else {
            "action": _REMEDY_NAMES[Remedy(escalation)], "check": _check_name(params, int(rem.escalation_check[i]))},
        "floor": {"replicas": int(rem.floor[i]), "until": _t(rem.floor_until[i]),
                  "cooldown_until": _t(rem.cooldown_until[i])},
        "revisions": {**{k: str(getattr(rev, k)[i]) for k in _REVISION_TEXT},
                      **{k: _t(getattr(rev, k)[i]) for k in _REVISION_TIMES}, "trusted": bool(rev.trusted[i])},
        "revision_tests": encode_tests(params, state.revision_tests, i),
        "rollout_hold": encode_hold(state.hold, i),
        "resume_seen": resume_seen,
    }


def encode(policy: str, params: HealthParams, state: HealthState, keys: Sequence[str],
           resume_seen: Mapping[str, str] | None = None, saved_at: float | None = None) -> dict:
    """The payload for every row of ``state``; ``keys[i]`` is row i's ``target_key``."""
    resume_seen = resume_seen or {}
    return {"schema_version": SCHEMA_VERSION, "policy": policy, "saved_at": saved_at,
            "targets": {k: encode_target(params, state, i, resume_seen.get(k)) for i, k in enumerate(keys)}}


def still_relevant(record: Any, now: float) -> bool:
    """Whether a record of a target not resolved now is worth keeping: it holds the breaker
    open, or a budget entry still inside its window. Anything unreadable is kept (it is
    charged in full if the target comes back)."""
    try:
        budgets, breaker = record["budgets"], record["breaker"]
        recent = any(now - float(t) < window for key, window in (("restarts", HOUR_S), ("rollbacks", DAY_S))
                     for _, t in budgets[key])
        return bool(breaker["held"]) or recent
    except (KeyError, TypeError, ValueError):
        return True


# --- parse and restore -----------------------------------------------------------------------


@dataclass(frozen=True)
class Parsed:
    """A read payload: ``records`` by target key, or None when the whole payload is unreadable
    (``problem`` says why); an absent payload is ``Parsed({}, None)``."""

    records: dict[str, Any] | None
    problem: str | None = None


#: The payload nests 7 levels (targets > target > revision_tests > checks > check > new > count); a
#: stored document nested deeper is not ours.
MAX_DEPTH = 16


def parse(raw: bytes | str | Mapping | None) -> Parsed:
    """Read a payload as stored (bytes or text of JSON, or an already decoded object)."""
    if raw is None:
        return Parsed({})
    try:
        doc = json.loads(raw) if isinstance(raw, (bytes, str)) else raw
    except (ValueError, UnicodeDecodeError) as exc:
        return Parsed(None, f"not JSON: {exc}")
    except RecursionError:  # '[' x 200,000 in a ConfigMap: a crash loop at every start before
        return Parsed(None, f"nested deeper than {MAX_DEPTH} levels")
    if _deeper_than(doc, MAX_DEPTH):  # later reads (repr in an error, restore) recurse too
        return Parsed(None, f"nested deeper than {MAX_DEPTH} levels")
    if not isinstance(doc, Mapping):
        return Parsed(None, f"expected a JSON object, got {type(doc).__name__}")
    version = doc.get("schema_version")
    if version != SCHEMA_VERSION:
        return Parsed(None, f"schema_version {version!r} is not {SCHEMA_VERSION} (written by another version?)")
    targets = doc.get("targets")
    if not isinstance(targets, Mapping):
        return Parsed(None, "targets: expected an object")
    return Parsed(dict(targets))


def _deeper_than(doc: Any, limit: int) -> bool:
    """True when lists or objects nest more than ``limit`` levels; iterative, so any depth is safe."""
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, Mapping) else value if isinstance(value, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _time(value: Any, field: str) -> float:
    if value is None:
        return float("nan")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{field}: expected epoch seconds or null, got {value!r}")
    return float(value)


def _history(entries: Any, slots: int, field: str) -> tuple[np.ndarray, np.ndarray]:
    """One history row (slots,) from [[value, time], ...]; the newest ``slots`` entries win."""
    if not isinstance(entries, list):
        raise ValueError(f"{field}: expected a list")
    pairs = []
    for e in entries:
        if not (isinstance(e, list) and len(e) == 2):
            raise ValueError(f"{field}: expected [value, time] pairs, got {e!r}")
        value, at = _time(e[0], field), _time(e[1], field)
        if not (value >= 0 and math.isfinite(at)):
            raise ValueError(f"{field}: bad entry {e!r}")
        pairs.append((at, value))
    pairs = sorted(pairs)[-slots:] if slots else []
    values, times = np.zeros(slots), np.full(slots, np.nan)
    for j, (at, value) in enumerate(pairs):
        values[j], times[j] = value, at
    return values, times


def _remedy(value: Any, field: str) -> int:
    if value not in _REMEDY_BY_NAME:
        raise ValueError(f"{field}: unknown action {value!r}")
    return int(_REMEDY_BY_NAME[value])


def _obj(record: Mapping, field: str, optional: bool = False) -> Mapping | None:
    value = record.get(field)
    if value is None and optional:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"{field}: expected an object")
    return value


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{field}: expected a string")
    return value


@dataclass(frozen=True)
class _Row:
    """One decoded record: the values to write into row i of each state part."""

    restarts: tuple[np.ndarray, np.ndarray]
    rollbacks: tuple[np.ndarray, np.ndarray]
    remedy: dict[str, Any]
    revisions: dict[str, Any]
    resume_seen: str | None
    tests: dict[str, Any] | None = None  # RevisionTestState field -> row value, None: no record
    hold: tuple[str, float, bool] | None = None  # rollout_hold, None: no record


def decode_target(params: HealthParams, record: Any) -> _Row:
    """A record as row values; raises ValueError naming the field on anything unexpected."""
    if not isinstance(record, Mapping):
        raise ValueError("expected an object")
    budgets, breaker = _obj(record, "budgets"), _obj(record, "breaker")
    restarts = _history(budgets.get("restarts"), params.restart_slots, "budgets.restarts")
    rollbacks = _history(budgets.get("rollbacks"), params.rollback_slots, "budgets.rollbacks")
    if not isinstance(breaker.get("held"), bool):
        raise ValueError("breaker.held: expected true or false")
    reason = breaker.get("reason")
    if reason is not None and reason not in _REASON_BY_CODE:
        raise ValueError(f"breaker.reason: unknown {reason!r}")
    names = params.check_names
    rem: dict[str, Any] = dict(held=breaker["held"], held_reason=_REASON_BY_CODE.get(reason, -1),
                               held_at=_time(breaker.get("at"), "breaker.at"))
    verification = _obj(record, "verification", optional=True)
    # a window whose check is gone from the policy cannot be judged: it is closed (the budget
    # it charged stays); likewise a pending escalation. A window without a check (a rollback a
    # revision check called for) is kept: it waits for its deadline alone, and dropping it let
    # the first cycle after a restart act again on a target still verifying its rollback
    checked = verification.get("check") if verification is not None else None
    if verification is not None and (checked is None or checked in names):
        rem.update(verify_action=_remedy(verification.get("action"), "verification.action"),
                   verify_check=-1 if checked is None else names.index(checked),
                   verify_started=_time(verification.get("started"), "verification.started"),
                   verify_until=_time(verification.get("until"), "verification.until"),
                   verify_seen=_time(verification.get("seen"), "verification.seen"))
    # the second window, a pod restart (absent from a record written before it was kept): as the first
    pod_window = _obj(record, "pod_verification", optional=True)
    if pod_window is not None and pod_window.get("check") in names:
        rem.update(pod_verify_check=names.index(pod_window["check"]),
                   pod_verify_started=_time(pod_window.get("started"), "pod_verification.started"),
                   pod_verify_until=_time(pod_window.get("until"), "pod_verification.until"),
                   pod_verify_seen=_time(pod_window.get("seen"), "pod_verification.seen"))
    escalation = _obj(record, "escalation", optional=True)
    if escalation is not None and escalation.get("check") in names:
        rem.update(escalation=_remedy(escalation.get("action"), "escalation.action"),
                   escalation_check=names.index(escalation["check"]))
    floor = _obj(record, "floor")
    replicas = floor.get("replicas")
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise ValueError(f"floor.replicas: expected a count, got {replicas!r}")
    rem.update(floor=replicas, floor_until=_time(floor.get("until"), "floor.until"),
               cooldown_until=_time(floor.get("cooldown_until"), "floor.cooldown_until"))
    revs = _obj(record, "revisions")
    rev: dict[str, Any] = {k: _text(revs.get(k), f"revisions.{k}") for k in _REVISION_TEXT}
    rev.update({k: _time(revs.get(k), f"revisions.{k}") for k in _REVISION_TIMES})
    if not isinstance(revs.get("trusted"), bool):
        raise ValueError("revisions.trusted: expected true or false")
    rev["trusted"] = revs["trusted"]
    seen = record.get("resume_seen")
    if seen is not None and not isinstance(seen, str):
        raise ValueError("resume_seen: expected a string or null")
    return _Row(restarts, rollbacks, rem, rev, seen, decode_tests(params, record.get("revision_tests")),
                decode_hold(record.get("rollout_hold")))


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{field}: expected a number, got {value!r}")
    return float(value)


def _sums(value: Any, field: str) -> np.ndarray:
    """(3,) summed statistics; the first (requests or pod samples) is a count, never negative."""
    if not (isinstance(value, list) and len(value) == 3):
        raise ValueError(f"{field}: expected three numbers")
    out = np.array([_number(v, field) for v in value])
    if out[0] < 0:
        raise ValueError(f"{field}: negative count {out[0]!r}")
    return out


def decode_tests(params: HealthParams, record: Any) -> dict[str, Any] | None:
    """The revision tests of one target as row values of RevisionTestState's fields: (C,) or
    (C, 3) arrays in the order of ``params.revision_checks``. Checks missing from the record (new
    in the policy) start empty; checks gone from the policy are dropped. None for no record."""
    if record is None or not params.revision_checks:
        return None
    if not isinstance(record, Mapping):
        raise ValueError("revision_tests: expected an object")
    fresh = RevisionTestState.empty(1, len(params.revision_checks))
    row: dict[str, Any] = {k: np.array(getattr(fresh, k)[0]) for k in RevisionTestState.__dataclass_fields__}
    row["revision"] = _text(record.get("revision"), "revision_tests.revision")
    checks = record.get("checks")
    if not isinstance(checks, Mapping):
        raise ValueError("revision_tests.checks: expected an object")
    for j, c in enumerate(params.revision_checks):
        if c.name not in checks:
            continue
        rec, at = checks[c.name], f"revision_tests.checks.{c.name}"
        if not isinstance(rec, Mapping):
            raise ValueError(f"{at}: expected an object")
        for k in _TEST_STATS:
            row[k][j] = _number(rec.get(k), f"{at}.{k}")
        for k in _TEST_SUMS:
            row[k][j] = _sums(rec.get(k), f"{at}.{k}")
        if rec.get("verdict") not in _VERDICT_BY_NAME:
            raise ValueError(f"{at}.verdict: unknown {rec.get('verdict')!r}")
        row["verdict"][j] = int(_VERDICT_BY_NAME[rec["verdict"]])
        row["decided_at"][j] = _time(rec.get("decided_at"), f"{at}.decided_at")
        if not isinstance(rec.get("drifted"), bool):
            raise ValueError(f"{at}.drifted: expected true or false")
        row["drifted"][j] = rec["drifted"]
    return row


def _set_row(a: np.ndarray, i: int, value) -> np.ndarray:
    out = a.copy()
    out[i] = value
    return out


def _charge_in_full(params: HealthParams, budgets: BudgetState, rows: np.ndarray, now: float) -> BudgetState:
    """The conservative restore: each budget of ``rows`` (N,) bool spent in full at ``now``."""
    r, rt, b, bt = budgets.restarts, budgets.restart_at, budgets.rollbacks, budgets.rollback_at
    n = rows.size
    if params.budgets.restarts_per_hour > 0:
        r, rt = history.write_slot(r, rt, np.full(n, float(params.budgets.restarts_per_hour)), now, HOUR_S, rows=rows)
    if params.budgets.rollbacks_per_day > 0:
        b, bt = history.write_slot(b, bt, np.full(n, float(params.budgets.rollbacks_per_day)), now, DAY_S, rows=rows)
    return BudgetState(r, rt, b, bt)


@dataclass(frozen=True)
class Restored:
    """The state with the durable records applied, the resume annotation values last seen per
    target key, and the problems met (one line each; empty when all went well)."""

    state: HealthState
    resume_seen: dict[str, str]
    problems: tuple[str, ...]
    conservative: tuple[str, ...]  # keys restored with their budgets charged in full


def restore(params: HealthParams, state: HealthState, keys: Sequence[str], parsed: Parsed, now: float) -> Restored:
    """Write the durable records of ``keys`` (row i is ``keys[i]``) into ``state`` at ``now``.

    Rows with no record keep what ``state`` holds. A restored revision's ``clean_since`` is
    ``now``: it has to prove itself healthy again.
    """
    n = len(keys)
    budgets, rem, rev = state.budgets, state.remedy, state.revisions
    tests = state.revision_tests if state.revision_tests is not None else \
        RevisionTestState.empty(n, len(params.revision_checks))
    hold = state.hold if state.hold is not None else HoldState.empty(n)
    problems: list[str] = []
    seen: dict[str, str] = {}
    unknown = np.zeros(n, bool)
    if parsed.records is None:
        problems.append(f"unreadable state ({parsed.problem}): budgets charged in full for every target")
        unknown[:] = True
    for i, key in enumerate(keys):
        if parsed.records is None or key not in parsed.records:
            continue
        try:
            row = decode_target(params, parsed.records[key])
        except ValueError as exc:
            problems.append(f"{key}: unreadable record ({exc}): its budgets are charged in full")
            unknown[i] = True
            continue
        budgets = BudgetState(_set_row(budgets.restarts, i, row.restarts[0]),
                              _set_row(budgets.restart_at, i, row.restarts[1]),
                              _set_row(budgets.rollbacks, i, row.rollbacks[0]),
                              _set_row(budgets.rollback_at, i, row.rollbacks[1]))
        fresh = RemedyState.empty(1)
        rem = replace(rem, **{k: _set_row(getattr(rem, k), i, row.remedy.get(k, getattr(fresh, k)[0]))
                              for k in rem.__dataclass_fields__})
        values = {**row.revisions, "clean_since": now if row.revisions["current"] else float("nan")}
        rev = replace(rev, **{k: _set_row(getattr(rev, k), i, v) for k, v in values.items()})
        if row.tests is not None:
            tests = RevisionTestState(**{k: _set_row(getattr(tests, k), i, v) for k, v in row.tests.items()})
        if row.hold is not None:
            hold = HoldState(*(_set_row(a, i, v) for a, v in zip((hold.revision, hold.since, hold.over), row.hold)))
        if row.resume_seen is not None:
            seen[key] = row.resume_seen
    if unknown.any():
        budgets = _charge_in_full(params, budgets, unknown, now)
    new = HealthState(state.workload, state.pods, rev, rem, budgets, tests, hold)
    return Restored(new, seen, tuple(problems), tuple(k for k, u in zip(keys, unknown.tolist()) if u))
