"""spec.scaling.metrics[].ramp: compiled values, the auto lead, and every error."""

from __future__ import annotations

import pytest

from tests.policy.helpers import BASE, FILE, edit, error_lines, hpa_preset_with, load_one

TARGET = "target: {averagePerReplica: 80}"


def with_ramp(fields: str, target: str = TARGET) -> str:
    return edit(BASE, TARGET, f"{target}\n        ramp: {fields}")


def ramp_of(fields: str):
    return load_one(with_ramp(fields)).params.metrics[0].ramp


@pytest.mark.parametrize("fields,lead_s", [
    pytest.param("{}", 75.0, id="auto-start-up-30s-interval-15s-half-of-1m"),
    pytest.param("{lead: auto, startupDelay: 90s}", 135.0, id="auto-with-a-slow-start-up"),
    pytest.param("{lead: 2m}", 120.0, id="explicit-lead"),
])
def test_lead(fields, lead_s):
    r = ramp_of(fields)
    assert (r.lead_s, r.window_s, r.interval_s) == (lead_s, 60.0, 15.0)


@pytest.mark.parametrize("fields,lead_s,observed", [
    pytest.param("{startupDelay: observed}", 75.0, True, id="observed-30s-until-a-start-up-is-seen"),
    pytest.param("{lead: auto, startupDelay: {observed: true, initial: 90s}}", 135.0, True,
                 id="observed-with-its-initial-value"),
    pytest.param("{startupDelay: {observed: true}}", 75.0, True, id="observed-mapping-default-initial"),
    pytest.param("{startupDelay: 45s}", 90.0, False, id="a-fixed-duration-still-works"),
    pytest.param("{}", 75.0, False, id="default-fixed-30s"),
])
def test_observed_start_up(fields, lead_s, observed):
    r = ramp_of(fields)
    assert (r.lead_s, r.observed, r.lag_s) == (lead_s, observed, 45.0)


@pytest.mark.parametrize("fields,min_step", [
    pytest.param("{}", 0.0, id="default-any-look-ahead-step"),
    pytest.param("{minStep: none}", 0.0, id="none-any-look-ahead-step"),
    pytest.param("{minStep: tolerance}", 0.15, id="tolerance-the-policys-down-tolerance"),
    pytest.param("{lead: 2m, minStep: tolerance}", 0.15, id="with-an-explicit-lead-too"),
])
def test_min_step(fields, min_step):
    assert ramp_of(fields).min_step == min_step


def test_no_ramp_by_default():
    assert load_one(BASE).params.metrics[0].ramp is None
    assert load_one(BASE).params.ramp_metrics == ()


LINE = 13  # the ramp line in BASE after with_ramp
BROKEN = [
    pytest.param("{lead: soon}", f"{LINE}: spec.scaling.metrics[0].ramp.lead: expected a duration such as "
                                 "30s, 5m, 1h30m or 500ms, got 'soon'", id="lead-not-a-duration"),
    pytest.param("{lead: 2h}", f"{LINE}: spec.scaling.metrics[0].ramp.lead: must be at most 1h, got 2h",
                 id="lead-too-long"),
    pytest.param("{startupDelay: -5s}", None, id="negative-start-up"),
    pytest.param("{startupDelay: observd}", f"{LINE}: spec.scaling.metrics[0].ramp.startupDelay: expected a duration "
                 "(e.g. 30s), observed (measured from the pods, 30s until then) or {observed: true, initial: 45s}, "
                 "got 'observd'", id="observed-misspelt"),
    pytest.param("{startupDelay: {observed: true, initial: 2h}}",
                 f"{LINE}: spec.scaling.metrics[0].ramp.startupDelay: initial: must be at most 1h, got 2h (expected "
                 "a duration (e.g. 30s), observed (measured from the pods, 30s until then) or {observed: true, "
                 "initial: 45s})", id="initial-too-long"),
    pytest.param("{startupDelay: {initial: 45s}}", f"{LINE}: spec.scaling.metrics[0].ramp.startupDelay: observed: "
                 "required (expected a duration (e.g. 30s), observed (measured from the pods, 30s until then) or "
                 "{observed: true, initial: 45s})", id="mapping-without-observed"),
    pytest.param("{startupDelay: {observed: false, initial: 45s}}", f"{LINE}: spec.scaling.metrics[0].ramp."
                 "startupDelay: observed: false is a fixed delay: write startupDelay: 45s", id="observed-false"),
    pytest.param("{startupDelay: {observed: true, inital: 45s}}", None, id="mapping-unknown-key"),
    pytest.param("{lead: 2m, startupDelay: observed}", f"{LINE}: spec.scaling.metrics[0].ramp: startupDelay: observed "
                 "is used only with lead: auto (an explicit lead does not depend on the start-up delay)",
                 id="observed-with-an-explicit-lead"),
    pytest.param("{slope: steep}", f"{LINE}: spec.scaling.metrics[0].ramp.slope: unknown field 'slope'; expected "
                                   "one of: lead, startupDelay, latest, minStep", id="unknown-field"),
    pytest.param("{minStep: always}", f"{LINE}: spec.scaling.metrics[0].ramp.minStep: expected 'none' or "
                 "'tolerance', got 'always'", id="min-step-not-none-or-tolerance"),
]


@pytest.mark.parametrize("fields,expected", BROKEN)
def test_broken_ramp(fields, expected):
    lines = error_lines(with_ramp(fields))
    assert len(lines) == 1 and lines[0].startswith(f"{FILE}:{LINE}: spec.scaling.metrics[0].ramp")
    if expected is not None:
        assert lines == [f"{FILE}:{expected}"]


def test_ramp_needs_a_total():
    lines = error_lines(with_ramp("{}", target="target: {utilization: 70}"))
    assert lines == [f"{FILE}:{LINE}: spec.scaling.metrics[0].ramp: needs target: averagePerReplica (the slope of a "
                     "total such as a request rate; a per-pod value or utilization falls as replicas are added)"]


def test_ramp_is_not_allowed_with_the_hpa_preset():
    text = hpa_preset_with(metric_line="ramp: {}")
    assert error_lines(text) == [f"{FILE}:13: spec.scaling.metrics[0].ramp: not allowed with preset: hpa "
                                 "(HPA sizes for the value it sees)"]


LATEST = "sum by (namespace, deployment) (rate(http_requests_total[{w}]))"


@pytest.mark.parametrize("window,latest_s,gap_s", [
    pytest.param("20s", 20.0, 20.0, id="two-10s-scrapes"),
    pytest.param("30s", 30.0, 15.0, id="two-15s-scrapes"),
])
def test_latest_reading_window(window, latest_s, gap_s):
    r = ramp_of(f'{{latest: "{LATEST.format(w=window)}"}}')
    assert (r.latest_window_s, r.gap_s, r.window_s) == (latest_s, gap_s, 60.0)


def test_no_latest_reading_by_default():
    assert ramp_of("{}").latest_window_s == 0.0


@pytest.mark.parametrize("window,found", [
    pytest.param("1m", "60s", id="as-long-as-the-query"),
    pytest.param("5m", "300s", id="longer-than-the-query"),
])
def test_latest_must_be_shorter_than_the_query(window, found):
    lines = error_lines(with_ramp(f'{{latest: "{LATEST.format(w=window)}"}}'))
    assert lines == [f"{FILE}:{LINE}: spec.scaling.metrics[0].ramp.latest: must read over a shorter range window "
                     f"than the metric's query (60s), got {found}"]


def test_latest_must_not_be_empty():
    lines = error_lines(with_ramp('{latest: ""}'))
    assert len(lines) == 1 and lines[0].startswith(f"{FILE}:{LINE}: spec.scaling.metrics[0].ramp.latest")


@pytest.mark.parametrize("field, where", [
    pytest.param("ramp:\n          lead:\n", "ramp.lead", id="ramp-lead-empty"),
    pytest.param("forecast:\n          horizon:\n", "forecast.horizon", id="forecast-horizon-empty"),
])
def test_an_empty_auto_or_duration_is_refused_as_the_json_schema_does(field, where):
    """`lead:` with no value read as auto in validate while the JSON Schema (an editor) refused it."""
    from controller.policy.load import check_policy_texts

    text = ("apiVersion: setpoint/v1\nkind: Policy\nmetadata: {name: n}\nspec:\n"
            "  targets: {kind: Deployment, namespace: default, name: x}\n  replicas: {min: 1, max: 5}\n"
            "  scaling:\n    metrics:\n      - name: rps\n"
            "        query: sum by (namespace, deployment) (rate(x_total[1m]))\n"
            "        target: {averagePerReplica: 85}\n        " + field)
    [error] = check_policy_texts([(text, "n.yaml")]).errors
    assert str(error) == f"n.yaml:13: spec.scaling.metrics[0].{where}: expected auto or a duration such as 90s, got " \
                         "an empty value"
