"""spec.scaling.behavior.scaleDown.release: compiled value and every error."""

from __future__ import annotations

import pytest

from tests.policy.helpers import BASE, FILE, edit, error_lines, hpa_preset_with, load_one

DOWN = "scaleDown: {stabilizationWindow: 5m,"
UP = "scaleUp: {stabilizationWindow: 0s}"
LINE_UP = 17  # the scaleUp line of BASE


@pytest.mark.parametrize("text,linear", [
    pytest.param(BASE, False, id="absent-expire"),
    pytest.param(edit(BASE, DOWN, f"{DOWN} release: expire,"), False, id="expire-is-hpa"),
    pytest.param(edit(BASE, DOWN, f"{DOWN} release: linear,"), True, id="linear"),
    pytest.param(edit(BASE, DOWN, f"{DOWN} release: linear, minStep: tolerance,"), True, id="linear-with-min-step"),
])
def test_release(text, linear):
    assert load_one(text).params.scale_down_linear_release is linear


BROKEN = [
    pytest.param(edit(BASE, UP, "scaleUp: {stabilizationWindow: 0s, release: linear}"),
                 f"{LINE_UP}: spec.scaling.behavior.scaleUp.release: only under scaleDown (the scale-up window holds "
                 "its lowest, HPA's rule)", id="on-scale-up"),
    pytest.param(edit(BASE, DOWN, f"{DOWN} release: gradual,"), None, id="not-a-choice"),
    pytest.param(edit(BASE, DOWN, f"{DOWN} release: 5m,"), None, id="a-duration"),
]


@pytest.mark.parametrize("text,expected", BROKEN)
def test_broken_release(text, expected):
    lines = error_lines(text)
    assert len(lines) == 1 and "release" in lines[0] and lines[0].startswith(f"{FILE}:")
    if expected is not None:
        assert lines == [f"{FILE}:{expected}"]


def test_linear_release_is_not_allowed_with_the_hpa_preset():
    text = hpa_preset_with(behavior_line="scaleDown: {release: linear}")
    assert error_lines(text) == [f"{FILE}:14: spec.scaling.behavior.scaleDown.release: not allowed with preset: hpa "
                                 "(HPA releases a window's peak when it expires)"]
