"""A structural check of PromQL queries, for errors a typo makes and Prometheus would refuse.

Not a PromQL parser: it checks what every query must get right whatever its functions and
metrics, so that a file ``setpoint validate`` accepts (and a live reload takes) does not hold a
query Prometheus answers with ``400 bad_data: parse error`` at every cycle, which leaves the
targets held until someone reads the logs:

- brackets ``( [ {`` close in order, outside string literals and ``#`` comments;
- a range or subquery selector ``[...]`` holds a duration (``5m``, ``1h30m``), or two for a
  subquery (``[30m:1m]``, ``[30m:]``);
- a grouping clause ``by (...)`` / ``without (...)`` holds label names and commas only;
- a function that reads a range of samples (``rate``, ``increase``, ``*_over_time``, ...) is given
  one (``rate(x[5m])``, not ``rate(x)`` nor ``rate(sum(x[5m]))``), and a range after an expression
  (a function's result, parentheses) is a subquery with its colon (``[5m:]``);
- string literals end;
- no ``$`` outside a string (a Grafana dashboard variable pasted in: ``{namespace=$namespace}``).

:func:`matcher_variables` finds such variables inside label matchers' strings, where PromQL takes
them as text: a warning, not an error (the query runs and selects nothing).

Positions in messages count characters from 1, as Prometheus' own parse errors do.
"""

from __future__ import annotations

import functools
import re
import string

_OPEN, _CLOSE = "([{", ")]}"
_DURATION = r"(?:\d+(?:ms|[smhdwy]))+"
_RANGE = re.compile(rf"^\s*{_DURATION}\s*(?::\s*(?:{_DURATION})?\s*)?$")
_WORD = frozenset(string.ascii_letters + string.digits + "_")
_LABEL_LIST = re.compile(r"^\s*(?:[A-Za-z_][A-Za-z0-9_]*\s*(?:,\s*[A-Za-z_][A-Za-z0-9_]*\s*)*,?\s*)?$")


def query_problem(query: str) -> str | None:
    """What makes ``query`` one Prometheus cannot parse (see the module docstring), or None.
    Linear in the query's length, however deeply it nests (a policy file may hold 1 MiB)."""
    code, unended, at_string = _code_and_strings(query)
    stack: list[tuple[str, int]] = []  # open brackets: (character, index)
    ranged: list[bool] = []  # per open bracket: a range [...] written directly inside it (or in bare parentheses)
    for i, c in enumerate(code[:at_string]):  # up to a string that does not end: the first problem there
        if c in _OPEN:
            if c == "[" and ranged:
                ranged[-1] = True
            stack.append((c, i))
            ranged.append(False)
        elif c in _CLOSE:
            if not stack:
                return f"{c!r} at character {i + 1} closes nothing"
            opened, at = stack.pop()
            has_range = ranged.pop()
            if _OPEN.index(opened) != _CLOSE.index(c):
                return f"{c!r} at character {i + 1} closes the {opened!r} at character {at + 1}"
            problem = _inside(query, code, opened, at, i) or (
                _range_argument(code, at, has_range) if opened == "(" else None)
            if problem:
                return problem
            if opened == "(" and has_range and ranged and not _word_before(code, at)[0]:
                ranged[-1] = True  # (x[5m]) is still a range vector
    if unended:
        return unended
    if stack:
        opened, at = stack[-1]
        return f"the {opened!r} at character {at + 1} is not closed"
    dollar = code.find("$")  # PromQL has no '$' outside strings: a dashboard's variable pasted in
    if dollar >= 0:
        word = _VARIABLE.match(query, dollar)
        name = word.group(0) if word else "$"
        return (f"{name} at character {dollar + 1}: Prometheus has no variables (a Grafana dashboard's "
                f"{name} is filled in by Grafana): write the value it stands for")
    return None


#: A Grafana dashboard variable: $name, ${name}, ${name:format}, or the older [[name]].
_VARIABLE = re.compile(r"\$\{[A-Za-z_]\w*(?::\w+)?\}|\$[A-Za-z_]\w*|\[\[[A-Za-z_]\w*\]\]")


def matcher_variables(query: str) -> list[str]:
    """The Grafana dashboard variables (``$namespace``, ``${pod}``, ``[[job]]``) written inside the
    strings of label matchers (``{namespace="$namespace"}``): valid PromQL, matched as the text
    itself, so the query selects no series. Strings outside ``{...}`` are not read (a
    ``label_replace`` replacement may name a capture group: ``"$name"``). Linear in the query."""
    found: list[str] = []
    depth, i, n = 0, 0, len(query)
    while i < n:
        c = query[i]
        if c in "\"'`":
            end = _string_end(query, i)
            end = n - 1 if end is None else end
            if depth > 0:
                found += [m.group(0) for m in _VARIABLE.finditer(query, i + 1, end) if m.group(0) not in found]
            i = end + 1
            continue
        if c == "#":
            newline = query.find("\n", i)
            i = n if newline < 0 else newline
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth = max(0, depth - 1)
        i += 1
    return found


def _inside(query: str, code: str, opened: str, start: int, end: int) -> str | None:
    """A problem with what the brackets opened at ``start`` and closed at ``end`` hold (``code``:
    the query without strings and comments, to find the word before a bracket). Only a range's
    and a grouping's body is read."""
    if opened == "[":
        body = query[start + 1:end]
        if not _RANGE.match(body):
            return (f"[{body}] at character {start + 1}: a range holds a duration such as [5m] or [1h30m], "
                    "or a subquery's range and step such as [30m:1m]")
        j = start
        while j > 0 and code[j - 1].isspace():
            j -= 1
        if j > 0 and code[j - 1] == ")" and ":" not in body:
            return (f"[{body}] at character {start + 1}: a range reads a metric's samples (x[5m]); over an "
                    f"expression's result it is a subquery, with a colon: [{body.strip()}:]")
    elif opened == "(":
        word, at = _word_before(code, start)
        if word in ("by", "without") and not _LABEL_LIST.match(body := query[start + 1:end]):
            return f"{word} (...) at character {at + 1} holds label names and commas only, got ({body})"
    return None


#: Functions whose (first, or quantile_over_time's second) argument is a range vector.
_RANGE_FUNCTIONS = frozenset({"rate", "irate", "increase", "delta", "idelta", "deriv", "changes", "resets",
                              "predict_linear", "holt_winters", "double_exponential_smoothing"})


def _range_argument(code: str, start: int, has_range: bool) -> str | None:
    """A call of a function that reads a range vector (rate, increase, *_over_time, ...) whose
    parentheses, opened at ``start``, hold no range: ``rate(x)``, ``rate(sum(x[1m]))``."""
    word, at = _word_before(code, start)
    if has_range or not (word in _RANGE_FUNCTIONS or word.endswith("_over_time")):
        return None
    return (f"{word}(...) at character {at + 1} reads a range of samples: its argument needs one, e.g. "
            f"{word}(x[5m]) (or a subquery over an expression: {word}(sum(x)[5m:]))")


def _word_before(code: str, i: int) -> tuple[str, int]:
    """The identifier just before position ``i`` (blanks between allowed) and where it starts;
    ("", i) when there is none. Reads back only over those blanks and that word, so that a
    check per bracket stays linear in all."""
    j = i
    while j > 0 and code[j - 1].isspace():
        j -= 1
    k = j
    while k > 0 and code[k - 1] in _WORD:
        k -= 1
    while k < j and code[k].isdigit():  # an identifier starts with a letter or '_'
        k += 1
    return (code[k:j], k) if k < j else ("", i)


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


def raw_counters(query: str) -> list[str]:
    """The counters (``*_total``, Prometheus' naming) ``query`` reads outside any function that
    makes a rate of them (``rate``, ``increase``, ...): an autoscaling signal that only grows.
    Outside strings and comments; a sound query only (see :func:`query_problem`)."""
    found: list[str] = []
    calls: list[str] = []  # the function (or "") each open '(' belongs to
    rates = 0  # how many of them make a rate
    code = _code_and_strings(query)[0]
    i = 0
    for m in _COUNTER.finditer(code):
        while i < m.start():
            c = code[i]
            if c == "(":
                calls.append(_word_before(code, i)[0])
                rates += calls[-1] in _COUNTER_FUNCTIONS
            elif c == ")" and calls:
                rates -= calls.pop() in _COUNTER_FUNCTIONS
            i += 1
        if not rates and m.group(1) not in found:
            found.append(m.group(1))
    return found


_GROUPING = re.compile(r"(?<![A-Za-z0-9_:])(by|without)\s*\(([^()]*)\)", re.IGNORECASE)
#: Aggregations whose result keeps only the grouping's labels (topk, bottomk, limitk keep the series').
_AGGREGATION = re.compile(r"(?<![A-Za-z0-9_:])(sum|avg|min|max|count|group|stddev|stdvar|quantile|count_values)"
                          r"\s*\(", re.IGNORECASE)
#: Functions that write one label, named by their second argument (a string).
_LABEL_WRITER = re.compile(r"(?<![A-Za-z0-9_:])(label_replace|label_join)\s*\(", re.IGNORECASE)
#: Modifiers that can give a result labels its aggregation dropped (any of the other side's).
_GROUP_MODIFIER = re.compile(r"(?<![A-Za-z0-9_:])(group_left|group_right)\s*\(", re.IGNORECASE)


def drops_label(query: str, label: str) -> bool:
    """Whether an aggregation of ``query`` leaves ``label`` out of its result: ``by (...)`` without
    it, ``without (...)`` with it, or no grouping at all (``sum(x)``), and nothing puts labels back
    (``label_replace``, ``group_left``, ...). Outside strings and comments; a sound query only
    (see :func:`query_problem`). Linear in the query."""
    code = _code_and_strings(query)[0]
    if relabels(query, label):
        return False
    for m in _GROUPING.finditer(code):
        labels = {x.strip() for x in m.group(2).split(",")}
        if (label not in labels) == (m.group(1).lower() == "by"):
            return True
    closes = _matching_parens(code)
    for m in _AGGREGATION.finditer(code):  # sum(x), with no grouping before its '(' nor after its ')'
        after = closes.get(m.end() - 1)
        if after is not None and not re.match(r"\s*(by|without)\s*\(", code[after + 1:after + 64], re.IGNORECASE):
            return True
    return False


def _written_labels(query: str, code: str) -> set[str]:
    """The labels ``label_replace(v, "dst", ...)`` and ``label_join(v, "dst", ...)`` of ``query``
    write (``code``: the query with strings blanked out); ``"*"`` for a call whose destination
    cannot be read (then any label may be written back). One pass."""
    commas = _first_commas(code)
    written: set[str] = set()
    for m in _LABEL_WRITER.finditer(code):
        comma = commas.get(m.end() - 1)
        j = len(query) if comma is None else comma + 1
        while j < len(query) and query[j].isspace():
            j += 1
        end = _string_end(query, j) if j < len(query) and query[j] in "\"'`" else None
        written.add("*" if end is None else query[j + 1:end])
    return written


def _first_commas(code: str) -> dict[int, int]:
    """Each bracket's opening position -> its first comma at its own depth (one pass)."""
    out: dict[int, int] = {}
    stack: list[int] = []
    for i, c in enumerate(code):
        if c in "([{":
            stack.append(i)
        elif c in ")]}":
            if stack:
                stack.pop()
        elif c == "," and stack and stack[-1] not in out:
            out[stack[-1]] = i
    return out


def label_replaces(query: str) -> list[tuple[str, str, str, str]]:
    """``(dst, replacement, src, regex)`` of every ``label_replace(v, "dst", "replacement", "src",
    "regex")`` of ``query`` whose four arguments are string literals (a backslash escape in "..."
    and '...' read as Prometheus reads it: the character after it); the others are left out. A
    sound query only (see :func:`query_problem`). Linear in the query."""
    code = _code_and_strings(query)[0]
    commas = _first_commas(code)
    out = []
    for m in _LABEL_WRITER.finditer(code):
        comma = commas.get(m.end() - 1)
        if m.group(1).lower() != "label_replace" or comma is None:
            continue
        args = _string_arguments(query, comma + 1, 4)
        if len(args) == 4:
            out.append((args[0], args[1], args[2], args[3]))
    return out


def _string_arguments(query: str, j: int, most: int) -> list[str]:
    """Up to ``most`` string literals from ``j`` on, separated by commas; stops at anything else."""
    args: list[str] = []
    while len(args) < most:
        while j < len(query) and query[j].isspace():
            j += 1
        end = _string_end(query, j) if j < len(query) and query[j] in "\"'`" else None
        if end is None:
            break
        raw = query[j + 1:end]
        args.append(raw if query[j] == "`" else re.sub(r"\\(.)", r"\1", raw))
        j = end + 1
        while j < len(query) and query[j].isspace():
            j += 1
        if j >= len(query) or query[j] != ",":
            break
        j += 1
    return args


_MATCHER = re.compile(r"(?<![A-Za-z0-9_:])([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(?=[\"'`])")


def label_matchers(query: str) -> list[tuple[str, str, str]]:
    """``(label, operator, value)`` of every label matcher of ``query`` (``namespace="shop"``,
    ``deployment=~"web|api"``), outside strings and comments; a value with an escape is left out
    (it is not read here). A sound query only (see :func:`query_problem`). Linear in the query."""
    code = _code_and_strings(query)[0]
    out = []
    for m in _MATCHER.finditer(query):
        if code[m.start()] != query[m.start()]:  # inside a string or a comment
            continue
        end = _string_end(query, m.end())
        value = None if end is None else query[m.end() + 1:end]
        if value is not None and "\\" not in value:
            out.append((m.group(1), m.group(2), value))
    return out


def relabels(query: str, label: str) -> bool:
    """Whether something in ``query`` may write ``label`` after its selectors did (a
    ``label_replace``/``label_join`` into it, or ``group_left``/``group_right``)."""
    code = _code_and_strings(query)[0]
    written = _written_labels(query, code)
    return bool(_GROUP_MODIFIER.search(code)) or label in written or "*" in written


#: A metric name that counts failures (http_request_errors_total, grpc_failed_calls_total).
_FAILURE_NAME = re.compile(r"(?<![A-Za-z0-9_:])[A-Za-z_:][A-Za-z0-9_:]*(?:error|fail)[A-Za-z0-9_:]*", re.IGNORECASE)
#: A matcher that keeps failed requests: code=~"5..", status="500", status_code=~"5.*".
_FAILURE_MATCHER = re.compile(r"(?:code|status)\s*=~?\s*[\"'`]5", re.IGNORECASE)
#: A factor of 100 at the top of a quotient: the ratio is in percent.
_HUNDRED = re.compile(r"(?<![A-Za-z0-9_:.])100(?:\.0*)?(?![0-9.eE])")


def error_ratio(query: str) -> bool:
    """Whether ``query`` is a fraction of failed requests (between 0 and 1): a quotient at its top
    level whose numerator counts failures (a metric named for errors or failures, or a matcher
    on 5xx codes) and whose two sides are rates of counters, not scaled by 100 (percent). A sound
    query only (see :func:`query_problem`). Linear in the query."""
    code = _code_and_strings(query)[0]
    while (inner := code.strip()).startswith("(") and _matching_parens(inner).get(0) == len(inner) - 1:
        code = " " + inner[1:-1] + " "  # (a / b): the same quotient; positions shift, so the query's too
        query = " " + query.strip()[1:-1] + " "
    top = _top_level(code)
    slash = top.find("/")
    if slash < 0 or _HUNDRED.search(top):
        return False
    above, below = code[:slash], code[slash + 1:]
    rates = all(re.search(r"(?<![A-Za-z0-9_:])(?:rate|irate|increase)\s*\(", side) for side in (above, below))
    return rates and bool(_FAILURE_NAME.search(above) or _FAILURE_MATCHER.search(query[:slash]))


def code_only(query: str) -> str:
    """``query`` with its string literals and ``#`` comments blanked out (same length and positions)."""
    return _code_and_strings(query)[0]


def range_brackets(code: str) -> list[tuple[int, int, str]]:
    """Each range selector's or subquery's bracket in ``code`` (a query through :func:`code_only`),
    left to right: (where the operand it reads starts, where the bracket opens, what it holds:
    ``5m`` or ``10m:30s``). The operand is the selector (``x{a=""}``) or the expression
    (``rate(x[1m])``, a call with its name) just before the bracket."""
    out = []
    for m in re.finditer(r"\[([^\[\]]*)\]", code):
        out.append((_operand_start(code, m.start()), m.start(), m.group(1).strip()))
    return out


def _operand_start(code: str, at: int) -> int:
    """Where the selector or expression that ends just before position ``at`` starts: a
    bracketed group (``(...)`` or ``{...}``) is taken whole, then the word before it."""
    j = at
    while j > 0 and code[j - 1].isspace():
        j -= 1
    if j > 0 and code[j - 1] in ")}":
        close = code[j - 1]
        opened, depth = "(" if close == ")" else "{", 0
        j -= 1
        while j >= 0:
            depth += (code[j] == close) - (code[j] == opened)
            if depth == 0:
                break
            j -= 1
        j = max(j, 0)
    while j > 0 and (code[j - 1] in _WORD or code[j - 1] == ":"):
        j -= 1
    return j


def _top_level(code: str) -> str:
    """``code`` with every bracket's contents blanked out: what is at depth 0."""
    out, depth = [], 0
    for c in code:
        if c in ")]}":
            depth -= 1
        out.append(c if depth == 0 else " ")
        if c in "([{":
            depth += 1
    return "".join(out)


def _matching_parens(code: str) -> dict[int, int]:
    """Each '(' position -> its ')' position (one pass; unmatched ones are left out)."""
    out, stack = {}, []
    for i, c in enumerate(code):
        if c == "(":
            stack.append(i)
        elif c == ")" and stack:
            out[stack.pop()] = i
    return out


#: a policy's query is scanned by each of its checks and warnings (about 15 times a check of a
#: file): scanned once, character by character, and remembered
@functools.lru_cache(maxsize=1024)
def _code_and_strings(query: str) -> tuple[str, str | None, int | None]:
    """(``query`` with string literals and ``#`` comments blanked out, same length and positions;
    the first string that does not end, or None; where it starts, or None)."""
    out, i, n = list(query), 0, len(query)
    problem, at = None, None
    while i < n:
        c = query[i]
        if c in "\"'`":
            end = _string_end(query, i)
            if end is None and problem is None:
                problem, at = f"the string opened at character {i + 1} ({c}) does not end", i
            end = n - 1 if end is None else end
            out[i:end + 1] = " " * (end + 1 - i)
            i = end + 1
        elif c == "#":  # a comment, to the end of the line
            newline = query.find("\n", i)
            end = n if newline < 0 else newline
            out[i:end] = " " * (end - i)
            i = end
        else:
            i += 1
    return "".join(out), problem, at
