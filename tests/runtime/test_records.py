"""Decision records: size-bounded rotation that never loses or tears a record, and torn lines skipped."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.model import DecisionRecord
from controller.runtime.records import (MAX_RECORD_BYTES, RecordWriter, read_all_records, read_records, record_files,
                                       select_records)

T0 = 1_700_000_000.0


def record(i: int, target: str = "shop/web") -> DecisionRecord:
    return DecisionRecord(policy="web", target=target, at=T0 + 15 * i, current=4, ready=4, metrics=("rps",),
                          raw=(320.0,), smoothed=(318.5,), proposals=(4,), missing=(False,), combined=4,
                          stabilized=4, limited=4, desired=4, reason="AtTarget", extra={"i": i})


def line_bytes(r: DecisionRecord) -> int:
    """Size of one record's line, measured by writing it alone."""
    return len(json.dumps(r.to_dict(), separators=(",", ":")).encode()) + 1


def indices(path) -> list[int]:
    return [r["i"] for r in read_all_records(path)]


def test_rotates_before_the_bound_is_crossed_and_keeps_every_record(tmp_path):
    path = tmp_path / "decisions.jsonl"
    size = line_bytes(record(0))
    writer = RecordWriter(path, max_bytes=3 * size, keep=2)
    for i in range(3):  # exactly at the bound: no rotation yet
        writer.write([record(i)])
    assert record_files(path) == [path] and path.stat().st_size == 3 * size
    writer.write([record(3)])  # would cross it: rotate first
    writer.close()
    assert record_files(path) == [tmp_path / "decisions.jsonl.1", path]
    assert [r["i"] for r in read_records(tmp_path / "decisions.jsonl.1")] == [0, 1, 2]
    assert [r["i"] for r in read_records(path)] == [3]
    assert indices(path) == [0, 1, 2, 3]


def test_a_cycle_s_records_stay_in_one_file(tmp_path):
    path = tmp_path / "decisions.jsonl"
    size = line_bytes(record(0))
    writer = RecordWriter(path, max_bytes=4 * size, keep=1)
    writer.write([record(0), record(1), record(2)])
    writer.write([record(3), record(4)])  # 5 lines > 4: the whole cycle goes to a fresh file
    writer.close()
    assert [r["i"] for r in read_records(path)] == [3, 4]
    assert indices(path) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(("keep", "files"), [
    pytest.param(0, 1, id="keep-0-truncates"),
    pytest.param(1, 2, id="keep-1"),
    pytest.param(3, 4, id="keep-3"),
])
def test_only_keep_rotated_files_remain_and_the_oldest_go_first(tmp_path, keep, files):
    path = tmp_path / "decisions.jsonl"
    writer = RecordWriter(path, max_bytes=line_bytes(record(0)), keep=keep)  # one record per file
    for i in range(6):
        writer.write([record(i)])
    writer.close()
    assert len(record_files(path)) == files
    assert indices(path) == list(range(6 - files, 6))  # the newest `files` records, in order


def test_a_crash_torn_last_line_is_skipped_and_the_next_record_is_intact(tmp_path):
    path = tmp_path / "decisions.jsonl"
    writer = RecordWriter(path)
    writer.write([record(0)])
    writer.close()
    with open(path, "ab") as fh:  # what a crash mid-write leaves: half a line, no newline
        fh.write(json.dumps(record(1).to_dict()).encode()[:40])
    assert indices(path) == [0]
    writer = RecordWriter(path)  # the restarted controller appends
    writer.write([record(2)])
    writer.close()
    assert indices(path) == [0, 2]


def test_a_torn_multibyte_character_does_not_stop_reading(tmp_path):
    path = tmp_path / "decisions.jsonl"
    good = json.dumps(record(0).to_dict()).encode()
    path.write_bytes(good + b"\n" + '{"target": "caf\u00e9'.encode()[:-1])
    assert indices(path) == [0]


def test_records_to_standard_output(capfdbinary):
    writer = RecordWriter("-", max_bytes=10, keep=1)  # no file, no rotation
    writer.write([record(0), record(1)])
    writer.close()
    lines = capfdbinary.readouterr().out.splitlines()
    assert [json.loads(x)["i"] for x in lines] == [0, 1]


@pytest.mark.parametrize(("max_bytes", "keep"), [pytest.param(0, 1, id="zero-bytes"), pytest.param(10, -1, id="negative-keep")])
def test_bad_bounds_are_refused(tmp_path, max_bytes, keep):
    with pytest.raises(ValueError):
        RecordWriter(tmp_path / "d.jsonl", max_bytes=max_bytes, keep=keep)


@settings(max_examples=40, deadline=None)
@given(cycles=st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=25),
       max_lines=st.integers(min_value=1, max_value=8))
def test_no_record_is_lost_or_torn_and_no_file_passes_the_bound(tmp_path_factory, cycles, max_lines):
    path = tmp_path_factory.mktemp("records") / "decisions.jsonl"
    size = line_bytes(record(0))  # every test record has the same size (i < 10 keeps it so)
    keep = 1000  # enough that nothing is dropped: every record must come back
    writer = RecordWriter(path, max_bytes=max_lines * size, keep=keep)
    i = 0
    for n in cycles:
        writer.write([record(j % 10) for j in range(i, i + n)])
        i += n
    writer.close()
    assert [r["i"] for r in read_all_records(path)] == [j % 10 for j in range(i)]
    for f in record_files(path):
        assert f.read_bytes().endswith(b"\n")
        assert f.stat().st_size <= max(max_lines, max(cycles)) * size


def test_explain_reads_the_rotated_files_too(tmp_path):
    from typer.testing import CliRunner

    from controller.cli import app

    path = tmp_path / "decisions.jsonl"
    writer = RecordWriter(path, max_bytes=line_bytes(record(0)), keep=2)
    for i in range(3):
        writer.write([record(i, target=f"shop/web-{i}")])
    writer.close()
    assert len(record_files(path)) == 3
    out = CliRunner().invoke(app, ["explain", str(path)])
    assert out.exit_code == 0, out.output
    assert [line.split()[1] for line in out.output.splitlines()] == ["shop/web-0:", "shop/web-1:", "shop/web-2:"]


# --- hostile record files through `setpoint explain` -------------------------------------------------
GOOD = json.dumps(record(0).to_dict()).encode() + b"\n"


@pytest.mark.parametrize("content, skipped_at, why", [
    pytest.param(b"\xff\xfe" + bytes(range(256)) * 8, 1, "not JSON", id="binary"),
    pytest.param(b"not json\n{\"a\":\n", 1, "not JSON", id="not-json"),
    # these crashed: AttributeError ('list' / 'int' object has no attribute 'get'), RecursionError
    pytest.param(b"[1, 2]\n\"text\"\n5\n", 1, "a JSON list, not a record", id="json-but-not-objects"),
    pytest.param(b"[" * 100_000 + b"\n", 1, "not JSON", id="nested-100000-deep"),
    pytest.param(b"{\"a\": \"" + b"x" * (MAX_RECORD_BYTES + 10) + b"\"}\n", 1,
                 f"a line of more than {MAX_RECORD_BYTES:,} bytes", id="a-line-over-the-bound"),
])
def test_explain_on_a_file_without_records_says_so_and_exits_1(tmp_path, content, skipped_at, why):
    from typer.testing import CliRunner

    from controller.cli import app

    path = tmp_path / "decisions.jsonl"
    path.write_bytes(content)
    out = CliRunner().invoke(app, ["explain", str(path)])
    assert out.exit_code == 1, out.output
    assert f"no decision records: {path}:{skipped_at}: {why}" in out.output
    assert "is this a decisions .jsonl file?" in out.output
    assert out.exception is None or isinstance(out.exception, SystemExit), out.exception


@pytest.mark.parametrize("bad, message", [
    pytest.param(b"[1, 2]\n", "skipped ", id="a-list-line"),
    pytest.param(b"{\"metrics\": 5}\n", "not a decision record (AttributeError", id="metrics-not-a-mapping"),
    pytest.param(b"{\"at\": 1, \"metrics\": {\"rps\": {\"raw\": \"x\", \"smoothed\": 1, \"proposal\": 1}}}\n",
                 "not a decision record (ValueError", id="a-raw-value-not-a-number"),
    # with --at this was a TypeError ('<=' between str and float): now it matches no time
    pytest.param(b"{\"at\": \"soon\"}\n", "shop/web:", id="at-not-a-number"),
    # integers too large for a float: exit 70 (OverflowError) before
    pytest.param(b"{\"target\": \"shop/web\", \"current\": 1, \"desired\": 1, \"at\": 1" + b"0" * 400 + b"}\n",
                 "not a decision record (OverflowError", id="at-of-401-digits"),
    pytest.param(b"{\"at\": 1, \"metrics\": {\"rps\": {\"raw\": 1" + b"0" * 400 + b", \"smoothed\": 1, \"proposal\": 1}}}\n",
                 "not a decision record (OverflowError", id="a-raw-value-of-401-digits"),
])
def test_explain_skips_a_bad_line_among_records_and_says_so(tmp_path, bad, message):
    from typer.testing import CliRunner

    from controller.cli import app

    path = tmp_path / "decisions.jsonl"
    path.write_bytes(GOOD + bad + GOOD)
    out = CliRunner().invoke(app, ["explain", str(path), "--at", "1e12"] if b"soon" in bad else ["explain", str(path)])
    assert out.exit_code == 0, out.output
    assert out.output.count("shop/web:") >= 1 and message in out.output
    if "not a decision record" in message:  # named by its file and line, to be found and mended
        assert f"skipped {path}:2: not a decision record" in out.output.replace("\n", ""), out.output


@pytest.mark.parametrize("content, args, message", [
    # these said "no decision records match; drop --target, --at, --controller or --changes", none given
    pytest.param(b"", [], "no decision records in it; pass a `setpoint simulate` output folder", id="empty-file"),
    pytest.param(b"\n\n  \n", [], "no decision records in it; pass", id="blank-lines"),
    pytest.param(GOOD, ["-c", "hpa"], "no decision records of controller 'hpa' in it; pass", id="no-such-controller"),
])
def test_explain_on_a_file_with_no_record_names_it(tmp_path, content, args, message):
    from typer.testing import CliRunner

    from controller.cli import app

    path = tmp_path / "decisions.jsonl"
    path.write_bytes(content)
    out = CliRunner().invoke(app, ["explain", str(path), *args])
    assert out.exit_code == 1 and (out.exception is None or isinstance(out.exception, SystemExit)), out.output
    assert f"{path}: {message}" in out.output and "drop --target" not in out.output, out.output


def test_explain_reads_a_file_that_starts_with_a_utf8_byte_order_mark(tmp_path):
    """Saved by an editor that marks UTF-8: its first record was skipped as "not JSON"."""
    from typer.testing import CliRunner

    from controller.cli import app

    path = tmp_path / "decisions.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD)
    out = CliRunner().invoke(app, ["explain", str(path)])
    assert out.exit_code == 0 and "shop/web:" in out.output and "skipped" not in out.output, out.output


def test_explain_refuses_a_device_instead_of_reading_it_forever(tmp_path):
    from typer.testing import CliRunner

    from controller.cli import app

    out = CliRunner().invoke(app, ["explain", "/dev/zero"])  # one endless line: 7.9 GB before a MemoryError
    assert out.exit_code == 1 and "/dev/zero: not a regular file" in out.output


def test_read_records_reports_each_skipped_line(tmp_path):
    path = tmp_path / "decisions.jsonl"
    path.write_bytes(GOOD + b"torn\n" + GOOD + b"[]\n")
    skipped = []
    assert len(list(read_records(path, lambda f, n, why: skipped.append((f.name, n, why))))) == 2
    assert skipped == [("decisions.jsonl", 2, "not JSON"), ("decisions.jsonl", 4, "a JSON list, not a record")]


@pytest.mark.parametrize("limit", [pytest.param("0", id="zero"), pytest.param("-1", id="negative")])
def test_explain_refuses_a_limit_below_one(tmp_path, limit):
    """--limit 0 printed every record and --limit -1 all but the first (records[-limit:])."""
    from typer.testing import CliRunner

    from controller.cli import app

    path = tmp_path / "decisions.jsonl"
    path.write_bytes(GOOD * 3)
    out = CliRunner().invoke(app, ["explain", str(path), "--limit", limit])
    assert out.exit_code == 2 and "--limit" in out.output and "shop/web:" not in out.output


def _stream(n: int):
    """n records over two targets, every third a change; a generator, as a records file is read."""
    for i in range(n):
        yield {"policy": "p", "target": f"shop/{'web' if i % 2 else 'api'}", "at": float(i), "current": 3,
               "desired": 4 if i % 3 == 0 else 3}


@pytest.mark.parametrize("options, ats", [
    pytest.param({"last": 3}, [97.0, 98.0, 99.0], id="the-last-three"),
    pytest.param({"last": 2, "changed_only": True}, [96.0, 99.0], id="the-last-two-changes"),
    pytest.param({"last": 2, "target": "web"}, [97.0, 99.0], id="one-target-by-bare-name"),
    pytest.param({"at": 50.0}, [50.0, 49.0], id="at-a-time-one-per-target-in-first-seen-order"),
    pytest.param({"at": 50.0, "changed_only": True}, [], id="at-a-time-then-changes"),
    pytest.param({"at": 51.0, "changed_only": True}, [51.0], id="at-a-time-one-changed"),
    pytest.param({"at": 50.0, "last": 1}, [49.0], id="at-a-time-the-last-target"),
])
def test_select_records_streams_a_file_as_a_list_would(options, ats):
    assert [r["at"] for r in select_records(_stream(100), **options)] == ats
    assert select_records(list(_stream(100)), **options) == select_records(_stream(100), **options)


#: A live run's records: wall-clock epoch times, 15 s apart from 2026-12-04T20:15:38Z
LIVE_AT = 1796415338.0
LIVE = b"".join(json.dumps({"at": LIVE_AT + 15 * i, "policy": "web", "target": "shop/web", "current": 3,
                            "desired": 4 if i == 2 else 3, "reason": "ScaleUp" if i == 2 else "WithinTolerance",
                            "metrics": {}}).encode() + b"\n" for i in range(5))


@pytest.mark.parametrize("at, shown", [
    pytest.param(None, ["2026-12-04T20:15:38Z", "2026-12-04T20:16:38Z"], id="every-record-in-utc"),
    pytest.param("2026-12-04T20:16:10Z", ["2026-12-04T20:16:08Z shop/web: 3 -> 4 [ScaleUp]"], id="a-wall-clock-time"),
    pytest.param("2026-12-04 20:16:10", ["2026-12-04T20:16:08Z"], id="a-time-without-zone-is-utc"),
    pytest.param("30s", ["2026-12-04T20:16:08Z"], id="a-duration-since-the-first-record"),
    pytest.param(str(LIVE_AT + 31), ["2026-12-04T20:16:08Z"], id="epoch-seconds"),
])
def test_explain_shows_and_selects_a_live_runs_records_by_wall_clock_time(tmp_path, at, shown):
    """`setpoint run`'s records carry epoch times: shown as UTC times (Kubernetes' own), and --at
    takes a time, or a duration since the first record (it matched nothing before: 1m is not an epoch)."""
    from typer.testing import CliRunner

    from controller.cli import app

    path = tmp_path / "decisions.jsonl"
    path.write_bytes(LIVE)
    out = CliRunner().invoke(app, ["explain", str(path), *(["--at", at] if at else [])])
    assert out.exit_code == 0, out.output
    for text in shown:
        assert text in out.output, out.output
    assert "t=" not in out.output.split("|")[0]
    if at:
        assert len(out.stdout.splitlines()) == 1


def test_explain_refuses_an_at_it_cannot_read(tmp_path):
    from typer.testing import CliRunner

    from controller.cli import app

    path = tmp_path / "decisions.jsonl"
    path.write_bytes(LIVE)
    out = CliRunner().invoke(app, ["explain", str(path), "--at", "yesterday"])
    assert out.exit_code == 1 and "--at: expected seconds, a duration since the first record" in out.output


def test_explain_refuses_json_objects_that_are_not_decision_records(tmp_path):
    """Each printed as 't= 0s None: None -> None [None]', exit 0, before."""
    from typer.testing import CliRunner

    from controller.cli import app

    path = tmp_path / "decisions.jsonl"
    path.write_bytes(b'{"foo": 1}\n{"at": 5, "target": "shop/web"}\n')
    out = CliRunner().invoke(app, ["explain", str(path)])
    assert out.exit_code == 1, out.output
    assert "None -> None" not in out.output
    assert f"skipped {path}:1: not a decision record (KeyError: 'no target, current, desired')" in \
        out.output.replace("\n", "")


@pytest.mark.parametrize("at", ["nan", "inf", "-inf"])
def test_explain_refuses_an_at_that_is_not_a_finite_number(tmp_path, at):
    """nan matched no record and inf every one, silently."""
    from typer.testing import CliRunner

    from controller.cli import app

    path = tmp_path / "decisions.jsonl"
    path.write_bytes(LIVE)
    out = CliRunner().invoke(app, ["explain", str(path), "--at", at])
    assert out.exit_code == 1 and f"--at: expected a finite number of seconds, got '{at}'" in out.output


def _held(current: int, desired: int, health: dict | None) -> dict:
    """A record whose scaling decision says ``desired``; ``health``: its health side (arbitration)."""
    r = {"controller": "policy", "policy": "p", "target": "shop/web", "at": 0.0, "current": current,
         "desired": desired, "reason": "RateLimitedDown" if desired < current else "ScaleUp", "metrics": {}}
    if health is not None:
        r["health"] = {"action": None, "reason": "NoAction", **health}
    return r


@pytest.mark.parametrize("record, changed", [
    pytest.param(_held(18, 17, {"reason": "ScaleUpCooldown", "replicas": 18}), False,
                 id="a-scale-down-the-health-side-held-is-no-change"),
    pytest.param(_held(11, 11, {"action": "scale", "reason": "ScaleUpOverloaded", "replicas": 14}), True,
                 id="a-health-scale-up-is-a-change"),
    pytest.param(_held(10, 11, {"action": "scale", "reason": "Scaling", "replicas": 11}), True,
                 id="a-scaling-decision-passed-through"),
    pytest.param(_held(11, 11, {"action": "rollback", "reason": "RollbackNewRevision", "replicas": 11}), True,
                 id="a-rollback-keeps-the-count"),
    pytest.param(_held(3, 4, None), True, id="no-health-side-the-decision-is-applied"),
    pytest.param(_held(3, 4, {"reason": "NoAction"}), True, id="a-health-side-without-replicas-as-before"),
])
def test_changes_are_what_was_applied_after_arbitration(record, changed):
    """--changes listed every cycle of a scale-down the health side held (a rollout in progress, a
    health scale-up's floor): '18 -> 17' every 15 s for 16 minutes while the workload stayed at 18."""
    assert select_records([record], changed_only=True) == ([record] if changed else [])


@pytest.mark.parametrize("record, said, unsaid", [
    pytest.param(_held(18, 17, {"reason": "ScaleUpCooldown", "replicas": 18}),
                 "\n    not applied: the scaling decision's 17; replicas stay 18 (no scale-down while a rollout", "",
                 id="held-scale-down"),
    pytest.param(_held(11, 11, {"action": "scale", "reason": "ScaleUpOverloaded", "replicas": 14}),
                 "\n    health: scale to 14 [ScaleUpOverloaded]", "not applied", id="a-health-scale-up-says-to-what"),
    pytest.param(_held(11, 12, {"action": "restart-pod", "reason": "RestartFiringPods", "replicas": 11}),
                 "not applied: the scaling decision's 12; replicas stay 11 (the health action takes this cycle",
                 "", id="a-restart-takes-the-cycle"),
    pytest.param(_held(10, 11, {"action": "scale", "reason": "Scaling", "replicas": 11}), "health: scale [Scaling]",
                 "not applied", id="applied-as-decided"),
])
def test_explain_says_when_arbitration_did_not_apply_the_scaling_decision(tmp_path, record, said, unsaid):
    from typer.testing import CliRunner

    from controller.cli import app

    path = tmp_path / "decisions.jsonl"
    path.write_text(json.dumps(record) + "\n")
    out = CliRunner().invoke(app, ["explain", str(path)])
    assert out.exit_code == 0, out.output
    assert said in out.stdout and (not unsaid or unsaid not in out.stdout)


@pytest.mark.parametrize("controller, code, said", [
    pytest.param("oracle", 1, "no decision records of controller 'oracle' in it; it holds those of policy, hpa "
                 "(--controller NAME)", id="a-controller-without-records-names-those-with"),
    pytest.param(None, 0, "showing controller policy's records\nsetpoint: this file also holds the records of hpa",
                 id="the-default-names-the-others"),
    pytest.param("hpa", 0, "this file also holds the records of policy (--controller NAME)", id="another-controller"),
])
def test_explain_names_the_controllers_a_file_holds(tmp_path, controller, code, said):
    """The hint named '(hpa, oracle, ...)' though the oracle keeps no records, and --controller
    oracle then said to pass a simulation's output folder, which it was."""
    from typer.testing import CliRunner

    from controller.cli import app

    path = tmp_path / "decisions.jsonl"
    path.write_text("".join(json.dumps({**_held(3, 3, None), "controller": c}) + "\n" for c in ("policy", "hpa")))
    out = CliRunner().invoke(app, ["explain", str(path), *(["--controller", controller] if controller else [])])
    assert out.exit_code == code, out.output
    assert said in out.output


@pytest.mark.parametrize("target, code, message", [
    pytest.param("nosuch", 1, "no decision records of target 'nosuch'; the targets in {path}: shop/web-0, shop/web-1",
                 id="no-such-target-lists-them"),
    pytest.param("web-1", 0, None, id="a-name"),
    pytest.param("shop/web-0", 0, None, id="a-whole-key"),
])
def test_explain_names_the_targets_when_target_matches_none(tmp_path, target, code, message):
    from typer.testing import CliRunner

    from controller.cli import app

    path = tmp_path / "decisions.jsonl"
    path.write_bytes(b"".join(json.dumps(record(i, target=f"shop/web-{i % 2}").to_dict()).encode() + b"\n"
                              for i in range(4)))
    out = CliRunner().invoke(app, ["explain", str(path), "-t", target])
    assert out.exit_code == code, out.output
    if message:
        assert message.format(path=path) in out.output.replace("\n", " "), out.output


@pytest.mark.parametrize("extra, shown, hidden", [
    pytest.param({"ramp": {"rps": {"slope": None, "ahead": None, "proposal": None}}}, "| ramp rps: no reading",
                 "slope -/s", id="a-ramp-without-a-reading"),
    pytest.param({"saturated": ["rps"], "saturatedLatest": {"rps": 412.0}},
                 "| saturated rps (its latest reading 412 is above the window's): read at", "(rps: latest", id="one-saturated"),
    pytest.param({"saturated": ["rps", "q"], "saturatedLatest": {"rps": 412.0}},
                 "| saturated rps, q (rps's latest reading 412 is above the window's): read at", None,
                 id="two-saturated"),
])
def test_explain_shows_a_ramp_without_a_reading_and_a_saturated_metric_plainly(extra, shown, hidden):
    from controller.cli.records import _format_record

    line = _format_record({**record(0).to_dict(), **extra})
    assert shown in line, line
    assert hidden is None or hidden not in line, line


SIMULATED = b"".join(json.dumps({"at": 15.0 * i, "controller": "policy", "policy": "web", "target": "default/web",
                                 "current": 3, "desired": 4 if i == 2 else 3,
                                 "reason": "ScaleUp" if i == 2 else "WithinTolerance", "metrics": {}}).encode() + b"\n"
                    for i in range(5))


@pytest.mark.parametrize("at, code, said", [
    pytest.param("2026-12-05T09:00:00Z", 1, "--at 2026-12-05T09:00:00Z: these are a simulation's records, timed from "
                 "its start, not by the clock", id="a-date"),
    pytest.param("now-10m", 1, "--at now-10m: these are a simulation's records", id="now-minus"),
    pytest.param("31s", 0, "t=      30s policy default/web: 3 -> 4 [ScaleUp]", id="a-duration-since-the-start"),
    pytest.param("30", 0, "t=      30s policy default/web: 3 -> 4 [ScaleUp]", id="seconds"),
])
def test_explain_refuses_a_wall_clock_at_on_a_simulations_records(tmp_path, at, code, said):
    """A simulation's records are timed from its start: `explain out/flash-crowd --at 2026-12-05T09:00:00Z`
    (or now-10m) printed its last record, as if that date were within the run."""
    from typer.testing import CliRunner

    from controller.cli import app

    path = tmp_path / "decisions.jsonl"
    path.write_bytes(SIMULATED)
    out = CliRunner().invoke(app, ["explain", str(path), "--at", at])
    assert out.exit_code == code, out.output
    assert said in out.output, out.output


@pytest.mark.parametrize("args, shown, said", [
    pytest.param(["--changes"], 40, "setpoint: the last 40 of 67 changes (--limit 67 for all)",
                 id="changes-past-the-limit"),
    pytest.param(["--limit", "3"], 3, "setpoint: the last 3 of 200 records (--limit 200 for all)",
                 id="records-past-the-limit"),
    pytest.param(["--changes", "--limit", "67"], 67, None, id="every-change-shown"),
    pytest.param(["--target", "api", "--changes"], 34, None, id="fewer-than-the-limit"),
])
def test_explain_says_when_the_limit_left_records_out(tmp_path, args, shown, said):
    """`explain --changes` printed the last 40 changes and nothing else: a queue worker's 67
    changes read as if the first were at 60 minutes (the README said: every change)."""
    from typer.testing import CliRunner

    from controller.cli import app

    path = tmp_path / "decisions.jsonl"
    path.write_text("".join(json.dumps({**r, "reason": "X", "metrics": {}}) + "\n" for r in _stream(200)))
    out = CliRunner().invoke(app, ["explain", str(path), *args])
    assert out.exit_code == 0, out.output
    assert len(out.stdout.splitlines()) == shown
    assert (said in out.stderr) if said else ("the last" not in out.stderr), out.stderr
