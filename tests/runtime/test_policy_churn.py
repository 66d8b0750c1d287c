"""A controller left running for months sees policies come and go (a team's policy file added to
the folder, removed when the service is retired, GitOps renaming one): what it keeps per policy
must follow the policies loaded now, not every policy it ever loaded.

Found in a soak drill (bench/soak.py): a removed policy kept its counters and histogram on
/metrics (decisions, actions, errors, cycle duration: 20-odd series each) and its entries in the
service's maps (last cycle, last targets, leadership term, claims) until the process restarted.

Real components: a ControllerService over sim serve's Kubernetes API (the official client) and the
simulated metrics; each round adds a policy file, reloads, runs a cycle of every policy, removes
the file and reloads; in one row the removed policy's cycle ends after the reload (in flight).
"""

from __future__ import annotations

import pytest

from controller.runtime.service import ControllerService, ServiceOptions
from controller.runtime.telemetry import Telemetry
from tests.adapters.kube_helpers import controller_inputs, server  # noqa: F401 (fixture)
from tests.runtime.test_kube_faults import POLICY

ROUNDS = 4


def extra_policy(i: int) -> str:
    """A policy named extra-<i> for shop/api (a new name each round, as a renamed or new team's file)."""
    return POLICY.replace("name: web}", f"name: extra-{i}}}").replace("names: [web]", "names: [api]")


def policies_kept(service: ControllerService, telemetry: Telemetry) -> dict[str, set[str]]:
    """The policies each per-policy structure of the service and its telemetry holds."""
    series = {s.labels["policy"] for m in telemetry.registry.collect() for s in m.samples if "policy" in s.labels}
    return {"series": series, "last cycle end": set(service.last_cycle_end),
            "last targets": set(service.last_targets), "terms": set(service._terms), "standby": set(service._standby),
            "selects nothing": set(service._selects_nothing), "claimed": set(service.claims._claimed),
            "claim owners": {owner for owner, _ in service.claims._owner.values()},
            "status": set(service.status_book.view())}


@pytest.mark.parametrize("in_flight", [
    pytest.param(False, id="removed-between-cycles"),
    pytest.param(True, id="removed-while-its-cycle-ran"),
])
def test_what_it_keeps_per_policy_follows_the_policies_loaded(in_flight, server, tmp_path):  # noqa: F811
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "web.yaml").write_text(POLICY)
    world = server.world
    metrics, cluster = controller_inputs(server, tmp_path, {"offered": "offered_rps"}, advance=3)
    telemetry = Telemetry()
    service = ControllerService([folder], metrics, cluster, telemetry, ServiceOptions(reload_settle_s=0),
                                clock=lambda: world.engine.now)
    try:
        for i in range(ROUNDS):
            (folder / "extra.yaml").write_text(extra_policy(i))
            assert service.reload_if_changed() is True
            for name in sorted(service.policies):
                assert service.run_cycle(name) is not None
            assert policies_kept(service, telemetry)["series"] == {"web", f"extra-{i}"}
            reconciler = service.reconcilers[f"extra-{i}"]
            (folder / "extra.yaml").unlink()
            assert service.reload_if_changed() is True and sorted(service.policies) == ["web"]
            if in_flight:  # its on_cycle is the service's: as a cycle that ran across the reload
                reconciler.cycle(world.engine.now)
            service.run_cycle("web")
            world.advance(2)
            metrics.push(world.engine.signals())
    finally:
        service.stop()
        cluster.close()
    kept = policies_kept(service, telemetry)
    assert {k: v - {"web"} for k, v in kept.items()} == {k: set() for k in kept}, kept
