"""Structural mutations of YAML files for property-based fuzzing (tests/policy/test_structural_fuzz.py,
tests/simulators/test_scenario_fuzz.py).

A file is read into plain values (one per document), mutated node by node (delete a key, a value of
another kind, a duration where a number goes, a duplicated list item, two sibling values swapped,
a wrong enum, a misspelt key ...) and written back with PyYAML, so every mutated file is valid
YAML whose fields stand where the mutation put them. A mutation is three numbers (kind, node,
choice), read modulo what the tree holds at the time: hypothesis shrinks them, and a failing
example prints as a short list of integers that replays on the same source file.
"""

from __future__ import annotations

import collections
import copy
import math
import os
import random
import re
from collections.abc import Iterator
from pathlib import Path

import yaml

Node = tuple  # (document index, key or list index, ...)

#: The kinds of mutation, each applied at one node of the tree.
KINDS = ("delete", "scalar", "kind", "huge", "negative", "float", "duration", "number", "duplicate", "swap",
         "enum", "rename", "unknown", "wrap", "null")

#: Strings of every sort a value may be replaced by (types, durations, percentages, YAML-ish words).
STRINGS = ["", "x", " ", "5m", "1h30m", "500ms", "0s", "-5s", "3x", "70%", "150%", "-1%", "auto", "hold", "observed",
           "off", "none", "expire", "2x", "0.5x", "1e3", "nan", "inf", "12", "-3", "1d", "35d", "400d",
           "sum(rate(x[1m]))", "sum by (namespace) (rate(x[1m]))", "rate(", "x{a=\"$ns\"}", "$x", "é", "A" * 300,
           "ab.cd", "Default", "-", "ab_c", "a/b", "null", "~"]
#: Enum words of the policy and scenario formats (right at one place, wrong at another).
ENUMS = ["Deployment", "StatefulSet", "DaemonSet", "Pods", "Percent", "Max", "Min", "Disabled", "In", "NotIn",
         "Exists", "DoesNotExist", "mean", "median", "max", "percentile", "perReplica", "pooled", "none",
         "tolerance", "linear", "expire", "step", "workload", "pod", "revision", "restart-pod", "rolling-restart",
         "rollback", "scale-up", "record", "ignore", "fire", "hpa", "drop", "queue", "pod-crash", "crash-loop",
         "bad-rollout", "node-loss", "memory-leak", "readiness-outage", "metrics-outage", "stale-metrics",
         "nan-metrics", "requests_per_second", "latency_p95", "pod_memory", "queue_length", "Policy", "Scenario",
         "setpoint/v1", "setpoint/v2"]
#: Values of another kind than a scalar: lists, mappings and the like.
KINDS_OF_VALUE = [[], [1], ["a"], [{}], [[]], {}, {"a": 1}, {"above": 1}, None, True, False, 0, 1, 0.5, "x",
                  {"observed": True}, {"up": 0.1, "down": 0.1}, [{"name": "x"}]]
HUGE = [10**30, 2**63, 2**64, 2**31, 10**6, 10**12, 10**308, -(10**30), 10**100]
NEGATIVE = [-1, -0.5, -(10**9), -1e-300, -0.0, -100]
FLOATS = [math.nan, math.inf, -math.inf, 0.5, 1e-300, 1e300, 2.5, 0.0, 1e-9, 99.999999999]
DURATIONS = ["30s", "1m", "0s", "10m", "2h", "1d", "500ms", "36500d", "1s", "-1s", "1.5m", "5 m", "5min", "60"]
NUMBERS = [30, 0, 1, 60, 0.001, 3600, 1.5, -1, 10**7]
UNKNOWN_KEYS = ["colour", "extra", "periodSeconds", "stabilizationWindowSeconds", "name", "query", "kind", "for",
                "above", "below", "value", "min", "max", "apiVersion", "spec"]

_DURATION_LIKE = re.compile(r"^-?\d+(\.\d+)?(ms|s|m|h|d|w)+$|^(\d+(ms|s|m|h|d|w))+$")


def documents(path: Path) -> list:
    """The documents of a YAML file, as plain values (empty documents left out)."""
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def dump(docs: list, flow: bool | None = False) -> str:
    """The documents as YAML text (keys in their order; ``flow``: PyYAML's default_flow_style)."""
    return yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True, default_flow_style=flow, width=10_000)


def nodes(docs: list) -> list[Node]:
    """Every node's path under each document's root (roots excluded), in document order."""
    out: list[Node] = []

    def walk(value, path):
        children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, child in children:
            out.append(path + (key,))
            walk(child, path + (key,))

    for i, doc in enumerate(docs):
        walk(doc, (i,))
    return out


def get(docs: list, path: Node):
    value = docs
    for part in path:
        value = value[part]
    return value


def exists(docs: list, path: Node) -> bool:
    value = docs
    for part in path:
        if not (isinstance(value, dict) and part in value
                or isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value)):
            return False
        value = value[part]
    return True


def _set(docs: list, path: Node, value) -> None:
    get(docs, path[:-1])[path[-1]] = value


def _rename(mapping: dict, old: str, new: str) -> dict:
    """``mapping`` with the key ``old`` renamed ``new`` in place of it (a key already named ``new`` is dropped)."""
    return {(new if k == old else k): v for k, v in mapping.items() if k != new or k == old}


def _typo(key: str, choice: int) -> str:
    """A misspelling of ``key``: snake_case, a letter dropped, doubled or capitalised, or a suffix."""
    snake = re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), key)
    i = choice % max(1, len(key))
    options = [snake if snake != key else key + "_", key[:i] + key[i + 1:] or "k", key[:i] + key[i] * 2 + key[i + 1:]
               if key else "kk", key[:1].upper() + key[1:], key + "s", key + "Seconds", key.lower() + "x"]
    return options[choice % len(options)]


def mutate(docs: list, kind: str, at: int, choice: int) -> list:
    """``docs`` with one mutation of ``kind`` at node ``at`` (modulo the node count), ``choice`` picking
    among what that kind of mutation may do there; ``docs`` itself is not changed."""
    docs = copy.deepcopy(docs)
    paths = nodes(docs)
    if not paths:
        return docs
    path = paths[at % len(paths)]
    parent, key = get(docs, path[:-1]), path[-1]
    value = parent[key]
    pick = lambda options: options[choice % len(options)]
    if kind == "delete":
        del parent[key]
    elif kind == "scalar":
        parent[key] = pick(STRINGS)
    elif kind == "kind":
        parent[key] = pick([v for v in KINDS_OF_VALUE if type(v) is not type(value)] or KINDS_OF_VALUE)
    elif kind == "huge":
        parent[key] = pick(HUGE)
    elif kind == "negative":
        parent[key] = pick(NEGATIVE)
    elif kind == "float":
        parent[key] = pick(FLOATS)
    elif kind == "duration":  # a duration where a number goes (and elsewhere)
        parent[key] = pick(DURATIONS)
    elif kind == "number":  # a number where a duration goes (a duration-like string becomes its number)
        if isinstance(value, str) and _DURATION_LIKE.match(value):
            digits = re.match(r"-?\d+(\.\d+)?", value).group(0)
            parent[key] = pick([float(digits), int(float(digits)), *NUMBERS])
        else:
            parent[key] = pick(NUMBERS)
    elif kind == "duplicate":  # a list item twice (or the value as a list of itself twice)
        if isinstance(parent, list):
            parent.insert(key, copy.deepcopy(value))
        elif isinstance(value, list) and value:
            value.append(copy.deepcopy(value[choice % len(value)]))
        else:
            parent[key] = [value, copy.deepcopy(value)]
    elif kind == "swap":  # two sibling values swapped
        siblings = list(parent) if isinstance(parent, dict) else list(range(len(parent)))
        other = siblings[choice % len(siblings)]
        parent[key], parent[other] = parent[other], value
    elif kind == "enum":
        if isinstance(value, str) and choice % 3 == 0:
            parent[key] = value.swapcase() if value.swapcase() != value else value + "x"
        else:
            parent[key] = pick(ENUMS)
    elif kind == "rename":
        if isinstance(parent, dict):
            _set(docs, path[:-1], _rename(parent, key, _typo(str(key), choice)))
        else:
            parent[key] = {str(pick(UNKNOWN_KEYS)): value}
    elif kind == "unknown":  # an extra key beside the value's siblings (or in the value)
        target = value if isinstance(value, dict) else parent if isinstance(parent, dict) else None
        if target is not None:
            target.setdefault(pick(UNKNOWN_KEYS), pick(KINDS_OF_VALUE + STRINGS[:8]))
        else:
            parent.append(pick(KINDS_OF_VALUE))
    elif kind == "wrap":  # a value inside a list, or a list's first item in place of the list
        parent[key] = value[0] if isinstance(value, list) and value and choice % 2 else [value]
    elif kind == "null":
        parent[key] = None
    return docs


def mutated(docs: list, changes) -> list:
    for kind, at, choice in changes:
        docs = mutate(docs, kind, at, choice)
    return docs


def shuffled(value, seed: int):
    """``value`` with the keys of every mapping in another order (lists and documents kept in order)."""
    rng = random.Random(seed)

    def walk(v):
        if isinstance(v, dict):
            items = list(v.items())
            rng.shuffle(items)
            return {k: walk(x) for k, x in items}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return [walk(d) for d in value]


_PART = re.compile(r'\.?([A-Za-z0-9_-]+)|\[(\d+)\]|\["([^"]*)"\]')
_DOC = re.compile(r"^\[doc (\d+)\] ?")


def parse_path(text: str) -> tuple[int | None, tuple]:
    """(the 1-based document number or None, the field path) of a path as errors print it
    (controller.policy.messages.format_path, ``[doc N] `` first in a file of several documents)."""
    doc = None
    m = _DOC.match(text)
    if m:
        doc, text = int(m.group(1)), text[m.end():]
    parts: list = []
    i = 0
    while i < len(text):
        m = _PART.match(text, i)
        assert m and m.end() > i, f"cannot parse the path {text!r} at {i}"
        name, index, quoted = m.groups()
        parts.append(int(index) if index is not None else name if name is not None else quoted)
        i = m.end()
    return doc, tuple(parts)


def walk_values(value) -> Iterator:
    yield value
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for child in children:
        yield from walk_values(child)


# ------------------------------------------------------------------ rewrites that change nothing
#: Fields written at their default value, which may be left out: (key, value) as YAML holds them.
DEFAULTS = [("kind", "Deployment"), ("scope", "workload"), ("onMissing", "ignore"), ("then", "hold"),
            ("lead", "auto"), ("horizon", "auto"), ("headroom", "perReplica"), ("aggregate", "mean"),
            ("interpolation", "linear"), ("wrap", False), ("namespace", "default"), ("count", 1),
            ("replaceUnready", True), ("overload", "drop"), ("multiplier", 1), ("multiplier", 1.0)]
#: Keys whose default above holds under one parent only (a kind: is also a fault's, and a
#: policy's targets need their namespace).
_DEFAULT_ONLY_UNDER = {"kind": "targets", "namespace": "services"}
EQUIVALENTS = ("order", "duration", "default", "hpa-seconds", "tolerance")
_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ms|d|h|m|s))+$")


def _seconds(text: str) -> float:
    from controller.policy.durations import parse_duration

    return parse_duration(text)


def _other_spellings(text: str) -> list[str]:
    """Durations equal to ``text`` written otherwise (``1m`` -> ``60s``, ``60000ms``, ``0h1m``)."""
    seconds = _seconds(text)
    out = []
    if seconds == int(seconds):
        whole = int(seconds)
        h, rest = divmod(whole, 3600)
        m, s = divmod(rest, 60)
        out += [f"{whole}s", f"{whole * 1000}ms", f"{h}h{m}m{s}s", f"{whole // 60}m{whole % 60}s"]
    out.append(f"{seconds * 1000:.6f}".rstrip("0").rstrip(".") + "ms")
    out.append(f"{seconds:.9f}".rstrip("0").rstrip(".") + "s")
    return list(dict.fromkeys(o for o in out if o != text and _DURATION.match(o) and _seconds(o) == seconds))


def _rewrites(kind: str, path: Node, parent, key, value) -> bool:
    """Whether the rewrite ``kind`` applies to the node at ``path``."""
    if kind == "order":
        return isinstance(value, dict) and len(value) > 1
    if kind == "duration":
        return isinstance(value, str) and bool(_DURATION.match(value)) and bool(_other_spellings(value))
    if kind == "default":
        under = [p for p in path[:-1] if isinstance(p, str)][-1:]  # the nearest key above (a list's, for an item)
        return isinstance(parent, dict) and any((key, value) == d and type(value) is type(d[1]) for d in DEFAULTS) \
            and (key not in _DEFAULT_ONLY_UNDER or under == [_DEFAULT_ONLY_UNDER[key]])
    if kind == "hpa-seconds":
        return isinstance(parent, dict) and key in ("stabilizationWindow", "period") and isinstance(value, str) \
            and bool(_DURATION.match(value)) and _seconds(value) == int(_seconds(value))
    if kind == "tolerance":
        return key == "tolerance" and (isinstance(value, (int, float)) and not isinstance(value, bool) or isinstance(
            value, dict) and set(value) == {"up", "down"} and value["up"] == value["down"])
    raise ValueError(kind)


def equivalent(docs: list, kind: str, at: int, choice: int) -> list:
    """``docs`` rewritten at one of the nodes the rewrite ``kind`` applies to (``at`` modulo their
    count) so that they mean the same: a mapping's keys in another order, a duration in other
    units, a default left out, HPA's ``...Seconds: N`` for ``...: Ns``, a tolerance's one number
    for equal up and down (and back). Unchanged where no node allows it."""
    docs = copy.deepcopy(docs)
    places = [p for p in nodes(docs) if _rewrites(kind, p, get(docs, p[:-1]), p[-1], get(docs, p))]
    if not places:
        return docs
    path = places[at % len(places)]
    parent, key = get(docs, path[:-1]), path[-1]
    value = parent[key]
    if kind == "order":
        items = list(value.items())
        random.Random(choice).shuffle(items)
        parent[key] = dict(items)
    elif kind == "duration":
        spellings = _other_spellings(value)
        parent[key] = spellings[choice % len(spellings)]
    elif kind == "default":
        del parent[key]
    elif kind == "hpa-seconds":
        parent_items = [(k + "Seconds", int(_seconds(v))) if k == key else (k, v) for k, v in parent.items()]
        parent.clear()
        parent.update(parent_items)
    elif kind == "tolerance":  # one number for both directions, or both written out
        parent[key] = value["up"] if isinstance(value, dict) else {"up": value, "down": value}
    return docs


# ------------------------------------------------------------------ properties
#: pydantic's own wording, and the sentinel of a part that did not validate: never in a message
RAW = ("Input should", "Input tag", "Unable to extract", "Field required", "Extra inputs", "Value error",
       "validation error", "<did not validate>", "Unchecked", "Traceback")


def assert_placed(text: str, name: str, found: list) -> None:
    """Each error or warning (FieldError) names ``name``, a line of the text and a field path that
    is in the document it names (or whose parent is: a missing field), at that field's line (or
    the nearest enclosing field's); none in pydantic's words."""
    from controller.policy.yamlsrc import read_documents

    documents, _ = read_documents(text)
    present = [d for d in documents if d.data is not None]
    n_lines = text.count("\n") + 1
    for e in found:
        assert e.file == name and e.message, e
        assert not any(w in e.message for w in RAW), e
        if e.line is None:
            assert "file is empty" in e.message, e
            continue
        assert 1 <= e.line <= n_lines, e
        number, path = parse_path(e.path)
        document = documents[number - 1] if number else present[0] if present else None
        if document is None or not e.path:
            continue
        assert exists([document.data], (0, *path)) or exists([document.data], (0, *path[:-1])), e
        assert e.line == document.line_of(path), (str(e), document.line_of(path))


def comparable(errors: list) -> collections.Counter:
    """The errors without their lines (a reordered file moves them), also in "first at line N"."""
    return collections.Counter((e.path, re.sub(r"line \d+|:\d+\)", "L", e.message)) for e in errors)


# ------------------------------------------------------------------ budgets
#: SETPOINT_FUZZ_EXAMPLES=N runs N examples of each fuzz test, at random (a hunt); unset, the
#: suite's modest budgets, derandomized (the same examples at every run).
_HUNT = os.environ.get("SETPOINT_FUZZ_EXAMPLES")
DERANDOMIZE = _HUNT is None


def budget(default: int) -> int:
    """The examples a fuzz test runs: ``default`` in the suite, SETPOINT_FUZZ_EXAMPLES to hunt."""
    return int(_HUNT) if _HUNT else default


# ------------------------------------------------------------------ changes a warning reads
#: Queries of every shape a warning reads: a counter without rate, a Grafana variable in a
#: matcher, a histogram in seconds or milliseconds, groupings that keep or drop the pod label,
#: labels put back (label_replace, group_left), text that only looks like a grouping.
QUERIES = ["sum by (namespace) (rate(x_total[1m]))", "sum by () (x)", "sum by(pod)(x)", "x_total", "sum(x_total)",
           "sum by (namespace, pod) (x)", "histogram_quantile(0.95, sum by (le) (rate(h_seconds_bucket[1m])))",
           "histogram_quantile(0.95, sum by (le) (rate(h_milliseconds_bucket[1m])))",
           "sum(rate(h_seconds_sum[1m])) / sum(rate(h_seconds_count[1m]))", "sum by (namespace) (x) # by (pod)",
           'sum by (namespace) (label_replace(x, "pod", "$1", "a", "(.*)"))', 'x{a="by (namespace)"}',
           "sum by (namespace,) (x)", "sum without (pod) (x)", "sum by (namespace) (x) * on (pod) group_left y",
           'x{ns="$ns", p="${pod}", q="[[job]]"}', "sum BY (namespace) (x)", "sum by\n(namespace)\n(x)",
           "sum by (pod) (x) or sum by (ns) (y)", "max by (namespace, deployment) (x_ms_bucket)", "x{a=\"é\"}"]
WARNING_KINDS = ("query", "scope", "budget", "utilization", "tolerance", "threshold", "escalation", "action")


def toward_warnings(docs: list, kind: str, at: int, choice: int) -> list:
    """``docs`` with one value a warning reads changed, within what the schema takes (a query, a
    check's scope or action, a budget of 0, a utilization below 1, a tolerance above 1, a threshold
    a unit apart, an escalation ladder); unchanged where no node fits."""
    docs = copy.deepcopy(docs)
    pick = lambda options: options[choice % len(options)]
    fits = {"query": lambda k, v: k in ("query", "errors", "requests", "latest") and isinstance(v, str),
            "scope": lambda k, v: k == "scope" and v in ("workload", "pod"),
            "budget": lambda k, v: k == "budgets" and isinstance(v, dict),
            "utilization": lambda k, v: k == "utilization",
            "tolerance": lambda k, v: k == "tolerance",
            "threshold": lambda k, v: k in ("above", "below", "value") and isinstance(v, (int, float)),
            "escalation": lambda k, v: k == "health" and isinstance(v, dict),
            "action": lambda k, v: k == "action" and v != "rollback"}[kind]
    places = [p for p in nodes(docs) if fits(p[-1], get(docs, p))]
    if not places:
        return docs
    path = places[at % len(places)]
    parent, key = get(docs, path[:-1]), path[-1]
    if kind == "query":
        parent[key] = pick(QUERIES)
    elif kind == "scope":
        parent[key] = pick(["pod", "workload"])
    elif kind == "budget":
        parent[key] = pick([{"restartsPerHour": 0}, {"rollbacksPerDay": 0}, {"restartsPerHour": 0, "rollbacksPerDay": 0},
                            {"maxUnavailable": 0}, {}])
    elif kind == "utilization":
        parent[key] = pick([0.5, 0.7, 0.999, 1, 1e-9])
    elif kind == "tolerance":
        parent[key] = pick([5, 1, 1.0, {"up": 2.5, "down": 0.1}, 0])
    elif kind == "threshold":
        parent[key] = pick([250, 60, 59.999, 0.25, 0.0005, 1e-9, 1000])
    elif kind == "escalation":
        parent[key]["escalation"] = pick([["restart-pod"], ["rolling-restart", "rollback"], ["scale-up"],
                                          ["restart-pod", "rolling-restart", "rollback", "scale-up"]])
    elif kind == "action":
        parent[key] = pick(["restart-pod", "rolling-restart", "scale-up", "record"])
    return docs
