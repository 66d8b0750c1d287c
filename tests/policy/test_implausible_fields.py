"""spec.scaling.metrics[].implausibleAbove (core/scaling/signal.py): compiled bound and every error."""

from __future__ import annotations

import math

import pytest

from tests.policy.helpers import BASE, FILE, edit, error_lines, hpa_preset_with, load_one

TARGET = "        target: {averagePerReplica: 80}\n"
LINE = 13  # the line after BASE's target: where implausibleAbove goes
WHERE = f"{FILE}:{LINE}: spec.scaling.metrics[0].implausibleAbove"


def with_bound(value: str) -> str:
    return edit(BASE, TARGET, f"{TARGET}        implausibleAbove: {value}\n")


@pytest.mark.parametrize("text,stated,bound", [
    pytest.param(BASE, None, 1000 * 10 * 80.0, id="absent-1000-x-max-x-target"),
    pytest.param(with_bound("1.0e+9"), 1e9, 1e9, id="a-backlog-raised"),
    pytest.param(with_bound("801"), 801.0, 801.0, id="just-above-max-x-target"),
    pytest.param(with_bound("off"), math.inf, math.inf, id="off-bare-yaml-reads-false"),
    pytest.param(with_bound('"off"'), math.inf, math.inf, id="off-quoted"),
])
def test_implausible_above_compiles(text, stated, bound):
    params = load_one(text).params
    assert params.metrics[0].implausible_above == stated
    assert params.metric_implausible_above.tolist() == [bound]


@pytest.mark.parametrize("value,expected", [
    pytest.param("800", f"{WHERE}: must be above target x replicas.max (800: a reading there asks for "
                        "replicas.max), got 800", id="at-max-x-target-refuses-what-the-policy-acts-on"),
    pytest.param("0", None, id="zero"),
    pytest.param("-5", None, id="negative"),
    pytest.param("lots", None, id="not-a-number-nor-off"),
    pytest.param(".inf", None, id="infinity-is-written-off"),
    pytest.param("1e9", f"{WHERE}: expected a number above 0 (at most 1e+15) or off, got '1e9' (YAML reads 1e9 as "
                        "text: a number with an exponent needs a decimal point and a signed exponent; write 1.0e+9)",
                 id="yaml-1.1-exponent-is-text"),
])
def test_broken_implausible_above(value, expected):
    lines = error_lines(with_bound(value))
    assert len(lines) == 1 and lines[0].startswith(WHERE), lines
    if expected is not None:
        assert lines == [expected]


def test_implausible_above_is_not_allowed_with_the_hpa_preset():
    assert error_lines(hpa_preset_with("implausibleAbove: 1.0e+9")) == [
        f"{FILE}:13: spec.scaling.metrics[0].implausibleAbove: not allowed with preset: hpa (HPA has no bound on a "
        "reading)"]
