"""Soak drill: is `setpoint run` safe to leave running for weeks?

Runs `setpoint sim serve` (30 workloads web-0..web-29, --speed 4), a real Prometheus scraping it,
and `setpoint run --leader-elect` (state ConfigMaps in `default`, as deploy/ runs it), all on
loopback, for --minutes of wall time, with an operator's churn:

- workloads enter and leave the policy's selector: the label `soak=on` moves along a window of
  4 of the 30 workloads every 15 s (so every workload is selected, then deselected, many times);
- `kubectl scale` by hand every 40 s (a hands-off of 1 minute, so they expire during the run);
- `kubectl delete pod` every 50 s (pods crashing; the ReplicaSet replaces them) and a scenario
  pod-crash fault every 10 simulated minutes;
- the scaling policy file edited every 3 minutes: a valid change, 40 s later an invalid one, 40 s
  later fixed; a second policy (namespace `shop`) removed for 2 of every 5 minutes, and added back
  under a new name (soak-shop-0, -1, ...);
- Prometheus stopped for 20 s and started again every 6 minutes.

Sampled every 10 s: the controller's RSS, open file descriptors and threads (/proc), the lines of
its /metrics and those naming a target its policies do not select now, the bytes of the state
ConfigMaps setpoint-state-* and the workload names they mention that are not selected now, and the
bytes of its records and log. Printed: the first sample after the warm-up (3 minutes) and the last,
the growth per hour (least squares over the samples after the warm-up) and "met"/"NOT met":

- RSS: at most 0.5 MiB/h over the second half of the samples after the warm-up (bounded caches
  fill in the first minutes): the Deployment's limit is 512 MiB and it starts near 120 MiB, so 30
  days (720 h) of growth must stay under about 390 MiB;
- fds and threads: no growth (end minus start at most 2: a connection or a scheduler thread in
  flight at the sample);
- /metrics: at the end no series of a target that is not selected, and lines at most 5% above the
  first sample's after the warm-up with as many policies loaded (same number of selected targets);
- state ConfigMaps: at the end no workload that is not selected named in them, except the ones
  whose rate-limit or hands-off memory is still in force (their period: at most 1 minute here, so
  those deselected in the last 2 minutes), and bytes at most 20% above the start's.

Records and logs grow with time by design (records rotate at --records-max-bytes; logs are the
kubelet's to rotate): their bytes per hour are printed, with no bound.

--trace-memory runs the controller under tracemalloc (slower): a snapshot is written every 5
minutes and the allocations that grew most between the first after the warm-up and the last are
printed (what RSS alone cannot tell: a leak, or caches and the allocator's arenas filling).

Run: python bench/soak.py [--minutes 25] [--speed 4] [--workdir DIR] [--trace-memory]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from controller.policy.summary import plural  # noqa: E402
from tests.support.prometheus_server import PrometheusServer, ScrapeTarget, free_port  # noqa: E402

SETPOINT = [sys.executable, "-m", "controller.cli"]
SNAPSHOT_EVERY_S = 300.0

# imported by the controller's interpreter (PYTHONPATH) with --trace-memory: a snapshot every
# SNAPSHOT_EVERY_S, written where the controller runs
TRACER = f"""\
import os, threading, time, tracemalloc
if os.environ.get("SOAK_TRACE_MEMORY"):
    def _dump():
        time.sleep(60)  # after the imports and the start-up (traced, they take minutes)
        tracemalloc.start(8)
        n = 0
        while True:
            time.sleep({SNAPSHOT_EVERY_S})
            tracemalloc.take_snapshot().dump(f"trace-{{n:03d}}.snapshot")
            n += 1
    threading.Thread(target=_dump, name="soak-tracemalloc", daemon=True).start()
"""
WORKLOADS = [f"web-{i}" for i in range(30)]
WINDOW = 4
WARMUP_S = 180.0
SAMPLE_EVERY_S = 10.0

SCENARIO = """\
apiVersion: setpoint/v1
kind: Scenario
metadata: {name: soak}
spec:
  duration: 24h
  tick: 1s
  slo: {latency: {percentile: 95, below: 250ms}}
  services:
    - name: web
      count: 30
      capacityPerPod: 100
      startupDelay: 5s
      schedulingDelay: 1s
      initialReplicas: 2
      maxPods: 20
      load:
        - constant: {rps: 300}
        - noise: {sigma: 0.3, every: 30s}
        - flashCrowd: {at: 20m, peak: 600, rise: 1m, decay: 10m}
        - flashCrowd: {at: 70m, peak: 600, rise: 1m, decay: 10m}
    - name: api
      namespace: shop
      count: 2
      capacityPerPod: 100
      startupDelay: 5s
      initialReplicas: 2
      maxPods: 20
      load:
        - constant: {rps: 250}
  faults:
%s
"""

SCALING = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: soak-web}
spec:
  targets:
    kind: Deployment
    namespace: default
    selector: {matchLabels: {soak: "on"}}
  interval: 2s
  replicas: {min: 2, max: %(max)s}
  scaling:
    metrics:
      - name: rps
        query: sum by (namespace, deployment) (rate(http_requests_total{namespace="default"}[20s]))
        target: {averagePerReplica: %(target)s}
    tolerance: {up: 0.05, down: 0.15}
    onExternalScale: {handsOff: 1m}
    behavior:
      scaleUp: {stabilizationWindow: 0s, policies: [{type: Pods, value: 4, period: 30s}]}
      scaleDown: {stabilizationWindow: 30s, policies: [{type: Pods, value: 1, period: 20s}]}
  health:
    checks:
      - name: memory
        query: max by (namespace, pod) (container_memory_working_set_bytes{container!=""}) / 2^20
        scope: pod
        unhealthy: {above: 600, for: 20s}
        recovered: {below: 400, for: 20s}
        action: restart-pod
      - name: errors
        query: >-
          sum by (namespace, deployment) (rate(http_request_errors_total[30s]))
          / sum by (namespace, deployment) (rate(http_requests_total[30s]))
        scope: workload
        unhealthy: {above: 0.5, for: 30s}
        recovered: {below: 0.1, for: 30s}
        action: restart-pod
    budgets: {restartsPerHour: 6, rollbacksPerDay: 2, maxUnavailable: 25%%}
"""

SHOP = """\
apiVersion: setpoint/v1
kind: Policy
metadata: {name: soak-shop-%(round)d}
spec:
  targets: {kind: Deployment, namespace: shop, names: [api-0, api-1]}
  interval: 3s
  replicas: {min: 2, max: 10}
  scaling:
    metrics:
      - name: rps
        query: sum by (namespace, deployment) (rate(http_requests_total{namespace="shop"}[20s]))
        target: {averagePerReplica: 80}
"""


def scenario_text() -> str:
    """The scenario, with a pod-crash fault every 10 simulated minutes for 24 hours."""
    faults = "\n".join(f"    - {{kind: pod-crash, at: {m}m, count: 1}}" for m in range(10, 24 * 60, 10))
    return SCENARIO % faults


def scaling_policy(edit: str) -> str:
    """The scaling policy file: ``valid`` (the original), ``edited`` (a valid change), ``invalid``."""
    if edit == "invalid":
        return SCALING % {"max": 20, "target": "lots"}
    return SCALING % {"max": 20 if edit == "valid" else 19, "target": 100}


@dataclass
class Sample:
    """One measurement of the running controller."""

    t: float
    rss_kib: int
    fds: int
    threads: int
    metrics_lines: int
    stale_metric_lines: int
    state_bytes: int
    stale_state_names: list[str]
    records_bytes: int
    log_bytes: int
    selected: int
    policies: int
    series: frozenset = frozenset()  # the /metrics series (series_kind), values dropped


@dataclass
class World:
    """The processes and paths of the drill."""

    workdir: Path
    kubeconfig: Path
    status_url: str
    sim: subprocess.Popen
    controller: subprocess.Popen | None
    prometheus: PrometheusServer
    labelled: list[str] = field(default_factory=list)
    deselected_at: dict[str, float] = field(default_factory=dict)


def kubectl(world: World, *args: str) -> str:
    """Run kubectl against the simulated cluster; its output (errors are printed, not raised)."""
    done = subprocess.run(["kubectl", "--kubeconfig", str(world.kubeconfig), *args], capture_output=True,
                          text=True, timeout=30)
    if done.returncode != 0:
        print(f"kubectl {' '.join(args)}: {done.stderr.strip()}", file=sys.stderr)
    return done.stdout


def wait_for(predicate, timeout_s: float, what: str):
    """Poll ``predicate`` every 0.5 s until it is truthy; raise after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise RuntimeError(f"timed out waiting for {what}")


def start_world(workdir: Path, speed: float, trace_memory: bool = False) -> World:
    """sim serve, Prometheus scraping it every 2 s, and the controller with leader election
    (under tracemalloc with ``trace_memory``)."""
    (workdir / "scenario.yaml").write_text(scenario_text())
    policies = workdir / "policies"
    policies.mkdir(exist_ok=True)
    (policies / "web.yaml").write_text(scaling_policy("valid"))
    (policies / "shop.yaml").write_text(SHOP % {"round": 0})
    kubeconfig = workdir / "kubeconfig.yaml"
    kube_port, metrics_port, status_port = free_port(), free_port(), free_port()
    sim = subprocess.Popen([*SETPOINT, "sim", "serve", "scenario.yaml", "--speed", str(speed), "--kube-listen",
                            f"127.0.0.1:{kube_port}", "--metrics-listen", f"127.0.0.1:{metrics_port}",
                            "--kubeconfig-out", str(kubeconfig)], cwd=workdir, start_new_session=True,
                           stdout=open(workdir / "sim.log", "w"), stderr=subprocess.STDOUT)
    wait_for(kubeconfig.exists, 30, "sim serve's kubeconfig")
    prometheus = PrometheusServer(workdir / "prometheus", [ScrapeTarget.of(f"127.0.0.1:{metrics_port}")],
                                  scrape_interval="2s").start()
    env = dict(os.environ)
    if trace_memory:
        (workdir / "tracer").mkdir(exist_ok=True)
        (workdir / "tracer" / "sitecustomize.py").write_text(TRACER)
        env.update(SOAK_TRACE_MEMORY="1", PYTHONPATH=os.pathsep.join([str(workdir / "tracer"), str(REPO),
                                                                        env.get("PYTHONPATH", "")]))
    try:
        return start_controller(workdir, kubeconfig, sim, prometheus, status_port, env)
    except BaseException:
        stop_world(World(workdir, kubeconfig, "", sim, None, prometheus))
        raise


def start_controller(workdir: Path, kubeconfig: Path, sim: subprocess.Popen, prometheus: PrometheusServer,
                     status_port: int, env: dict) -> World:
    """`setpoint run --leader-elect` against them; the World once its /metrics answers."""
    controller = subprocess.Popen(
        [*SETPOINT, "run", "--policies", "policies", "--prometheus", prometheus.url, "--kubeconfig", str(kubeconfig),
         "--listen", f"127.0.0.1:{status_port}", "--records", "decisions.jsonl", "--leader-elect",
         "--lease-namespace", "default", "--state-namespace", "default"],
        cwd=workdir, start_new_session=True, stdout=open(workdir / "run.out", "w"),
        stderr=open(workdir / "run.log", "w"), env=env)
    world = World(workdir, kubeconfig, f"http://127.0.0.1:{status_port}", sim, controller, prometheus)
    try:
        wait_for(lambda: metrics_text(world), 120, "the controller's /metrics")
    except BaseException:
        stop_world(world)
        raise
    return world


def stop_world(world: World) -> None:
    """SIGTERM the controller and sim serve (their process groups), stop Prometheus."""
    for proc in (world.controller, world.sim):
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    world.prometheus.stop()


def metrics_text(world: World) -> str:
    """The controller's /metrics, or "" when it does not answer."""
    try:
        with urllib.request.urlopen(world.status_url + "/metrics", timeout=5) as answer:
            return answer.read().decode()
    except OSError:
        return ""


def proc_status(pid: int) -> tuple[int, int]:
    """(VmRSS in KiB, Threads) of a process."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["Threads"])


def state_configmaps(world: World) -> list[dict]:
    """The ConfigMaps setpoint-state-* of the state namespace."""
    out = kubectl(world, "get", "configmaps", "-n", "default", "-o", "json")
    items = json.loads(out or '{"items": []}')["items"]
    return [cm for cm in items if cm["metadata"]["name"].startswith("setpoint-state-")]


def stale_names(text: str, live: set[str]) -> list[str]:
    """The workload names web-N in ``text`` that are not in ``live``."""
    return sorted({m for m in re.findall(r"\bweb-\d+\b", text) if m not in live})


def sample(world: World, t0: float) -> Sample:
    """Measure the controller now."""
    pid = world.controller.pid
    rss, threads = proc_status(pid)
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    live = set(world.labelled)
    lines = [ln for ln in metrics_text(world).splitlines() if ln and not ln.startswith("#")]
    loaded = next((int(float(ln.split()[-1])) for ln in lines if ln.startswith("setpoint_policies_loaded ")), 0)
    just_left = {n for n, at in world.deselected_at.items() if time.monotonic() - at < 10}  # a cycle away
    stale_lines = [ln for ln in lines if set(stale_names(ln, live)) - just_left]
    cms = state_configmaps(world)
    state_text = "".join(json.dumps(cm.get("data") or {}) for cm in cms)
    recent = {n for n, at in world.deselected_at.items() if time.monotonic() - at < 120}
    return Sample(time.monotonic() - t0, rss, fds, threads, len(lines), len(stale_lines),
                  len(state_text.encode()), [n for n in stale_names(state_text, live) if n not in recent],
                  sum(p.stat().st_size for p in world.workdir.glob("decisions.jsonl*")),
                  (world.workdir / "run.log").stat().st_size, len(live), loaded,
                  frozenset(series_kind(ln) for ln in lines))


def series_kind(line: str) -> str:
    """A /metrics line without its value, its target and the round of soak-shop-N: the series
    that a sample with other targets selected (the window moved) has too."""
    name = re.sub(r'target="[^"]*"', 'target="*"', line.rsplit(" ", 1)[0])
    return re.sub(r"soak-shop-\d+", "soak-shop-*", name)


def move_window(world: World, step: int) -> None:
    """Label the next workload `soak=on` and take the label off the oldest once the window is full."""
    name = WORKLOADS[step % len(WORKLOADS)]
    if name not in world.labelled:
        kubectl(world, "label", "deployment", name, "soak=on", "--overwrite")
        world.labelled.append(name)
        world.deselected_at.pop(name, None)
    while len(world.labelled) > WINDOW:
        old = world.labelled.pop(0)
        kubectl(world, "label", "deployment", old, "soak-")
        world.deselected_at[old] = time.monotonic()


def scale_by_hand(world: World, step: int) -> None:
    """`kubectl scale` one selected workload to 3..6 replicas (a hands-off of 1 minute)."""
    if world.labelled:
        name = world.labelled[step % len(world.labelled)]
        kubectl(world, "scale", "deployment", name, f"--replicas={3 + step % 4}")


def delete_a_pod(world: World, step: int) -> None:
    """`kubectl delete pod` of one pod of a selected workload (its ReplicaSet makes another)."""
    if world.labelled:
        name = world.labelled[step % len(world.labelled)]
        pods = kubectl(world, "get", "pods", "-l", f"app={name}", "-o", "name").split()
        if pods:
            kubectl(world, "delete", pods[0], "--wait=false")


def edit_policies(world: World, elapsed_s: float) -> None:
    """The policy files at ``elapsed_s``: web.yaml valid/edited/invalid/fixed in 3-minute rounds,
    shop.yaml absent 2 of every 5 minutes. Writes only what changes."""
    phase = int(elapsed_s % 180 // 40)
    web = ["edited", "invalid", "valid", "valid", "valid"][phase]
    shop_present = elapsed_s % 300 < 180
    write_if_changed(world.workdir / "policies" / "web.yaml", scaling_policy(web))
    shop = world.workdir / "policies" / "shop.yaml"
    if shop_present:  # a new name each time (a team's file retired, another added)
        write_if_changed(shop, SHOP % {"round": int(elapsed_s // 300)})
    elif shop.exists():
        shop.unlink()


def write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` unless it holds it already."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def bounce_prometheus(world: World, elapsed_s: float, state: dict) -> None:
    """Stop Prometheus for 20 s every 6 minutes (from minute 4)."""
    down_at = 240 + 360 * state.get("bounces", 0)
    if world.prometheus.running and down_at <= elapsed_s < down_at + 20:
        world.prometheus.stop()
    elif not world.prometheus.running and elapsed_s >= down_at + 20:
        world.prometheus.start()
        state["bounces"] = state.get("bounces", 0) + 1


def churn(world: World, minutes: float) -> list[Sample]:
    """Drive the churn for ``minutes``; the samples taken every 10 s."""
    t0 = time.monotonic()
    samples, state, last = [], {}, {}

    def due(name: str, every_s: float, now: float) -> bool:
        if now - last.get(name, -1e9) >= every_s:
            last[name] = now
            return True
        return False

    step = 0
    while (now := time.monotonic() - t0) < minutes * 60:
        if world.controller.poll() is not None:
            raise RuntimeError(f"the controller exited ({world.controller.returncode}); see {world.workdir}/run.log")
        if due("window", 15, now):
            move_window(world, step)
            step += 1
        if due("scale", 40, now):
            scale_by_hand(world, step)
        if due("pod", 50, now):
            delete_a_pod(world, step)
        edit_policies(world, now)
        bounce_prometheus(world, now, state)
        if due("sample", SAMPLE_EVERY_S, now):
            samples.append(sample(world, t0))
            s = samples[-1]
            print(f"{s.t:7.0f}s rss={s.rss_kib / 1024:.1f}MiB fds={s.fds} threads={s.threads} "
                  f"metrics={s.metrics_lines} stale_metrics={s.stale_metric_lines} state={s.state_bytes}B "
                  f"stale_state={s.stale_state_names} records={s.records_bytes}B log={s.log_bytes}B", flush=True)
        time.sleep(1.0)
    return samples


def slope_per_hour(samples: list[Sample], attr: str) -> float:
    """Least-squares growth of ``attr`` per hour over ``samples``."""
    xs = [s.t for s in samples]
    ys = [float(getattr(s, attr)) for s in samples]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs) or 1.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den * 3600


def report(samples: list[Sample]) -> bool:
    """Print start/end/growth per hour with met/NOT met; True when every bound is met."""
    steady = [s for s in samples if s.t >= WARMUP_S] or samples
    first, last = steady[0], steady[-1]
    # /metrics is compared with the first sample that had as many policies loaded (one comes and goes)
    like = next(s for s in steady if s.policies == last.policies)
    # RSS over the second half: bounded caches (conditions, packed parameters, the allocator's
    # arenas) fill during the first minutes; what still grows after them is what grows for weeks
    late = steady[len(steady) // 2:]
    rss_h = slope_per_hour(late, "rss_kib") / 1024
    checks = [
        ("RSS MiB", first.rss_kib / 1024, last.rss_kib / 1024, rss_h, rss_h <= 0.5, "<= 0.5 MiB/h (2nd half)"),
        ("open fds", first.fds, last.fds, slope_per_hour(steady, "fds"), last.fds - first.fds <= 2, "end - start <= 2"),
        ("threads", first.threads, last.threads, slope_per_hour(steady, "threads"),
         last.threads - first.threads <= 2, "end - start <= 2"),
        ("/metrics lines", like.metrics_lines, last.metrics_lines, slope_per_hour(steady, "metrics_lines"),
         last.metrics_lines <= like.metrics_lines * 1.05 and last.stale_metric_lines == 0,
         "<= start + 5%, no deselected target"),
        ("state bytes", first.state_bytes, last.state_bytes, slope_per_hour(steady, "state_bytes"),
         last.state_bytes <= first.state_bytes * 1.2 and not last.stale_state_names,
         "<= start + 20%, no deselected workload"),
        ("records bytes", first.records_bytes, last.records_bytes, slope_per_hour(steady, "records_bytes"), None, ""),
        ("log bytes", first.log_bytes, last.log_bytes, slope_per_hour(steady, "log_bytes"), None, ""),
    ]
    print(f"\nsteady from {first.t:.0f} s to {last.t:.0f} s ({plural(len(steady), 'sample')}); selected {first.selected} "
          f"-> {last.selected}; stale metric lines at the end {last.stale_metric_lines}, "
          f"stale state names {last.stale_state_names}")
    new = sorted(last.series - like.series)
    print(f"/metrics series at the end not there at {like.t:.0f} s: {len(new)}" + "".join(f"\n  {x}" for x in new))
    ok = True
    for name, start, end, per_h, met, bound in checks:
        verdict = "" if met is None else ("met" if met else "NOT met")
        print(f"{name:15} start {start:12.1f} end {end:12.1f} growth/h {per_h:12.1f}  {bound:38} {verdict}")
        ok = ok and met is not False
    return ok


def memory_growth(workdir: Path, top: int = 12) -> None:
    """Print the allocations (by traceback) that grew most between the second snapshot (the first
    after the warm-up) and the last one --trace-memory wrote."""
    import tracemalloc

    snaps = sorted(workdir.glob("trace-*.snapshot"))
    if len(snaps) < 3:
        print(f"--trace-memory: {len(snaps)} snapshot(s), too few to compare (one every {SNAPSHOT_EVERY_S:.0f} s)")
        return
    first, last = (tracemalloc.Snapshot.load(str(p)) for p in (snaps[1], snaps[-1]))
    stats = last.compare_to(first, "traceback")
    print(f"\ntraced memory growth {snaps[1].name} -> {snaps[-1].name}: "
          f"{sum(s.size_diff for s in stats) / 1024:.1f} KiB; the largest:")
    for stat in stats[:top]:
        frames = [f"{f.filename.split('/site-packages/')[-1]}:{f.lineno}" for f in stat.traceback][-4:]
        print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  {' <- '.join(reversed(frames))}")


def main() -> int:
    """Parse the options, run the drill, print the report; exit 1 when a bound is not met."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=25.0)
    parser.add_argument("--speed", type=float, default=4.0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--trace-memory", action="store_true")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="setpoint-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"work directory {workdir}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the world on the way out
    world = start_world(workdir, args.speed, args.trace_memory)
    try:
        samples = churn(world, args.minutes)
    finally:
        stop_world(world)
    ok = report(samples)
    if args.trace_memory:
        memory_growth(workdir)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
