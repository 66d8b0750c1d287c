"""Hot reload is all or nothing: hostile or broken files keep the last good policies, state and schedule."""

from __future__ import annotations

import os
import random
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from controller.adapters.kubernetes import KubernetesCluster
from controller.runtime.service import ControllerService, ServiceOptions, first_run
from controller.runtime.telemetry import Telemetry
from simulators.ports import SimMetrics
from tests.adapters.kube_helpers import official_client, server  # noqa: F401 (fixture)
from tests.runtime.test_service import POLICY, T0, sim, write_policy

HOSTILE = Path(__file__).resolve().parents[1] / "policy" / "hostile"
#: Python heap a rejected reload may allocate at its peak. A 937-byte bomb took 1.7 GB before.
RELOAD_PEAK_BYTES = 20 << 20

HOSTILE_CONTENTS = {
    "alias-bomb": (HOSTILE / "alias-bomb.yaml").read_bytes(),
    "alias-bomb-merge": (HOSTILE / "alias-bomb-merge.yaml").read_bytes(),
    "deep-nesting": ("x: " + "[" * 10_000 + "]" * 10_000 + "\n").encode(),
    "binary": random.Random(3).randbytes(4096),
    "utf-16": POLICY.format(interval="15s", target=100).encode("utf-16"),
    "interval-999999999999999d": POLICY.format(interval="999999999999999d", target=100).encode(),
    "target-nan": POLICY.format(interval="15s", target=".nan").encode(),
    "replicas-10-pow-30": POLICY.format(interval="15s", target=100).replace("max: 20", "max: " + "1" + "0" * 30).encode(),
    # Prometheus answers it "400 bad_data: parse error" at every cycle: the targets would be held
    "query-unclosed-paren": POLICY.format(interval="15s", target=100).replace(
        "query: rps_query", "query: sum(rate(rps_query[1m])").encode(),
}


def reload_status(telemetry: Telemetry) -> tuple:
    value = telemetry.registry.get_sample_value
    return (value("setpoint_policy_reload_ok"), value("setpoint_policy_reload_failures_total"),
            value("setpoint_policy_reload_last_success_timestamp_seconds"))


def job_interval_s(service: ControllerService, name: str) -> float:
    return service.scheduler.get_job(f"policy:{name}").trigger.interval.total_seconds()


@pytest.fixture
def running(tmp_path):
    """A started ControllerService over the simulated ports, its reload job far off (tests call it)."""
    cluster, metrics, targets = sim()
    path = write_policy(tmp_path)
    now = [T0 + 20]
    telemetry = Telemetry()
    service = ControllerService([tmp_path], metrics, targets, telemetry, ServiceOptions(reload_every_s=3600, reload_settle_s=0),
                                clock=lambda: now[0])
    service.start()
    # the policy jobs held still: a job run on its own 15 s interval moves next_run_time, which the
    # tests compare to see that a rejected reload left the schedule alone (one did, at load 14)
    service.scheduler.pause()
    yield service, path, telemetry, now
    service.stop()


@pytest.mark.parametrize("name", list(HOSTILE_CONTENTS))
def test_a_hostile_reload_keeps_the_last_good_set_whole(running, name):
    service, path, telemetry, now = running
    before = (service.policies, dict(service.reconcilers), job_interval_s(service, "web"),
              service.scheduler.get_job("policy:web").next_run_time)
    assert reload_status(telemetry) == (1, 0, T0 + 20)

    path.write_bytes(HOSTILE_CONTENTS[name])
    now[0] = T0 + 40
    tracemalloc.start()
    try:
        assert service.reload_if_changed() is False
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < RELOAD_PEAK_BYTES, f"a rejected reload allocated {peak:,} bytes"

    assert service.policies is before[0] and service.reconcilers == before[1]
    assert (job_interval_s(service, "web"), service.scheduler.get_job("policy:web").next_run_time) == before[2:]
    assert reload_status(telemetry) == (0, 1, T0 + 20)
    assert service.reload_if_changed() is False  # unchanged files: not read again
    assert reload_status(telemetry) == (0, 1, T0 + 20)
    [result] = service.run_all_once()  # the old policy still runs: 1000 rps / 100 per replica
    assert result.decision.desired.tolist() == [10]


def test_a_good_reload_after_a_bad_one_swaps_policy_reconciler_and_schedule(running):
    service, path, telemetry, now = running
    old_reconciler = service.reconcilers["web"]
    path.write_bytes(HOSTILE_CONTENTS["alias-bomb"])
    assert service.reload_if_changed() is False
    path.write_text(POLICY.format(interval="30s", target=50))
    now[0] = T0 + 60
    assert service.reload_if_changed() is True
    assert reload_status(telemetry) == (1, 1, T0 + 60)
    assert service.reconcilers["web"] is not old_reconciler
    assert job_interval_s(service, "web") == 30
    [result] = service.run_all_once()
    assert result.decision.desired.tolist() == [20]  # 1000 rps / 50 per replica, capped at max 20


def test_an_unchanged_policy_keeps_its_reconciler_and_job(running, tmp_path):
    service, _path, _telemetry, _now = running
    reconciler, next_run = service.reconcilers["web"], service.scheduler.get_job("policy:web").next_run_time
    (tmp_path / "api.yaml").write_text(POLICY.format(interval="20s", target=100).replace("{name: web}", "{name: api}")
                                       .replace("names: [web]", "names: [api]"))
    assert service.reload_if_changed() is True
    assert sorted(service.policies) == ["api", "web"]
    assert service.reconcilers["web"] is reconciler
    assert service.scheduler.get_job("policy:web").next_run_time == next_run
    assert job_interval_s(service, "api") == 20


def test_a_trigger_that_cannot_be_built_rejects_the_whole_reload(running, monkeypatch):
    # A fault the validated schema cannot produce any more (the interval is bounded): injected.
    service, path, telemetry, _now = running
    before = (service.policies, dict(service.reconcilers), job_interval_s(service, "web"))

    def overflow(policy):
        raise OverflowError("date value out of range")

    monkeypatch.setattr(service, "_trigger", overflow)
    path.write_text(POLICY.format(interval="30s", target=50))
    assert service.reload_if_changed() is False
    assert (service.policies, service.reconcilers, job_interval_s(service, "web")) == before
    assert reload_status(telemetry)[:2] == (0, 1)


def test_a_scheduler_failure_half_way_puts_the_old_jobs_back(running, tmp_path, monkeypatch):
    # The scheduler refusing the second of two job changes: injected (APScheduler does not fail on demand).
    service, path, telemetry, _now = running
    (tmp_path / "api.yaml").write_text(POLICY.format(interval="20s", target=100).replace("{name: web}", "{name: api}")
                                       .replace("names: [web]", "names: [api]"))
    assert service.reload_if_changed() is True
    before = (service.policies, dict(service.reconcilers))
    add_job, calls = service.scheduler.add_job, []

    def second_fails(*args, **kwargs):
        calls.append(kwargs["id"])
        if len(calls) == 2:
            raise RuntimeError("scheduler refused")
        return add_job(*args, **kwargs)

    monkeypatch.setattr(service.scheduler, "add_job", second_fails)
    path.write_text(POLICY.format(interval="40s", target=50))
    (tmp_path / "api.yaml").write_text((tmp_path / "api.yaml").read_text().replace("interval: 20s", "interval: 50s"))
    assert service.reload_if_changed() is False
    assert calls[:2] == ["policy:api", "policy:web"]  # api was changed first, then web failed
    assert (service.policies, service.reconcilers) == before
    assert (job_interval_s(service, "api"), job_interval_s(service, "web")) == (20, 15)  # api restored
    assert reload_status(telemetry)[:2] == (0, 1)


def test_a_rejected_reload_is_announced_with_an_event(server, tmp_path):  # noqa: F811 (fixture)
    world = server.world
    metrics = SimMetrics(world.engine, {"rps_query": "offered_rps"}, window_s=15, tick_s=world.tick_s)
    cluster = KubernetesCluster(official_client(server, tmp_path), qps=0, retry_backoff_s=0.01)
    folder = tmp_path / "policies"
    folder.mkdir()
    path = folder / "web.yaml"
    path.write_text(POLICY.format(interval="15s", target=100).replace("namespace: default", "namespace: shop"))
    telemetry = Telemetry()
    service = ControllerService([folder], metrics, cluster, telemetry, ServiceOptions(reload_settle_s=0),
                                clock=lambda: T0)
    try:
        path.write_bytes(HOSTILE_CONTENTS["alias-bomb"])
        assert service.reload_if_changed() is False
        cluster.events.flush()
        from kubernetes import client

        events = [e for e in client.CoreV1Api(official_client(server, tmp_path)).list_namespaced_event("shop").items
                  if e.reason == "PolicyReloadFailed"]
        assert [(e.involved_object.kind, e.involved_object.name) for e in events] == [("Deployment", "web")]
        assert events[0].message.startswith("policy reload rejected, web keeps running as it was: ")
        assert "web.yaml:11: refused: more than 20,000 values once aliases are expanded" in events[0].message
        assert reload_status(telemetry)[:2] == (0, 1)
    finally:
        service.stop()
        cluster.close()


def test_a_removed_policy_s_gauges_are_dropped(running, tmp_path):
    """Else SetpointCycleStalled and SetpointHealingHeld would read them as stale forever."""
    service, path, telemetry, _now = running
    service.run_all_once()
    value = telemetry.registry.get_sample_value
    assert value("setpoint_last_cycle_timestamp_seconds", {"policy": "web"}) is not None
    assert value("setpoint_desired_replicas", {"policy": "web", "target": "default/web"}) == 10
    (tmp_path / "api.yaml").write_text(POLICY.format(interval="20s", target=100).replace("{name: web}", "{name: api}")
                                       .replace("names: [web]", "names: [api]"))
    path.unlink()
    assert service.reload_if_changed() is True
    assert sorted(service.policies) == ["api"]
    assert value("setpoint_last_cycle_timestamp_seconds", {"policy": "web"}) is None
    assert value("setpoint_desired_replicas", {"policy": "web", "target": "default/web"}) is None


BUNDLED = sorted((Path(__file__).resolve().parents[2] / "policies").glob("*.yaml"))


@pytest.mark.parametrize("bundled", BUNDLED, ids=[p.stem for p in BUNDLED])
def test_a_bundled_policy_left_unchanged_by_a_reload_keeps_its_reconciler(bundled, tmp_path):
    # Compiled parameters hold numpy arrays: comparing them field by field raised, and every
    # reload that left a multi-metric or health policy unchanged was rejected.
    cluster, metrics, targets = sim()
    (tmp_path / bundled.name).write_bytes(bundled.read_bytes())
    service = ControllerService([tmp_path], metrics, targets, Telemetry(), ServiceOptions(reload_every_s=3600, reload_settle_s=0),
                                clock=lambda: T0)
    service.start()
    try:
        before = dict(service.reconcilers)
        (tmp_path / "zz-extra.yaml").write_text(POLICY.format(interval="20s", target=100)
                                                 .replace("{name: web}", "{name: zz-extra}")
                                                 .replace("names: [web]", "names: [zz-extra]"))
        assert service.reload_if_changed() is True
        assert all(service.reconcilers[name] is reconciler for name, reconciler in before.items())
    finally:
        service.stop()


TWO_METRICS = POLICY.format(interval="15s", target=100).replace("""        target: {averagePerReplica: 100}
""", """        target: {averagePerReplica: 100}
      - name: cpu
        query: cpu_query
        target: {averagePerReplica: 0.5}
""")


def test_a_policy_file_still_being_written_is_read_once_it_stands_still(tmp_path):
    # Cut after its first metric, a half-written two-metric policy is a valid one-metric policy:
    # read mid-write, it would have been applied.
    assert TWO_METRICS.count("- name:") == 2
    cluster, metrics, targets = sim()
    path = write_policy(tmp_path)
    os.utime(path, (time.time() - 60, time.time() - 60))
    service = ControllerService([tmp_path], metrics, targets, Telemetry(), ServiceOptions(reload_every_s=3600),
                                clock=lambda: T0)
    first = service.policies["web"]
    path.write_text(TWO_METRICS[:TWO_METRICS.index("      - name: cpu")])  # the writer is here, now
    assert service.reload_if_changed() is False and service.policies["web"] is first
    path.write_text(TWO_METRICS)  # still moving between two polls: not read
    assert service.reload_if_changed() is False and service.policies["web"] is first
    assert service.reload_if_changed() is True  # unchanged since the last poll: read
    assert len(service.policies["web"].params.metrics) == 2


@pytest.mark.parametrize("age_s, reloads", [
    pytest.param(60, True, id="modified-a-minute-ago-read-at-once"),
    pytest.param(-3600, False, id="modified-in-the-future-waits-one-poll"),
    pytest.param(0, False, id="modified-just-now-waits-one-poll"),
])
def test_the_first_poll_after_a_change(tmp_path, age_s, reloads):
    cluster, metrics, targets = sim()
    path = write_policy(tmp_path)
    service = ControllerService([tmp_path], metrics, targets, Telemetry(), ServiceOptions(reload_every_s=3600),
                                clock=lambda: T0)
    path.write_text(POLICY.format(interval="30s", target=50))
    os.utime(path, (time.time() - age_s, time.time() - age_s))
    assert service.reload_if_changed() is reloads
    assert service.reload_if_changed() is True or reloads  # a second poll finds it unchanged
    assert service.policies["web"].params.interval_s == 30


# ---------------------------------------------------------------- a changed policy keeps its phase
BASE = datetime(2026, 1, 1, tzinfo=timezone.utc)  # a fixed clock for first_run


def at(s: float) -> datetime:
    return BASE + timedelta(seconds=s)


def cycles_while_edited(interval_s: float, edit_every_s: float, until_s: float, jitter_s: float = 2.0) -> list[float]:
    """The times a job runs when its policy is edited every ``edit_every_s`` (a real change: a new
    job each time, first run by first_run) on a scheduler that runs a due job at its time."""
    runs, next_run, t = [], at(interval_s), 0.0  # started at 0: first run one interval later
    edits = iter(k * edit_every_s for k in range(1, 10_000))
    edit = next(edits)
    while t < until_s:
        if (next_run - BASE).total_seconds() <= edit:  # the job runs before the next edit
            t = (next_run - BASE).total_seconds()
            runs.append(t)
            next_run = at(t + interval_s)  # (the trigger's jitter on later runs left out)
        else:
            t = edit
            next_run = first_run(next_run, at(t), interval_s, jitter_s, rand=lambda: 0.5)
            edit = next(edits)
    return [r for r in runs if r < until_s]


@pytest.mark.parametrize("interval_s, edit_every_s", [
    pytest.param(20, 9, id="20s-policy-edited-every-9s"),
    pytest.param(20, 1, id="20s-policy-edited-every-second"),
    pytest.param(20, 19.9, id="20s-policy-edited-just-under-its-interval"),
    pytest.param(5, 60, id="edited-less-often-than-its-interval"),
])
def test_a_policy_edited_more_often_than_its_interval_still_cycles(interval_s, edit_every_s):
    runs = cycles_while_edited(interval_s, edit_every_s, until_s=90)
    assert runs, "no cycle ran while the file kept changing"
    gaps = [b - a for a, b in zip([0.0] + runs, runs + [90.0])]
    assert max(gaps) <= interval_s


@pytest.mark.parametrize("old_next_s, interval_s, expected_s", [
    pytest.param(12, 20, 12, id="old-phase-kept"),
    pytest.param(12, 5, 5, id="shorter-new-interval-moves-it-earlier"),
    pytest.param(12, 60, 12, id="longer-new-interval-keeps-the-old-time"),
    pytest.param(0, 20, 1, id="old-run-due-now-runs-within-the-jitter"),
    pytest.param(-30, 20, 1, id="old-run-overdue-runs-within-the-jitter"),
    pytest.param(None, 20, 1, id="new-policy-runs-within-the-jitter-as-at-start"),
    pytest.param(None, 300, 1, id="new-5-minute-policy-runs-within-the-jitter"),
])
def test_the_first_run_of_a_changed_policy(old_next_s, interval_s, expected_s):
    old = None if old_next_s is None else at(old_next_s)
    got = first_run(old, at(0), interval_s, jitter_s=2.0, rand=lambda: 0.5)
    assert got == at(expected_s)


def next_run_in_s(service: ControllerService, name: str) -> float:
    return (service.scheduler.get_job(f"policy:{name}").next_run_time - datetime.now(timezone.utc)).total_seconds()


def test_a_changed_policy_s_new_job_keeps_the_old_job_s_next_run(running, tmp_path):
    service, path, _telemetry, _now = running
    # the first cycle is due at start (within 2 s of jitter): a job whose next run is a cycle away
    old_next = datetime.now(timezone.utc) + timedelta(seconds=12)
    service.scheduler.get_job("policy:web").modify(next_run_time=old_next)
    path.write_text(POLICY.format(interval="30s", target=50))
    assert service.reload_if_changed() is True
    assert job_interval_s(service, "web") == 30
    assert service.scheduler.get_job("policy:web").next_run_time == old_next  # not 30 s from now
    path.write_text(POLICY.format(interval="5s", target=50))  # shorter: at most 5 s from now
    (tmp_path / "api.yaml").write_text(POLICY.format(interval="20s", target=100).replace("{name: web}", "{name: api}")
                                       .replace("names: [web]", "names: [api]"))
    assert service.reload_if_changed() is True
    assert 0 < next_run_in_s(service, "web") <= 5
    assert -1 < next_run_in_s(service, "api") <= 2  # new: at once, within the start jitter, as at start-up


# ---------------------------------------------------------------- unreadable files and folders
API = POLICY.format(interval="20s", target=100).replace("{name: web}", "{name: api}").replace("names: [web]", "names: [api]")


@pytest.fixture
def unreadable(monkeypatch):
    """Paths that cannot be read, as after a chmod 000. The tests run as root, for whom chmod
    does not stop reads: os.open, os.listdir and os.scandir are patched to raise PermissionError
    for these paths (and only them) instead."""
    locked: set[str] = set()

    def guard(real):
        def call(path, *args, **kwargs):
            if os.fspath(path) in locked:
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return real(path, *args, **kwargs)
        return call

    for name in ("open", "listdir", "scandir"):
        monkeypatch.setattr(os, name, guard(getattr(os, name)))
    return locked


def test_a_reload_rejected_for_an_unreadable_file_is_retried_once_it_reads(running, tmp_path, unreadable, caplog):
    service, path, telemetry, now = running
    (tmp_path / "api.yaml").write_text(API)
    assert service.reload_if_changed() is True
    unreadable.add(str(path))
    (tmp_path / "api.yaml").write_text(API.replace("max: 20", "max: 25"))
    now[0] = T0 + 40
    with caplog.at_level("ERROR", logger="setpoint.runtime"):
        assert service.reload_if_changed() is False
        assert service.reload_if_changed() is False  # read again, fails alike: not said again
    [rejected] = [r for r in caplog.records if r.getMessage().startswith("policy reload rejected")]
    assert rejected.errors == [f"{path}: cannot read: Permission denied"]
    assert reload_status(telemetry)[:2] == (0, 1)
    assert service.policies["api"].params.max_replicas == 20

    unreadable.clear()  # chmod 644: no file's size or time changes
    now[0] = T0 + 60
    assert service.reload_if_changed() is True
    assert reload_status(telemetry) == (1, 1, T0 + 60)
    assert service.policies["api"].params.max_replicas == 25
    assert service.reload_if_changed() is False  # read once, then only on a change


def test_an_unreadable_policy_folder_is_a_one_line_rejection(running, tmp_path, unreadable, caplog):
    service, _path, telemetry, _now = running
    before = (service.policies, dict(service.reconcilers))
    unreadable.add(str(tmp_path))
    with caplog.at_level("INFO", logger="setpoint.runtime"):
        assert service.reload_if_changed() is False
    [record] = [r for r in caplog.records if r.name == "setpoint.runtime"]
    assert record.getMessage() == "policy reload rejected, keeping the last good policies"
    assert record.exc_info is None  # not the "this is a bug" path with a traceback
    assert record.errors == [f"{tmp_path}: cannot read this folder: Permission denied"]
    assert (service.policies, service.reconcilers) == before
    assert reload_status(telemetry)[:2] == (0, 1)
    unreadable.clear()
    assert service.reload_if_changed() is True
    assert reload_status(telemetry)[0] == 1


def test_the_fingerprint_sees_a_chmod_and_a_replaced_file(tmp_path):
    from controller.runtime.service import _fingerprint

    path = write_policy(tmp_path)
    before = _fingerprint([tmp_path])
    path.chmod(0o600)
    assert _fingerprint([tmp_path]) != before
    chmodded, st = _fingerprint([tmp_path]), path.stat()
    other = tmp_path / "new.tmp"
    other.write_bytes(path.read_bytes())
    other.chmod(0o600)
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    other.replace(path)  # same name, size, time and mode: another file
    assert _fingerprint([tmp_path]) != chmodded
