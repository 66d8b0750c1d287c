"""docs/simulation.md's queue worker: a backlog alone scales to min and back; the arrival rate as a
second metric holds the steady state. The scenario is read from the docs, so the two stay alike."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARRIVALS = """\
      - name: arrivals
        query: sum by (namespace, deployment) (rate(jobs_enqueued_total{namespace="jobs"}[1m]))
        target: {averagePerReplica: 45}
"""


def docs_scenario() -> str:
    """The queue-burst scenario as docs/simulation.md shows it."""
    text = (ROOT / "docs" / "simulation.md").read_text()
    return re.search(r"```yaml\n(apiVersion: setpoint/v1\nkind: Scenario\nmetadata: \{name: queue-burst.*?)```",
                     text, re.S).group(1)


@pytest.mark.parametrize("arrivals, changes, reversals, replica_hours", [
    pytest.param(False, 65, 6, 27.43, id="backlog-alone"),
    pytest.param(True, 30, 0, 24.60, id="backlog-and-arrivals"),
])
def test_a_queue_worker_on_its_backlog_alone_goes_to_min_and_back(tmp_path, arrivals, changes, reversals,
                                                                   replica_hours):
    policy = (ROOT / "policies" / "queue-worker.yaml").read_text()
    if arrivals:
        policy = policy.replace("        target: {averagePerReplica: 500}\n",
                                "        target: {averagePerReplica: 500}\n" + ARRIVALS)
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
