"""Durations (``30s``, ``5m``, ``1h30m``, ``500ms``, ``2d`` for long scenario windows) and percentages (``25%``) as written in policy files.

Parsers raise ``ValueError`` with a message that names the expected form and what was found;
the schema turns those into field errors.
"""

from __future__ import annotations

import math
import re

_UNIT_S = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
# Also used as the JSON Schema pattern, so it must stay ECMA-262 compatible.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|d|h|m|s))+$"
PERCENT_PATTERN = r"^[0-9]+(\.[0-9]+)?%$"
DURATION_FORM = "a duration such as 30s, 5m, 1h30m or 500ms"


def describe_value(value: object) -> str:
    """Say what a YAML value is, the way a policy author wrote it: ``'5 min'``, ``15``, ``a list``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return clip(format_number(value))
    if isinstance(value, str):
        return clip(repr(value))
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__} ({value})"


def clip(text: str, limit: int = 60) -> str:
    """``text``, or its start and its length when longer than ``limit`` (hostile files hold huge values)."""
    return text if len(text) <= limit else f"{text[:limit - 20]}... ({len(text):,} characters)"


def format_number(value: float) -> str:
    """``0.0`` -> ``0``, ``-0.1`` -> ``-0.1``, ``inf`` -> ``inf``."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:  # larger: 1e+19, not 20 digits
        return str(int(value))
    return str(value)


def parse_duration(value: object, latency: bool = False) -> float:
    """Seconds in a duration string. A bare number is refused: the unit must be explicit.

    ``latency``: the field is a latency (an SLO threshold, a request's service time), written in
    milliseconds more often than not, so a bare number's hint says ms (``250`` -> ``250ms``) where
    other fields' says s; it changes the error's hint only, never what a value means."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected {DURATION_FORM}, got {describe_value(value)}")
    if isinstance(value, float) and not math.isfinite(value):  # .inf, .nan: no unit makes them one ("e.g. infs")
        raise ValueError(f"expected {DURATION_FORM}, got {describe_value(value)}")
    if isinstance(value, (int, float)):
        # The most common mistake: `interval: 15`. Seconds or minutes? Make the author say.
        raise ValueError(f"expected {DURATION_FORM}, got the bare number {format_number(value)}"
                         f"{_add_a_unit(format_number(value), latency)}")
    if not isinstance(value, str) or not re.fullmatch(DURATION_PATTERN, value):
        hint = _duration_hint(value, latency) if isinstance(value, str) else ""
        raise ValueError(f"expected {DURATION_FORM}, got {describe_value(value)}{hint}")
    return sum(float(number) * _UNIT_S[unit] for number, unit in _PART.findall(value))


def _add_a_unit(number: str, latency: bool) -> str:
    """The hint for a bare number: `` (add a unit, e.g. 15s)``; a latency of 1 or more reads as
    milliseconds (``250`` -> ``250ms``), one below 1 as seconds (``0.25`` -> ``0.25s``)."""
    unit = "ms" if latency and float(number) >= 1 else "s"
    return f" (add a unit, e.g. {number}{unit})"


#: Units as people write them -> the unit letter (weeks become days: there is no w).
_UNIT_WORDS = {**dict.fromkeys(("ms", "msec", "msecs", "millisecond", "milliseconds"), "ms"),
               **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), "s"),
               **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), "m"),
               **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), "h"),
               **dict.fromkeys(("d", "day", "days"), "d"),
               **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), "w")}
_WRITTEN_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*")


def _duration_hint(text: str, latency: bool = False) -> str:
    """How to write a duration that reads as one in other words (``5min``, ``10 Minutes``, ``1h 30m``,
    ``90S``, ``1w``, ``'15'``): `` (write 5m)``; a negative one is said so; "" for anything else."""
    if len(text) > 64:
        return ""
    body = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", body):
        return _add_a_unit(body, latency)
    negative = body.startswith("-")
    body = body[1:] if negative else body
    parts, at = [], 0
    while at < len(body):
        m = _WRITTEN_PART.match(body, at)
        if not m or m.end() == at or m.group(2) not in _UNIT_WORDS:
            return ""
        number, unit = m.group(1), _UNIT_WORDS[m.group(2)]
        parts.append(f"{format_number(float(number) * 7)}d" if unit == "w" else f"{number}{unit}")
        at = m.end()
    written = "".join(parts)
    if not parts or not re.fullmatch(DURATION_PATTERN, written):
        return ""
    if negative:
        return " (a duration is never negative)"
    return f" (write {written})" if written != text else ""


def format_duration(seconds: float, days: bool = False) -> str:
    """The shortest duration string for ``seconds``: ``90`` -> ``1m30s``, ``0.5`` -> ``500ms``.
    ``days``: whole days apart, for spans of days said to a person (``167h42m30s`` -> ``6d23h42m30s``)."""
    if math.isinf(seconds):
        return "forever"
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{format_number(round(seconds * 1000, 3))}ms"
    whole_days, seconds = divmod(seconds, 86400) if days else (0, seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{int(whole_days)}d" if whole_days else "", f"{int(hours)}h" if hours else "",
             f"{int(minutes)}m" if minutes else "", f"{format_number(round(secs, 3))}s" if secs else ""]
    return "".join(parts)


def parse_percent(value: object) -> float:
    """Percent units (``'70%'`` -> ``70.0``). A plain number is read as percent too."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected a percentage such as 70% or 70, got {describe_value(value)}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and re.fullmatch(PERCENT_PATTERN, value):
        return float(value[:-1])
    raise ValueError(f"expected a percentage such as 70% or 70, got {describe_value(value)}")
