"""Property-based fuzz of `setpoint validate`: every example policy mutated structurally (a key
deleted, a value of another type, a huge or negative number, nan and inf, a duration where a
number goes and the other way round, a duplicated list item, two sibling values swapped, a wrong
enum, a misspelt or unknown key ...), one to four mutations at once (tests/support/structural.py).

Properties, in process (controller.policy.load.check_policy_texts) and through the CLI:

- no exception: a file is valid or gets its errors (a cross-field rule run on the parts of an
  invalid document that validated, controller/policy/partial.py, never crashes on one that did
  not), and its warnings never crash;
- every error and warning names the file, a line of it (the line of its field, or of the nearest
  enclosing field for a missing one) and a field path that is in the file, or whose parent is;
  none is pydantic's own wording or the sentinel of a part that did not validate;
- the errors of a file are the same whatever the order of the keys of its mappings;
- a cross-field error reported beside field errors still holds once the parts with field errors
  are given valid values (the example's own; a misspelt key the field it stands for): nothing is
  reported that could not be decided;
- a rewrite that changes nothing (keys reordered, a duration in other units, a default left out,
  HPA's ``...Seconds: N``) loads without error, as the same policy;
- changes toward what the warnings read (queries, scope: pod, budgets of 0, units) give warnings
  placed as errors are, whatever the key order;
- files checked together get the errors each gets alone, and those across files;
- `setpoint validate FILE` exits 0 or 1 (never 70, never a traceback) and prints the same lines.

The suite runs a small deterministic budget. To hunt, raise it (random, not derandomized):
SETPOINT_FUZZ_EXAMPLES=5000 python -m pytest tests/policy/test_structural_fuzz.py -p no:xdist
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from typer.testing import CliRunner

from controller.cli import app
from controller.policy.load import PolicyCheck, check_policy_texts
from controller.policy.messages import clean_loc, model_at, suggested_field
from controller.policy.schema import PolicyDocument
from tests.support import structural as S

REPO = Path(__file__).resolve().parents[2]
POLICIES = sorted((REPO / "policies").glob("*.yaml"))
SOURCES = {p.name: S.documents(p) for p in POLICIES}

sources = st.sampled_from(sorted(SOURCES))
changes = st.lists(st.tuples(st.sampled_from(S.KINDS), st.integers(0, 10**6), st.integers(0, 10**6)),
                   min_size=1, max_size=4)
rewrites = st.lists(st.tuples(st.sampled_from(S.EQUIVALENTS), st.integers(0, 10**6), st.integers(0, 10**6)),
                    min_size=1, max_size=6)
FUZZ = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
        "derandomize": S.DERANDOMIZE}


def check(text: str, name: str) -> PolicyCheck:
    result = check_policy_texts([(text, name)])
    S.assert_placed(text, name, result.errors + result.warnings)
    return result


@settings(max_examples=S.budget(250), **FUZZ)
@given(source=sources, changes=changes, flow=st.sampled_from([False, None, True]), order=st.integers(0, 2**32))
def test_a_mutated_policy_is_valid_or_rejected_at_its_fields_whatever_its_key_order(source, changes, flow, order):
    documents = S.mutated(SOURCES[source], changes)
    result = check(S.dump(documents, flow), source)
    if result.errors or result.warnings:
        reordered = check(S.dump(S.shuffled(documents, order), flow), source)
        assert S.comparable(reordered.errors) == S.comparable(result.errors)
        assert S.comparable(reordered.warnings) == S.comparable(result.warnings)


def field_errors(document: object) -> list[tuple[tuple, str]]:
    """(location, pydantic's error type) of each field error of ``document``."""
    try:
        PolicyDocument.model_validate(document)
    except ValidationError as exc:
        return [(clean_loc(e["loc"]), e["type"]) for e in exc.errors(include_url=False)]
    return []


def repaired(document: dict, original: dict) -> tuple[dict, list[tuple]] | None:
    """(``document`` with each part that has a field error given a valid value, until none has;
    the parts so given). The valid value is the original's there; a misspelt key becomes the
    field it stands for (the one "did you mean" names) with the original's value, and an unknown
    key that stands for none is left out. None where no valid value is known (a key the original
    does not hold), or repairs do not end."""
    document, given = copy.deepcopy(document), []
    for _ in range(6):
        errors = field_errors(document)
        if not errors:
            return document, given
        for loc, kind in errors:
            if not loc or not S.exists([document], (0, *loc[:-1])):
                return None
            parent = S.get([document], (0, *loc[:-1]))
            if kind == "extra_forbidden":  # an unknown key
                model = model_at(PolicyDocument, loc[:-1])
                meant = suggested_field(loc[-1], model) if model else None
                if meant is not None and (meant in parent or not S.exists([original], (0, *loc[:-1], meant))):
                    return None
                del parent[loc[-1]]
                if meant is not None:
                    parent[meant] = copy.deepcopy(S.get([original], (0, *loc[:-1], meant)))
                given += [loc, loc[:-1] + (meant,)] if meant else [loc]
                continue
            if not S.exists([original], (0, *loc)):
                return None
            if not isinstance(parent, (dict, list)) or isinstance(parent, list) and loc[-1] >= len(parent):
                return None
            parent[loc[-1]] = copy.deepcopy(S.get([original], (0, *loc)))
            given.append(loc)
    return None


def _decided(message: str) -> str:
    return re.sub(r" \(first at [^)]*\)", "", message)  # which earlier item a duplicate repeats may change


@settings(max_examples=S.budget(250), **FUZZ)
@given(source=sources, changes=changes)
def test_cross_field_errors_beside_field_errors_hold_once_those_are_fixed(source, changes):
    """What a rule reports on a document with field errors it decided from the parts that validated:
    any valid value in place of each broken part (here the example's own) keeps it. (Found a
    misspelt key taken for an absent field, and rules reading a threshold with neither above nor
    below: test_partial.py MISREAD.)"""
    originals = SOURCES[source]
    documents = S.mutated(originals, changes)
    if len(documents) != len(originals):
        return
    fixed, given = [], []
    for document, original in zip(documents, originals):
        if not isinstance(document, dict) or (document.get("apiVersion"), document.get("kind")) != (
                "setpoint/v1", "Policy"):
            return  # another kind of file: its spec is not checked
        repair = repaired(document, original)
        if repair is None:
            return
        fixed.append(repair[0])
        given.append(repair[1])
    before = check_policy_texts([(S.dump(documents), source)])
    after = {(e.path, _decided(e.message)) for e in check_policy_texts([(S.dump(fixed), source)]).errors}
    for e in before.errors:
        number, path = S.parse_path(e.path)
        if any(path[:len(loc)] == loc for loc in given[(number or 1) - 1]):
            continue  # a field error (or a model's own rule a repair brought out), or under one: repaired
        assert (e.path, _decided(e.message)) in after, (str(e), sorted(after))


@settings(max_examples=S.budget(150), **FUZZ)
@given(source=sources, rewrites=rewrites, flow=st.sampled_from([False, None, True]))
def test_a_rewrite_that_changes_nothing_loads_the_same_policy(source, rewrites, flow):
    documents = SOURCES[source]
    for kind, at, choice in rewrites:
        documents = S.equivalent(documents, kind, at, choice)
    text = S.dump(documents, flow)
    result = check(text, source)
    assert not result.errors, [str(e) for e in result.errors]
    expected = check_policy_texts([(S.dump(SOURCES[source]), source)])
    assert S.comparable(result.warnings) == S.comparable(expected.warnings)
    for got, want in zip(result.policies, expected.policies, strict=True):
        assert got.model == want.model and got.targets == want.targets and got.health == want.health
        assert repr(got.params) == repr(want.params) and repr(got.health_params) == repr(want.health_params)


@settings(max_examples=S.budget(60), **FUZZ)
@given(source=sources, changes=changes)
def test_validate_on_a_mutated_policy_exits_0_or_1_with_the_same_lines(tmp_path_factory, source, changes):
    path = tmp_path_factory.mktemp("validate") / source
    path.write_text(S.dump(S.mutated(SOURCES[source], changes)), encoding="utf-8")
    expected = check_policy_texts([(path.read_text(encoding="utf-8"), str(path))])
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == (1 if expected.errors else 0), result.output
    assert "Traceback" not in result.output
    lines = result.stdout.splitlines()
    if expected.errors:
        assert lines == [str(e) for e in expected.errors + expected.warnings]
    else:
        assert lines[1:] == [str(w) for w in expected.warnings] and lines[0].startswith(f"{path}: ok")


@settings(max_examples=S.budget(150), **FUZZ)
@given(source=sources, changes=st.lists(st.tuples(st.sampled_from(S.WARNING_KINDS), st.integers(0, 10**6),
                                                  st.integers(0, 10**6)), min_size=1, max_size=5),
       order=st.integers(0, 2**32))
def test_the_warnings_of_a_policy_never_crash_and_name_their_fields(source, changes, order):
    """Changes toward what the warnings read (controller/policy/units.py, promql.py): mostly valid
    policies, whose warnings (or errors) name file, line and field, whatever the key order."""
    documents = SOURCES[source]
    for kind, at, choice in changes:
        documents = S.toward_warnings(documents, kind, at, choice)
    result = check(S.dump(documents), source)
    reordered = check(S.dump(S.shuffled(documents, order)), source)
    assert S.comparable(reordered.errors) == S.comparable(result.errors)
    assert S.comparable(reordered.warnings) == S.comparable(result.warnings)


#: Errors that only files checked together have (controller/policy/load.py _finish)
ACROSS_FILES = ("duplicate policy name", "is already scaled by policy")


@settings(max_examples=S.budget(80), **FUZZ)
@given(first=sources, second=sources, changes=st.tuples(changes, changes), flows=st.tuples(st.booleans(), st.booleans()))
def test_files_checked_together_get_their_own_errors_and_those_across_files(first, second, changes, flows):
    """Two files (often one example twice, both mutated): each gets the errors it gets alone, and
    those across files (a name twice, a workload scaled by two policies); the warnings of both
    (selectors bound to meet among them) name their own file, line and field."""
    texts = [(S.dump(S.mutated(SOURCES[first], changes[0]), flows[0] or None), f"a/{first}"),
             (S.dump(S.mutated(SOURCES[second], changes[1]), flows[1] or None), f"b/{second}")]
    together = check_policy_texts(texts)
    for text, name in texts:
        alone = check(text, name)
        S.assert_placed(text, name, together.errors_in(name) + [w for w in together.warnings if w.file == name])
        own = [e for e in together.errors_in(name) if not any(w in e.message for w in ACROSS_FILES)]
        assert own == alone.errors
