"""A structural check of PromQL queries, for errors a typo makes and Prometheus would refuse.

Not a PromQL parser: it checks what every query must get right whatever its functions and
metrics, so that a file ``setpoint validate`` accepts (and a live reload takes) does not hold a
query Prometheus answers with ``400 bad_data: parse error`` at every cycle, which leaves the
targets held until someone reads the logs:

- brackets ``( [ {`` close in order, outside string literals and ``#`` comments;
- a range or subquery selector ``[...]`` holds a duration (``5m``, ``1h30m``), or two for a
  subquery (``[30m:1m]``, ``[30m:]``);
- a grouping clause ``by (...)`` / ``without (...)`` holds label names and commas only;
- string literals end.

Positions in messages count characters from 1, as Prometheus' own parse errors do.
"""

from __future__ import annotations

import re

_OPEN, _CLOSE = "([{", ")]}"
_DURATION = r"(?:\d+(?:ms|[smhdwy]))+"
_RANGE = re.compile(rf"^\s*{_DURATION}\s*(?::\s*(?:{_DURATION})?\s*)?$")
_GROUPING = re.compile(r"\b(by|without)\s*\($")
_LABEL_LIST = re.compile(r"^\s*(?:[A-Za-z_][A-Za-z0-9_]*\s*(?:,\s*[A-Za-z_][A-Za-z0-9_]*\s*)*,?\s*)?$")


def query_problem(query: str) -> str | None:
    """What makes ``query`` one Prometheus cannot parse (see the module docstring), or None."""
    stack: list[tuple[str, int]] = []  # open brackets: (character, index)
    i, n = 0, len(query)
    while i < n:
        c = query[i]
        if c in "\"'`":
            end = _string_end(query, i)
            if end is None:
                return f"the string opened at character {i + 1} ({c}) does not end"
            i = end + 1
            continue
        if c == "#":  # a comment, to the end of the line
            newline = query.find("\n", i)
            i = n if newline < 0 else newline + 1
            continue
        if c in _OPEN:
            stack.append((c, i))
        elif c in _CLOSE:
            if not stack:
                return f"{c!r} at character {i + 1} closes nothing"
            opened, at = stack.pop()
            if _OPEN.index(opened) != _CLOSE.index(c):
                return f"{c!r} at character {i + 1} closes the {opened!r} at character {at + 1}"
            problem = _inside(query, opened, at, i)
            if problem:
                return problem
        i += 1
    if stack:
        opened, at = stack[-1]
        return f"the {opened!r} at character {at + 1} is not closed"
    return None


def _inside(query: str, opened: str, start: int, end: int) -> str | None:
    """A problem with what the brackets opened at ``start`` and closed at ``end`` hold."""
    body = query[start + 1:end]
    if opened == "[" and not _RANGE.match(body):
        return (f"[{body}] at character {start + 1}: a range holds a duration such as [5m] or [1h30m], "
                "or a subquery's range and step such as [30m:1m]")
    if opened == "(":
        grouping = _GROUPING.search(query[:start + 1])
        if grouping and not _LABEL_LIST.match(body):
            return (f"{grouping.group(1)} (...) at character {grouping.start() + 1} holds label names and "
                    f"commas only, got ({body})")
    return None


def _string_end(query: str, start: int) -> int | None:
    """The index of the quote that ends the string opened at ``start`` (a backslash escapes in
    '...' and "..." strings, not in `...` ones), or None when it does not end."""
    quote, i = query[start], start + 1
    while i < len(query):
        if query[i] == "\\" and quote != "`":
            i += 2
            continue
        if query[i] == quote:
            return i
        if query[i] == "\n" and quote != "`":
            return None
        i += 1
    return None


#: Functions that turn a counter into something that comes back down.
_COUNTER_FUNCTIONS = frozenset({"rate", "irate", "increase", "resets", "changes", "deriv", "idelta", "delta",
                                "absent", "absent_over_time", "present_over_time", "timestamp"})
_COUNTER = re.compile(r"(?<![A-Za-z0-9_:])([A-Za-z_:][A-Za-z0-9_:]*_total)(?![A-Za-z0-9_:(])")
_CALL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*$")


def raw_counters(query: str) -> list[str]:
    """The counters (``*_total``, Prometheus' naming) ``query`` reads outside any function that
    makes a rate of them (``rate``, ``increase``, ...): an autoscaling signal that only grows.
    Outside strings and comments; a sound query only (see :func:`query_problem`)."""
    found: list[str] = []
    calls: list[str] = []  # the function (or "") each open '(' belongs to
    code = _code_only(query)
    i = 0
    for m in _COUNTER.finditer(code):
        while i < m.start():
            c = code[i]
            if c == "(":
                call = _CALL.search(code[:i])
                calls.append(call.group(1) if call else "")
            elif c == ")" and calls:
                calls.pop()
            i += 1
        if not _COUNTER_FUNCTIONS.intersection(calls) and m.group(1) not in found:
            found.append(m.group(1))
    return found


def _code_only(query: str) -> str:
    """``query`` with string literals and comments blanked out (same length, same positions)."""
    out, i, n = list(query), 0, len(query)
    while i < n:
        c = query[i]
        if c in "\"'`":
            end = _string_end(query, i)
            end = n - 1 if end is None else end
            out[i:end + 1] = " " * (end + 1 - i)
            i = end + 1
        elif c == "#":
            newline = query.find("\n", i)
            end = n if newline < 0 else newline
            out[i:end] = " " * (end - i)
            i = end
        else:
            i += 1
    return "".join(out)
