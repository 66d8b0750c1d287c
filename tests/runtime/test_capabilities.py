"""Optional port capabilities are declared Protocols (controller/ports.py), checked when a
reconciler is wired, not probed with hasattr/getattr in the cycle."""

from __future__ import annotations

import pytest

from controller.adapters.kubernetes import KubernetesCluster
from controller.adapters.prometheus import PrometheusSource
from controller.ports import ArrayMetricsSource, BatchScaler, ConcurrentMetricsSource, EventRecorder, Rehearsal
from controller.runtime.dryrun import DryRunCluster
from controller.runtime.shadow import ShadowCluster
from simulators.ports import SimMetrics, SimTargets


@pytest.mark.parametrize("cls, capability, has", [
    pytest.param(PrometheusSource, ConcurrentMetricsSource, True, id="prometheus-queries-concurrently"),
    pytest.param(SimMetrics, ConcurrentMetricsSource, False, id="sim-metrics-one-by-one"),
    pytest.param(SimMetrics, ArrayMetricsSource, True, id="sim-metrics-read-as-arrays"),
    pytest.param(PrometheusSource, ArrayMetricsSource, False, id="prometheus-queried-one-by-one"),
    pytest.param(KubernetesCluster, EventRecorder, True, id="kubernetes-records-events"),
    pytest.param(DryRunCluster, EventRecorder, False, id="dry-run-records-no-event"),
    pytest.param(ShadowCluster, EventRecorder, False, id="shadow-records-no-event"),
    pytest.param(SimTargets, EventRecorder, False, id="sim-records-no-event"),
    pytest.param(SimTargets, BatchScaler, True, id="sim-scales-in-one-call"),
    pytest.param(KubernetesCluster, BatchScaler, False, id="kubernetes-scales-one-by-one"),
    pytest.param(DryRunCluster, BatchScaler, False, id="dry-run-scales-nothing"),
])
def test_declared_capabilities(cls, capability, has):
    assert issubclass(cls, capability) is has


@pytest.mark.parametrize("cluster, rehearsal", [
    pytest.param(DryRunCluster(None), True, id="dry-run"),
    pytest.param(ShadowCluster(None), True, id="shadow"),
    pytest.param(SimTargets.__new__(SimTargets), False, id="sim-applies"),
])
def test_a_rehearsal_is_recognised(cluster, rehearsal):
    assert isinstance(cluster, Rehearsal) is rehearsal
