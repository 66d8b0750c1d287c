"""Hostile scenarios and trace files, run as a user runs them: `setpoint simulate FILE` in a
process limited to 1.5 GiB of address space and a few seconds (one process for the module's
commands, tests/support/cli_process.py). Each is refused with exit 1 and one clear line naming
the file and field (and the memory estimate where memory is the problem), never a traceback,
never an out-of-memory death."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from controller.errors import ScenarioError
from simulators.load import MAX_TRACE_BYTES, load_trace
from tests.simulators.conftest_paths import REPO
from tests.support.cli_process import CliProcess

MEMORY_LIMIT_BYTES = 1536 * 2**20
TIMEOUT_S = 60  # generous for a loaded CI machine; a refusal takes about 2 s


@pytest.fixture(scope="module")
def limited():
    """The module's commands, each under the memory limit (one process for them all)."""
    cli = CliProcess(MEMORY_LIMIT_BYTES)
    yield cli
    cli.close()


def simulate(limited: CliProcess, path: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return limited.run("simulate", path, "--out", tmp_path / "out", "--no-report", *extra, cwd=tmp_path,
                       timeout_s=TIMEOUT_S)


def scenario(duration="1h", tick="5s", count=1, load="- constant: {rps: 100}", capacity="100", extra=""):
    return f"""apiVersion: setpoint/v1
kind: Scenario
metadata: {{name: hostile}}
spec:
  duration: {duration}
  tick: {tick}
  slo: {{latency: {{below: 250ms}}}}
  services:
    - name: web
      count: {count}
      capacityPerPod: {capacity}
      load:
        {load}
{extra}"""


def trace_load(name: str) -> str:
    return "- trace: {file: " + name + ", peakRps: 100}"


TRACE_HEADER = b"timestamp,value\n"


def rows(*values) -> bytes:
    return b"".join(f"2020-01-01T00:{i:02d}:00Z,{v}\n".encode() for i, v in enumerate(values))


#: In place of a trace file's bytes: a folder, a named pipe of that name.
FOLDER, PIPE = object(), object()
# (scenario text, trace file bytes or None, words the message must hold)
HOSTILE = [
    pytest.param(scenario(duration="400d", tick="1ms"), None, ["spec.tick", "at least 100ms"], id="400-days-at-1ms"),
    pytest.param(scenario(tick="0s"), None, ["spec.tick", "at least 100ms"], id="tick-0"),
    pytest.param(scenario(duration="-5m"), None, ["spec.duration"], id="negative-duration"),
    pytest.param(scenario(duration="99999999999999999999999d"), None, ["spec.duration", "at most"], id="duration-1e23-days"),
    pytest.param(scenario(duration="9" * 400 + "s"), None, ["spec.duration"], id="duration-overflows-to-inf"),
    pytest.param(scenario(load="- constant: {rps: 1.0e+308}"), None, ["rps", "must be <= 1000000000, got 1e+308"], id="rps-1e308"),
    pytest.param(scenario(capacity="1.0e+308"), None, ["capacityPerPod", "must be <= 1000000000"], id="capacity-1e308"),
    pytest.param(scenario(capacity=".nan"), None, ["capacityPerPod"], id="capacity-nan"),
    pytest.param(scenario(load="- constant: {rps: .inf}"), None, ["rps"], id="rps-inf"),
    pytest.param(scenario(count=10**30), None, ["count"], id="count-1e30"),
    pytest.param(scenario(extra="  seed: -1\n"), None, ["spec.seed"], id="negative-seed"),
    pytest.param(scenario(extra="  metricsWindow: 400d\n"), None, ["metricsWindow"], id="metrics-window-400d"),
    pytest.param(scenario(duration="400d", tick="300s", load="- noise: {sigma: 0.1, every: 1ms}"), None,
                 ["every", "at least the tick"], id="noise-every-1ms"),
    pytest.param(scenario(extra="  faults:\n    - {kind: pod-crash, at: 1m, count: 100000000000000000000}\n"), None,
                 ["count"], id="pod-crash-count-1e20"),
    pytest.param(scenario(load=trace_load("nan.csv")), TRACE_HEADER + rows(60, "nan", 60), ["nan.csv:3", "finite"],
                 id="trace-nan"),
    pytest.param(scenario(load=trace_load("inf.csv")), TRACE_HEADER + rows(60, 60, "inf"), ["inf.csv:4", "finite"],
                 id="trace-inf"),
    pytest.param(scenario(load=trace_load("neg.csv")), TRACE_HEADER + rows(60, -5, 60), ["neg.csv:3", "in [0, "],
                 id="trace-negative"),
    pytest.param(scenario(load=trace_load("zero.csv")), TRACE_HEADER + rows(0, 0, 0, 0), ["zero.csv", "every value is 0"],
                 id="trace-all-zero"),
    pytest.param(scenario(load=trace_load("bin.csv")), TRACE_HEADER + rows(60, 60) + b"\x00\x01\x02\xff" * 100,
                 ["bin.csv:4", "binary"], id="trace-binary"),
    pytest.param(scenario(load=trace_load("latin1.csv")), TRACE_HEADER + rows(60) + "2020-01-01T00:01:00Z,6é\n".encode(
        "latin-1"), ["latin1.csv:3", "UTF-8"], id="trace-not-utf8"),
    pytest.param(scenario(load=trace_load("empty.csv")), b"", ["empty.csv", "empty"], id="trace-empty"),
    pytest.param(scenario(load=trace_load("cols.csv")), TRACE_HEADER + b"2020-01-01T00:00:00Z\n", ["cols.csv:2"],
                 id="trace-missing-column"),
    pytest.param(scenario(load=trace_load("header.csv")), b"time\n" + rows(60, 60), ["header.csv:1", "header"],
                 id="trace-wrong-header"),
    pytest.param(scenario(load=trace_load("stamp.csv")), TRACE_HEADER + rows(60) + b"2020-13-45T99:00:00Z,60\n",
                 ["stamp.csv:3", "ISO-8601"], id="trace-bad-timestamp"),
    pytest.param(scenario(load=trace_load("back.csv")), TRACE_HEADER + b"2020-01-01T00:05:00Z,3\n2020-01-01T00:01:00Z,5\n",
                 ["back.csv:3", "2020-01-01T00:01:00Z is not after 2020-01-01T00:05:00Z of line 2"], id="trace-unsorted"),
    pytest.param(scenario(load=trace_load("ms.csv")), TRACE_HEADER + b"2020-01-01T00:00:00.000Z,3\n2020-01-01T00:00:00.500Z,5\n",
                 ["ms.csv:3", "read to the whole second"], id="trace-sub-second-steps"),
    pytest.param(scenario(load=trace_load("huge.csv")), TRACE_HEADER + rows(60, "1e308"), ["huge.csv:3"],
                 id="trace-value-1e308"),
    # a leak that OOM-kills a container thousands of times per tick: a RuntimeError after 10,000 rounds
    pytest.param(scenario(extra="  faults:\n    - {kind: memory-leak, at: 1m, mibPerSecond: 1.0e+9}\n"), None,
                 ["spec.faults[0].mibPerSecond", "must be at most 153.6 with a 5s tick", "got 1e+09"],
                 id="memory-leak-1e9-mib-per-second"),
    # 100,000 MiB/s: under the engine's round limit, so a crawl instead (over a minute for 1 h)
    pytest.param(scenario(extra="  faults:\n    - {kind: memory-leak, at: 1m, mibPerSecond: 100000}\n"), None,
                 ["spec.faults[0].mibPerSecond", "at most 153.6"], id="memory-leak-100000-mib-per-second"),
    pytest.param(scenario(tick="300s", extra="  faults:\n    - {kind: memory-leak, at: 1m, mibPerSecond: 3}\n"), None,
                 ["spec.faults[0].mibPerSecond", "at most 2.56 with a 300s tick"], id="memory-leak-faster-than-a-long-tick"),
    # NaT parses as a timestamp (the smallest int64): the trace was accepted with a 2.9e11-year interval
    pytest.param(scenario(load=trace_load("nat.csv")), TRACE_HEADER + b"NaTZ,60\n" + rows(60), ["nat.csv:2", "ISO-8601",
                 "'NaTZ'"], id="trace-nat-timestamp"),
    pytest.param(scenario(load=trace_load("nat2.csv")), TRACE_HEADER + rows(60) + b"natZ,60\n", ["nat2.csv:3", "ISO-8601"],
                 id="trace-lowercase-nat-timestamp"),
    # a window below the clock's resolution holds no row: a ValueError (peakRps) or IndexError before
    pytest.param(scenario(load="- trace: {file: w.csv, peakRps: 100, start: 2m, duration: 0.0000001ms}"),
                 TRACE_HEADER + rows(60, 60, 60, 60), ["load[0].trace.duration", "holds no row of the trace"],
                 id="trace-empty-window-with-peak"),
    pytest.param(scenario(load="- trace: {file: w2.csv, start: 2m, duration: 0.0000001ms}"),
                 TRACE_HEADER + rows(60, 60, 60, 60), ["load[0].trace.duration", "holds no row of the trace"],
                 id="trace-empty-window"),
    # the replay's own checks name the scenario file's fields, not the loader's (start_offset_s, peak_rps)
    pytest.param(scenario(load="- trace: {file: late.csv, start: 1d}"), TRACE_HEADER + rows(60, 60, 60, 60),
                 ["load[0].trace.start: late: must be in [0, 240)", "got 86400"], id="trace-start-past-its-end"),
    pytest.param(scenario(load="- trace: {file: quiet.csv, peakRps: 100, start: 2m}"),
                 TRACE_HEADER + rows(60, 60, 0, 0, 0, 0), ["load[0].trace.peakRps: quiet: the replayed window", "all 0"],
                 id="trace-peak-of-a-window-of-zeros"),
    # these said "trace not found: ... (set SETPOINT_TRACES_DIR or provide ../shared/data/traces)"
    pytest.param(scenario(load=trace_load("dir.csv")), FOLDER, ["load[0].trace: ", "dir.csv: is a folder, not a CSV"],
                 id="trace-a-folder"),
    pytest.param(scenario(load=trace_load("pipe.csv")), PIPE, ["load[0].trace: ", "pipe.csv: is a device, pipe or "
                 "socket, not a CSV file"], id="trace-a-pipe"),
]


@pytest.mark.parametrize("text, trace, words", HOSTILE)
def test_hostile_scenario_is_refused_with_one_clear_line(limited, tmp_path, text, trace, words):
    if trace is not None:
        name = text.split("file: ")[1].split(",")[0]
        if trace is FOLDER:
            (tmp_path / name).mkdir()
        elif trace is PIPE:
            os.mkfifo(tmp_path / name)
        else:
            (tmp_path / name).write_bytes(trace)
        text = text.replace(f"file: {name}", f"file: {tmp_path / name}")
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    proc = simulate(limited, path, tmp_path)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(str(path)), lines[0]
    for word in words:
        assert word in lines[0], lines[0]


def test_the_fastest_leak_allowed_runs(limited, tmp_path):
    """At the bound (153.6 MiB/s with a 5 s tick) a container is OOM-killed once per tick at most."""
    path = tmp_path / "leak.yaml"
    path.write_text(scenario(duration="10m", extra="  faults:\n    - {kind: memory-leak, at: 1m, mibPerSecond: 153.6}\n"))
    proc = simulate(limited, path, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_longest_finest_scenario_streams_in_bounded_memory(tmp_path):
    """400 days at 100 ms (345,600,000 ticks, every bound at once) is no longer refused for
    memory: runs stream, so its estimate is that of a short run (it would take hours, with a
    progress bar; it is not run here)."""
    from simulators.memory import scenario_peak_bytes
    from simulators.runner import standard_controllers
    from simulators.scenario import load_scenario_text
    from controller.policy import load_policies

    policy = load_policies([REPO / "policies" / "setpoint-default.yaml"])[0]
    longest = load_scenario_text(scenario(duration="400d", tick="100ms"), "longest.yaml")
    short = load_scenario_text(scenario(duration="1h", tick="100ms"), "short.yaml")
    assert longest.tick_count == 345_600_000
    controllers = standard_controllers(policy, [], None, 20)
    assert scenario_peak_bytes(longest, controllers) <= 1.5 * scenario_peak_bytes(short, controllers)
    assert scenario_peak_bytes(longest, controllers) < 2**30


def test_the_widest_month_is_refused_under_a_smaller_limit_naming_its_size(limited, tmp_path):
    """30 days x 10,000 services (the most a scenario may have) streams in a few hundred MiB, under
    the test's address-space limit since the recorder works in 32-tick blocks; under a smaller
    --max-memory it is refused up front, naming its size and what to change."""
    path = tmp_path / "wide.yaml"
    path.write_text(scenario(duration="30d", count=10000))
    proc = simulate(limited, path, tmp_path, "--max-memory", "256MiB")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    for words in ("needs about", "518,400 ticks x 10,000 services", "use fewer services"):
        assert words in proc.stderr


def test_max_memory_refuses_what_the_default_allows_and_says_so(limited, tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(scenario(duration="10m"))
    proc = simulate(limited, path, tmp_path, "--max-memory", "64MiB")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "more than the limit of 64 MiB (--max-memory)" in proc.stderr and "raise --max-memory" in proc.stderr
    ok = simulate(limited, path, tmp_path)
    assert ok.returncode == 0, ok.stderr[-2000:]


def test_an_unreadable_max_memory_is_a_usage_error(limited, tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(scenario(duration="10m"))
    proc = simulate(limited, path, tmp_path, "--max-memory", "lots")
    assert proc.returncode == 1 and "--max-memory" in proc.stderr and "Traceback" not in proc.stderr


def test_an_oversized_trace_is_refused_before_it_is_read(tmp_path):
    big = tmp_path / "big.csv"
    with big.open("wb") as fh:
        fh.write(TRACE_HEADER + rows(60, 60))
        fh.truncate(MAX_TRACE_BYTES + 1)  # sparse: no disk, and no time to write it
    with pytest.raises(ScenarioError) as err:
        load_trace(big)
    (error,) = err.value.errors
    assert error.file == str(big) and "more than the 32 MiB" in error.message


@pytest.mark.parametrize("text", [
    pytest.param(scenario(duration="10m", capacity="1.0e-300"), id="capacity-1e-300"),
    pytest.param(scenario(duration="10m", capacity="1.0e+9", load="- constant: {rps: 1.0e+9}"), id="rates-at-the-bound"),
    pytest.param(scenario(duration="10m", tick="100ms"), id="tick-at-the-bound"),
])
def test_extreme_but_valid_scenarios_run(limited, tmp_path, text):
    path = tmp_path / "extreme.yaml"
    path.write_text(text)
    proc = simulate(limited, path, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr
    assert (tmp_path / "out" / "result.json").exists()
