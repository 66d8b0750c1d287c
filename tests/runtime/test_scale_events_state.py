"""The scale-event payload kept on the cluster (controller/runtime/scale_events_state.py): what
is read from a damaged or hostile ConfigMap (never an exception), and what is written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from controller.runtime import scale_events_state as codec
from controller.runtime.scale_events_state import StoredEvents

WEB = "shop/Deployment/web"


def payload(entry) -> str:
    return json.dumps({"version": 1, "policy": "web", "savedAt": 1.0, "targets": {WEB: entry}})


@pytest.mark.parametrize("raw,expect,problem", [
    pytest.param(None, {}, None, id="nothing-stored"),
    pytest.param(payload({"up": [[20.0, 2], [10, 1]]}), {WEB: StoredEvents(((10.0, 1), (20.0, 2)), ())}, None,
                 id="events-sorted-oldest-first-down-absent-is-none"),
    pytest.param("[1, 2", {}, "not JSON", id="truncated"),
    pytest.param('"text"', {}, "not a version 1 payload", id="not-an-object"),
    pytest.param(json.dumps({"version": 1}), {}, "with a targets object", id="no-targets"),
    pytest.param(payload([1, 2]), {}, f"of '{WEB}': not an object", id="entry-not-an-object"),
    pytest.param(payload({"up": [[10.0, True]]}), {}, "True is not a number of replicas", id="replicas-a-boolean"),
    pytest.param(payload({"up": [[10.0, 0]]}), {}, "0 is not a number of replicas", id="replicas-zero"),
    pytest.param(payload({"down": [[10.0, 1.5]]}), {}, "1.5 is not a number of replicas", id="replicas-fractional"),
    pytest.param(payload({"down": [[-1.0, 1]]}), {}, "-1.0 is not a time", id="time-negative"),
    pytest.param(payload({"down": [[10.0]]}), {}, "is not a [time, replicas] pair", id="not-a-pair"),
    pytest.param(payload({"up": [[1.0, 1]] * (codec.MAX_EVENTS + 1)}), {}, "not a list of at most",
                 id="more-events-than-any-leader-keeps"),
])
def test_decode(raw, expect, problem):
    got, problems = codec.decode(raw)
    assert got == expect
    assert (problems == []) if problem is None else (len(problems) == 1 and problem in problems[0]), problems


def test_an_unreadable_entry_leaves_the_others():
    raw = json.dumps({"version": 1, "targets": {WEB: {"up": "soon"}, "shop/Deployment/api": {"down": [[5.0, 1]]}}})
    got, [problem] = codec.decode(raw)
    assert got == {"shop/Deployment/api": StoredEvents((), ((5.0, 1),))} and WEB in problem


def test_encode_round_trips_and_keeps_the_newest_targets_within_the_bound(monkeypatch):
    targets = {f"shop/Deployment/w{i}": StoredEvents(((float(i), 1),), ((float(i) + 0.5, 2),)) for i in range(5)}
    doc = codec.encode("web", targets, saved_at=9.0)
    assert codec.decode(json.dumps(doc)) == (targets, [])
    monkeypatch.setattr(codec, "MAX_SAVED_EVENTS", 5)  # two events a target: the two newest targets
    assert sorted(codec.encode("web", targets, 9.0)["targets"]) == ["shop/Deployment/w3", "shop/Deployment/w4"]


def test_events_of_a_history_after_a_time():
    changes = np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0]], order="F")
    times = np.array([[50.0, 10.0, np.nan], [np.nan, np.nan, np.nan]], order="F")
    assert codec.events_of(changes, times, since=5.0) == [[(10.0, 2), (50.0, 1)], []]
    assert codec.events_of(changes, times, since=10.0) == [[(50.0, 1)], []]  # strictly after: age < period
