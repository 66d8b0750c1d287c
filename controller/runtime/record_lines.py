"""A cycle's decision records as JSON lines, made from the decision's arrays in one pass.

``cycle_lines(result, metric_names, start_s)`` gives, byte for byte, the lines
``json.dumps(jsonable(r.to_dict()), separators=(",", ":"))`` gives for the records of
``reconciler.cycle_records`` (a simulation's decisions.jsonl), without a DecisionRecord, a dict
or a ``dataclasses.replace`` per target: the columns every record has are formatted once per
cycle over (N,) arrays (``tolist`` and ``repr``, as ``json.dumps`` writes a float), the constant
parts (policy, time, metric names) go into one template per cycle, and the parts only some
records have (implausible and saturated metrics, failed actions, ...) are dumped per record that
has them. A value many records share (a cycle's HPA-style conditions: one dict per situation) is
dumped once. Health records (one dict per target) and health-only cycles still go through the
per-record path.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii as json_string  # what json.dumps writes for a str

import numpy as np

from controller.core.scaling.decide import Decision
from controller.model import REASON_CODES, jsonable
from controller.runtime.reconciler import ABSENT, CycleResult, cycle_records, shell_extras
from controller.runtime.startup_observer import OBSERVED, POLICY, StartupInfo

_REASON_TEXTS = [json_string(code) for code in REASON_CODES]


def json_text(x: object) -> str:
    """``x`` as one compact JSON text, as the records are written (NaN and inf as null)."""
    return json.dumps(jsonable(x), separators=(",", ":"))


def cycle_lines(result: CycleResult, metric_names: tuple[str, ...], start_s: float = 0.0) -> list[str]:
    """The JSON line of each record of ``cycle_records(result, metric_names, start_s)``, in order."""
    d = result.decision
    if d is None:  # a health-only cycle (or nothing to record): per record
        return [json_text(r.to_dict()) for r in cycle_records(result, metric_names, start_s)]
    keys = [t.key for t in result.targets]
    extras = decision_extra_texts(d, metric_names)
    for part, values in shell_extras(result, keys, start_s):
        texts = startup_texts(values) if part == "startup" else part_texts(part, values)
        extras = [a + b if b else a for a, b in zip(extras, texts)]
    return base_lines(d, result.policy, keys, metric_names, d.now - start_s if start_s else d.now, extras)


def base_lines(d: Decision, policy: str, keys: list[str], metric_names: tuple[str, ...], at: float,
               extras: list[str]) -> list[str]:
    """Each row's line: DecisionRecord.to_dict's fields of Decision.record, then ``extras`` (N,)
    (each row's ``,"name":value`` parts, in order) and the closing brace."""
    n = d.norm
    current = np.asarray(d.current)
    metrics, columns = [], []
    for j, name in enumerate(metric_names):
        metrics.append(f"{_name(name)}:{{\"raw\":%s,\"smoothed\":%s,\"proposal\":%s,\"missing\":%s}}")
        columns += [float_texts(d.signal.values[:, j]), float_texts(d.smoothed[:, j]),
                    optional_int_texts(d.proposals[:, j], d.valid[:, j]), bool_texts(~d.signal.usable[:, j])]
    head = (f'{{"policy":{_escaped(json_string(policy))},"target":%s,"at":{_escaped(json_text(at))},'
            f'"current":%s,"ready":%s,"metrics":{{{",".join(metrics)}}},')
    template = head + '"combined":%s,"stabilized":%s,"limited":%s,"desired":%s,"reason":%s,"action":%s%s}'
    combined = np.asarray(n.combined)
    desired = int_texts(n.desired)
    reasons = [_REASON_TEXTS[r] for r in np.asarray(n.reason).astype(np.int64).tolist()]
    actions = np.where(np.asarray(d.changed, bool), '"scale"', "null").tolist()
    rows = zip(map(json_string, keys), int_texts(current), int_texts(d.ready), *columns,
               int_texts(np.where(np.isfinite(combined), combined, current)), int_texts(n.stabilized),
               desired, desired, reasons, actions, extras)
    return [template % row for row in rows]


def decision_extra_texts(d: Decision, metric_names: tuple[str, ...]) -> list[str]:
    """(N,) each row's parts of Decision._extra_record as JSON (``,"forecast":{...}`` ...), '' for none."""
    texts = [""] * len(d.current)
    if d.forecasts is not None:
        texts = forecast_texts(d, metric_names)
    if d.ramps is not None:
        texts = [a + b for a, b in zip(texts, ramp_texts(d, metric_names))]
    for i in np.flatnonzero(np.asarray(d.signal.implausible).any(axis=1)).tolist():
        texts[i] += ',"implausible":' + json_text(d.implausible_record(i, metric_names))
    hit = d.saturated_metrics
    if hit is not None:
        for i in np.flatnonzero(hit.any(axis=1)).tolist():
            texts[i] += "".join(f",{json_string(k)}:{json_text(v)}" for k, v in d.saturated_record(i, metric_names).items())
    return texts


def forecast_texts(d: Decision, metric_names: tuple[str, ...]) -> list[str]:
    """(N,) the ``forecast`` part of each row (Decision._forecast_record)."""
    f = d.forecasts
    parts, columns = [], []
    for j, name in enumerate(metric_names):
        if j in f.columns:
            parts.append(f'{_name(name)}:{{"forecast":%s,"upper":%s,"error":%s,"trusted":%s,'
                         f'"reactive":%s,"predictive":%s}}')
            columns += [float_texts(f.point[:, j]), float_texts(f.upper[:, j]), float_texts(f.error[:, j]),
                        bool_texts(f.trusted[:, j]), count_texts(f.reactive[:, j]), count_texts(f.predictive[:, j])]
    return _filled(',"forecast":{' + ",".join(parts) + "}", columns, len(d.current))


def ramp_texts(d: Decision, metric_names: tuple[str, ...]) -> list[str]:
    """(N,) the ``ramp`` part of each row (Ramps.record)."""
    r = d.ramps
    current = np.asarray(d.current, dtype=np.float64)
    parts, columns = [], []
    for j, name in enumerate(metric_names):
        if j in r.columns:
            p = r.proposal[:, j]
            with np.errstate(invalid="ignore"):
                held = np.isfinite(p) & (p > current) & (d.proposals[:, j] < p)
            parts.append(f'{_name(name)}:{{"slope":%s,"ahead":%s,"proposal":%s,"held":%s}}')
            columns += [float_texts(r.slope[:, j]), float_texts(r.ahead[:, j]), count_texts(p), bool_texts(held)]
    return _filled(',"ramp":{' + ",".join(parts) + "}", columns, len(current))


def startup_texts(info: StartupInfo) -> list[str]:
    """(N,) the ``startup`` part of each row (StartupInfo.record)."""
    e = info.estimate
    delay = np.asarray(e.delay_s, dtype=np.float64)
    known = np.isfinite(delay)
    delays = float_texts(delay)
    initial = json_text(info.initial_s)
    delays = [t if k else initial for t, k in zip(delays, known.tolist())]
    sources = np.where(known, json_string(OBSERVED), json_string(POLICY)).tolist()
    pods = np.asarray(e.pods).astype(np.int64)
    ranges = [f',"range_s":[{lo},{hi}]' if p else "" for p, lo, hi in
              zip(pods.tolist(), float_texts(e.low_s), float_texts(e.high_s))]
    leads = [f"{_name(name)}:%s" for name, _ in info.observed_ramps]
    horizons = [f"{_name(name)}:%s" for name, _ in info.observed_forecasts]
    columns = [float_texts(rp.leads(delay, delay.size)) for _, rp in info.observed_ramps]
    columns += [float_texts(fp.horizons(delay, delay.size)) for _, fp in info.observed_forecasts]
    template = (',"startup":{"delay_s":%s,"source":%s,"pods":%s%s,"lead_s":{' + ",".join(leads) + "}"
                + (',"horizon_s":{' + ",".join(horizons) + "}" if horizons else "") + "}")
    return [template % row for row in zip(delays, sources, map(str, pods.tolist()), ranges, *columns)]


def part_texts(part: str, values: list) -> list[str]:
    """(N,) ``,"part":value`` for each value, '' where ABSENT; a value shared by several rows (the
    same object) dumped once."""
    prefix = f",{json_string(part)}:"
    done: dict[int, str] = {}
    out = []
    for v in values:
        if v is ABSENT:
            out.append("")
            continue
        text = done.get(id(v))  # ``values`` holds every value: an id is not reused while it runs
        if text is None:
            text = done[id(v)] = prefix + json_text(v)
        out.append(text)
    return out


def _filled(template: str, columns: list[list[str]], n: int) -> list[str]:
    """``template`` filled with each row of ``columns`` (lists of N texts); n times the template
    itself without columns."""
    if not columns:
        return [template.replace("%%", "%")] * n
    return [template % row for row in zip(*columns)]


def _name(name: str) -> str:
    """A metric's name as a JSON key in a %-template."""
    return _escaped(json_string(name))


def _escaped(text: str) -> str:
    """``text`` as constant text of a %-template."""
    return text.replace("%", "%%")


def float_texts(a: np.ndarray) -> list[str]:
    """(N,) floats as the records write them: repr (what json.dumps writes), null where not finite."""
    a = np.asarray(a, dtype=np.float64)
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
