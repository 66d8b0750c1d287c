"""A cycle's decision records as JSON lines, made from the decision's arrays in one pass.

``cycle_lines(result, metric_names, start_s)`` gives, byte for byte, the lines
``json.dumps(jsonable(r.to_dict()), separators=(",", ":"))`` gives for the records of
``reconciler.cycle_records`` (a simulation's decisions.jsonl), without a DecisionRecord, a dict
or a ``dataclasses.replace`` per target: the columns every record has are formatted once per
cycle over (N,) arrays (``tolist`` and ``repr``, as ``json.dumps`` writes a float; each distinct
value once), the constant parts (policy, time, metric names, keys) are written once per cycle and
each line is one ``str.join`` of its row's pieces, and the parts only some
records have (implausible and saturated metrics, failed actions, ...) are dumped per record that
has them. A value many records share (a cycle's HPA-style conditions: one dict per situation) is
dumped once. Health records (one dict per target) and health-only cycles still go through the
per-record path.
"""

from __future__ import annotations

from itertools import repeat
from json.encoder import encode_basestring_ascii as json_string  # what json.dumps writes for a str

import numpy as np

from controller.core.scaling.decide import Decision
from controller.model import REASON_CODES, json_text
from controller.runtime.reconciler import ABSENT, CycleResult, cycle_records, shell_extras
from controller.runtime.startup_observer import OBSERVED, POLICY, StartupInfo

_REASON_TEXTS = [json_string(code) for code in REASON_CODES]


def cycle_lines(result: CycleResult, metric_names: tuple[str, ...], start_s: float = 0.0) -> list[str]:
    """The JSON line of each record of ``cycle_records(result, metric_names, start_s)``, in order."""
    d = result.decision
    if d is None:  # a health-only cycle (or nothing to record): per record
        return [json_text(r.to_dict()) for r in cycle_records(result, metric_names, start_s)]
    keys = [t.key for t in result.targets]
    floats = FloatTexts()
    pieces = base_pieces(d, result.policy, keys, metric_names, d.now - start_s if start_s else d.now, floats)
    pieces += decision_extra_pieces(d, metric_names, floats)
    for part, values in shell_extras(result, keys, start_s):
        pieces += startup_pieces(values, floats) if part == "startup" else [part_texts(part, values)]
    return joined(pieces + ["}"], len(keys))


def base_pieces(d: Decision, policy: str, keys: list[str], metric_names: tuple[str, ...], at: float,
                floats: "FloatTexts") -> list:
    """DecisionRecord.to_dict's fields of Decision.record for each row, as pieces of ``joined``."""
    n = d.norm
    current = np.asarray(d.current)
    desired = int_texts(n.desired)
    combined = np.asarray(n.combined)
    pieces = [f'{{"policy":{json_string(policy)},"target":', list(map(json_string, keys)),
              f',"at":{json_text(at)},"current":', int_texts(current), ',"ready":', int_texts(d.ready),
              ',"metrics":{']
    for j, name in enumerate(metric_names):
        pieces += [("," if j else "") + f'{json_string(name)}:{{"raw":', floats(d.signal.values[:, j]),
                   ',"smoothed":', floats(d.smoothed[:, j]),
                   ',"proposal":', optional_int_texts(d.proposals[:, j], d.valid[:, j]),
                   ',"missing":', bool_texts(~d.signal.usable[:, j]), "}"]
    return pieces + ['},"combined":', int_texts(np.where(np.isfinite(combined), combined, current)),
                     ',"stabilized":', int_texts(n.stabilized), ',"limited":', desired, ',"desired":', desired,
                     ',"reason":', [_REASON_TEXTS[r] for r in np.asarray(n.reason).astype(np.int64).tolist()],
                     ',"action":', np.where(np.asarray(d.changed, bool), '"scale"', "null").tolist()]


def decision_extra_pieces(d: Decision, metric_names: tuple[str, ...], floats: "FloatTexts") -> list:
    """Decision._extra_record's parts of each row (``,"forecast":{...}`` ...), as pieces of ``joined``."""
    pieces = []
    if d.forecasts is not None:
        pieces += forecast_pieces(d, metric_names, floats)
    if d.ramps is not None:
        pieces += ramp_pieces(d, metric_names, floats)
    sparse = [""] * len(d.current)  # the parts only some rows have
    for i in np.flatnonzero(np.asarray(d.signal.implausible).any(axis=1)).tolist():
        sparse[i] += ',"implausible":' + json_text(d.implausible_record(i, metric_names))
    hit = d.saturated_metrics
    if hit is not None:
        for i in np.flatnonzero(hit.any(axis=1)).tolist():
            sparse[i] += "".join(f",{json_string(k)}:{json_text(v)}"
                                 for k, v in d.saturated_record(i, metric_names).items())
    return pieces + [sparse]


def forecast_pieces(d: Decision, metric_names: tuple[str, ...], floats: "FloatTexts") -> list:
    """The ``forecast`` part of each row (Decision._forecast_record)."""
    f = d.forecasts
    pieces = [',"forecast":{']
    for j, name in enumerate(metric_names):
        if j in f.columns:
            pieces += [("," if len(pieces) > 1 else "") + f'{json_string(name)}:{{"forecast":', floats(f.point[:, j]),
                       ',"upper":', floats(f.upper[:, j]), ',"error":', floats(f.error[:, j]),
                       ',"trusted":', bool_texts(f.trusted[:, j]), ',"reactive":', count_texts(f.reactive[:, j]),
                       ',"predictive":', count_texts(f.predictive[:, j]), "}"]
    return pieces + ["}"]


def ramp_pieces(d: Decision, metric_names: tuple[str, ...], floats: "FloatTexts") -> list:
    """The ``ramp`` part of each row (Ramps.record)."""
    r = d.ramps
    current = np.asarray(d.current, dtype=np.float64)
    pieces = [',"ramp":{']
    for j, name in enumerate(metric_names):
        if j in r.columns:
            p = r.proposal[:, j]
            with np.errstate(invalid="ignore"):
                held = np.isfinite(p) & (p > current) & (d.proposals[:, j] < p)
            pieces += [("," if len(pieces) > 1 else "") + f'{json_string(name)}:{{"slope":', floats(r.slope[:, j]),
                       ',"ahead":', floats(r.ahead[:, j]), ',"proposal":', count_texts(p),
                       ',"held":', bool_texts(held), "}"]
    return pieces + ["}"]


def startup_pieces(info: StartupInfo, floats: "FloatTexts") -> list:
    """The ``startup`` part of each row (StartupInfo.record)."""
    e = info.estimate
    delay = np.asarray(e.delay_s, dtype=np.float64)
    known = np.isfinite(delay)
    initial = json_text(info.initial_s)
    delays = [t if k else initial for t, k in zip(floats(delay), known.tolist())]
    pods = np.asarray(e.pods).astype(np.int64)
    ranges = [f',"range_s":[{lo},{hi}]' if p else "" for p, lo, hi in
              zip(pods.tolist(), floats(e.low_s), floats(e.high_s))]
    pieces = [',"startup":{"delay_s":', delays, ',"source":',
              np.where(known, json_string(OBSERVED), json_string(POLICY)).tolist(),
              ',"pods":', list(map(str, pods.tolist())), ranges, ',"lead_s":{']
    for k, (name, rp) in enumerate(info.observed_ramps):
        pieces += [("," if k else "") + json_string(name) + ":", floats(rp.leads(delay, delay.size))]
    pieces.append("}")
    horizons = info.observed_forecasts
    if horizons:
        pieces.append(',"horizon_s":{')
        for k, (name, fp) in enumerate(horizons):
            pieces += [("," if k else "") + json_string(name) + ":", floats(fp.horizons(delay, delay.size))]
        pieces.append("}")
    return pieces + ["}"]


def part_texts(part: str, values: list) -> list[str]:
    """(N,) ``,"part":value`` for each value, '' where ABSENT. A value several rows share (the same
    object) is dumped once, and so is each value of a dict of dicts (a cycle's conditions: one
    dict per situation, each condition shared between situations)."""
    prefix = f",{json_string(part)}:"
    done: dict[int, str] = {}  # ``values`` holds every value: an id is not reused while this runs
    out = []
    for v in values:
        if v is ABSENT:
            out.append("")
            continue
        text = done.get(id(v))
        if text is None:
            text = done[id(v)] = prefix + shared_text(v, done)
        out.append(text)
    return out


def shared_text(v: object, done: dict[int, str]) -> str:
    """``json_text(v)``; for a dict whose values are all dicts, made of those values' texts, each
    dumped once (kept in ``done`` by id: the caller holds them)."""
    if not (type(v) is dict and v and all(type(x) is dict for x in v.values())):
        return json_text(v)
    members = []
    for k, x in v.items():
        text = done.get(id(x))
        if text is None:
            text = done[id(x)] = json_text(x)
        members.append(f"{json_string(str(k))}:{text}")
    return "{" + ",".join(members) + "}"


def joined(pieces: list, n: int) -> list[str]:
    """(N,) lines: each row's pieces in order, a piece being a text every row has or a list of N
    texts, one per row (adjacent constant texts merged first)."""
    merged: list = []
    for p in pieces:
        if isinstance(p, str) and merged and isinstance(merged[-1], str):
            merged[-1] += p
        else:
            merged.append(p)
    return ["".join(row) for row in zip(*(repeat(p, n) if isinstance(p, str) else p for p in merged))]


class FloatTexts:
    """One cycle's float columns as the records write them (``float_texts``); a column with the
    same bits as one already made (smoothed without smoothing: the raw values) is made once."""

    def __init__(self):
        self._done: dict[bytes, list[str]] = {}

    def __call__(self, a: np.ndarray) -> list[str]:
        a = np.ascontiguousarray(a, dtype=np.float64)
        key = a.tobytes()
        texts = self._done.get(key)
        if texts is None:
            texts = self._done[key] = float_texts(a)
        return texts


def float_texts(a: np.ndarray) -> list[str]:
    """(N,) floats as the records write them: repr (what json.dumps writes), null where not
    finite. Each distinct value (by its bits: 0.0 and -0.0 are two) is formatted once."""
    a = np.ascontiguousarray(a, dtype=np.float64)
    distinct, which = np.unique(a.view(np.int64), return_inverse=True)
    if distinct.size == a.size:
        return _each_float_text(a)
    # many columns hold few values (start-up delays, leads, ranges): repr is the cost
    return np.array(_each_float_text(distinct.view(np.float64)), dtype=object)[which.ravel()].tolist()


def _each_float_text(a: np.ndarray) -> list[str]:
    """(N,) repr of each value, null where not finite."""
    out = list(map(float.__repr__, a.tolist()))
    for i in np.flatnonzero(~np.isfinite(a)).tolist():
        out[i] = "null"
    return out


def int_texts(a: np.ndarray) -> list[str]:
    """(N,) numbers as ``int(x)`` writes them (truncated toward zero)."""
    return list(map(str, np.asarray(a).astype(np.int64).tolist()))


def count_texts(a: np.ndarray) -> list[str]:
    """(N,) ``int(x)``, null where not finite."""
    a = np.asarray(a, dtype=np.float64)
    return optional_int_texts(a, np.isfinite(a))


def optional_int_texts(a: np.ndarray, ok: np.ndarray) -> list[str]:
    """(N,) ``int(x)`` where ``ok``, null elsewhere."""
    ok = np.asarray(ok, bool)
    out = int_texts(np.where(ok, a, 0))
    for i in np.flatnonzero(~ok).tolist():
        out[i] = "null"
    return out


def bool_texts(a: np.ndarray) -> list[str]:
    """(N,) true / false."""
    return np.where(np.asarray(a, bool), "true", "false").tolist()
