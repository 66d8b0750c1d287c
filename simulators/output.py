"""Write a simulation's results: result.json, report.html and decisions.jsonl in one folder.

Each file is written to a temporary name and renamed, and result.json last, after the earlier
run's files were removed: an interrupted run never leaves a half-written file, nor its own files
beside another run's.
"""

from __future__ import annotations

import json
from pathlib import Path

from controller.runtime.files import atomic_writer, remove_earlier, write_text_atomic
from simulators.result import SimResult
from simulators.runner import CycleLog
from simulators.score import result_json


def write_decisions(logs: dict[str, CycleLog], path: Path, start_s: float) -> Path:
    """One JSON object per target per cycle, tagged with its controller; ``at`` is seconds
    since the scenario start. Written a block of lines at a time: a long run has millions of
    records, and holding them all as text would need more memory than the simulation itself."""
    with atomic_writer(path) as fh:
        for controller, log in logs.items():
            if log.start_s != start_s:
                log.start_s = start_s  # the times of records not yet written out (the usual case: the same)
            tag = '{"controller":' + json.dumps(controller) + ","
            for block in log.blocks():
                fh.write(tagged(block, tag))
    return path


def tagged(block: str, tag: str) -> str:
    """Each line of ``block`` (JSON objects, one a line, each line ending with a newline) with
    ``tag`` (``{"controller":"x",``) in place of its opening brace: the controller goes first
    (an empty object ``{}`` becomes ``{"controller":"x"}``)."""
    out = (tag + block[1:]).replace("\n{", "\n" + tag) if block else block
    return out.replace(tag + "}\n", tag[:-1] + "}\n")


#: A simulation's files, the one that marks a complete set first (it is written last).
OUTPUT_FILES = ("result.json", "decisions.jsonl", "report.html")


def write_outputs(result: SimResult, logs: dict[str, CycleLog], out_dir: str | Path, start_s: float,
                  report: bool = True) -> dict[str, Path]:
    """OUT/result.json, OUT/decisions.jsonl and OUT/report.html (with ``report``). An earlier
    run's files go first and result.json comes last, so a folder with a result.json holds one
    run's files, all of them (a run killed midway leaves none; --no-report leaves no old report)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    remove_earlier(out, OUTPUT_FILES)
    decisions = write_decisions(logs, out / "decisions.jsonl", start_s)
    report_path = None
    if report:
        from simulators.report import report_html  # matplotlib: loaded only when a report is written

        report_path = write_text_atomic(out / "report.html", report_html(result))
    paths = {"result": write_text_atomic(out / "result.json", json.dumps(result_json(result), indent=2,
                                                                         allow_nan=False) + "\n"),
             "decisions": decisions}
    return paths | ({"report": report_path} if report_path else {})
