"""``--set PATH=VALUES``: variants of one policy file, for ``setpoint sweep`` and ``setpoint tune``.

``PATH`` is a field path into the policy YAML as validation errors print it
(``spec.scaling.metrics[0].target.averagePerReplica``; a key with dots in brackets and quotes,
``spec.targets.selector.matchLabels["app.kubernetes.io/name"]``). ``VALUES`` is one of::

    70                 one value (read as YAML: 70, 0.5, 20m, 70%, true)
    50,60,80           a list
    50..90:10          a range, both ends included: 50, 60, 70, 80, 90
    0.05..0.2:0.05     numbers, durations (5m..20m:5m) or percentages (40%..80%:10%), one kind
    50..90             a range without a step: only for ``setpoint tune`` (searched continuously)
    x0.8,x1.5          multiples of the file's own value there (a number, a duration or a
                       percentage; with ``[*]`` each item's own: every trace's peak x1.5)

``PATH+=VALUES`` (a list or ``LO..HI:STEP``) adds each value to the file's own instead:
``spec.services[*].load[0].trace.start+=1d,2d`` replays each trace a day and two days later.

A path must lead through existing mappings and list items of the document; its last key (and
missing mappings on the way) may be new, and the policy's own validation then says whether the
field exists. ``[*]`` stands for every item of a list (``spec.scaling.metrics[*].target.averagePerReplica``,
``spec.services[*].startupDelay``): each gets the value. Every variant is validated as a policy;
errors name the ``--set`` and the field. The same settings vary scenario files
(``--scenario-set``, :mod:`simulators.scenario_set`).
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

from controller.errors import FieldError, InvalidInput, PolicyError
from controller.policy import LoadedPolicy, format_duration, load_policy_text, parse_duration
from controller.policy.durations import describe_value, format_number
from controller.policy.messages import format_path
from controller.policy.yamlsrc import read_documents, read_yaml_file

#: Most values one ``--set`` may expand to (a typo such as 1..1000000:1 is refused, not run).
MAX_VALUES_PER_SET = 1000
#: Most combinations of several ``--set`` (each a policy validated before anything runs): three
#: settings of 1000 values each would be a billion variants, built in memory.
MAX_COMBINATIONS = 10_000
_RANGE = re.compile(r"^(?P<lo>[^.,:][^,:]*?)\.\.(?P<hi>[^,:]+?)(?::(?P<step>[^,:]+))?$")
_PATH_PART = re.compile(r'\.?([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\["([^"]+)"\]|\[(\*)\]')
#: A path part standing for every item of a list (``[*]``).
EVERY = ...
_MULTIPLE = re.compile(r"^[x×]\s*((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)$")


class SetError(InvalidInput):
    """A ``--set`` is malformed, names a path the policy does not have, or makes it invalid."""


class Relative(str):
    """A value relative to the file's own at the path (Multiple ``x1.5``, Offset ``+1d``). A str
    (as names show it), so it passes through Optuna's categorical choices as it is."""

    verb = ""

    def combine(self, old: float, kind: str) -> float:
        raise NotImplementedError

    def of(self, old: Any) -> Any:
        """The value for the file's ``old``, as the file writes it (Range.render: an int when
        whole and ``old`` was one, ``30s`` x2 -> ``1m``, ``70%``); ValueError when ``old`` is not
        a number, a duration or a percentage, or this value does not apply to its kind."""
        if isinstance(old, (int, float)) and not isinstance(old, bool):
            value, kind = float(old), "number"
        else:
            try:  # text: a duration or a percentage (a number in quotes is not taken for one)
                value, kind = _bound(old) if isinstance(old, str) else (None, None)
            except ValueError:
                value, kind = None, None
            if kind not in ("duration", "percent"):
                raise ValueError(f"{self} {self.verb} the file's value, and it is {describe_value(old)}: not a number, "
                                 "a duration or a percentage")
        return Range(value, value, None, kind, isinstance(old, int)).render(self.combine(value, kind))


class Multiple(Relative):
    """``x1.5``: the file's own value times 1.5."""

    verb = "multiplies"

    def combine(self, old: float, kind: str) -> float:
        return old * float(_MULTIPLE.match(self).group(1))


class Offset(Relative):
    """``+1d`` (from ``PATH+=1d``): the file's own value plus 1d, of the same kind."""

    verb = "adds to"

    def combine(self, old: float, kind: str) -> float:
        delta, delta_kind = _bound(self[1:])
        if delta_kind != kind:
            raise ValueError(f"{self} adds a {delta_kind} to the file's value, which is a {kind}")
        return old + delta


@dataclass(frozen=True)
class Range:
    """A numeric range of a ``--set``: ``kind`` is number | duration | percent; ``step`` None
    means continuous (tune only). Bounds are numbers (seconds for durations, percent for percents)."""

    lo: float
    hi: float
    step: float | None
    kind: str
    integer: bool  # every bound is a whole number (a number range of ints stays ints)

    def values(self) -> list[Any]:
        """Every value from lo to hi by step, as YAML writes it (``5m``, ``70%``, 70, 0.15)."""
        n = int(math.floor((self.hi - self.lo) / self.step + 1e-9)) + 1
        return [self.render(self.lo + i * self.step) for i in range(n)]

    def render(self, x: float) -> Any:
        """A number of this range as the policy file writes it."""
        x = round(x, 9)
        if self.kind == "duration":
            return format_duration(x)
        if self.kind == "percent":
            return f"{format_number(x)}%"
        return int(round(x)) if self.integer and float(x).is_integer() else x


@dataclass(frozen=True)
class Setting:
    """One ``--set``: its path, the text after ``=``, and its values or range."""

    text: str  # as given, PATH=VALUES
    path: tuple
    values: tuple  # the discrete values ([] when only a continuous range)
    range: Range | None = None
    option: str = "--set"  # the command-line option it came from, for messages

    @property
    def shown_path(self) -> str:
        return format_setting_path(self.path)


def format_setting_path(path: tuple) -> str:
    """A path as validation errors print it, ``[*]`` for EVERY: ``spec.services[*].startupDelay``."""
    text = ""
    for part in path:
        piece = "[*]" if part is EVERY else format_path((part,))
        text += "." + piece if text and not piece.startswith("[") else piece
    return text


def parse_path(text: str) -> tuple:
    """``spec.scaling.metrics[0].target`` -> ('spec', 'scaling', 'metrics', 0, 'target'), ``[*]``
    -> EVERY; ValueError if malformed."""
    parts, pos = [], 0
    while pos < len(text):
        m = _PATH_PART.match(text, pos)
        if not m or (pos == 0 and text.startswith(".")) or (pos > 0 and m.group(1) and text[pos] != "."):
            raise ValueError(f"malformed path at {text[pos:]!r}: expected keys joined by dots, list indexes "
                             f"as [N] (every item: [*]) and quoted keys as [\"a.b\"], e.g. "
                             f"spec.scaling.metrics[0].target.averagePerReplica")
        key, index, quoted, every = m.groups()
        parts.append(key if key is not None else int(index) if index is not None else quoted if quoted is not None
                     else EVERY)
        pos = m.end()
    if not parts:
        raise ValueError("empty path")
    return tuple(parts)


def _scalar(text: str) -> Any:
    """One value as YAML reads it (``70`` int, ``0.5`` float, ``5m`` and ``70%`` strings), or a
    Multiple (``x1.5``)."""
    if _MULTIPLE.match(text.strip()):
        return Multiple(text.strip().replace("×", "x").replace(" ", ""))
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return text if isinstance(value, (dict, list)) or value is None and text.strip() not in ("null", "~") else value


def _offset(value: Any) -> "Offset":
    """One value of ``PATH+=VALUES`` as an Offset (``+1d``); ValueError unless it is a number, a
    duration or a percentage."""
    text = format_number(value) if isinstance(value, (int, float)) else str(value).strip()
    _bound(text)  # a number, a duration or a percentage, or a clear error
    return Offset(f"+{text}")


def _bound(text: str) -> tuple[float, str]:
    """(number, kind) of one end or step of a range."""
    text = text.strip()
    if text.endswith("%"):
        try:
            return float(text[:-1]), "percent"
        except ValueError:
            pass
    try:
        x = float(text)
        if math.isfinite(x):
            return x, "number"
    except ValueError:
        pass
    try:
        return parse_duration(text), "duration"
    except ValueError:
        pass
    try:  # a negative duration: an offset back (PATH+=-5m); the field's own rules refuse one below 0
        if text.startswith("-"):
            return -parse_duration(text[1:]), "duration"
    except ValueError:
        pass
    raise ValueError(f"{text!r} is not a number, a duration (5m) or a percentage (70%)")


def parse_range(text: str, allow_continuous: bool) -> Range | None:
    """The range in ``text`` (``LO..HI[:STEP]``), or None if ``text`` is not one."""
    m = _RANGE.match(text.strip())
    if not m:
        return None
    ends = [m.group("lo"), m.group("hi")] + ([m.group("step")] if m.group("step") else [])
    parsed = [_bound(e) for e in ends]
    kinds = {k for _, k in parsed}
    if len(kinds) > 1:
        raise ValueError(f"the ends and step of {text!r} mix {' and '.join(sorted(kinds))}s; use one kind")
    lo, hi = parsed[0][0], parsed[1][0]
    step = parsed[2][0] if len(parsed) > 2 else None
    if hi < lo:
        raise ValueError(f"range {text!r} ends below its start")
    if step is None and not allow_continuous:
        raise ValueError(f"range {text!r} has no step: a sweep needs LO..HI:STEP (e.g. 50..90:10)")
    if step is not None and not step > 0:
        raise ValueError(f"range {text!r}: the step must be > 0")
    integer = all(float(x).is_integer() for x, _ in parsed)
    r = Range(lo, hi, step, kinds.pop(), integer)
    if step is not None and (hi - lo) / step + 1 > MAX_VALUES_PER_SET:
        raise ValueError(f"range {text!r} has more than {MAX_VALUES_PER_SET} values; use a larger step")
    return r


def parse_setting(text: str, *, allow_continuous: bool = False, option: str = "--set") -> Setting:
    """One ``--set PATH=VALUES`` (see the module docstring; ``option``: the option it came
    from, for messages); SetError naming it when malformed."""
    path_text, eq, values_text = text.partition("=")
    adds = path_text.rstrip().endswith("+")  # PATH+=VALUES
    path_text = path_text.rstrip().removesuffix("+")
    try:
        if not eq or not values_text.strip():
            raise ValueError("expected PATH=VALUES, e.g. spec.scaling.metrics[0].target.averagePerReplica=50..90:10")
        path = parse_path(path_text.strip())
        r = parse_range(values_text, allow_continuous and not adds)
        if r is not None:
            if adds:  # offsets: discrete, each as it adds (+1d), never an absolute value of the range
                return Setting(text, path, tuple(_offset(v) for v in r.values()), None, option)
            return Setting(text, path, tuple(r.values()) if r.step is not None else (), r, option)
        items = [v.strip() for v in values_text.split(",")]
        if any(not v for v in items):
            raise ValueError(f"empty value in {values_text!r}")
        if len(items) > MAX_VALUES_PER_SET:
            raise ValueError(f"more than {MAX_VALUES_PER_SET} values")
        values = tuple(_offset(v) if adds else _scalar(v) for v in items)
        twice = next((v for i, v in enumerate(values) if v in values[:i]), None)
        if twice is not None:  # two variants of one content: named apart, they would collide later
            raise ValueError(f"{_shown(twice)} is given twice; give each value once")
        return Setting(text, path, values, None, option)
    except ValueError as exc:
        raise SetError([FieldError(option, None, path_text.strip(), f"{exc} (in {option} {text})")]) from None


# --- applying settings to a policy document -------------------------------------------------------


def set_value(data: Any, path: tuple, value: Any, _done: tuple = (), _make: bool = True) -> None:
    """Set ``path`` of the document ``data`` to ``value`` in place (EVERY: in every item of that
    list that has the mappings on the path, or in all of them when none has: see _set_every);
    ValueError naming the path when it cannot lead there (through a scalar, a missing or
    out-of-range list item, an empty list under ``[*]``). Missing mappings on the path are made
    (``_make``), as the file leaves them to defaults."""
    node = data
    for i, part in enumerate(path):
        last = i == len(path) - 1
        where = format_setting_path(_done + path[:i]) or "the document"
        if part is EVERY or isinstance(part, int):
            shown = "[*]" if part is EVERY else f"[{part}]"
            if not isinstance(node, list):
                raise ValueError(f"{where} is {describe_value(node)}, not a list: {shown} does not apply")
            if part is EVERY:
                if not node:
                    raise ValueError(f"{where} is an empty list: [*] sets nothing")
                _set_every(node, path[i + 1:], value, _done + path[:i])
                return
            if part >= len(node):
                raise ValueError(f"{where} has {len(node)} item(s); index [{part}] is out of range")
            if last:
                node[part] = _leaf(value, node[part], _done + path)
            else:
                node = node[part]
            continue
        if not isinstance(node, dict):
            raise ValueError(f"{where} is {describe_value(node)}, not a mapping: .{part} does not apply")
        if last:
            node[part] = _leaf(value, node.get(part), _done + path)
        else:
            if part not in node:
                if not _make:  # an item of a [*] whose siblings may have it (another kind of item)
                    raise _NotInItem(f"{format_setting_path(_done + path[:i + 1])} is not in the file")
                if path[i + 1] is EVERY or isinstance(path[i + 1], int):
                    shown = "[*]" if path[i + 1] is EVERY else f"[{path[i + 1]}]"
                    raise ValueError(f"{format_setting_path(_done + path[:i + 1])} is not in the file, so {shown} "
                                     f"cannot be set; write the list in the file first")
                node[part] = {}  # a mapping the file leaves to defaults; validation checks the key
            node = node[part]


class _NotInItem(ValueError):
    """An item of a ``[*]`` list lacks a mapping on the path (``load[*].step.at`` on a noise term)."""


def _set_every(items: list, rest: tuple, value: Any, done: tuple) -> None:
    """``rest`` of every item of ``items`` set to ``value``. Items without the mappings on it are
    skipped when others have them (a list of load terms holds steps, traces and noise:
    ``load[*].step.at`` is the steps'); when none has them, they are made in every item, as
    for a single path."""
    import copy

    before = copy.deepcopy(items)
    missing = 0
    for k in range(len(items)):
        try:
            set_value(items, (k,) + rest, value, done, _make=False)
        except _NotInItem:
            missing += 1
    if missing == len(items):
        items[:] = before
        for k in range(len(items)):
            set_value(items, (k,) + rest, value, done)


def _leaf(value: Any, old: Any, path: tuple) -> Any:
    """What a setting puts at ``path`` where the file has ``old`` (None: nothing)."""
    if not isinstance(value, Relative):
        return value
    if old is None:
        raise ValueError(f"{value} {value.verb} the file's value, and {format_setting_path(path)} has none; give "
                         "the value itself")
    try:
        return value.of(old)
    except ValueError as exc:
        raise ValueError(f"{format_setting_path(path)}: {exc}") from None


@dataclass(frozen=True)
class PolicyBase:
    """The scaling policy document of a file, as data, to derive variants from."""

    file: str
    data: dict
    policy: LoadedPolicy


def read_policy_base(path: str | Path) -> PolicyBase:
    """The one scaling policy of ``path`` (other documents, e.g. health-only policies, are
    ignored), or the one health-only policy of a file without a scaling one (it is simulated
    beside a scaler: simulators.runner.healing_controllers); PolicyError when the file is
    invalid or holds neither, or several of them."""
    text, problem = read_yaml_file(path)
    if problem is not None:
        raise PolicyError([FieldError(str(path), problem.line, "", problem.message)])
    policy = policy_of(load_policy_text(text, str(path)), str(path))
    documents, _ = read_documents(text)
    data = documents[policy.document - 1].data
    return PolicyBase(str(path), data, policy)


def policy_of(loaded: Sequence[LoadedPolicy], file: str) -> LoadedPolicy:
    """The policy of a file that a simulation runs: its one scaling policy, else its one
    health-only policy; PolicyError naming ``file`` otherwise."""
    scaling = [p for p in loaded if p.scales]
    if len(scaling) == 1 or (not scaling and len(loaded) == 1):
        return (scaling or list(loaded))[0]
    if not scaling and loaded:
        raise PolicyError([FieldError(file, None, "", f"expected one policy to simulate, found {len(loaded)} "
                                                      "health-only policies and no scaling one")])
    raise PolicyError([FieldError(file, None, "", f"expected exactly one scaling policy, found {len(scaling)}")])


def policy_text(data: dict) -> str:
    """The YAML of a policy document (keys in file order)."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


def apply_settings(base: PolicyBase, assigned: Sequence[tuple[Setting, Any]]) -> tuple[str, LoadedPolicy]:
    """(YAML text, validated policy) of ``base`` with each setting's value; SetError naming
    the ``--set`` and the field when a path does not apply or the result is invalid."""
    text = policy_text(assigned_document(base.file, base.data, assigned))
    try:
        loaded = policy_of(load_policy_text(text, base.file), base.file)
    except PolicyError as exc:
        raise invalid_with(base.file, assigned, exc) from None
    return text, loaded


def assigned_document(file: str, data: dict, assigned: Sequence[tuple[Setting, Any]]) -> dict:
    """A copy of the document ``data`` (of ``file``) with each setting's value; SetError naming
    the setting's option and the field when a path does not apply."""
    import copy

    data = copy.deepcopy(data)
    for setting, value in assigned:
        try:
            set_value(data, setting.path, value)
        except ValueError as exc:
            raise SetError([FieldError(file, None, setting.shown_path, f"{setting.option} {setting.text}: {exc}")]) from None
    return data


def invalid_with(file: str, assigned: Sequence[tuple[Setting, Any]], exc: InvalidInput,
                 file_lines: bool = False) -> SetError:
    """The validation errors ``exc`` of a document with the settings ``assigned``, each naming them;
    ``file_lines``: their lines are the file's (a scenario variant read with ``lines=``), else
    none is given (they would be the rewritten document's)."""
    return SetError([FieldError(file, e.line if file_lines else None, e.path,
                                f"{e.message} (with {assigned_text(assigned)})") for e in exc.errors])


def assigned_text(assigned: Sequence[tuple[Setting, Any]]) -> str:
    """``--scenario-set spec.services[*].startupDelay=90s, spec.seed=2``: the values as set."""
    option = assigned[0][0].option if assigned else "--set"
    return f"{option} " + ", ".join(f"{s.shown_path}+={v[1:]}" if isinstance(v, Offset) else f"{s.shown_path}={_shown(v)}"
                                    for s, v in assigned)


def _shown(value: Any) -> str:
    return format_number(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def short_names(settings: Sequence[Setting]) -> list[str]:
    """A short name per setting: the last key of its path, with more of the path where two
    settings would share it (``averagePerReplica``, ``scaleUp.stabilizationWindow``)."""
    def tail(path: tuple, n: int) -> str:
        return format_setting_path(path[-n:]).lstrip(".")

    names = []
    for s in settings:
        n = 1
        while n < len(s.path) and (isinstance(s.path[-n], int) or s.path[-n] is EVERY or
                                   sum(tail(o.path, n) == tail(s.path, n) for o in settings) > 1):
            n += 1
        names.append(tail(s.path, n))
    return names


def grid(settings: Sequence[Setting]) -> list[tuple[tuple[Setting, Any], ...]]:
    """Every combination of the settings' values (the first setting varies slowest)."""
    check_grid(settings)
    return [tuple(zip(settings, combo)) for combo in itertools.product(*(s.values for s in settings))]


def check_grid(settings: Sequence[Setting]) -> None:
    """SetError unless the settings make a grid: discrete values, each path once, at most
    MAX_COMBINATIONS combinations (counted, not built)."""
    for s in settings:
        if not s.values:
            raise SetError([FieldError(s.option, None, s.shown_path, f"{s.option} {s.text}: a sweep needs discrete "
                                                                      "values (LO..HI:STEP or a list)")])
    paths = [s.path for s in settings]
    for i, s in enumerate(settings):
        if s.path in paths[:i]:
            raise SetError([FieldError(s.option, None, s.shown_path, "set twice; give each path once")])
    counts = [len(s.values) for s in settings]
    if math.prod(counts) > MAX_COMBINATIONS:
        option = settings[0].option
        raise SetError([FieldError(option, None, "", f"{' x '.join(map(str, counts))} = {math.prod(counts):,} "
                                                     f"combinations of the {option} values, more than "
                                                     f"{MAX_COMBINATIONS:,}; use fewer values or larger steps")])


def variant_label(settings: Sequence[Setting], assigned: Sequence[tuple[Setting, Any]]) -> str:
    """``averagePerReplica=50,stabilizationWindow=5m``."""
    names = dict(zip([s.path for s in settings], short_names(settings)))
    return ",".join(f"{names[s.path]}={_shown(v)}" for s, v in assigned)


__all__ = ["Range", "Setting", "SetError", "PolicyBase", "EVERY", "Relative", "Multiple", "Offset", "parse_setting",
           "parse_path", "parse_range", "set_value", "format_setting_path", "read_policy_base", "apply_settings",
           "assigned_document", "assigned_text", "invalid_with", "grid", "check_grid", "variant_label", "short_names",
           "policy_text"]
