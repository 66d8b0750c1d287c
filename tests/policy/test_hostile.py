"""Hostile policy and scenario files through the real CLI, in a process under a memory limit (one
process for the module's commands, tests/support/cli_process.py).

Each file gives exit 1 with a message naming the file (and the line where there is one) and no
traceback, within seconds and 1 GiB of address space; or exit 0 for a file that is valid. Small
files are committed in tests/policy/hostile/; big or binary ones are generated here.
"""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest

from controller.policy.yamlsrc import FIFO_WAIT_S, MAX_DEPTH, MAX_FILE_BYTES
from tests.policy.helpers import BASE
from tests.support.cli_process import CliProcess

REPO = Path(__file__).resolve().parents[2]
HOSTILE = Path(__file__).resolve().parent / "hostile"
MEMORY_LIMIT_BYTES = 1 << 30
#: Seconds per command: generous for a loaded CI machine; an alias bomb took minutes before.
TIMEOUT_S = 30

DEEP = f"nested deeper than {MAX_DEPTH} levels"
BOMB = "values once aliases are expanded"
SCENARIO = (REPO / "simulators" / "scenarios" / "steady.yaml").read_text()


@pytest.fixture(scope="module")
def limited():
    """The module's commands, each under the memory limit (one process for them all)."""
    cli = CliProcess(MEMORY_LIMIT_BYTES, env=dict(os.environ, NO_COLOR="1", COLUMNS="200"))
    yield cli
    cli.close()


def setpoint(limited: CliProcess, *args: str | Path, cwd: Path | None = None,
             timeout_s: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    return limited.run(*args, cwd=cwd or Path.cwd(), timeout_s=timeout_s)


def assert_rejected(proc: subprocess.CompletedProcess, path: Path, line: int | None, message: str) -> str:
    """Exit 1, no traceback, and a first error line ``path[:line]: ... message ...``; returns that line."""
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "Traceback" not in output, output
    first = next(ln for ln in output.splitlines() if str(path) in ln)
    prefix = f"{path}:{line}: " if line is not None else f"{path}: "
    assert prefix in first and message in first, first
    assert len(first) < 500, first  # huge values are clipped, not echoed
    return first


# ------------------------------------------------------------------ generated files
def _policy_bytes(encoding: str) -> bytes:
    return BASE.replace("metadata: {name: shop}", "metadata: {name: shop, labels: {owner: café}}").encode(encoding)


GENERATED = {
    "deep-flow-10k": lambda: ("x: " + "[" * 10_000 + "]" * 10_000 + "\n").encode(),
    "deep-flow-mapping-10k": lambda: ("x: " + "{a: " * 10_000 + "1" + "}" * 10_000 + "\n").encode(),
    "deep-block-sequence-10k": lambda: ("x:\n" + "- " * 10_000 + "1\n").encode(),
    "deep-block-mapping-1000": lambda: "".join(" " * i + f"k{i}:\n" for i in range(1000)).encode(),
    "binary": lambda: random.Random(8).randbytes(4096),
    "binary-without-nul": lambda: random.Random(8).randbytes(4096).replace(b"\0", b"\x01"),
    "nul-byte": lambda: BASE.replace("kind: Policy", "kind: Po\0licy").encode(),
    "control-character": lambda: BASE.replace("kind: Policy", "kind: Po\x07licy").encode(),
    "utf-16-with-bom": lambda: _policy_bytes("utf-16"),
    "utf-16-le-without-bom": lambda: _policy_bytes("utf-16-le"),
    "utf-32": lambda: _policy_bytes("utf-32"),
    "latin-1": lambda: _policy_bytes("latin-1"),
    "integer-of-5000-digits": lambda: BASE.replace("max: 10", "max: " + "9" * 5000).encode(),
    "just-over-the-size-limit": lambda: b"#" * MAX_FILE_BYTES + b"\nx: 1\n",
}


@pytest.mark.parametrize("name, line, message", [
    pytest.param("deep-flow-10k", 1, DEEP, id="deep-flow-10k"),
    pytest.param("deep-flow-mapping-10k", 1, DEEP, id="deep-flow-mapping-10k"),
    pytest.param("deep-block-sequence-10k", 2, DEEP, id="deep-block-sequence-10k"),
    pytest.param("deep-block-mapping-1000", 64, DEEP, id="deep-block-mapping-1000"),
    pytest.param("binary", 1, "binary data (a NUL byte)", id="binary"),
    pytest.param("binary-without-nul", 1, "not UTF-8 text (byte 0x", id="binary-without-nul"),
    pytest.param("nul-byte", 2, "binary data (a NUL byte)", id="nul-byte"),
    pytest.param("control-character", 2, "special characters are not allowed (U+0007)", id="control-character"),
    pytest.param("utf-16-with-bom", 1, "UTF-16 byte-order mark; save it as UTF-8", id="utf-16-with-bom"),
    pytest.param("utf-16-le-without-bom", 1, "binary data (a NUL byte)", id="utf-16-without-bom"),
    pytest.param("utf-32", 1, "UTF-32 byte-order mark", id="utf-32"),
    pytest.param("latin-1", 3, "not UTF-8 text (byte 0xe9 at line 3)", id="latin-1"),
    pytest.param("integer-of-5000-digits", 7, "a number of 5,000 characters", id="integer-of-5000-digits"),
    pytest.param("just-over-the-size-limit", None, "file too large: 1,048,582 bytes", id="just-over-the-size-limit"),
])
def test_generated_hostile_policy_is_rejected(limited, tmp_path, name, line, message):
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(GENERATED[name]())
    proc = setpoint(limited, "validate", path)
    assert_rejected(proc, path, line, message)


def test_a_50_mb_file_is_refused_without_reading_it(limited, tmp_path):
    path = tmp_path / "huge.yaml"
    with path.open("wb") as out:
        out.write(BASE.encode())
        chunk = b"# padding\n" * 100_000
        for _ in range(50):
            out.write(chunk)
    proc = setpoint(limited, "validate", path)
    assert_rejected(proc, path, None, f"file too large: {path.stat().st_size:,} bytes, the limit is 1,048,576")


# ------------------------------------------------------------------ committed files
@pytest.mark.parametrize("name, line, message", [
    pytest.param("alias-bomb.yaml", 11, BOMB, id="alias-bomb"),
    pytest.param("alias-bomb-small.yaml", 5, BOMB, id="alias-bomb-small"),
    pytest.param("alias-bomb-merge.yaml", 12, BOMB, id="alias-bomb-merge"),
    pytest.param("recursive-alias.yaml", 6, "recursive YAML alias", id="recursive-alias"),
    pytest.param("replicas-1e19.yaml", 7, "spec.replicas.max: must be <= 100000, got 10000000000000000000",
                 id="replicas-1e19"),
    pytest.param("replicas-float-1e19.yaml", 7, "spec.replicas.max: expected an integer, got 1e+19",
                 id="replicas-float-1e19"),
    pytest.param("replicas-10-pow-30.yaml", 7, "spec.replicas.max: must be <= 100000, got 1" + "0" * 30,
                 id="replicas-10-pow-30"),
    pytest.param("replicas-4000-digits.yaml", 7, "must be <= 100000, got 99999", id="replicas-4000-digits"),
    pytest.param("interval-999999999999999d.yaml", 6, "spec.interval: must be at most 24h, got 999999999999999d",
                 id="interval-999999999999999d"),
    pytest.param("interval-zero.yaml", 6, "spec.interval: must be at least 1s, got 0s", id="interval-zero"),
    pytest.param("target-inf.yaml", 9, "averagePerReplica: expected a finite number, got inf", id="target-inf"),
    pytest.param("target-nan.yaml", 9, "averagePerReplica: expected a finite number, got nan", id="target-nan"),
    pytest.param("target-1e300.yaml", 9, "averagePerReplica: must be <= 1000000000000000, got 1e+300",
                 id="target-1e300"),
    pytest.param("window-too-many-samples.yaml", 10, "window.length: must be <= 2h46m40s (10000 samples of the 1s "
                 "interval), got 720h", id="window-too-many-samples"),
])
def test_committed_hostile_policy_is_rejected(limited, name, line, message):
    path = HOSTILE / name
    assert_rejected(setpoint(limited, "validate", path), path, line, message)


def test_every_committed_hostile_file_is_in_a_table():
    named = {p.values[0] for p in test_committed_hostile_policy_is_rejected.pytestmark[0].args[1]}
    assert sorted(p.name for p in HOSTILE.glob("*.yaml")) == sorted(named | {"at-the-bounds.yaml"})


def test_a_policy_at_every_bound_validates_and_simulates(limited, tmp_path):
    path = HOSTILE / "at-the-bounds.yaml"
    proc = setpoint(limited, "validate", path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f"{path}: ok, 1 policy")
    # A whole simulation, not a refusal: more time than TIMEOUT_S on a CI machine busy with parallel tests.
    proc = setpoint(limited, "simulate", "steady", "--policy", path, "--baseline", "fixed-max", "--no-report",
                   "--out", tmp_path / "out", timeout_s=4 * TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "out" / "result.json").exists()


@pytest.mark.parametrize("command", [
    pytest.param(("validate",), id="validate"),
    pytest.param(("simulate", "--out", "out"), id="simulate"),
])
def test_a_named_pipe_without_a_writer_is_not_waited_on_forever(limited, tmp_path, command):
    """open() of a FIFO blocks until something writes to it: the command hung forever."""
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    proc = setpoint(limited, command[0], path, *command[1:], cwd=tmp_path)
    assert_rejected(proc, path, None, f"cannot read: nothing was written to this named pipe within {FIFO_WAIT_S:g} s")


def test_a_named_pipe_with_a_writer_is_read_to_its_end(limited, tmp_path):
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    writer = subprocess.Popen(["sh", "-c", f"sleep 1; cat > '{path}'"], stdin=subprocess.PIPE)
    try:
        writer.stdin.write(BASE.encode())
        writer.stdin.close()
        proc = setpoint(limited, "validate", path)
    finally:
        writer.wait(timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_utf8_byte_order_mark_is_accepted(limited, tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + BASE.encode())
    proc = setpoint(limited, "validate", path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name, line, message", [
    pytest.param("alias-bomb.yaml", 11, BOMB, id="alias-bomb"),
    pytest.param("interval-999999999999999d.yaml", 6, "must be at most 24h", id="interval-999999999999999d"),
])
def test_simulate_refuses_a_hostile_policy(limited, tmp_path, name, line, message):
    path = HOSTILE / name
    assert_rejected(setpoint(limited, "simulate", "steady", "--policy", path, "--out", tmp_path), path, line, message)


# ------------------------------------------------------------------ scenario files (the same reader)
SCENARIOS = {
    "alias-bomb": lambda: SCENARIO.replace("  seed: 1\n", "  seed: 1\n  x0: &x0 [a, a, a, a, a, a, a, a]\n" + "".join(
        f"  x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 8)}]\n" for i in range(1, 9))).encode(),
    "deep-nesting": lambda: SCENARIO.replace("  seed: 1\n", "  seed: " + "[" * 10_000 + "]" * 10_000 + "\n").encode(),
    "binary": lambda: random.Random(5).randbytes(2048).replace(b"\0", b"\x01"),
}


@pytest.mark.parametrize("name, line, message", [
    pytest.param("alias-bomb", 16, BOMB, id="alias-bomb"),
    pytest.param("deep-nesting", 11, DEEP, id="deep-nesting"),
    pytest.param("binary", 1, "not UTF-8 text", id="binary"),
])
def test_simulate_refuses_a_hostile_scenario(limited, tmp_path, name, line, message):
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(SCENARIOS[name]())
    assert_rejected(setpoint(limited, "simulate", path, "--out", tmp_path / "out"), path, line, message)
