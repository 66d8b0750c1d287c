"""Label and field selectors of list and watch requests, parsed as strictly as the apiserver
parses them: a selector it cannot parse, or a field it does not index, is a 400 before any
object is read.

Label selectors: ``app=web``, ``app==web``, ``tier!=db``, ``env in (a,b)``, ``env notin (a)``,
``canary``, ``!legacy``, ``replicas>2``, comma-separated; keys are qualified names and values
label values (see :mod:`simulators.kubeapi.validation`). Field selectors: ``field=value``,
``field==value``, ``field!=value``, comma-separated, on the fields each kind supports
(:data:`FIELDS`).
"""

from __future__ import annotations

import re
from typing import Callable

from simulators.kubeapi import objects as K
from simulators.kubeapi.validation import LABEL_VALUE, key_problem

#: Field labels the apiserver supports in field selectors, per kind (beyond metadata.name and
#: metadata.namespace, which every kind supports).
FIELDS: dict[str, frozenset[str]] = {
    "Pod": frozenset({"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                      "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"}),
    "Event": frozenset({"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                        "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
                        "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"}),
    "ReplicaSet": frozenset({"status.replicas"}),
    "Namespace": frozenset({"status.phase"}),
}
_COMMON_FIELDS = frozenset({"metadata.name", "metadata.namespace"})
#: Field labels that read another path of the object.
_FIELD_PATHS = {"source": "source.component"}

_OPERATORS = frozenset({"!=", "==", "=", "!", "(", ")", ",", "<", ">"})
_TOKEN = re.compile(r"\s*(?:(!=|==|=|!|\(|\)|,|<|>)|([^\s!=(),<>]+))")


def _tokens(selector: str) -> list[str]:
    out, pos = [], 0
    while pos < len(selector):
        m = _TOKEN.match(selector, pos)
        if m is None or m.end() == pos:  # only trailing blanks are left
            break
        out.append(m.group(1) or m.group(2))
        pos = m.end()
    return out


def _bad_label_selector(selector: str, why: str) -> K.KubeApiError:
    return K.bad_request(f"unable to parse requirement: {why} (label selector {selector[:200]!r})")


class _LabelParser:
    """A recursive-descent parser of one label selector into predicates over a labels dict."""

    def __init__(self, selector: str):
        self.selector, self.tokens, self.pos = selector, _tokens(selector), 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str | None:
        token = self.peek()
        self.pos += 1
        return token

    def fail(self, why: str) -> K.KubeApiError:
        return _bad_label_selector(self.selector, why)

    def parse(self) -> list[Callable[[dict], bool]]:
        tests = [self.requirement()]
        while self.peek() is not None:
            if self.take() != ",":
                raise self.fail("found unexpected input, expected ','")
            tests.append(self.requirement())
        return tests

    def key(self) -> str:
        key = self.take()
        if key is None or key in _OPERATORS:
            raise self.fail(f"expected a label key, found {key or 'the end'!r}")
        problem = key_problem(key)
        if problem:
            raise self.fail(f"invalid label key {key[:80]!r}: {problem}")
        return key

    def value(self) -> str:
        value = self.peek()
        if value is None or value in (",", ")"):
            return ""  # app= selects an empty value
        self.take()
        if value in _OPERATORS or len(value) > 63 or not LABEL_VALUE.fullmatch(value):
            raise self.fail(f"invalid label value {value[:80]!r}")
        return value

    def requirement(self) -> Callable[[dict], bool]:
        if self.peek() == "!":
            self.take()
            key = self.key()
            return lambda labels: key not in labels
        key = self.key()
        op = self.peek()
        if op in (None, ","):
            return lambda labels: key in labels
        self.take()
        if op in ("=", "=="):
            value = self.value()
            return lambda labels: labels.get(key) == value
        if op == "!=":
            value = self.value()
            return lambda labels: labels.get(key) != value
        if op in ("in", "notin"):
            values = self.value_set(op)
            return (lambda labels: labels.get(key) in values) if op == "in" else \
                (lambda labels: labels.get(key) not in values)
        if op in ("<", ">"):
            bound = self.take()
            if bound is None or not re.fullmatch(r"-?[0-9]{1,18}", bound):
                raise self.fail(f"for '{op}' operators, the value must be an integer")
            return lambda labels: _compare(labels.get(key), op, int(bound))
        raise self.fail(f"found {op!r}, expected: '=', '!=', '==', 'in', 'notin'")

    def value_set(self, op: str) -> frozenset[str]:
        if self.take() != "(":
            raise self.fail(f"found unexpected input, expected '(' after {op!r}")
        values = []
        while True:
            if self.peek() == ")" and not values:
                raise self.fail("for 'in', 'notin' operators, values set can't be empty")
            values.append(self.value())
            token = self.take()
            if token == ")":
                return frozenset(values)
            if token != ",":
                raise self.fail("found unexpected input, expected ',' or ')'")


def _compare(value: str | None, op: str, bound: int) -> bool:
    if value is None or not re.fullmatch(r"-?[0-9]{1,18}", value):
        return False
    return int(value) < bound if op == "<" else int(value) > bound


def parse_label_selector(selector: str | None) -> Callable[[dict], bool]:
    """A predicate over a labels dict; KubeApiError(400) for a selector the apiserver would refuse."""
    if not selector or not selector.strip():
        return lambda labels: True
    tests = _LabelParser(selector).parse()
    return lambda labels: all(t(labels) for t in tests)


def parse_field_selector(selector: str | None, kind: str = "") -> Callable[[dict], bool]:
    """A predicate over an object for ``metadata.name=x,involvedObject.kind!=Pod``; 400 for a
    term without an operator, and for a field ``kind`` does not support."""
    if not selector or not selector.strip():
        return lambda obj: True
    tests = []
    for term in (t.strip() for t in selector.split(",")):
        m = re.fullmatch(r"([^=!\s]+)\s*(==|=|!=)\s*([^=!]*)", term)
        if m is None:
            raise K.bad_request(f"invalid selector: '{selector[:200]}'; can't understand '{term[:200]}'")
        field, op, value = m.groups()
        if field not in _COMMON_FIELDS and field not in FIELDS.get(kind, ()):
            raise K.bad_request(f"field label not supported: {field[:100]}")
        tests.append((_FIELD_PATHS.get(field, field).split("."), value.strip(), op == "!="))
    return lambda obj: all((_lookup(obj, p) != v) if neg else (_lookup(obj, p) == v) for p, v, neg in tests)


def _lookup(obj: dict, path: list[str]) -> str:
    for part in path:
        obj = obj.get(part) if isinstance(obj, dict) else None
    if isinstance(obj, bool):
        return str(obj).lower()
    return "" if obj is None else str(obj)
