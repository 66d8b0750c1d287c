"""bench/call_laps.py's wrappers: a named function or method counts its calls and time and still
answers as before; a name that is not a function stops the bench with the name in the message."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import call_laps  # noqa: E402


@pytest.fixture
def module(monkeypatch):
    """A throwaway module ``laps_probe`` with a function and a class."""
    mod = types.ModuleType("laps_probe")

    class Box:
        def twice(self, x):
            return 2 * x

    mod.add = lambda a, b: a + b
    mod.Box = Box
    monkeypatch.setitem(sys.modules, "laps_probe", mod)
    return mod


@pytest.mark.parametrize("target, call, want", [
    pytest.param("laps_probe:add", lambda m: m.add(2, 3), 5, id="module-function"),
    pytest.param("laps_probe:Box.twice", lambda m: m.Box().twice(4), 8, id="class-method"),
])
def test_a_wrapped_function_counts_its_calls(module, target, call, want):
    laps: dict[str, list] = {}
    call_laps.wrap(target, laps)
    assert [call(module), call(module)] == [want, want]
    assert laps[target][0] == 2 and laps[target][1] >= 0.0


@pytest.mark.parametrize("target", [
    pytest.param("laps_probe:missing", id="no-attribute"),
    pytest.param("no_such_module_here:f", id="no-module"),
])
def test_a_wrong_name_stops_with_it(module, target):
    with pytest.raises(SystemExit, match=f"--calls '{target}': no such function"):
        call_laps.wrap(target, {})
