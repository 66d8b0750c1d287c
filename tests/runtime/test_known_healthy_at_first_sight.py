"""A controller started on a cluster whose Deployment has run the same revision for an hour rolls
back a bad release that comes within healthyAfter of its start.

Found by a walkthrough (sim serve bad-rollout, the release 2 min after the controller's start):
the error-ratio check fired but the decision was ``no action [NoHealthyRevision]``: revision 1,
complete for hours, was first seen at the start and counted as clean only from then, and the
release came before healthyAfter (5 min) was up. The Deployment's Progressing condition says
since when its rollout has been complete (lastUpdateTime of NewReplicaSetAvailable): a revision
complete for longer than healthyAfter when first seen, with no check firing, is known healthy.

A live controller (Reconciler, Kubernetes adapter, official client) against sim serve, stepped
by hand at fixed times (5 s ticks, a cycle every 15 s), the apiserver's clock on simulated time.
"""

from __future__ import annotations

import pytest

from controller.adapters.kubernetes import KubernetesCluster
from controller.policy import load_policy_text
from controller.runtime.reconciler import Reconciler, RuntimePolicy
from simulators.ports import SimMetrics
from tests.adapters.kube_helpers import official_client
from tests.runtime.test_rollback_target_gone import POLICY as HEAL
from tests.runtime.test_rollback_target_gone import SCENARIO as TRIMMED
from tests.runtime.test_rollback_target_gone import labelled_server

#: The bad release comes 2 min after the start (the controller's first cycle); revision 1's pods
#: have been Ready for an hour by then. healthyAfter: the default, 5 min.
SCENARIO = TRIMMED.replace("at: 10m,", "at: 2m,")
POLICY = HEAL.replace("    healthyAfter: 2m\n", "")
assert SCENARIO != TRIMMED and POLICY != HEAL
CYCLES = 24  # 6 min: the release at 2 min, its check firing by about 3.5 min
TICKS_PER_CYCLE = 3


@pytest.fixture
def server():
    srv = labelled_server(SCENARIO, clock_at_start=True)
    yield srv
    srv.stop()


def test_a_release_within_healthy_after_of_the_start_is_rolled_back(server, tmp_path):
    [policy] = load_policy_text(POLICY, "heal.yaml")
    engine = server.world.engine
    metrics = SimMetrics(engine, {"err": "error_ratio"}, window_s=15, tick_s=server.world.tick_s)
    metrics.push(engine.signals())
    cluster = KubernetesCluster(official_client(server, tmp_path), qps=0, retry_backoff_s=0.01)
    rec = Reconciler(RuntimePolicy.of(policy), metrics, cluster)
    results = [rec.cycle(engine.now)]  # first sight, at the start: revision 1 complete for an hour
    for _ in range(CYCLES):
        for _ in range(TICKS_PER_CYCLE):
            server.world.advance(1)
            metrics.push(engine.signals())
        results.append(rec.cycle(engine.now))
    cluster.close()
    records = [r.healing.record(0, policy.name, "shop/web") for r in results]
    assert results[0].view.statuses[0].revision == "1"
    assert results[0].healing.params.healthy_after_s == 300.0
    assert results[0].healing.state.revisions.healthy.tolist() == ["1"]  # known healthy at once, not 5 min later
    assert "NoHealthyRevision" not in {r.reason for r in records}
    sent = [(round(r.now - results[0].now), a.revision)
            for r in results for a in r.actions if a.kind.word == "rollback"]
    assert [revision for _, revision in sent] == ["1"] and sent[0][0] < 300, sent
    assert [f.why for r in results for f in r.failed] == []
