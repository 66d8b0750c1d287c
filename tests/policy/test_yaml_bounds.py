"""The bounds of YAML reading, in process: size, depth, values after alias expansion, bad bytes."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.policy.yamlsrc import MAX_DEPTH, MAX_FILE_BYTES, MAX_VALUES, decode_yaml_bytes, read_documents, read_yaml_file


def alias_tree(width: int, levels: int) -> tuple[str, int]:
    """A "laughs" document: level k holds ``width`` aliases of level k-1; and its expanded value count."""
    lines = [f"l0: &l0 [{', '.join(['x'] * width)}]"]
    lines += [f"l{k}: &l{k} [{', '.join([f'*l{k - 1}'] * width)}]" for k in range(1, levels)]
    # values: the root mapping, and per level its key and its list (a list of width x level k-1)
    size = [1 + width]
    for _ in range(1, levels):
        size.append(1 + width * size[-1])
    return "\n".join(lines) + "\n", 1 + sum(1 + s for s in size)


@settings(max_examples=60, deadline=None)
@given(width=st.integers(1, 9), levels=st.integers(1, 12))
def test_alias_expansion_is_counted_exactly_and_bombs_are_refused(width, levels):
    text, values = alias_tree(width, levels)
    documents, problems = read_documents(text)
    if values <= MAX_VALUES:
        assert problems == [] and documents[0].data == yaml.safe_load(text)
    else:
        assert documents == [] and len(problems) == 1
        assert problems[0].message == (f"refused: more than {MAX_VALUES:,} values once aliases are expanded "
                                       "(policy and scenario files hold a few hundred; an alias bomb?)")
        assert 1 <= problems[0].line <= levels


@pytest.mark.parametrize("text, bomb", [
    # 2000 HPA-sized documents (kubectl get hpa -A of a big cluster): no alias, so no bomb to suspect
    pytest.param("---\n".join(f"kind: HorizontalPodAutoscaler\nmetadata: {{name: web{i}, namespace: shop}}\nspec:\n"
                               f"  minReplicas: 1\n  maxReplicas: 5\n  metrics: [{{type: Resource}}]\n"
                               for i in range(2000)), False, id="two-thousand-documents"),
    pytest.param("x: [" + ", ".join(["1"] * (MAX_VALUES + 1)) + "]\n", False, id="one-long-list"),
    pytest.param("a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n" + "".join(f"b{i}: *a\n" for i in range(2000)), True,
                 id="many-aliases"),
])
def test_too_many_values_suspect_a_bomb_only_when_aliases_are_read(text, bomb):
    _, problems = read_documents(text)
    (problem,) = problems
    assert problem.message.startswith(f"refused: more than {MAX_VALUES:,} values")
    assert ("an alias bomb?" in problem.message) == bomb
    assert ("split a longer list of manifests" in problem.message) != bomb


@settings(max_examples=40, deadline=None)
@given(depth=st.integers(1, 3 * MAX_DEPTH), flow=st.booleans(), kind=st.sampled_from(["list", "map"]))
def test_nesting_is_read_up_to_the_bound_and_refused_beyond(depth, flow, kind):
    value: object = 1
    for _ in range(depth - 1):
        value = [value] if kind == "list" else {"k": value}
    text = yaml.safe_dump(value, default_flow_style=flow)
    documents, problems = read_documents(text)
    if depth <= MAX_DEPTH:
        assert problems == [] and documents[0].data == value
    else:
        assert [p.message for p in problems] == [f"refused: nested deeper than {MAX_DEPTH} levels"]


def test_aliases_cannot_nest_deeper_than_the_bound():
    inner = "[" * 40 + "1" + "]" * 40
    (doc,), problems = read_documents(f"a: &a {inner}\nb: {'[' * 40}*a{']' * 40}\n")
    assert problems == []
    assert [(p.line, p.path, p.message) for p in doc.problems] == [
        (2, ("b",), f"refused: nested deeper than {MAX_DEPTH} levels (through aliases)")]


@pytest.mark.parametrize("data, expected", [
    pytest.param(b"a: 1\n", ("a: 1\n", None), id="utf-8"),
    pytest.param(b"\xef\xbb\xbfa: 1\n", ("a: 1\n", None), id="utf-8-bom-dropped"),
    pytest.param("a: café\n".encode(), ("a: café\n", None), id="utf-8-accents"),
    pytest.param("a: 1\n".encode("utf-16"), (None, 1, "UTF-16 byte-order mark"), id="utf-16-bom"),
    pytest.param("a: 1\n".encode("utf-32"), (None, 1, "UTF-32 byte-order mark"), id="utf-32-bom"),
    pytest.param("a: 1\n".encode("utf-16-be"), (None, 1, "NUL byte"), id="utf-16-without-bom"),
    pytest.param("a: 1\nb: é\n".encode("latin-1"), (None, 2, "not UTF-8 text (byte 0xe9 at line 2)"), id="latin-1"),
    pytest.param(b"a: 1\n\nb: \x00\n", (None, 3, "NUL byte"), id="nul"),
])
def test_decoding(data, expected):
    text, problem = decode_yaml_bytes(data)
    if expected[1] is None:
        assert (text, problem) == expected
    else:
        assert text is None and problem.line == expected[1] and expected[2] in problem.message


def test_a_large_file_is_refused_from_its_size(tmp_path):
    path = tmp_path / "big.yaml"
    with path.open("wb") as out:
        out.truncate(50 << 20)  # sparse: 50 MiB that cost nothing to write, and must not be read
    text, problem = read_yaml_file(path)
    assert text is None and problem.message.startswith(f"file too large: {50 << 20:,} bytes")


def test_a_file_at_the_size_limit_is_read(tmp_path):
    path = tmp_path / "limit.yaml"
    path.write_bytes(b"a: 1\n" + b"#" * (MAX_FILE_BYTES - 6) + b"\n")
    text, problem = read_yaml_file(path)
    assert problem is None and len(text) == MAX_FILE_BYTES
    (doc,), problems = read_documents(text)
    assert problems == [] and doc.data == {"a": 1}


@pytest.mark.parametrize("text, line, message", [
    pytest.param("a: " + "9" * 5000 + "\n", 1, "unsupported YAML value: a number of 5,000 characters", id="huge-int"),
    pytest.param("a: 1\nb: \x07\n", 2, "invalid YAML: special characters are not allowed (U+0007)", id="bell"),
    pytest.param("x" * (MAX_FILE_BYTES + 1), None, "file too large", id="long-text"),
])
def test_text_problems_name_the_line(text, line, message):
    documents, problems = read_documents(text)
    found = problems or [p for d in documents for p in d.problems]
    assert len(found) == 1 and found[0].line == line and message in found[0].message
