"""Reading YAML with line numbers and duplicate-key detection."""

from __future__ import annotations

import pytest

from controller.policy.yamlsrc import read_documents


def test_lines_of_keys_and_list_items():
    (doc,), problems = read_documents("a: 1\nb:\n  c: [x,\n     y]\n  d:\n    - e: 2\n    - f\n")
    assert problems == []
    assert doc.data == {"a": 1, "b": {"c": ["x", "y"], "d": [{"e": 2}, "f"]}}
    assert doc.lines[("a",)] == 1
    assert doc.lines[("b", "c")] == 3
    assert doc.lines[("b", "c", 1)] == 4
    assert doc.lines[("b", "d", 0, "e")] == 6
    assert doc.lines[("b", "d", 1)] == 7


def test_missing_path_takes_nearest_ancestor_line():
    (doc,), _ = read_documents("a: 1\nb:\n  c: 2\n")
    assert doc.line_of(("b", "missing", "deeper")) == 2


@pytest.mark.parametrize("text, line, path, message", [
    pytest.param("a: 1\nb: 2\na: 3\n", 3, ("a",), "duplicate key 'a' (first at line 1)", id="top-level"),
    pytest.param("x:\n  y: 1\n  y: 2\n", 3, ("x", "y"), "duplicate key 'y' (first at line 2)", id="nested"),
    pytest.param("x: {y: 1, y: 2}\n", 1, ("x", "y"), "duplicate key 'y' (first at line 1)", id="flow-mapping"),
])
def test_duplicate_keys(text, line, path, message):
    (doc,), problems = read_documents(text)
    assert problems == []
    (problem,) = doc.problems
    assert (problem.line, problem.path) == (line, path)
    assert message in problem.message


def test_merge_keys_are_not_duplicates_and_own_keys_win():
    (doc,), _ = read_documents("a: &base {x: 1, y: 2}\nb:\n  <<: *base\n  y: 3\n")
    assert doc.problems == []
    assert doc.data["b"] == {"x": 1, "y": 3}


@pytest.mark.parametrize("text, line, message", [
    pytest.param("a: [1, 2\n", 2, "invalid YAML: expected ',' or ']'", id="unclosed-flow-sequence"),
    pytest.param("a: 1\n b: 2\n", 2, "invalid YAML: mapping values are not allowed here", id="bad-indent"),
    pytest.param("a:\n\t- 1\n", 2, "invalid YAML: found character '\\t'", id="tab"),
])
def test_syntax_errors_have_a_line(text, line, message):
    _, problems = read_documents(text)
    (problem,) = problems
    assert problem.line == line
    assert problem.message.startswith(message)


@pytest.mark.parametrize("text, line, hint", [
    pytest.param("a:\n\t- 1\n", 2, ": YAML indents with spaces, never tabs (a tab at column 1)", id="tab"),
    pytest.param("spec:\n    targets: x\n  interval: 15s\n", 3, ": this line is indented differently from the lines "
                 "of its level above it: line the key up with its siblings (spaces only)", id="a-key-out-of-line"),
    pytest.param("a: 1\n b: 2\n", 2, ": a ': ' inside a value (quote the value) or a key indented under a value",
                 id="a-key-under-a-value"),
    pytest.param("a: [1, 2\n", 2, None, id="no-hint-where-the-parser-says-enough"),
])
def test_syntax_errors_say_what_they_usually_mean(text, line, hint):
    """The parser's words ("found character '\\t' that cannot start any token") name no fix."""
    _, problems = read_documents(text)
    (problem,) = problems
    assert problem.line == line
    assert problem.message.endswith(hint) if hint else ": " not in problem.message.split("invalid YAML: ", 1)[1]


def test_documents_before_a_syntax_error_are_kept():
    docs, problems = read_documents("a: 1\n---\nb: [\n")
    assert [d.data for d in docs] == [{"a": 1}]
    assert problems[0].line == 4


@pytest.mark.parametrize("text, message", [
    pytest.param("a: !!python/name:os.system x\n", "unsupported YAML value", id="scalar"),
    pytest.param("a: !!python/object/apply:os.system [echo hi]\n", "unsupported YAML tag", id="sequence"),
    pytest.param("a: !!omap [b: 1]\n", "unsupported YAML tag", id="ordered-map"),
])
def test_tags_are_refused_not_executed(text, message):
    (doc,), _ = read_documents(text)
    (problem,) = doc.problems
    assert (problem.line, problem.path) == (1, ("a",))
    assert message in problem.message


def test_recursive_alias_is_reported():
    (doc,), _ = read_documents("a: &x [1, *x]\n")
    assert any("recursive YAML alias" in p.message for p in doc.problems)


def test_keys_keep_their_text():
    (doc,), _ = read_documents("on: 1\n2: b\n")
    assert doc.data == {"on": 1, "2": "b"}
