"""Benchmark actuation: the Kubernetes adapter vs a naive get-then-patch actuator.

1,000 replica changes (100 Deployments, 20 cycles, half of them changing each cycle) through
the simulated Kubernetes API on 127.0.0.1, with the client limited to 20 QPS and burst 30.

- adapter: each cycle one ``observe`` (three list requests), then ``apply(SCALE)`` for *every*
  workload with the observed spec as ``from_replicas``; the adapter writes only the changed
  ones. Its Events go out in the background through a separate client with its own limit.
- naive: each cycle, for every workload, read the scale subresource and patch it with the
  desired value (same client limit).

Prints API writes per changed workload (target 1), writes for unchanged workloads (target 0),
and the adapter's wall time over the naive one's (target <= 0.4), counted on the server.
Run: python bench/actuation.py [--workloads 100] [--cycles 20] [--qps 20] [--burst 30]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from kubernetes import client, config

import sys

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's code: `python bench/x.py` puts bench/ first, and the editable install may point at another checkout

from controller.adapters.kubernetes import KubernetesCluster, TokenBucket
from controller.model import Action, ActionKind, TargetRef
from controller.policy.summary import plural
from simulators.kubeapi.server import SimKubeServer
from simulators.scenario import load_scenario_text

NS = "bench"
SCALE_WRITE = r"/scale$"


def scenario(workloads: int):
    return load_scenario_text(f"""
apiVersion: setpoint/v1
kind: Scenario
metadata: {{name: actuation-bench}}
spec:
  duration: 1h
  tick: 5s
  slo: {{latency: {{percentile: 95, below: 250ms}}}}
  services:
    - {{name: svc, namespace: {NS}, count: {workloads}, capacityPerPod: 100, initialReplicas: 3, maxPods: 30,
       startupDelay: 5s, load: [{{constant: {{rps: 100}}}}]}}
""", "actuation-bench.yaml")


def schedule(workloads: int, cycles: int, seed: int = 1) -> np.ndarray:
    """(cycles, workloads) desired replicas: each cycle, half the workloads move by 1-3 replicas."""
    rng = np.random.default_rng(seed)
    desired = np.full((cycles + 1, workloads), 3, dtype=np.int64)
    for c in range(1, cycles + 1):
        desired[c] = desired[c - 1]
        movers = rng.permutation(workloads)[: workloads // 2]
        step = rng.integers(1, 4, movers.size) * rng.choice([-1, 1], movers.size)
        moved = np.clip(desired[c - 1, movers] + step, 1, 20)
        moved = np.where(moved == desired[c - 1, movers], desired[c - 1, movers] + 1, moved)
        desired[c, movers] = moved
    return desired[1:]


def official_client(server: SimKubeServer, folder: Path) -> client.ApiClient:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(server.write_kubeconfig(folder / "kubeconfig.yaml")),
                            client_configuration=configuration)
    configuration.retries = False
    return client.ApiClient(configuration)


def run_adapter(desired: np.ndarray, qps: float, burst: int, folder: Path) -> dict:
    with SimKubeServer(scenario(desired.shape[1]), drive=False, max_connections=16) as server:
        names = [f"svc-{i}" for i in range(desired.shape[1])]
        targets = [TargetRef(NS, n) for n in names]
        kc = KubernetesCluster(official_client(server, folder), qps=qps, burst=burst)
        server.api.requests.reset()
        started = time.perf_counter()
        for row in desired:
            view = kc.observe(targets)
            for ref, want, have in zip(targets, row, view.spec):
                kc.apply(Action(ActionKind.SCALE, ref, "ScaleUp", replicas=int(want), from_replicas=int(have)))
            server.world.advance(1)
        wall = time.perf_counter() - started
        kc.events.flush(timeout_s=600)
        events_tail = time.perf_counter() - started - wall
        writes = server.api.requests.count("PATCH", SCALE_WRITE)
        requests = server.api.requests.count() - server.api.requests.count("POST", r"/events$")
        events = kc.events.sent
        kc.close()
        final = server.world.engine.spec_replicas
    return dict(wall_s=wall, writes=writes, requests=requests, events=events, events_tail_s=events_tail, final=final)


def run_naive(desired: np.ndarray, qps: float, burst: int, folder: Path) -> dict:
    with SimKubeServer(scenario(desired.shape[1]), drive=False, max_connections=16) as server:
        api_client = official_client(server, folder)
        apps = client.AppsV1Api(api_client)
        bucket = TokenBucket(qps, burst)
        names = [f"svc-{i}" for i in range(desired.shape[1])]
        server.api.requests.reset()
        started = time.perf_counter()
        for row in desired:
            for name, want in zip(names, row):
                bucket.acquire()
                apps.read_namespaced_deployment_scale(name, NS, _request_timeout=10)
                bucket.acquire()
                apps.patch_namespaced_deployment_scale(name, NS, {"spec": {"replicas": int(want)}}, _request_timeout=10)
            server.world.advance(1)
        wall = time.perf_counter() - started
        writes = server.api.requests.count("PATCH", SCALE_WRITE)
        requests = server.api.requests.count()
        api_client.close()
        final = server.world.engine.spec_replicas
    return dict(wall_s=wall, writes=writes, requests=requests, final=final)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", type=int, default=100)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--qps", type=float, default=20.0)
    parser.add_argument("--burst", type=int, default=30)
    args = parser.parse_args()
    desired = schedule(args.workloads, args.cycles)
    previous = np.vstack([np.full((1, args.workloads), 3), desired[:-1]])
    changed = int((desired != previous).sum())
    unchanged = desired.size - changed
    with tempfile.TemporaryDirectory() as tmp:
        a = run_adapter(desired, args.qps, args.burst, Path(tmp))
        n = run_naive(desired, args.qps, args.burst, Path(tmp))
    assert (a["final"] == desired[-1]).all() and (n["final"] == desired[-1]).all(), "an actuator missed a change"
    print(f"{plural(args.workloads, 'Deployment')} x {plural(args.cycles, 'cycle')}: {plural(changed, 'replica change')}, "
          f"{plural(unchanged, 'unchanged workload-cycle')}; client limit {args.qps:g} QPS burst {args.burst}")
    print(f"adapter: {a['writes'] / changed:.2f} API writes per changed workload, "
          f"{a['writes'] - changed} writes for unchanged workloads, {a['requests']} requests, wall {a['wall_s']:.1f} s")
    print(f"naive get-then-patch: {n['writes'] / changed:.2f} writes per changed workload, "
          f"{n['writes'] - changed} writes for unchanged workloads, {n['requests']} requests, wall {n['wall_s']:.1f} s")
    print(f"wall time adapter / naive: {a['wall_s'] / n['wall_s']:.2f} (target <= 0.4); "
          f"requests adapter / naive: {a['requests'] / n['requests']:.2f}")
    print(f"events: {a['events']} sent by the adapter's event client (own limit), the last "
          f"{a['events_tail_s']:.1f} s after the last cycle")


if __name__ == "__main__":
    main()
