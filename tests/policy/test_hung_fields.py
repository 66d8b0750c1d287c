"""spec.health.checks[].hung: a hung-pod check (no query; controller/core/health/hung.py): its
compiled parameters and every error, with file, line and field."""

from __future__ import annotations

import pytest

from controller.core.health.params import Direction, Remedy, Scope
from controller.policy.compile import compile_health_params
from tests.policy.helpers import BASE, FILE, edit, error_lines, load_one

BUDGETS = "    budgets: {restartsPerHour: 6"
LINE = 27  # the hung check's "- name:" line (BASE's budgets line, 26, follows it)


def with_check(lines: str) -> str:
    """BASE with one more check, ``lines`` (each starting with 8 spaces but the first, "- ")."""
    return edit(BASE, BUDGETS, "      - name: hung-pod\n" + lines + BUDGETS)


def test_a_hung_check_compiles_to_a_pod_check_on_hung_seconds():
    loaded = load_one(with_check("        hung: {notReadyFor: 90s, startup: 2m}\n        action: restart-pod\n"))
    p = compile_health_params(loaded.health, interval_s=15.0)
    hung = p.checks[1]
    assert (hung.name, hung.scope, hung.direction, hung.unhealthy, hung.unhealthy_for_s) == \
           ("hung-pod", Scope.POD, Direction.ABOVE, 90.0, 0.0)
    assert (hung.recovered, hung.recovered_for_s, hung.action, hung.hung_startup_s) == \
           (90.0, 0.0, Remedy.RESTART_POD, 120.0)
    assert p.hung.tolist() == [False, True] and p.pod_columns.tolist() == [1]


def test_hung_defaults_and_an_explicit_pod_scope():
    loaded = load_one(with_check("        scope: pod\n        hung: {}\n        action: record\n"))
    hung = compile_health_params(loaded.health).checks[1]
    assert (hung.unhealthy, hung.hung_startup_s, hung.action) == (120.0, 300.0, Remedy.RECORD)


BROKEN = [
    pytest.param("        hung: {notReadyFor: 2m}\n        query: up\n        action: restart-pod\n",
                 f"{LINE + 2}: spec.health.checks[1].query: not used by a hung check (it reads the pods' Ready "
                 "condition; hung.notReadyFor is its threshold), remove it", id="with-a-query"),
    pytest.param("        hung: {notReadyFor: 2m}\n        unhealthy: {above: 1}\n        action: restart-pod\n",
                 f"{LINE + 2}: spec.health.checks[1].unhealthy: not used by a hung check (it reads the pods' Ready "
                 "condition; hung.notReadyFor is its threshold), remove it", id="with-a-threshold"),
    pytest.param("        scope: workload\n        hung: {notReadyFor: 2m}\n        action: restart-pod\n",
                 f"{LINE + 1}: spec.health.checks[1].scope: must be pod for a hung check (it judges each pod), "
                 "got workload", id="workload-scope"),
    pytest.param("        hung: {notReadyFor: 2m}\n        action: rollback\n",
                 f"{LINE + 2}: spec.health.checks[1].action: must be restart-pod or record for a hung check, got "
                 "rollback", id="rollback"),
    pytest.param("        hung: {notReadyFor: 2m}\n        action: restart-pod\n        onMissing: fire\n",
                 f"{LINE + 3}: spec.health.checks[1].onMissing: must be ignore for a hung check: the pod list is "
                 "never missing", id="fire-on-missing"),
    pytest.param("        hung: {notReadyFor: 0s}\n        action: restart-pod\n", None, id="zero-not-ready-for"),
    pytest.param("        hung: {notReadyFor: 2m, startup: -1m}\n        action: restart-pod\n", None,
                 id="negative-startup"),
    pytest.param("        hung: {notReadyFor: 2m, for: 1m}\n        action: restart-pod\n", None, id="unknown-key"),
]


@pytest.mark.parametrize("lines, expected", BROKEN)
def test_a_broken_hung_check_is_refused_naming_file_line_and_field(lines, expected):
    got = error_lines(with_check(lines))
    if expected is not None:
        assert got == [f"{FILE}:{expected}"]
    else:
        assert len(got) == 1 and got[0].startswith(f"{FILE}:{LINE + 1}: spec.health.checks[1].hung."), got


def test_a_query_check_without_hung_still_needs_its_query_and_threshold():
    got = error_lines(with_check("        scope: pod\n        action: restart-pod\n"))
    assert got == [f"{FILE}:{LINE}: spec.health.checks[1].query: expected a query, got none",
                   f"{FILE}:{LINE}: spec.health.checks[1].unhealthy: expected unhealthy (above or below a value), "
                   "got none"]
