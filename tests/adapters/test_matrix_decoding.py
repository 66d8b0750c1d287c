"""The fast decoding of range-query bodies (values straight into numpy) gives exactly what
``json.loads`` then ``parse_matrix`` give, or steps aside for the ordinary decoding."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.adapters.prometheus import decode_matrix_body, parse_matrix

LABEL_TEXT = st.text(alphabet=st.sampled_from(list('ab]["\\:{},values ')), max_size=12)
SAMPLE = st.tuples(st.integers(1_700_000_000, 1_800_000_000),
                   st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 1e-300])))


def prometheus_text(value: float) -> str:
    """Prometheus' spelling of a sample value."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def body_text(series: list[tuple[dict, list[tuple[int, float]]]]) -> str:
    result = [{"metric": labels, "values": [[t, prometheus_text(v)] for t, v in samples]}
              for labels, samples in series]
    return json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}},
                      separators=(",", ":"))


@settings(deadline=None, max_examples=200)
@given(st.lists(st.tuples(st.dictionaries(LABEL_TEXT, LABEL_TEXT, max_size=3),
                          st.lists(SAMPLE, min_size=1, max_size=20)), max_size=5))
def test_fast_decoding_equals_the_ordinary_one(series):
    text = body_text(series)
    fast = decode_matrix_body(text)
    assert fast is not None
    expected = parse_matrix(json.loads(text)["data"])
    got = parse_matrix(fast["data"])
    assert len(got) == len(expected)
    for (labels, times, values), (want_labels, want_times, want_values) in zip(got, expected):
        assert labels == want_labels
        assert np.array_equal(times, want_times) and np.array_equal(values, want_values, equal_nan=True)
        assert np.array_equal(np.signbit(values), np.signbit(want_values))


@pytest.mark.parametrize("text", [
    pytest.param('{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[]}]}}',
                 id="empty-values"),
    pytest.param('{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":'
                 '[[1,"x"]]}]}}', id="not-a-number"),
    pytest.param('{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":'
                 '[[1,"2"]}]}}', id="truncated"),
    pytest.param('{"status":"error","errorType":"bad_data","error":"parse error"}', id="an-error-envelope"),
])
def test_unexpected_shapes_step_aside(text):
    """None: the ordinary decoding (and its error messages) takes over."""
    assert decode_matrix_body(text) is None
