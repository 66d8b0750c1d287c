"""Decision records as JSON lines: written by the live loop and the simulator, read by `setpoint explain`."""

from __future__ import annotations

import json
import os
import sys
from collections import deque
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator

from controller.model import DecisionRecord, jsonable


#: Defaults of `setpoint run --records-max-bytes / --records-keep`: at most 50 MiB x (1 + 3) on disk.
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_KEEP = 3


class RecordWriter:
    """Appends one JSON object per line; flushes after every cycle so a crash loses at most one.

    Size-bounded: when a cycle's lines would take the file past ``max_bytes``, the file is rotated
    first (``decisions.jsonl`` -> ``.1`` -> ... -> ``.{keep}``, the oldest dropped), so a cycle's
    lines never straddle two files and on disk there are at most ``(keep + 1) * max_bytes`` (more
    only if one cycle alone writes more than ``max_bytes``). ``max_bytes=None`` never rotates.
    ``path="-"`` writes to standard output and never rotates.
    """

    def __init__(self, path: str | Path, max_bytes: int | None = DEFAULT_MAX_BYTES, keep: int = DEFAULT_KEEP):
        if max_bytes is not None and max_bytes <= 0:
            raise ValueError(f"records max bytes must be positive, got {max_bytes}")
        if keep < 0:
            raise ValueError(f"records keep must be 0 or more, got {keep}")
        self.stdout = str(path) == "-"
        self.path = Path(path)
        self.max_bytes, self.keep = (None if self.stdout else max_bytes), keep
        self._fh: IO[bytes] = sys.stdout.buffer if self.stdout else self._open()

    def _open(self) -> IO[bytes]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "ab")
        self._size = fh.tell()
        if self._size and not _ends_with_newline(self.path):
            # a crash tore the last line: end it, so the next record starts on a line of its own
            fh.write(b"\n")
            self._size += 1
        return fh

    def write(self, records: Iterable[DecisionRecord]) -> None:
        data = b"".join(json.dumps(jsonable(r.to_dict()), separators=(",", ":")).encode() + b"\n" for r in records)
        if not data:
            return
        if self.max_bytes is not None and self._size and self._size + len(data) > self.max_bytes:
            self._rotate()
        self._fh.write(data)
        self._fh.flush()
        if not self.stdout:
            self._size += len(data)
            os.fsync(self._fh.fileno())

    def _rotate(self) -> None:
        self._fh.close()
        files = rotated_paths(self.path, self.keep)  # [.keep, ..., .1, current]
        if self.keep == 0:
            self.path.unlink()
        else:
            for older, newer in zip(files, files[1:]):  # .{keep-1} -> .{keep}, ..., current -> .1
                if newer.exists():
                    os.replace(newer, older)
        self._fh = self._open()

    def close(self) -> None:
        if not self.stdout:
            self._fh.close()


def rotated_paths(path: str | Path, keep: int) -> list[Path]:
    """``[path.{keep}, ..., path.1, path]``: oldest first, existing or not."""
    path = Path(path)
    return [path.with_name(f"{path.name}.{i}") for i in range(keep, 0, -1)] + [path]


def record_files(path: str | Path) -> list[Path]:
    """The current records file and its rotated predecessors that exist, oldest first."""
    path = Path(path)
    rotated = []
    for candidate in path.parent.glob(f"{path.name}.*"):
        suffix = candidate.name[len(path.name) + 1:]
        if suffix.isdigit():
            rotated.append((int(suffix), candidate))
    return [p for _, p in sorted(rotated, reverse=True)] + ([path] if path.exists() else [])


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


#: Longest line read as a record (one is about 1 KiB): a longer one is skipped, never held whole.
MAX_RECORD_BYTES = 1 << 20

#: on_skip(file, line number, why) for each line that is not a record.
OnSkip = Callable[[Path, int, str], None]


def read_records(path: str | Path, on_skip: OnSkip | None = None) -> Iterator[dict]:
    """Yield records from a JSON-lines file. A line that is not a JSON object (torn by a crash,
    or a file that is not a record file) is skipped and passed to ``on_skip``."""
    path = Path(path)
    with open(path, "rb") as fh:
        number = 0
        while raw := fh.readline(MAX_RECORD_BYTES + 1):
            number += 1
            why = None
            if len(raw) > MAX_RECORD_BYTES:
                while raw and not raw.endswith(b"\n"):  # drop the rest of the line
                    raw = fh.readline(MAX_RECORD_BYTES)
                why = f"a line of more than {MAX_RECORD_BYTES:,} bytes"
            elif not (line := raw.strip()):
                continue
            else:
                try:
                    record = json.loads(line.decode("utf-8", errors="replace"))
                except (ValueError, RecursionError):  # RecursionError: thousands of nested [[[
                    why = "not JSON"
                else:
                    if isinstance(record, dict):
                        yield record
                        continue
                    why = f"a JSON {type(record).__name__}, not a record"
            if on_skip is not None:
                on_skip(path, number, why)


def read_all_records(path: str | Path, on_skip: OnSkip | None = None) -> Iterator[dict]:
    """Records of the current file and its rotated predecessors, oldest first."""
    for f in record_files(path):
        yield from read_records(f, on_skip)


def select_records(records: Iterable[dict], target: str | None = None, at: float | None = None,
                   policy: str | None = None, changed_only: bool = False, last: int | None = None) -> list[dict]:
    """Filter by target (full key or bare name), policy, and time.

    With ``at``, keep for each target the last record at or before that time. ``changed_only``:
    then only the records whose desired count differs from the current one; ``last``: only the
    last that many. Streams: memory grows with ``last`` and the targets, not with the records
    (a records file and its rotations hold up to 200 MB of them by default).
    """
    def matches(r: dict) -> bool:
        if policy and r.get("policy") != policy:
            return False
        if target and r.get("target") != target and str(r.get("target", "")).rsplit("/", 1)[-1] != target:
            return False
        when = r.get("at", 0)
        return at is None or isinstance(when, (int, float)) and when <= at

    def changed(r: dict) -> bool:
        return not changed_only or r.get("desired") != r.get("current")

    chosen = (r for r in records if matches(r))
    if at is None:
        return list(deque((r for r in chosen if changed(r)), maxlen=last))
    latest: dict[tuple, dict] = {}
    for r in chosen:
        latest[(r.get("policy"), r.get("target"))] = r
    picked = [r for r in latest.values() if changed(r)]
    return picked if last is None else picked[-last:] if last > 0 else []
