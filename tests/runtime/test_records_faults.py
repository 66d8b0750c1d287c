"""The decision-records file under what production does to it: deleted or replaced while open
(logrotate, an operator's rm), a folder in its place or at a rotated name, a full disk, lost
permissions. Records resume in the right file once the fault clears, scaling never waits on them,
and a failure is visible (one log line when it starts, one when it ends, a metric) without
flooding the log. Real files in tmp_path; mocks only where noted."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from controller.model import DecisionRecord
from controller.runtime import records as records_module
from controller.runtime.records import RecordWriter, read_records, records_path_problem
from controller.runtime.service import ControllerService, ServiceOptions
from controller.runtime.telemetry import Telemetry
from tests.runtime.test_service import sim, write_policy

T0 = 1_700_000_000.0
REPO = Path(__file__).resolve().parents[2]
MOVED = "the records file was deleted or replaced while open"
FAILING = "decision records cannot be written"
RECOVERED = "decision records are written again"


def record(i: int) -> DecisionRecord:
    return DecisionRecord(policy="web", target="shop/web", at=T0 + 15 * i, current=4, ready=4, metrics=("rps",),
                          raw=(320.0,), smoothed=(318.5,), proposals=(4,), missing=(False,), combined=4,
                          stabilized=4, limited=4, desired=4, reason="AtTarget", extra={"i": i})


def indices(path: Path) -> list[int]:
    return [r["i"] for r in read_records(path)]


def messages(caplog, text: str) -> int:
    return sum(text in r.getMessage() for r in caplog.records)


# --- faults a real filesystem produces (and the two it cannot on demand, mocked) ----------------------
def delete(path: Path, monkeypatch) -> None:
    path.unlink()


def move_away(path: Path, monkeypatch) -> None:  # logrotate without copytruncate: rename, keep writing
    path.rename(path.with_name("old.jsonl"))


def replace_by_another_file(path: Path, monkeypatch) -> None:
    path.unlink()
    path.write_bytes(b"")


def delete_its_folder(path: Path, monkeypatch) -> None:
    shutil.rmtree(path.parent)


def put_a_folder_there(path: Path, monkeypatch) -> None:
    path.unlink()
    path.mkdir()
    (path / "notes.txt").write_text("mine")


def take_it_back(path: Path, monkeypatch) -> None:
    shutil.rmtree(path)


def fill_the_disk(path: Path, monkeypatch) -> None:
    # Mocked: ENOSPC cannot be had on demand from tmp_path. Half the bytes go out first, as a
    # disk filling up mid-write leaves them, to check that no torn line remains.
    def full(fd: int, data: bytes) -> None:
        os.write(fd, bytes(data)[:len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(records_module, "_write_fully", full)


def remove_permissions(path: Path, monkeypatch) -> None:
    # Mocked: the tests run as root, whom mode bits do not stop. What a non-root controller meets:
    # the file deleted and its folder no longer writable, so it cannot be created again.
    path.unlink()

    def denied(p: Path) -> int:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(p))
    monkeypatch.setattr(records_module, "_open_append", denied)


def undo_mocks(path: Path, monkeypatch) -> None:
    monkeypatch.undo()


def nothing(path: Path, monkeypatch) -> None:
    pass


# name, fault, its end, whether writes fail while it lasts, the records in the file afterwards
FAULTS = [
    pytest.param(delete, nothing, False, [1, 2], id="deleted"),
    pytest.param(move_away, nothing, False, [1, 2], id="renamed-away"),
    pytest.param(replace_by_another_file, nothing, False, [1, 2], id="replaced-by-another-file"),
    pytest.param(delete_its_folder, nothing, False, [1, 2], id="its-folder-deleted"),
    pytest.param(put_a_folder_there, take_it_back, True, [2], id="a-folder-in-its-place"),
    pytest.param(fill_the_disk, undo_mocks, True, [0, 2], id="disk-full-mocked"),
    pytest.param(remove_permissions, undo_mocks, True, [2], id="permission-denied-mocked"),
]


@pytest.mark.parametrize("fault, clear, fails, after", FAULTS)
def test_the_writer_follows_its_path_and_resumes_after_a_fault(tmp_path, caplog, monkeypatch, fault, clear, fails,
                                                               after):
    path = tmp_path / "records" / "decisions.jsonl"
    writer = RecordWriter(path)
    writer.write([record(0)])
    fault(path, monkeypatch)
    if fails:
        with pytest.raises(OSError):
            writer.write([record(1)])
    else:
        writer.write([record(1)])
    clear(path, monkeypatch)
    with caplog.at_level(logging.WARNING, logger="setpoint.runtime"):
        writer.write([record(2)])
    writer.close()
    assert indices(path) == after
    assert path.read_bytes().endswith(b"\n")  # no torn line left by a write that failed half-way
    moved = old if (old := path.with_name("old.jsonl")).exists() else None
    if moved is not None:  # the renamed file keeps what it had, and nothing written after
        assert indices(moved) == [0]


@pytest.mark.parametrize("fault", [pytest.param(delete, id="deleted"), pytest.param(move_away, id="renamed-away")])
def test_a_file_deleted_while_open_is_reopened_with_one_warning(tmp_path, caplog, fault, monkeypatch):
    path = tmp_path / "decisions.jsonl"
    writer = RecordWriter(path)
    writer.write([record(0)])
    with caplog.at_level(logging.WARNING, logger="setpoint.runtime"):
        fault(path, monkeypatch)
        writer.write([record(1)])
        writer.write([record(2)])
    writer.close()
    assert messages(caplog, MOVED) == 1
    assert indices(path) == [1, 2]


# --- rotation never moves or deletes what is not a records file ---------------------------------------
def folder(path: Path) -> None:
    path.mkdir()
    (path / "notes.txt").write_text("mine")


@pytest.mark.parametrize("keep, foreign, before, after", [
    # .1 a folder: the current file cannot move there, so it is dropped, as the oldest would be
    pytest.param(2, ".1", {}, {"": [3]}, id="keep-2-the-newest-name-a-folder"),
    # .2 (the oldest name) a folder: .1 is dropped instead, the current file becomes .1
    pytest.param(2, ".2", {".1": [9]}, {".1": [0, 1, 2], "": [3]}, id="keep-2-the-oldest-name-a-folder"),
    pytest.param(1, ".1", {}, {"": [3]}, id="keep-1-its-only-name-a-folder"),
    pytest.param(0, ".1", {}, {"": [3]}, id="keep-0-a-folder-where-it-keeps-nothing"),
])
def test_rotation_leaves_a_folder_at_a_rotated_name_alone(tmp_path, caplog, keep, foreign, before, after):
    path = tmp_path / "decisions.jsonl"
    for suffix, numbers in before.items():
        path.with_name(path.name + suffix).write_bytes(b"".join(_line(record(i)) for i in numbers))
    folder(path.with_name(path.name + foreign))
    writer = RecordWriter(path, max_bytes=3 * len(_line(record(0))), keep=keep)
    writer.write([record(0), record(1), record(2)])
    with caplog.at_level(logging.WARNING, logger="setpoint.runtime"):
        writer.write([record(3)])  # would cross the bound: rotate first
    writer.close()
    assert (path.with_name(path.name + foreign) / "notes.txt").read_text() == "mine"
    for suffix, numbers in after.items():
        assert indices(path.with_name(path.name + suffix)) == numbers
    assert messages(caplog, "rotated records name is taken") == (keep > 0)


def _line(r: DecisionRecord) -> bytes:
    return json.dumps(r.to_dict(), separators=(",", ":")).encode() + b"\n"


@pytest.mark.parametrize("keep", [pytest.param(0, id="keep-0"), pytest.param(2, id="keep-2")])
def test_a_file_deleted_just_before_it_would_rotate_is_created_again(tmp_path, keep):
    """keep=0 raised FileNotFoundError from unlink at the rotation, then every cycle failed."""
    path = tmp_path / "decisions.jsonl"
    writer = RecordWriter(path, max_bytes=2 * len(_line(record(0))), keep=keep)
    writer.write([record(0), record(1)])
    path.unlink()
    writer.write([record(2)])  # the writer still counts two lines: would rotate
    writer.write([record(3)])
    writer.close()
    assert indices(path) == [2, 3]


def test_a_pipe_at_the_path_is_written_and_never_rotated(tmp_path):
    """A device or a pipe (/dev/null, a log shipper's FIFO) was renamed at the first rotation."""
    path = tmp_path / "decisions.jsonl"
    os.mkfifo(path)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a reader, so that opening to write does not block
    try:
        writer = RecordWriter(path, max_bytes=len(_line(record(0))), keep=1)
        for i in range(3):
            writer.write([record(i)])
        writer.close()
        assert stat.S_ISFIFO(os.lstat(path).st_mode) and not path.with_name(path.name + ".1").exists()
        assert [json.loads(x)["i"] for x in os.read(reader, 65536).splitlines()] == [0, 1, 2]
    finally:
        os.close(reader)


# --- the live service: scaling goes on, the failure is counted and logged once --------------------------
@pytest.mark.parametrize("fault, clear, fails, _after", FAULTS)
def test_the_service_scales_through_a_records_fault_and_says_so_once(tmp_path, caplog, monkeypatch, fault, clear,
                                                                      fails, _after):
    cluster, metrics, targets = sim()
    write_policy(tmp_path)
    path = tmp_path / "records" / "decisions.jsonl"
    telemetry = Telemetry()
    now = [T0 + 20]
    service = ControllerService([tmp_path], metrics, targets, telemetry, ServiceOptions(records_path=path),
                                clock=lambda: now[0])
    sample = telemetry.registry.get_sample_value
    assert sample("setpoint_records_ok") == 1
    with caplog.at_level(logging.INFO, logger="setpoint.runtime"):
        fault(path, monkeypatch)
        [first] = service.run_all_once()  # under the fault: 1000 rps over 100 per pod
        now[0] += 15
        [second] = service.run_all_once()
        failures = sample("setpoint_records_write_failures_total")
        ok_during = sample("setpoint_records_ok")
        clear(path, monkeypatch)
        now[0] += 15
        [third] = service.run_all_once()
    service.stop()
    assert [(a.target.name, a.from_replicas, a.replicas) for a in first.actions] == [("web", 4, 10)]
    assert cluster.spec_replicas.tolist()[0] == 10  # applied, records or not
    assert sample("setpoint_errors_total", {"policy": "web", "source": "cycle"}) is None  # no cycle failed
    assert messages(caplog, "applied scale") == 1  # the action's log line was not lost with the records
    assert service.status()["policies"]["web"]["at"].startswith("2023-11-14T22:14:")  # /status followed
    assert [r["at"] for r in read_records(path)] == ([third.now] if fails else [first.now, second.now, third.now])
    assert (failures, ok_during) == ((2.0, 0.0) if fails else (0.0, 1.0))
    assert sample("setpoint_records_ok") == 1
    assert (messages(caplog, FAILING), messages(caplog, RECOVERED)) == ((1, 1) if fails else (0, 0))
    assert messages(caplog, MOVED) == (0 if fault is fill_the_disk else 1)  # the path changed: said once


# --- start-up: a path that cannot hold records is an option error -------------------------------------
@pytest.mark.parametrize("make, records, says", [
    pytest.param(lambda d: (d / "adir").mkdir(), "adir", "--records: adir is a folder; name a file in it",
                 id="a-folder"),
    pytest.param(lambda d: (d / "afile").write_text("x"), "afile/decisions.jsonl",
                 "--records: afile/decisions.jsonl: afile is not a folder", id="under-a-file"),
    pytest.param(lambda d: None, "/proc/setpoint-nowhere/decisions.jsonl",
                 "--records: /proc/setpoint-nowhere/decisions.jsonl: cannot create the folder /proc/setpoint-nowhere",
                 id="a-folder-that-cannot-be-made"),
])
def test_run_refuses_a_records_path_that_cannot_hold_records(tmp_path, make, records, says):
    """It was exit 1 with 'afile: File exists' (from mkdir), and with --leader-elect a SIGABRT
    (exit 134) that left the Lease held."""
    make(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "controller.cli", "run", "-p", str(REPO / "policies" / "web-rps.yaml"),
                           "--prometheus", "http://127.0.0.1:9", "--once", "--records", records],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert says in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.parametrize("name, problem", [
    pytest.param("-", None, id="standard-output"),
    pytest.param("new/deeper/decisions.jsonl", None, id="folders-to-make"),
    pytest.param("decisions.jsonl", None, id="a-new-file"),
])
def test_a_records_path_that_can_hold_records_is_accepted_and_left_as_it_was(tmp_path, monkeypatch, name, problem):
    monkeypatch.chdir(tmp_path)
    assert records_path_problem(name) is problem
    if name != "-":
        assert not Path(name).exists()  # the probe removes the file it made
