"""A permanently refused action is told once per refusal with a Warning Event, not at every cycle.

A 403 (a Role without patch on deployments/scale), a 404 or a 422 comes back at every cycle that
decides the action again: it was logged and counted each time, but no Event on the workload said
it at all, so `kubectl describe` showed nothing while the workload stayed at the wrong size.
Through sim serve's Kubernetes API (the official client), its fault rules giving the refusals.
"""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.adapters.kube_helpers import official_client, server  # noqa: F401 (fixture)
from tests.runtime.test_kube_faults import SCALE_PATH, setup


def refused_events(server, tmp_path) -> list[str]:  # noqa: F811
    events = client.CoreV1Api(official_client(server, tmp_path)).list_namespaced_event("shop").items
    return [e.message for e in events if e.reason == "ActionRefused"]


# each row: the scale PATCH's answer at each of 4 cycles (None: no fault), and the ActionRefused
# Events after them (the status each Event names)
@pytest.mark.parametrize("answers, events", [
    pytest.param([403, 403, 403, 403], ["403"], id="the-same-refusal-told-once"),
    pytest.param([403, 403, 422, 422], ["403", "422"], id="a-new-refusal-told-again"),
    pytest.param([403, None, None, None], ["403"], id="applied-after-a-refusal"),
    pytest.param([503, 503, 503, 503], [], id="temporary-failures-are-no-refusal"),
])
def test_a_refused_scale_is_told_once_per_refusal(answers, events, server, tmp_path):  # noqa: F811
    rec, cluster, world = setup(server, tmp_path, max_retries=0)
    try:
        for k, status in enumerate(answers):
            server.api.faults.clear()
            if status is not None:
                # more than the cycle's retries of a temporary failure use
                server.api.faults.inject(SCALE_PATH, status=status, times=10, method="PATCH",
                                         message=f"injected {status}")
            result = rec.cycle(world.engine.now + 15 * k)
            assert bool(result.failed) == (status is not None)
    finally:
        cluster.close()
    told = refused_events(server, tmp_path)
    assert len(told) == len(events), told
    for message, status in zip(told, events):
        assert f"HTTP {status}: injected {status};" in message, message
        assert message.startswith("web: scale refused by the cluster:"), message
