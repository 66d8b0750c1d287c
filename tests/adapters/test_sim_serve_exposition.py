"""sim serve's /metrics text, made from cached prefixes and numbers formatted in bulk
(simulators/kubeapi/exposition.py), is the text the exporter wrote line by line
(tests/support/reference_exposition.py), byte for byte.

Twin worlds of one scenario take the same writes (scales, rollouts, rollbacks, pod deletions,
pauses: tests/adapters/test_sim_serve_tick.py's ``write``) and ticks through every fault the
exposition shows (outage, stale, NaN, leak, crashes, crash loop, bad release, node loss); one is
scraped with the product's renderer, the other with the reference, between a write and the next
tick (pods the last tick did not count, pods gone since) and after ticks.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulators.kubeapi import exposition
from simulators.kubeapi.exposition import format_numbers
from simulators.kubeapi.server import SimWorld
from simulators.scenario import load_scenario_text
from simulators.simcluster import naming
from simulators.workload import pod_name
from tests.adapters.test_sim_serve_tick import SCENARIO, TICKS, write
from tests.support.reference_exposition import _num, reference_render


def twins(speed: float, statefulsets: frozenset[str]) -> tuple[SimWorld, SimWorld]:
    scenario = load_scenario_text(SCENARIO, "exposition.yaml")
    return tuple(SimWorld(scenario, speed=speed, statefulsets=statefulsets, wall_start_s=1.7e9) for _ in range(2))


def situations(world: SimWorld) -> set[str]:
    """What the exposition shows differently in ``world`` now (the reference twin's)."""
    statuses = world.store.pod_statuses()
    pods = [(w.namespace, p.name) for w, status in statuses for p in status.pods]
    counted = set(world.metrics.cpu_seconds)  # the last tick's pods
    last, seen = world.metrics.last, set()
    for name, present in (("outage", last is not None and last.unavailable.any()),
                          ("stale", last is not None and last.stale.any()),
                          ("nan", last is not None and last.nonfinite.any()),
                          ("pending", any(p.phase == "Pending" for _, s in statuses for p in s.pods)),
                          ("crash-loop", any(p.waiting for _, s in statuses for p in s.pods)),
                          ("not-running-at-the-tick", len(world.metrics.pod_memory) < len(counted)),
                          ("rolling", any(s.rollout_in_progress for _, s in statuses)),
                          ("pods-not-ticked-yet", bool(set(pods) - counted)),
                          ("pods-gone-since-the-tick", bool(counted - set(pods))),
                          ("names-collide", len(set(pods)) < len(pods))):
        if present:
            seen.add(name)
    return seen


def run_twins(new: SimWorld, old: SimWorld, ticks: int, scrape_every: int) -> set[str]:
    """Write and tick both, compare their texts at the scrapes; what was seen at them."""
    assert new.metrics.render() == reference_render(old.metrics), "before the first tick"
    # seed 2: its writes leave the crash-looping release of 5m to roll out (other seeds pause it)
    rng_new, rng_old = np.random.default_rng(2), np.random.default_rng(2)
    seen = set()

    def compare(when: str) -> None:
        text = new.metrics.render()
        assert text == reference_render(old.metrics), when
        assert new.metrics.render() == text, f"{when}, scraped again"  # the last tick's lines kept
        seen.update(situations(old))

    for t in range(ticks):
        for world, rng in ((new, rng_new), (old, rng_old)):
            if rng.random() < 0.6:
                write(world, rng)
        if t % scrape_every == scrape_every // 2:
            compare(f"after the writes before tick {t}")
        new.advance(1)
        old.advance(1)
        if t % scrape_every == 0:
            compare(f"tick {t}")
    assert new.store.resource_version == old.store.resource_version
    return seen


SEEN = {"outage", "stale", "nan", "pending", "crash-loop", "not-running-at-the-tick", "rolling",
        "pods-not-ticked-yet", "pods-gone-since-the-tick"}


@pytest.mark.parametrize("speed, statefulsets, scrape_every, kept", [
    pytest.param(1.0, frozenset(), 1, 1024, id="scraped-every-tick"),
    pytest.param(1.0, frozenset(), 7, 1024, id="scraped-every-7-ticks"),
    pytest.param(4.0, frozenset({"db"}), 3, 1024, id="speed-4-with-a-statefulset"),
    pytest.param(0.5, frozenset({"cart", "db"}), 5, 0, id="half-speed-two-statefulsets-lines-of-gone-pods-dropped"),
])
def test_the_text_is_the_reference_s_across_writes_and_faults(monkeypatch, speed, statefulsets, scrape_every, kept):
    monkeypatch.setattr(exposition, "SPARE_POD_LINES", kept)
    new, old = twins(speed, statefulsets)
    assert run_twins(new, old, TICKS, scrape_every) >= SEEN
    new.metrics.render()
    text = new.metrics._text
    shown = len(text.pods_now().lines) + len(text.last_tick(new.metrics._last_pods()).lines)
    assert len(text._pods) <= shown + kept, "the lines of gone pods are dropped"


def test_pods_that_share_a_name_show_as_the_counters_by_name_hold_them(monkeypatch):
    """Pod names end in 5 characters drawn from the serial: two pods of one revision can share
    a name. The reference keyed the per-pod counters by name (one series per name, the last pod's
    value); so does the text when it happens. Here every 4th serial ends in the same suffix."""
    def colliding(salt: int, service: str, rev_hash: str, serial: int) -> str:
        return f"{service}-{rev_hash}-zzzzz" if serial % 4 == 0 else pod_name(salt, service, rev_hash, serial)

    monkeypatch.setattr(naming, "pod_name", colliding)
    new, old = twins(1.0, frozenset())
    for world in (new, old):  # serials 0, 4 and 8 at once
        for w in world.store.workloads:
            world.store.update_scale(w.kind, w.namespace, w.name, {"spec": {"replicas": 10}})
    seen = run_twins(new, old, 60, 2)
    assert "names-collide" in seen


@pytest.mark.parametrize("values", [
    pytest.param([0.0, -0.0, 1.0, -1.0, 3.0, 1e15 - 1, -(1e15 - 1), 2.0**52], id="whole-below-1e15"),
    pytest.param([1e15, -1e15, 2.0**53 + 2, 1e300, -1.7976931348623157e308], id="whole-from-1e15-by-repr"),
    pytest.param([0.5, 0.1 + 0.2, 5e-324, -2.5e-7, 123456.789, 0.005 * 1.25 ** 7], id="fractions"),
    pytest.param([float("nan"), float("inf"), float("-inf"), 0.25, float("nan"), 7.0], id="nan-and-infinities"),
    pytest.param([1.5, 2.0, 1.5, 1.5, 2.0, -0.0], id="repeated-values"),
    pytest.param([], id="none"),
    pytest.param(np.array([3, 0, 12], dtype=np.int64), id="integers"),
    pytest.param(np.array([True, False]), id="booleans"),
])
def test_numbers_are_formatted_as_one_at_a_time(values):
    assert format_numbers(values) == [_num(v) for v in values]


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True) | st.integers(-2**53, 2**53).map(float),
                max_size=60))
def test_numbers_in_bulk_equal_the_reference_s_for_any_floats(values):
    out = format_numbers(np.array(values, dtype=np.float64))
    assert out == [_num(v) for v in values]
    assert all(type(s) is str for s in out)
