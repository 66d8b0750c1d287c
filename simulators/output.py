"""Write a simulation's results: result.json, report.html and decisions.jsonl in one folder.

Each file is written to a temporary name and renamed, so an interrupted run never leaves a
half-written result next to a complete one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from controller.runtime.files import write_text_atomic
from simulators.result import SimResult
from simulators.runner import CycleLog
from simulators.score import result_json


def write_decisions(logs: dict[str, CycleLog], path: Path, start_s: float) -> Path:
    """One JSON object per target per cycle, tagged with its controller; ``at`` is seconds
    since the scenario start. Written line by line: a long run has millions of records, and
    holding them all as text would need more memory than the simulation itself."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for controller, log in logs.items():
            if log.start_s != start_s:
                log.start_s = start_s  # the times of records not yet written out (the usual case: the same)
            tag = '{"controller":' + json.dumps(controller) + ","
            for line in log.lines():  # '{"policy":...}': the controller goes first, as a tag
                fh.write(tag + line[1:] if line != "{}" else tag[:-1] + "}")
                fh.write("\n")
    os.replace(tmp, path)
    return path


def write_outputs(result: SimResult, logs: dict[str, CycleLog], out_dir: str | Path, start_s: float,
                  report: bool = True) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"result": write_text_atomic(out / "result.json", json.dumps(result_json(result), indent=2, allow_nan=False) + "\n"),
             "decisions": write_decisions(logs, out / "decisions.jsonl", start_s)}
    if report:
        from simulators.report import report_html  # matplotlib: loaded only when a report is written

        paths["report"] = write_text_atomic(out / "report.html", report_html(result))
    return paths
