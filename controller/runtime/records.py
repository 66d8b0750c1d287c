"""Decision records as JSON lines: written by the live loop and the simulator, read by `setpoint explain`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Iterable, Iterator

from controller.model import DecisionRecord, jsonable


class RecordWriter:
    """Appends one JSON object per line; flushes after every cycle so a crash loses at most one."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] = open(self.path, "a", encoding="utf-8")

    def write(self, records: Iterable[DecisionRecord]) -> None:
        for r in records:
            self._fh.write(json.dumps(jsonable(r.to_dict()), separators=(",", ":")) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


def read_records(path: str | Path) -> Iterator[dict]:
    """Yield records from a JSON-lines file, skipping a torn last line left by a crash."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def select_records(records: Iterable[dict], target: str | None = None, at: float | None = None,
                   policy: str | None = None) -> list[dict]:
    """Filter by target (full key or bare name), policy, and time.

    With ``at``, keep for each target the last record at or before that time.
    """
    def matches(r: dict) -> bool:
        if policy and r.get("policy") != policy:
            return False
        if target and r.get("target") != target and str(r.get("target", "")).rsplit("/", 1)[-1] != target:
            return False
        return at is None or r.get("at", 0) <= at

    chosen = [r for r in records if matches(r)]
    if at is None:
        return chosen
    last: dict[tuple, dict] = {}
    for r in chosen:
        last[(r.get("policy"), r.get("target"))] = r
    return list(last.values())
