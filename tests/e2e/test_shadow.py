"""`setpoint run --shadow` against `setpoint sim serve` and a real Prometheus: it decides (the
shadow metrics follow the load) and writes nothing to the Kubernetes API (the server's request
log holds only reads), while the replicas the "incumbent" left stay as they are."""

from __future__ import annotations

import json
import re
import time
import urllib.request

from tests.e2e.test_live_loop import (POLICY, SCENARIO, SETPOINT, Proc, sim_request, spec_replicas, start_sim_serve,
                                      wait_for_sim_serve, wait_until)
from tests.support.prometheus_server import ScrapeTarget, free_port, prometheus_server

WRITES = ("POST", "PUT", "PATCH", "DELETE")


def metric(text: str, name: str, **labels) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    match = re.search(rf"^{name}\{{{re.escape(want)}\}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


def test_shadow_decides_and_writes_nothing(tmp_path):
    import pytest

    pytest.importorskip("kubernetes")
    kube_port, metrics_port, status_port = free_port(), free_port(), free_port()
    (tmp_path / "scenario.yaml").write_text(SCENARIO)
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "web.yaml").write_text(POLICY)
    kubeconfig = tmp_path / "kubeconfig.yaml"
    procs = []
    try:
        sim = start_sim_serve(tmp_path, kube_port, metrics_port, kubeconfig, "--test-hooks")
        procs.append(sim)
        wait_for_sim_serve(sim, kubeconfig)
        with prometheus_server([ScrapeTarget.of(f"127.0.0.1:{metrics_port}")], scrape_interval="1s") as prom:
            run = Proc([*SETPOINT, "run", "--shadow", "--policies", "policies", "--prometheus", prom.url,
                        "--kubeconfig", str(kubeconfig), "--listen", f"127.0.0.1:{status_port}",
                        "--records", "decisions.jsonl"], tmp_path / "run.log", tmp_path)
            procs.append(run)
            status = f"http://127.0.0.1:{status_port}/metrics"

            def shadow_desired():
                try:
                    text = urllib.request.urlopen(status, timeout=5).read().decode()
                except OSError:
                    return None
                value = metric(text, "setpoint_shadow_desired_replicas", policy="e2e-web", target="default/web")
                return text if value is not None and value >= 4 else None

            # 800 rps from 15 s at 100 rps per replica: Setpoint would run ~8 (from the 2 that run, the
            # default scale-up rate allows 6 per 15 s); nobody scales.
            text = wait_until(shadow_desired, 60, what="the shadow decision to follow the load step")
            assert run.alive(), run.tail()
            assert spec_replicas(kubeconfig) == 2, "the shadow scaled the workload"
            assert metric(text, "setpoint_shadow_incumbent_replicas", policy="e2e-web", target="default/web") == 2
            above = metric(text, "setpoint_shadow_decisions_total", outcome="above", policy="e2e-web",
                           target="default/web")
            assert above and above >= 1
            ratio = metric(text, "setpoint_shadow_agreement_ratio", policy="e2e-web", target="default/web")
            assert ratio is not None and 0 <= ratio < 1
            time.sleep(2)  # one more cycle with the desired count above the incumbent's
            counts = sim_request(kubeconfig, "/_sim/requests")  # a test hook: the token too
            assert counts["total"] > 0 and set(counts["byMethod"]) == {"GET"}, counts
            assert run.stop() == 0, run.tail()
    finally:
        for p in reversed(procs):
            p.stop()
    records = [json.loads(line) for line in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    assert any(r["desired"] > r["current"] for r in records), "decisions are recorded as usual"
