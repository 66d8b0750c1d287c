"""checks.replay: the alert state machines stepped over a history (the checks' warm start), and
CheckTable.put, which writes the replayed rows into a policy's table."""

from __future__ import annotations

import numpy as np
import pytest

from controller.core.health.checks import CheckTable, evaluate, replay
from controller.core.health.params import Phase, Smoothing
from tests.core.healing import T0, check

STEP = 15.0
#: unhealthy above 0.05 for 1m; recovered below 0.02 for 1m
CHECK = check("errors", for_s=60.0, recovered_for_s=60.0)


def history(values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T, 1, 1) values (NaN: no sample), present, and their times from T0 every 15 s."""
    v = np.asarray(values, np.float64).reshape(-1, 1, 1)
    return v, np.isfinite(v), T0 + STEP * np.arange(v.shape[0])


BAD, GOOD = 0.5, 0.0


@pytest.mark.parametrize("values, phase, fired_until", [
    pytest.param([GOOD] * 20, Phase.OK, np.nan, id="clean-history"),
    pytest.param([GOOD] * 12 + [BAD] * 8, Phase.FIRING, T0 + 19 * STEP, id="holding-past-its-for-fires"),
    pytest.param([GOOD] * 17 + [BAD] * 3, Phase.PENDING, np.nan, id="holding-inside-its-for-pending"),
    pytest.param([BAD] * 6 + [GOOD] * 14, Phase.OK, T0 + 9 * STEP, id="fired-then-recovered"),
    pytest.param([BAD] * 6 + [np.nan] * 14, Phase.FIRING, T0 + 19 * STEP, id="a-gap-never-clears-a-firing-check"),
    pytest.param([np.nan] * 20, Phase.OK, np.nan, id="no-series"),
])
def test_replay(values, phase, fired_until):
    v, present, t = history(values)
    table, last = replay((CHECK,), v, present, t, CheckTable.empty(1, (CHECK,), STEP))
    assert Phase(int(table.phase[0, 0])) == phase
    np.testing.assert_array_equal(last, [fired_until])


def test_replay_is_the_cycles_it_stands_for():
    """The replayed table equals evaluate() called once per time (with EWMA smoothing, whose
    state the replay carries too); rows are independent."""
    smoothed = check("lat", for_s=30.0, smoothing=Smoothing.EWMA, half_life_s=30.0)
    rng = np.random.default_rng(4)
    v = rng.choice([0.0, 0.03, 0.5, np.nan], size=(40, 3, 1), p=[0.4, 0.2, 0.3, 0.1])
    t = T0 + STEP * np.arange(40)
    table, _ = replay((smoothed,), v, np.isfinite(v), t, CheckTable.empty(3, (smoothed,), STEP))
    step = CheckTable.empty(3, (smoothed,), STEP)
    for k in range(40):
        _, _, step = evaluate((smoothed,), v[k], np.isfinite(v[k]), step, float(t[k]))
    for a, b in ((table.phase, step.phase), (table.active_since, step.active_since), (table.fired_at, step.fired_at),
                 (table.smooth[0].ewma, step.smooth[0].ewma)):
        np.testing.assert_array_equal(a, b)


def test_put_writes_only_the_given_rows():
    v, present, t = history([BAD] * 8)
    replayed, _ = replay((CHECK,), v, present, t, CheckTable.empty(1, (CHECK,), STEP))
    table = CheckTable.empty(3, (CHECK,), STEP).put(np.array([1]), replayed)
    assert table.phase[:, 0].tolist() == [Phase.OK, Phase.FIRING, Phase.OK]
    assert np.isnan(table.fired_at[[0, 2], 0]).all() and table.fired_at[1, 0] == replayed.fired_at[0, 0]
