"""An action the cluster did not take is recorded as such: not as one that happened.

Under a Role without patch on deployments/scale (403 at every cycle), `setpoint status` showed
"last action: scale 3->2 (ScaleDown) 2s ago" at each cycle and `setpoint explain --changes` a
change per cycle, while the workload never moved: the records kept the decided action and said
nothing of its failure. Now the record of such a target carries ``actionFailed`` (the action's
kind and the error), `status` keeps the last action that was applied, and `explain` marks the
line NOT APPLIED. Through sim serve's Kubernetes API (the official client), its fault rules
giving the failures.
"""

from __future__ import annotations

import pytest

from controller.cli.records import _format_record
from controller.runtime.reconciler import cycle_records
from controller.runtime.status import fold, record_problem
from tests.adapters.kube_helpers import server  # noqa: F401 (fixture)
from tests.runtime.test_kube_faults import SCALE_PATH, setup


# each row: the scale PATCH's answer (None: no fault; more failures than the cycle's retries),
# the failure recorded (its start), and the last action `status` shows afterwards
@pytest.mark.parametrize("status, failure, last_to", [
    pytest.param(None, None, 5, id="applied-is-the-last-action"),
    pytest.param(409, None, 5, id="conflict-retried-and-applied"),
    pytest.param(403, "permanent: ", None, id="forbidden-is-no-action"),
    pytest.param(500, "temporary: ", None, id="server-error-is-no-action"),
])
def test_a_failed_action_is_recorded_as_not_applied(status, failure, last_to, server, tmp_path):  # noqa: F811
    rec, cluster, world = setup(server, tmp_path, max_retries=0)
    try:
        if status is not None:
            server.api.faults.inject(SCALE_PATH, status=status, times=1 if status == 409 else 10, method="PATCH",
                                     message=f"injected {status}")
        result = rec.cycle(world.engine.now)  # 150 rps at 30 per replica: 2 -> 5 wanted
    finally:
        cluster.close()
    [record] = [r.to_dict() for r in cycle_records(result, rec.policy.params.metric_names)]
    assert record["action"] == "scale" and record["desired"] == 5  # what was decided stays recorded
    assert record_problem(record) is None
    line = _format_record(record)
    if failure is None:
        assert "actionFailed" not in record and "NOT APPLIED" not in line
    else:
        assert record["actionFailed"]["action"] == "scale"
        assert record["actionFailed"]["error"].startswith(failure), record["actionFailed"]
        assert f"HTTP {status}: injected {status}" in record["actionFailed"]["error"]
        assert f"NOT APPLIED: scale failed: {failure}" in line, line
    earlier = {"last_action": {"action": "scale", "reason": "ScaleUp", "from": 1, "to": 2, "at": 1.0}}
    shown = fold(earlier, record)["last_action"]
    assert shown["to"] == (last_to if last_to is not None else 2), shown
