"""Pydantic validation errors rewritten as policy-author messages: what was expected, what was found.

``must be >= 0, got -0.1`` instead of ``Input should be greater than or equal to 0``, and an
unknown key comes with the closest valid name.
"""

from __future__ import annotations

import difflib
import inspect
import math
import re
import typing
from types import NoneType, UnionType

from pydantic import BaseModel

from controller.policy.durations import describe_value, format_number
from controller.policy.fields import PATTERN_MEANINGS

_EXPECTED_TYPE = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
    "string_type": "a string", "bool_type": "true or false", "bool_parsing": "true or false",
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
    "list_type": "a list",
}
_INTEGER_KINDS = {"int_type", "int_parsing"}
_NUMBER_KINDS = _INTEGER_KINDS | {"float_type", "float_parsing"}
#: A number in exponent notation, as Python reads it; YAML 1.1 (PyYAML) reads a float only with a
#: decimal point and, with an exponent, a signed one (1.0e+3), so 1e3 and 8.5e1 are text to it.
_EXPONENT = re.compile(r"([-+]?)(\d*)\.?(\d*)[eE]([-+]?)(\d+)")
_PERCENT = re.compile(r"([-+]?\d+(?:\.\d+)?)\s*%")
_BOUNDS = {"greater_than": ("gt", ">"), "greater_than_equal": ("ge", ">="),
           "less_than": ("lt", "<"), "less_than_equal": ("le", "<=")}


def clean_loc(loc: tuple) -> tuple:
    """Drop pydantic's internal markers (``[key]`` for dict keys) from an error location."""
    return tuple(part for part in loc if part != "[key]")


def format_path(path: tuple) -> str:
    """``('spec', 'scaling', 'metrics', 0, 'target')`` -> ``spec.scaling.metrics[0].target``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.replace("-", "").replace("_", "").isalnum():
            text += f".{part}" if text else part
        else:  # label keys such as app.kubernetes.io/name would be ambiguous with dots
            text += f'["{part}"]'
    return text


def validation_problems(errors: list[dict], root: type[BaseModel]) -> list[tuple[tuple, str]]:
    """(path, message) for each pydantic error of a document validated as ``root``.

    A misspelt key produces two errors, "unknown field 'targte'" and "target: missing"; the
    second says nothing new once the first suggests 'target', so it is dropped.
    """
    explained = set()
    for error in errors:
        if error["type"] == "extra_forbidden":
            loc = clean_loc(error["loc"])
            suggestion = _closest_field(loc, root)
            if suggestion:
                explained.add(loc[:-1] + (suggestion,))
    return [(field_path(_error_loc(e), root), error_message(e, root)) for e in errors
            if not (e["type"] == "missing" and clean_loc(e["loc"]) in explained)]


def _error_loc(error: dict) -> tuple:
    """Where the error is, as pydantic walked there (a tagged union's tag included); an error of the
    tag of a tagged union (``kind: meteor`` in a fault) is at the tag's field."""
    loc = clean_loc(error["loc"])
    if error["type"] in _TAG_ERRORS:
        return loc + (_discriminator(error),)
    return loc


def field_path(loc: tuple, root: type[BaseModel]) -> tuple:
    """``loc`` as the document's field path: without the tags pydantic puts in the locations of a
    tagged union's members (``spec.faults[0].bad-rollout.services`` is ``spec.faults[0].services``)."""
    return _walk(root, loc)[1]


def error_message(error: dict, root: type[BaseModel]) -> str:
    """One pydantic error dict as a sentence naming the expectation and the value found."""
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "setpoint":
        return ctx["message"]
    if kind == "missing":
        return "required field is missing"
    if kind == "union_tag_not_found":  # a mapping without its kind
        return f"required field is missing (expected {_tags(error, root)})"
    if kind == "union_tag_invalid":
        found = value.get(_discriminator(error)) if isinstance(value, dict) else value
        return f"expected {_tags(error, root)}, got {describe_value(found)}"
    if kind == "extra_forbidden":
        return _unknown_field_message(clean_loc(error["loc"]), root)
    if kind in _EXPECTED_TYPE:
        hint = _number_as_text_hint(value, integer=kind in _INTEGER_KINDS) if kind in _NUMBER_KINDS else ""
        return f"expected {_EXPECTED_TYPE[kind]}, got {describe_value(value)}{hint}"
    if kind in _BOUNDS:
        key, sign = _BOUNDS[kind]
        return f"must be {sign} {format_number(ctx[key])}, got {describe_value(value)}"
    if kind in ("literal_error", "enum"):
        return f"expected {ctx['expected']}, got {describe_value(value)}"
    if kind in ("too_short", "string_too_short"):
        return _too_short_message(kind, ctx, value)
    if kind == "string_too_long":
        return f"must be at most {ctx['max_length']} characters, got {len(value)}"
    if kind == "string_pattern_mismatch":
        meaning = PATTERN_MEANINGS.get(ctx["pattern"], f"a string matching {ctx['pattern']}")
        return f"expected {meaning}, got {describe_value(value)}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return f"{error['msg']}, got {describe_value(value)}"


def _number_as_text_hint(value: object, integer: bool = False) -> str:
    """Why a string that reads as a finite number reached a number field, and how to write it
    (an ``integer`` field: as an integer where it is one); "" for any other value.

    ``1e3`` and ``8.5e1`` are text to YAML 1.1 (a float needs a decimal point and a signed
    exponent: ``1.0e+3``); ``'10'`` is text because it is quoted."""
    if not isinstance(value, str):
        return ""
    text = value.strip()
    percent = _PERCENT.fullmatch(text)
    if percent:  # 5% where a plain number goes (a tolerance is a fraction; a threshold is in its query's unit)
        fraction = "" if integer else \
            f"; {text} as a fraction is {format_number(round(float(percent.group(1)) / 100.0, 9))}"
        return f" (a plain number goes here, not a percentage{fraction})"
    try:
        number = float(text)
    except ValueError:
        return ""
    if not math.isfinite(number):
        return ""
    exponent = _EXPONENT.fullmatch(text)
    if integer and number.is_integer():
        written = str(int(number))
    elif exponent:
        sign, whole, fraction, exp_sign, digits = exponent.groups()
        written = f"{sign}{whole or '0'}.{fraction or '0'}e{exp_sign or '+'}{digits}"
    else:
        written = text
    if exponent:
        return (f" (YAML reads {text} as text: a number with an exponent needs a decimal point and a signed "
                f"exponent; write {written})")
    return f" (quoted, so text: write {written} without quotes)"


def _too_short_message(kind: str, ctx: dict, value: object) -> str:
    if kind == "string_too_short":
        return "must not be empty"
    n = ctx.get("min_length", 1)
    return f"expected at least {n} entr{'y' if n == 1 else 'ies'}, got {describe_value(value)} with {len(value)}"


def _unknown_field_message(loc: tuple, root: type[BaseModel]) -> str:
    key = loc[-1]
    suggestion = _closest_field(loc, root)
    if suggestion:
        return f"unknown field '{key}'; did you mean '{suggestion}'?"
    allowed = _allowed_fields(loc, root)
    return f"unknown field '{key}'; expected one of: {', '.join(allowed)}" if allowed else f"unknown field '{key}'"


def _allowed_fields(loc: tuple, root: type[BaseModel]) -> list[str]:
    """The YAML names valid beside the unknown key at ``loc``."""
    model = model_at(root, loc[:-1])
    return [info.alias or name for name, info in model.model_fields.items()] if model else []


def _closest_field(loc: tuple, root: type[BaseModel]) -> str | None:
    model = model_at(root, loc[:-1])
    return suggested_field(loc[-1], model) if model else None


def suggested_field(key: object, model: type[BaseModel]) -> str | None:
    """The YAML name of ``model``'s field that the unknown ``key`` is probably a misspelling of
    (what "did you mean" names), or None."""
    close = difflib.get_close_matches(str(key), [info.alias or name for name, info in model.model_fields.items()],
                                      n=1, cutoff=0.6)
    return close[0] if close else None


#: pydantic's errors of a tagged union's tag (the discriminator field, such as a fault's ``kind``)
_TAG_ERRORS = ("union_tag_not_found", "union_tag_invalid")


def _discriminator(error: dict) -> str:
    return str((error.get("ctx") or {}).get("discriminator", "kind")).strip("'")


def _tags(error: dict, root: type[BaseModel]) -> str:
    """The tags of the tagged union an error of its tag is at, as literal_error's expected values
    read: 'a', 'b' or 'c'."""
    union = _walk(root, clean_loc(error["loc"]))[0]  # Annotated[Union[...], Field(discriminator=...)]
    members = typing.get_args(typing.get_args(union)[0]) if typing.get_origin(union) is typing.Annotated else ()
    tags = [f"'{tag}'" for member in members for tag in _member_tags(member, _discriminator(error))]
    return ", ".join(tags[:-1]) + f" or {tags[-1]}" if len(tags) > 1 else "".join(tags) or "a known kind"


def _member_tags(member: object, discriminator: str) -> tuple:
    info = member.model_fields.get(discriminator) if _is_model(member) else None
    return typing.get_args(info.annotation) if info is not None else ()


def model_at(root: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic model class that validates the mapping at ``loc`` (YAML names, and the tags of
    tagged unions as pydantic's locations hold them: then the member of that tag), if any."""
    annotation = _unwrap(_walk(root, loc)[0])
    return annotation if _is_model(annotation) else None


def _walk(root: type[BaseModel], loc: tuple) -> tuple[object, tuple]:
    """(the annotation that validates the value at ``loc``, or None; ``loc`` without the tags of
    tagged unions). A tag (``bad-rollout`` in ``('spec', 'faults', 0, 'bad-rollout', 'services')``)
    selects the member of its union."""
    annotation: object = root
    path = []
    for part in loc:
        member = _tagged_member(annotation, part)
        if member is not None:
            annotation = member
            continue
        path.append(part)
        annotation = _unwrap(annotation)
        origin = typing.get_origin(annotation)
        if isinstance(part, int) and origin is list:
            annotation = typing.get_args(annotation)[0]
        elif origin is dict:
            annotation = typing.get_args(annotation)[1]
        elif _is_model(annotation):
            annotation = _field_annotation(annotation, part)
        else:
            annotation = None
    return annotation, tuple(path)


def _tagged_member(annotation: object, part: object) -> type[BaseModel] | None:
    """The member of the tagged union ``annotation`` (``Annotated[Union[...], Field(discriminator=...)]``)
    whose tag is ``part``; None when ``annotation`` is no tagged union or ``part`` no tag of it."""
    if typing.get_origin(annotation) is not typing.Annotated or not isinstance(part, str):
        return None
    union, *metadata = typing.get_args(annotation)
    discriminator = next((m.discriminator for m in metadata if isinstance(getattr(m, "discriminator", None), str)),
                         None)
    if discriminator is None or typing.get_origin(union) not in (typing.Union, UnionType):
        return None
    return next((member for member in typing.get_args(union) if part in _member_tags(member, discriminator)), None)


def _field_annotation(model: type[BaseModel], alias: object) -> object:
    for name, info in model.model_fields.items():
        if alias in (info.alias, name):
            return info.annotation
    return None


def _unwrap(annotation: object) -> object:
    """Strip ``Annotated`` and ``Optional`` so that ``Optional[Annotated[X, ...]]`` becomes ``X``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, UnionType):
            members = [a for a in typing.get_args(annotation) if a is not NoneType]
            models = [a for a in members if _is_model(_strip_annotated(a))]
            annotation = models[0] if models else members[0]
            if len(members) > 1 and not models:
                return annotation
        else:
            return annotation


def _strip_annotated(annotation: object) -> object:
    if typing.get_origin(annotation) is typing.Annotated:
        return typing.get_args(annotation)[0]
    return annotation


def _is_model(annotation: object) -> bool:
    return inspect.isclass(annotation) and issubclass(annotation, BaseModel)
