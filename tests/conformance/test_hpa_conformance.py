"""HPA conformance: one test per JSON case (hpa-spec.md Appendix A), named by the case id.

Case files: every *.json in <repo>/../shared/conformance (or $SETPOINT_SHARED_DIR/conformance),
tests/conformance/cases/hpa-extra.json, and every file named in $SETPOINT_CONFORMANCE_CASES
(':'-separated; a named file that does not exist fails).
"""

from __future__ import annotations

import pytest

from tests.conformance import cases


def _params() -> list:
    files, bad = cases.case_files()
    params = [pytest.param(b, id=f"bad-case-file:{b.path}") for b in bad]
    for path in files:
        loaded = cases.load_cases(path)
        if isinstance(loaded, cases.BadCaseFile):
            params.append(pytest.param(loaded, id=f"bad-case-file:{path}"))
        else:
            params += [pytest.param(case, id=case["id"]) for case in loaded]
    if not params:
        reason = f"no HPA conformance case files: {cases.shared_dir() / 'conformance'} is absent and none are named"
        params.append(pytest.param(None, id="no-case-files", marks=pytest.mark.skip(reason=reason)))
    return params


@pytest.mark.parametrize("case", _params())
def test_hpa_case(case):
    if isinstance(case, cases.BadCaseFile):
        pytest.fail(case.problem)
    assert cases.mismatches(case) == {}, case.get("note", "")
