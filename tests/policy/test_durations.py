"""Durations and percentages as written in policy files."""

from __future__ import annotations

import pytest

from controller.policy import format_duration, parse_duration, parse_percent


@pytest.mark.parametrize("text, seconds", [
    pytest.param("30s", 30.0, id="seconds"),
    pytest.param("5m", 300.0, id="minutes"),
    pytest.param("1h", 3600.0, id="hours"),
    pytest.param("1h30m", 5400.0, id="hours-and-minutes"),
    pytest.param("2m30s", 150.0, id="minutes-and-seconds"),
    pytest.param("500ms", 0.5, id="milliseconds"),
    pytest.param("1.5h", 5400.0, id="fractional-hours"),
    pytest.param("1m500ms", 60.5, id="minutes-and-milliseconds"),
    pytest.param("0s", 0.0, id="zero"),
    pytest.param("2d", 172800.0, id="days"),
    pytest.param("1d12h", 129600.0, id="days-and-hours"),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("value, message", [
    pytest.param(15, "got the bare number 15 (add a unit, e.g. 15s)", id="bare-int"),
    pytest.param(2.5, "got the bare number 2.5 (add a unit, e.g. 2.5s)", id="bare-float"),
    # YAML's .inf and .nan: "add a unit, e.g. infs"
    pytest.param(float("inf"), "expected a duration such as 30s, 5m, 1h30m or 500ms, got inf", id="yaml-inf"),
    pytest.param(float("-inf"), "got -inf", id="yaml-minus-inf"),
    pytest.param(float("nan"), "got nan", id="yaml-nan"),
    pytest.param("5 min", "expected a duration such as 30s, 5m, 1h30m or 500ms, got '5 min'", id="spelled-unit"),
    pytest.param("-5m", "got '-5m'", id="negative"),
    pytest.param("1w", "got '1w'", id="weeks-unsupported"),
    pytest.param("5M", "got '5M'", id="uppercase-unit"),
    pytest.param("15", "got '15'", id="string-without-unit"),
    pytest.param("", "got ''", id="empty"),
    pytest.param(None, "got null", id="null"),
    pytest.param(True, "got true", id="bool"),
    # the way to write it, when the text reads as a duration in other words
    pytest.param("5min", "got '5min' (write 5m)", id="min-for-m"),
    pytest.param("10 Minutes", "got '10 Minutes' (write 10m)", id="a-spelled-unit-with-a-space"),
    pytest.param("1h 30m", "got '1h 30m' (write 1h30m)", id="a-space-between-parts"),
    pytest.param("90S", "got '90S' (write 90s)", id="an-uppercase-unit"),
    pytest.param("2 weeks", "got '2 weeks' (write 14d)", id="weeks-as-days"),
    pytest.param("1.5 hrs", "got '1.5 hrs' (write 1.5h)", id="hrs"),
    pytest.param("30secs", "got '30secs' (write 30s)", id="secs"),
    pytest.param("-30s", "got '-30s' (a duration is never negative)", id="negative-said-so"),
    pytest.param("15", "got '15' (add a unit, e.g. 15s)", id="a-quoted-number"),
])
def test_parse_duration_rejects(value, message):
    with pytest.raises(ValueError) as caught:
        parse_duration(value)
    assert message in str(caught.value)


@pytest.mark.parametrize("value", [
    pytest.param("PT5M", id="iso-8601"), pytest.param("five minutes", id="words"), pytest.param("5 parsecs", id="no-unit"),
    pytest.param("1" * 100 + "s ", id="long"), pytest.param("", id="empty"),
])
def test_no_hint_where_the_text_is_no_duration_in_other_words(value):
    with pytest.raises(ValueError) as caught:
        parse_duration(value)
    assert str(caught.value).endswith(f"got {value!r}" if len(value) < 60 else "characters)")


@pytest.mark.parametrize("seconds, text", [
    pytest.param(0, "0s", id="zero"),
    pytest.param(0.5, "500ms", id="sub-second"),
    pytest.param(90, "1m30s", id="minute-and-half"),
    pytest.param(3600, "1h", id="hour"),
    pytest.param(5430, "1h30m30s", id="all-units"),
    pytest.param(float("inf"), "forever", id="infinite"),
])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize("value, percent", [
    pytest.param("25%", 25.0, id="percent-sign"),
    pytest.param("12.5%", 12.5, id="fractional"),
    pytest.param(70, 70.0, id="bare-number-is-percent"),
    pytest.param(150, 150.0, id="above-100-allowed-here"),
])
def test_parse_percent(value, percent):
    assert parse_percent(value) == percent


@pytest.mark.parametrize("value", [
    pytest.param("70", id="string-without-sign"),
    pytest.param("%", id="sign-only"),
    pytest.param("-5%", id="negative"),
    pytest.param(True, id="bool"),
    pytest.param(None, id="null"),
])
def test_parse_percent_rejects(value):
    with pytest.raises(ValueError, match="expected a percentage such as 70% or 70"):
        parse_percent(value)


@pytest.mark.parametrize("seconds, plain, with_days", [
    pytest.param(3600, "1h", "1h", id="under-a-day"),
    pytest.param(86400, "24h", "1d", id="a-day"),
    pytest.param(603750, "167h42m30s", "6d23h42m30s", id="a-backtest-week"),
    pytest.param(3 * 86400 + 1.5, "72h1.5s", "3d1.5s", id="days-and-seconds"),
    pytest.param(0.25, "250ms", "250ms", id="sub-second"),
])
def test_format_duration_with_days_for_a_person(seconds, plain, with_days):
    """A backtest over now-7d whose Prometheus holds 20 minutes said 'history starts at ..., 167h42m30s
    into the window'; a span of days said to a person is in days (a policy's values keep their hours)."""
    assert format_duration(seconds) == plain
    assert format_duration(seconds, days=True) == with_days
    assert parse_duration(with_days) == pytest.approx(seconds)
