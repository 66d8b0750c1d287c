"""Reusable field types of the policy schema: durations, percentages, names, and "exactly one of".

Each type validates the value as written in YAML and stores it in Python units (durations as
float seconds, percentages as float percent), while the JSON Schema still shows the YAML form.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from controller.policy.durations import (DURATION_FORM, DURATION_PATTERN, PERCENT_PATTERN, clip, describe_value,
                                         format_duration, parse_duration, parse_percent)
from controller.policy.limits import MAX_REPLICAS

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
IDENTIFIER_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]*$"
#: A label key: an optional DNS-subdomain prefix and '/', then a name of 63 characters at most
LABEL_KEY_PATTERN = (r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                     r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
#: A label value: empty, or 63 characters at most of letters, digits, '-', '_' and '.'
LABEL_VALUE_PATTERN = r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"

# What a pattern means, for error messages ("must be a DNS-1123 label ..., got 'Shop'").
PATTERN_MEANINGS = {
    DNS_LABEL_PATTERN: "a DNS-1123 label (lowercase letters, digits and '-', "
                       "starting and ending with a letter or digit)",
    DNS_SUBDOMAIN_PATTERN: "a DNS-1123 subdomain (lowercase letters, digits, '-' and '.')",
    IDENTIFIER_PATTERN: "a name of letters, digits, '-' and '_' that starts with a letter",
    DURATION_PATTERN: DURATION_FORM,
    LABEL_KEY_PATTERN: "a label key (an optional DNS subdomain and '/', then up to 63 letters, digits, '-', "
                       "'_' and '.', starting and ending with a letter or digit)",
    LABEL_VALUE_PATTERN: "a label value (up to 63 letters, digits, '-', '_' and '.', starting and ending with a "
                         "letter or digit)",
}

DnsLabel = Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN, max_length=63)]
DnsSubdomain = Annotated[str, StringConstraints(pattern=DNS_SUBDOMAIN_PATTERN, max_length=253)]
Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN, max_length=63)]
NonEmptyText = Annotated[str, StringConstraints(min_length=1)]


def _promql(value: str) -> str:
    from controller.policy.promql import query_problem

    problem = query_problem(value)
    if problem:
        raise field_error(f"not a query Prometheus can parse: {problem}")
    return value


#: A PromQL query: not empty, and structurally sound (controller/policy/promql.py)
PromQL = Annotated[str, StringConstraints(min_length=1), AfterValidator(_promql)]

_DurationText = Annotated[str, StringConstraints(pattern=DURATION_PATTERN)]
_PercentText = Annotated[str, StringConstraints(pattern=PERCENT_PATTERN)]


class StrictModel(BaseModel):
    """Base of every policy model: unknown keys are errors, no silent type coercion.

    Python names are snake_case (durations end in ``_s``); YAML names are camelCase aliases.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False,
                              alias_generator=to_camel, populate_by_name=False)


def field_error(message: str) -> PydanticCustomError:
    """A pydantic error whose message is shown as is (no ``{}`` templating of the text)."""
    return PydanticCustomError("setpoint", "{message}", {"message": message})


def Duration(*, ge: float | None = 0.0, gt: float | None = None, le: float | None = None,
             latency: bool = False) -> Any:
    """A duration field, stored as float seconds and checked against bounds in seconds.
    ``latency``: a bare number's hint says ms, not s (:func:`parse_duration`)."""

    def validate(value: object) -> float:
        try:
            seconds = parse_duration(value, latency)
        except ValueError as exc:
            raise field_error(str(exc)) from None
        if gt is not None and not seconds > gt:
            raise field_error(f"must be longer than {format_duration(gt)}, got {clip(str(value))}")
        if ge is not None and seconds < ge:
            raise field_error(f"must be at least {format_duration(ge)}, got {clip(str(value))}")
        if le is not None and seconds > le:
            raise field_error(f"must be at most {format_duration(le)}, got {clip(str(value))}")
        return seconds

    return Annotated[float, BeforeValidator(validate, json_schema_input_type=_DurationText)]


def Percent(*, gt: float | None = None, ge: float | None = None, le: float | None = None) -> Any:
    """A percentage (``70%`` or ``70``), stored as float percent."""

    def validate(value: object) -> float:
        try:
            percent = parse_percent(value)
        except ValueError as exc:
            raise field_error(str(exc)) from None
        if gt is not None and not percent > gt:
            raise field_error(f"must be > {gt:g}%, got {describe_value(value)}")
        if ge is not None and percent < ge:
            raise field_error(f"must be >= {ge:g}%, got {describe_value(value)}")
        if le is not None and percent > le:
            raise field_error(f"must be <= {le:g}%, got {describe_value(value)}")
        return percent

    return Annotated[float, BeforeValidator(validate, json_schema_input_type=Union[_PercentText, float])]


def count_or_percent(value: object) -> int | str:
    """A pod count (``2``) or a share of pods (``25%``), kept as written."""
    if isinstance(value, int) and not isinstance(value, bool) and value > MAX_REPLICAS:
        raise field_error(f"must be <= {MAX_REPLICAS}, got {describe_value(value)}")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        try:
            percent = parse_percent(value)
        except ValueError:
            percent = -1.0
        if value.endswith("%") and 0 <= percent <= 100:
            return value
    raise field_error(f"expected a pod count (e.g. 2) or a percentage of pods from 0% to 100% "
                      f"(e.g. 25%), got {describe_value(value)}")


CountOrPercent = Annotated[Union[int, str], BeforeValidator(
    count_or_percent, json_schema_input_type=Union[Annotated[int, Field(ge=0, le=MAX_REPLICAS)], _PercentText])]


def duration_field(default_s: float, alias: str, description: str) -> Any:
    """A field holding seconds with a default, shown in YAML form in the JSON Schema."""
    return Field(default_s, alias=alias, description=description,
                 json_schema_extra={"default": format_duration(default_s)})


def exactly_one(model: BaseModel, names: tuple[str, ...]) -> None:
    """Raise unless exactly one of the fields ``names`` (Python names) is set."""
    aliases = [type(model).model_fields[n].alias or n for n in names]
    given = [a for n, a in zip(names, aliases) if getattr(model, n) is not None]
    if len(given) == 1:
        return
    found = "none" if not given else " and ".join(given) if len(given) == 2 else ", ".join(given)
    raise field_error(f"expected exactly one of {', '.join(aliases)}, got {found}")


def one_of_required(*aliases: str) -> dict:
    """JSON Schema fragment for "exactly one of these keys" so editors flag it too."""
    return {"oneOf": [{"required": [a]} for a in aliases]}
