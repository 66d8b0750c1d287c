"""docs/simulation.md's queue worker: the bundled example on its backlog and its arrival rate; on the
backlog alone (the example as it was) it scales to min and back. The scenario is read from the
docs, so the two stay alike."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: What the example was: its backlog alone, a 10-minute window and 2 pods a minute down.
AS_IT_WAS = (
    (re.compile(r"      # Jobs produced per second.*?target: \{averagePerReplica: 45\}\n", re.S), ""),
    (re.compile(r"scaleDown: \{stabilizationWindow: 5m, policies: \[\{type: Percent, value: 50, period: 1m\}\]\}"),
     "scaleDown: {stabilizationWindow: 10m, policies: [{type: Pods, value: 2, period: 1m}]}"),
)


def docs_scenario() -> str:
    """The queue-burst scenario as docs/simulation.md shows it."""
    text = (ROOT / "docs" / "simulation.md").read_text()
    return re.search(r"```yaml\n(apiVersion: setpoint/v1\nkind: Scenario\nmetadata: \{name: queue-burst.*?)```",
                     text, re.S).group(1)


@pytest.mark.parametrize("as_it_was, changes, reversals, replica_hours", [
    pytest.param(False, 17, 0, 14.30, id="the-example-backlog-and-arrivals"),
    pytest.param(True, 65, 6, 27.43, id="backlog-alone"),
])
def test_a_queue_worker_on_its_backlog_alone_goes_to_min_and_back(tmp_path, as_it_was, changes, reversals,
                                                                   replica_hours):
    policy = (ROOT / "policies" / "queue-worker.yaml").read_text()
    for pattern, replacement in AS_IT_WAS if as_it_was else ():
        policy, n = pattern.subn(replacement, policy)
        assert n == 1, pattern
    (tmp_path / "worker.yaml").write_text(policy)
    (tmp_path / "queue-burst.yaml").write_text(docs_scenario())
    proc = subprocess.run([sys.executable, "-m", "controller.cli", "simulate", "queue-burst.yaml", "-p", "worker.yaml",
                           "--no-frontier", "--no-report", "--jobs", "1", "-o", "out"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    runs = json.loads((tmp_path / "out" / "result.json").read_text())["controllers"]
    got = runs["policy"]
    assert (got["replica_changes"], got["reversals"], round(got["replica_hours"], 2),
            got["slo_violation_minutes"]) == (changes, reversals, replica_hours, 0)
    assert (runs["hpa"]["replica_changes"], round(runs["hpa"]["replica_hours"], 2),
            runs["hpa"]["slo_violation_minutes"]) == (18, 10.89, 4)
