"""--set PATH=VALUES: parsing, applying to a policy, and the errors a user sees."""

from __future__ import annotations

import pytest

from simulators.policy_set import (EVERY, Multiple, Offset, SetError, apply_settings, assigned_text, format_setting_path,
                                   grid, parse_path, parse_setting, read_policy_base, set_value, short_names,
                                   variant_label)
from tests.simulators.sweep_fixtures import DEFAULT_POLICY, HPA_POLICY, TARGET


@pytest.mark.parametrize("text, path, values", [
    pytest.param(f"{TARGET}=50..90:10", ("spec", "scaling", "metrics", 0, "target", "averagePerReplica"),
                 (50, 60, 70, 80, 90), id="int-range-ends-included"),
    pytest.param("spec.scaling.tolerance.up=0.05..0.2:0.05", ("spec", "scaling", "tolerance", "up"),
                 (0.05, 0.1, 0.15, 0.2), id="float-range-no-float-residue"),
    pytest.param("spec.scaling.behavior.scaleDown.stabilizationWindow=0s..15m:5m",
                 ("spec", "scaling", "behavior", "scaleDown", "stabilizationWindow"), ("0s", "5m", "10m", "15m"),
                 id="duration-range"),
    pytest.param("spec.scaling.metrics[0].target.utilization=40%..60%:10%",
                 ("spec", "scaling", "metrics", 0, "target", "utilization"), ("40%", "50%", "60%"), id="percent-range"),
    pytest.param("spec.interval=15s, 30s,1m", ("spec", "interval"), ("15s", "30s", "1m"), id="list-of-durations"),
    pytest.param(f"{TARGET}=70", ("spec", "scaling", "metrics", 0, "target", "averagePerReplica"), (70,), id="one-value"),
    pytest.param(f"{TARGET}=50..55:10", ("spec", "scaling", "metrics", 0, "target", "averagePerReplica"), (50,),
                 id="step-past-the-end"),
    pytest.param('spec.targets.selector.matchLabels["app.kubernetes.io/name"]=web',
                 ("spec", "targets", "selector", "matchLabels", "app.kubernetes.io/name"), ("web",), id="quoted-key"),
])
def test_parse_setting(text, path, values):
    s = parse_setting(text)
    assert s.path == path
    assert s.values == values


@pytest.mark.parametrize("text, message", [
    pytest.param(TARGET, "expected PATH=VALUES", id="no-equals"),
    pytest.param(f"{TARGET}=", "expected PATH=VALUES", id="no-value"),
    pytest.param("spec..interval=15s", "malformed path", id="double-dot"),
    pytest.param("spec.metrics[x]=1", "malformed path", id="bad-index"),
    pytest.param(".spec=1", "malformed path", id="leading-dot"),
    pytest.param(f"{TARGET}=90..50:10", "ends below its start", id="reversed-range"),
    pytest.param(f"{TARGET}=50..90:0", "step must be > 0", id="zero-step"),
    pytest.param(f"{TARGET}=50..90", "has no step", id="sweep-needs-a-step"),
    pytest.param(f"{TARGET}=1..100000:1", "more than 1000 values", id="too-many-values"),
    pytest.param(f"{TARGET}=5m..90:10", "mix", id="mixed-kinds"),
    pytest.param(f"{TARGET}=abc..90:10", "not a number, a duration", id="bad-bound"),
    pytest.param(f"{TARGET}=50,,60", "empty value", id="empty-list-item"),
    pytest.param(f"{TARGET}=60,60.0", "60 is given twice; give each value once", id="a-value-twice"),
])
def test_parse_setting_errors_name_the_setting(text, message):
    with pytest.raises(SetError) as info:
        parse_setting(text)
    error = str(info.value.errors[0])
    assert message in error
    assert text.partition("=")[0].strip() in error


def test_a_continuous_range_is_allowed_for_tune_only():
    s = parse_setting(f"{TARGET}=50..90", allow_continuous=True)
    assert (s.range.lo, s.range.hi, s.range.step, s.values) == (50.0, 90.0, None, ())
    with pytest.raises(SetError, match="discrete values"):
        grid([s])


@pytest.mark.parametrize("text, path_shown, message", [
    pytest.param("spec.scaling.metrics[3].target.averagePerReplica=5", "spec.scaling.metrics[3]",
                 "has 1 item(s); index [3] is out of range", id="index-out-of-range"),
    pytest.param("spec.interval.every=1", "spec.interval.every", "is '15s', not a mapping", id="through-a-scalar"),
    pytest.param("spec.scaling[0]=1", "spec.scaling[0]", "not a list", id="index-on-a-mapping"),
    pytest.param("spec.scalng.tolerance=1", "spec.scalng", "unknown field 'scalng'; did you mean 'scaling'",
                 id="unknown-key-suggests"),
    pytest.param(f"{TARGET}=-5", TARGET, "must be > 0, got -5", id="bad-value"),
    pytest.param("spec.interval=15", "spec.interval", "add a unit", id="duration-without-unit"),
    pytest.param("spec.replicas.min=25", "spec.replicas", "", id="cross-field-rule"),
])
def test_apply_errors_name_the_file_and_path(text, path_shown, message):
    base = read_policy_base(DEFAULT_POLICY)
    with pytest.raises(SetError) as info:
        apply_settings(base, grid([parse_setting(text)])[0])
    error = str(info.value.errors[0])
    assert error.startswith(str(DEFAULT_POLICY))
    assert path_shown in error and message in error


def test_apply_sets_the_value_and_creates_missing_mappings():
    base = read_policy_base(HPA_POLICY)
    target = parse_setting("spec.scaling.metrics[0].target.utilization=50%")
    window = parse_setting("spec.scaling.behavior.scaleDown.stabilizationWindow=2m")
    text, policy = apply_settings(base, grid([target, window])[0])
    assert policy.params.metrics[0].target == 50.0
    assert policy.params.scale_down.window_s == 120.0
    assert "behavior" not in base.data["spec"]["scaling"]  # the base is left as it was


def test_the_same_path_twice_is_refused():
    s = parse_setting(f"{TARGET}=50,60")
    with pytest.raises(SetError, match="set twice"):
        grid([s, s])


def test_names_are_short_and_unambiguous():
    a = parse_setting("spec.scaling.behavior.scaleUp.stabilizationWindow=0s")
    b = parse_setting("spec.scaling.behavior.scaleDown.stabilizationWindow=5m,10m")
    c = parse_setting(f"{TARGET}=50")
    assert short_names([a, b, c]) == ["scaleUp.stabilizationWindow", "scaleDown.stabilizationWindow",
                                      "averagePerReplica"]
    combos = grid([c, b])
    assert [variant_label([c, b], combo) for combo in combos] == [
        "averagePerReplica=50,stabilizationWindow=5m", "averagePerReplica=50,stabilizationWindow=10m"]


@pytest.mark.parametrize("text, path", [
    pytest.param("a.b[2].c", ("a", "b", 2, "c"), id="keys-and-index"),
    pytest.param('a["x.y/z"].b', ("a", "x.y/z", "b"), id="quoted"),
    pytest.param("a-b.c_d", ("a-b", "c_d"), id="dashes-underscores"),
    pytest.param("a.b[*].c", ("a", "b", EVERY, "c"), id="every-item"),
    pytest.param("a[*][*]", ("a", EVERY, EVERY), id="every-item-of-every-item"),
    pytest.param('a[*]["x.y"]', ("a", EVERY, "x.y"), id="every-item-then-quoted"),
])
def test_parse_path(text, path):
    assert parse_path(text) == path
    assert format_setting_path(path) == text


@pytest.mark.parametrize("data, path, expected", [
    pytest.param({"s": [{"d": 1}, {"d": 2}, {}]}, ("s", EVERY, "d"), {"s": [{"d": 9}, {"d": 9}, {"d": 9}]},
                 id="each-item-gets-it"),
    pytest.param({"s": [[1, 2], [3]]}, ("s", EVERY, EVERY), {"s": [[9, 9], [9]]}, id="nested-lists"),
    pytest.param({"s": [{"l": [{"x": 1}, {"x": 2}]}]}, ("s", 0, "l", EVERY, "x"), {"s": [{"l": [{"x": 9}, {"x": 9}]}]},
                 id="index-then-every"),
    pytest.param({"s": [{}]}, ("s", EVERY, "a", "b"), {"s": [{"a": {"b": 9}}]}, id="missing-mappings-made"),
    pytest.param({"l": [{"step": {"at": 1}}, {"noise": {"sigma": 0.1}}]}, ("l", EVERY, "step", "at"),
                 {"l": [{"step": {"at": 9}}, {"noise": {"sigma": 0.1}}]}, id="items-of-another-kind-skipped"),
])
def test_every_item_of_a_list_is_set(data, path, expected):
    set_value(data, path, 9)
    assert data == expected


@pytest.mark.parametrize("data, path, message", [
    pytest.param({"s": []}, ("s", EVERY, "d"), "s is an empty list: [*] sets nothing", id="empty-list"),
    pytest.param({"s": {"a": 1}}, ("s", EVERY), "s is a mapping, not a list: [*] does not apply", id="not-a-list"),
    pytest.param({}, ("s", EVERY, "d"), "s is not in the file, so [*] cannot be set", id="missing-list"),
    pytest.param({"s": [{"l": [1]}, {"l": 2}]}, ("s", EVERY, "l", 0),
                 "s[1].l is 2, not a list: [0] does not apply", id="names-the-item-that-fails"),
])
def test_every_item_errors_name_the_path(data, path, message):
    with pytest.raises(ValueError) as info:
        set_value(data, path, 9)
    assert message in str(info.value)


def test_every_metric_of_a_policy_gets_the_value_and_the_name_stays_short():
    base = read_policy_base(DEFAULT_POLICY)
    s = parse_setting("spec.scaling.metrics[*].target.averagePerReplica=60,70")
    assert short_names([s]) == ["averagePerReplica"]
    texts = [apply_settings(base, combo)[1].params.metrics[0].target for combo in grid([s])]
    assert texts == [60.0, 70.0]


from hypothesis import given, strategies as st  # noqa: E402


@given(lo=st.integers(0, 500), step=st.integers(1, 50), n=st.integers(1, 40), scale=st.sampled_from([1, 0.1, 0.05]))
def test_a_range_has_every_step_from_lo_to_hi_and_no_more(lo, step, n, scale):
    lo_x, step_x = round(lo * scale, 6), round(step * scale, 6)
    hi_x = round(lo_x + (n - 1) * step_x, 6)
    values = parse_setting(f"a={lo_x:g}..{hi_x:g}:{step_x:g}").values
    assert len(values) == n
    assert values[0] == pytest.approx(lo_x) and values[-1] == pytest.approx(hi_x)
    assert all(b - a == pytest.approx(step_x) for a, b in zip(values, values[1:]))
    assert all(len(repr(v)) <= 12 for v in values)  # no float residue such as 0.30000000000000004


@pytest.mark.parametrize("old, text, new", [
    pytest.param(1200, "x1.5", 1800, id="int-stays-int-when-whole"),
    pytest.param(7, "x1.5", 10.5, id="int-times-a-fraction"),
    pytest.param(0.2, "x0.5", 0.1, id="float-no-residue"),
    pytest.param("30s", "x2", "1m", id="duration"),
    pytest.param("3d", "x0.5", "36h", id="duration-days"),
    pytest.param("70%", "x1.1", "77%", id="percentage"),
])
def test_a_multiple_scales_the_files_value_as_the_file_writes_it(old, text, new):
    (value,) = parse_setting(f"a.b={text}").values
    assert isinstance(value, Multiple) and value == text
    data = {"a": {"b": old}}
    set_value(data, ("a", "b"), value)
    assert data["a"]["b"] == new and type(data["a"]["b"]) is type(new)


@pytest.mark.parametrize("text, values", [
    pytest.param("a=x1.5,x2", ("x1.5", "x2"), id="list"),
    pytest.param("a=×2, x 3", ("x2", "x3"), id="times-sign-and-space"),
    pytest.param("a=x1e-1", ("x1e-1",), id="exponent"),
    pytest.param("a=xray", ("xray",), id="a-word-is-a-word"),
])
def test_multiples_are_read_from_lists(text, values):
    parsed = parse_setting(text).values
    assert parsed == values
    assert [isinstance(v, Multiple) for v in parsed] == [v != "xray" for v in values]


@pytest.mark.parametrize("data, message", [
    pytest.param({"a": {}}, "x2 multiplies the file's value, and a.b has none; give the value itself", id="missing"),
    pytest.param({"a": {"b": "web"}}, "a.b: x2 multiplies the file's value, and it is 'web'", id="a-name"),
    pytest.param({"a": {"b": True}}, "a.b: x2 multiplies the file's value, and it is", id="a-boolean"),
])
def test_a_multiple_of_what_is_not_a_quantity_is_refused(data, message):
    with pytest.raises(ValueError) as info:
        set_value(data, ("a", "b"), Multiple("x2"))
    assert message in str(info.value)


def test_a_multiple_under_every_item_scales_each_items_own_value():
    data = {"s": [{"p": 100}, {"p": 30}, {"p": "1m"}]}
    set_value(data, ("s", EVERY, "p"), Multiple("x2"))
    assert data == {"s": [{"p": 200}, {"p": 60}, {"p": "2m"}]}
    base = read_policy_base(DEFAULT_POLICY)
    s = parse_setting(f"{TARGET}=x0.5")
    assert variant_label([s], grid([s])[0]) == "averagePerReplica=x0.5"
    assert apply_settings(base, grid([s])[0])[1].params.metrics[0].target == 42.5


@pytest.mark.parametrize("old, text, new", [
    pytest.param("3d", "a.b+=1d", "96h", id="duration"),
    pytest.param(40, "a.b+=5", 45, id="int-stays-int"),
    pytest.param(40, "a.b+=-2.5", 37.5, id="negative-number"),
    pytest.param("15m", "a.b+=-5m", "10m", id="negative-duration"),
    pytest.param("70%", "a.b+=5%", "75%", id="percentage"),
    pytest.param("30s", "a.b+=1m..2m:1m", "1m30s", id="range-of-offsets"),
])
def test_an_offset_adds_to_the_files_value(old, text, new):
    setting = parse_setting(text)
    value = setting.values[0]
    assert isinstance(value, Offset) and value.startswith("+") and setting.range is None
    data = {"a": {"b": old}}
    set_value(data, ("a", "b"), value)
    assert data["a"]["b"] == new
    assert assigned_text([(setting, value)]) == f"--set a.b+={value[1:]}"


@pytest.mark.parametrize("text, old, message", [
    pytest.param("a.b+=abc", None, "'abc' is not a number, a duration (5m) or a percentage", id="not-a-quantity"),
    pytest.param("a.b+=1d", 5, "a.b: +1d adds a duration to the file's value, which is a number", id="kinds-differ"),
    pytest.param("a.b+=1d", None, "+1d adds to the file's value, and a.b has none", id="nothing-to-add-to"),
])
def test_offset_errors_say_what_does_not_add_up(text, old, message):
    with pytest.raises((SetError, ValueError)) as info:
        setting = parse_setting(text)
        set_value({"a": {} if old is None else {"b": old}}, ("a", "b"), setting.values[0])
    assert message in str(info.value)


def test_tune_cannot_search_offsets_continuously():
    with pytest.raises(SetError, match="has no step"):
        parse_setting("a.b+=1d..3d", allow_continuous=True)
