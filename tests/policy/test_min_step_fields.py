"""spec.scaling.behavior.scaleDown.minStep: compiled value and every error."""

from __future__ import annotations

import pytest

from tests.policy.helpers import BASE, FILE, edit, error_lines, hpa_preset_with, load_one

DOWN = "scaleDown: {stabilizationWindow: 5m,"
UP = "scaleUp: {stabilizationWindow: 0s}"
LINE_UP, LINE_DOWN = 17, 18  # the scaleUp and scaleDown lines of BASE


@pytest.mark.parametrize("text,share", [
    pytest.param(BASE, 0.0, id="absent-any-step"),
    pytest.param(edit(BASE, DOWN, f"{DOWN} minStep: none,"), 0.0, id="none-any-step"),
    pytest.param(edit(BASE, DOWN, f"{DOWN} minStep: tolerance,"), 0.15, id="tolerance-is-the-down-tolerance"),
])
def test_min_step_share(text, share):
    assert load_one(text).params.scale_down_min_step == share


BROKEN = [
    pytest.param(edit(BASE, UP, "scaleUp: {stabilizationWindow: 0s, minStep: tolerance}"),
                 f"{LINE_UP}: spec.scaling.behavior.scaleUp.minStep: only under scaleDown (a scale-up is never held "
                 "back by its size)", id="on-scale-up"),
    pytest.param(edit(BASE, DOWN, f"{DOWN} minStep: 20%,"), None, id="not-a-choice"),
    pytest.param(edit(BASE, DOWN, f"{DOWN} minStep: true,"), None, id="a-boolean"),
]


@pytest.mark.parametrize("text,expected", BROKEN)
def test_broken_min_step(text, expected):
    lines = error_lines(text)
    assert len(lines) == 1 and "minStep" in lines[0] and lines[0].startswith(f"{FILE}:")
    if expected is not None:
        assert lines == [f"{FILE}:{expected}"]


def test_min_step_is_not_allowed_with_the_hpa_preset():
    text = hpa_preset_with(behavior_line="scaleDown: {minStep: tolerance}")
    assert error_lines(text) == [f"{FILE}:14: spec.scaling.behavior.scaleDown.minStep: not allowed with preset: hpa "
                                 "(HPA scales down by any step)"]
