"""Decision records as JSON lines: written by the live loop and the simulator, read by `setpoint explain`."""

from __future__ import annotations

import codecs
import errno
import json
import logging
import os
import stat
import sys
from collections import deque
from pathlib import Path
from typing import Callable, Iterable, Iterator

from controller.model import DecisionRecord, json_text

log = logging.getLogger("setpoint.runtime")

#: Defaults of `setpoint run --records-max-bytes / --records-keep`: at most 50 MiB x (1 + 3) on disk.
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_KEEP = 3


def lines_text(lines: Iterable[str]) -> str:
    """JSON lines (without newlines) as one text, each ending with a newline ('' for none)."""
    return "".join(line + "\n" for line in lines)


class RecordWriter:
    """Appends one JSON object per line; syncs after every cycle so a crash loses at most one.

    Size-bounded: when a cycle's lines would take the file past ``max_bytes``, the file is rotated
    first (``decisions.jsonl`` -> ``.1`` -> ... -> ``.{keep}``, the oldest dropped), so a cycle's
    lines never straddle two files and on disk there are at most ``(keep + 1) * max_bytes`` (more
    only if one cycle alone writes more than ``max_bytes``). ``max_bytes=None`` never rotates.
    ``path="-"`` writes to standard output and never rotates.

    Records always go to the file the path names now: a file deleted or replaced while open
    (logrotate, an operator's ``rm``) is noticed before the next write, and a new one is created
    there (one warning). A write that fails raises OSError and takes back what it wrote of its
    cycle where it can; the next write opens the path again, so writing resumes by itself once
    the fault (a full disk, a folder in the file's place) is gone.
    """

    def __init__(self, path: str | Path, max_bytes: int | None = DEFAULT_MAX_BYTES, keep: int = DEFAULT_KEEP):
        if max_bytes is not None and max_bytes <= 0:
            raise ValueError(f"records max bytes must be positive, got {max_bytes}")
        if keep < 0:
            raise ValueError(f"records keep must be 0 or more, got {keep}")
        self.stdout = str(path) == "-"
        self.path = Path(path)
        self.max_bytes, self.keep = (None if self.stdout else max_bytes), keep
        self._fd: int | None = None  # None: closed; the next write opens the path again
        self._size = 0  # bytes in the open file
        self._regular = True  # False for a device or a pipe (/dev/null): never rotated nor synced
        if not self.stdout:
            self._open()

    def _open(self) -> None:
        """Open the path for appending, creating it and its folder; end a line a crash tore."""
        if self.path.is_dir():  # open() would only say EISDIR
            raise IsADirectoryError(errno.EISDIR, "the records path is a folder, not a file", str(self.path))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = _open_append(self.path)
        try:
            st = os.fstat(fd)
            self._regular = stat.S_ISREG(st.st_mode)
            self._size = st.st_size if self._regular else 0
            if self._size and not _ends_with_newline(self.path):
                # a crash tore the last line: end it, so the next record starts on a line of its own
                _write_fully(fd, b"\n")
                self._size += 1
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def write(self, records: Iterable[DecisionRecord]) -> None:
        """Append one cycle's records, all or none of them; raises OSError when they cannot be."""
        self.write_lines([json_text(r.to_dict()) for r in records])

    def write_lines(self, lines: Iterable[str]) -> None:
        """Append one cycle's records as their JSON lines (without newlines: record_lines.cycle_lines),
        all or none of them; raises OSError when they cannot be."""
        data = lines_text(lines).encode()
        if not data:
            return
        if self.stdout:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return
        self._reopen_if_moved()
        if self._regular and self.max_bytes is not None and self._size and self._size + len(data) > self.max_bytes:
            self._rotate()
        self._append(data)

    def _reopen_if_moved(self) -> None:
        """Open the path again when it is closed or no longer names the open file."""
        if self._fd is not None and self._names_open_file():
            return
        if self._fd is not None:
            log.warning("the records file was deleted or replaced while open; writing to a new one at its path",
                        extra={"path": str(self.path)})
            self._close()
        self._open()

    def _names_open_file(self) -> bool:
        """Whether the path still leads to the open file (same device and inode)."""
        try:
            named = os.stat(self.path)
        except OSError:  # deleted, its folder gone or unreadable: open it again (or fail saying why)
            return False
        opened = os.fstat(self._fd)
        return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)

    def _append(self, data: bytes) -> None:
        """Write and sync ``data``; on failure cut the file back to where it was and close it."""
        start = self._size
        try:
            _write_fully(self._fd, data)
            if self._regular:
                os.fsync(self._fd)
        except OSError:
            if self._regular:
                try:  # no torn line: the cycle's records are all there or none is
                    os.ftruncate(self._fd, start)
                except OSError:
                    pass  # the next open ends a torn line instead
            self._close()
            raise
        self._size += len(data)

    def _rotate(self) -> None:
        """Shift the files one place (the oldest dropped) and open a fresh one.

        Only regular files (or symlinks) are moved or deleted: a folder or anything else a person
        put at one of the rotated names is left where it is, and the file that would have moved
        onto it is dropped instead, as the oldest would have been.
        """
        self._close()
        files = rotated_paths(self.path, self.keep)  # [.keep, ..., .1, current]
        if self.keep == 0 and not _foreign(self.path):
            self.path.unlink(missing_ok=True)
        for older, newer in zip(files, files[1:]):  # .{keep-1} -> .{keep}, ..., current -> .1
            if not os.path.lexists(newer) or _foreign(newer):
                continue
            if _foreign(older):
                log.warning("a rotated records name is taken by something that is not a records file; left "
                            "alone, the older records are dropped instead", extra={"path": str(older)})
                newer.unlink(missing_ok=True)
            else:
                os.replace(newer, older)
        self._open()

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:  # nothing is buffered: a failing close loses nothing
                pass

    def close(self) -> None:
        if not self.stdout:  # standard output was flushed at every write
            self._close()


def _open_append(path: Path) -> int:
    """A descriptor appending to ``path``, created if missing (mode 0666 less the umask)."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)


def _write_fully(fd: int, data: bytes) -> None:
    """os.write until every byte is written (a write may take only part)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:  # never for a file; guards the loop
            raise OSError(errno.EIO, "the records file took no bytes")
        view = view[written:]


def _foreign(path: Path) -> bool:
    """Something at ``path`` that rotation must not move or delete: a folder, a device, a pipe."""
    return os.path.lexists(path) and not path.is_symlink() and not path.is_file()


def records_path_problem(path: str | Path) -> str | None:
    """Why records cannot be appended at ``path`` (one line), or None. Tries: creates the folder
    and the file if missing (the file is removed again). ``-`` is standard output."""
    if str(path) == "-":
        return None
    path = Path(path)
    if path.is_dir():
        return f"{path} is a folder; name a file in it, e.g. {path / 'setpoint-decisions.jsonl'}"
    ancestor = next((p for p in (path.parent, *path.parent.parents) if os.path.lexists(p)), None)
    if ancestor is not None and not ancestor.is_dir():
        return f"{path}: {ancestor} is not a folder"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"{path}: cannot create the folder {path.parent}: {exc.strerror or exc}"
    existed = os.path.lexists(path)
    try:  # O_NONBLOCK: a pipe without a reader fails at once instead of blocking start-up
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK, 0o666))
    except OSError as exc:
        return f"cannot write {path}: {exc.strerror or exc}"
    if not existed:  # a controller that then refuses its policies leaves no empty records file
        path.unlink(missing_ok=True)
    return None


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


class FileRecord(dict):
    """A record as read from a file, with where it was read (``origin``: ``FILE:LINE``), for a
    message about it that a person can follow to the line."""

    __slots__ = ("origin",)

    def __init__(self, record: dict, origin: str):
        super().__init__(record)
        self.origin = origin


def read_records(path: str | Path, on_skip: OnSkip | None = None) -> Iterator[FileRecord]:
    """Yield records from a JSON-lines file, each a :class:`FileRecord`. A line that is not a JSON
    object (torn by a crash, or a file that is not a record file) is skipped and passed to
    ``on_skip``."""
    path = Path(path)
    with open(path, "rb") as fh:
        number = 0
        while raw := fh.readline(MAX_RECORD_BYTES + 1):
            number += 1
            if number == 1:  # a file saved by an editor that marks UTF-8: its first record was "not JSON"
                raw = raw.removeprefix(codecs.BOM_UTF8)
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
                        yield FileRecord(record, f"{path}:{number}")
                        continue
                    why = f"a JSON {type(record).__name__}, not a record"
            if on_skip is not None:
                on_skip(path, number, why)


def read_all_records(path: str | Path, on_skip: OnSkip | None = None) -> Iterator[FileRecord]:
    """Records of the current file and its rotated predecessors, oldest first."""
    for f in record_files(path):
        yield from read_records(f, on_skip)


def applied_replicas(record: dict):
    """The replica count a record's cycle left: the health side's after arbitration where the
    record has one (it may hold the scaling decision: a rollout, a health scale-up's floor), else
    ``desired``."""
    health = record.get("health")
    if isinstance(health, dict) and isinstance(health.get("replicas"), int):
        return health["replicas"]
    return record.get("desired")


def target_matches(key, target: str) -> bool:
    """Whether a record's target ``key`` (namespace/name) is ``target``: the whole key, or its name."""
    return key == target or str(key or "").rsplit("/", 1)[-1] == target


def select_records(records: Iterable[dict], target: str | None = None, at: float | None = None,
                   policy: str | None = None, changed_only: bool = False, last: int | None = None,
                   total: list[int] | None = None) -> list[dict]:
    """Filter by target (full key or bare name), policy, and time.

    With ``at``, keep for each target the last record at or before that time. ``changed_only``:
    then only the records whose applied count differs from the current one (the health side's
    ``replicas`` after arbitration where the record has one, else ``desired``), or with a health
    action; ``last``: only the
    last that many; ``total``, when given, gets how many there were before ``last`` cut them
    (appended). Streams: memory grows with ``last`` and the targets, not with the records (a
    records file and its rotations hold up to 200 MB of them by default).
    """
    def matches(r: dict) -> bool:
        if policy and r.get("policy") != policy:
            return False
        if target and not target_matches(r.get("target"), target):
            return False
        when = r.get("at", 0)
        return at is None or isinstance(when, (int, float)) and when <= at

    def changed(r: dict) -> bool:  # a new count, or a health action (a rollback keeps the count)
        health = r.get("health")
        return (not changed_only or applied_replicas(r) != r.get("current")
                or isinstance(health, dict) and bool(health.get("action")))

    chosen = (r for r in records if matches(r))
    if at is None:
        seen = [0]

        def counted(rs):
            for r in rs:
                seen[0] += 1
                yield r

        kept = list(deque(counted(r for r in chosen if changed(r)), maxlen=last))
        if total is not None:
            total.append(seen[0])
        return kept
    latest: dict[tuple, dict] = {}
    for r in chosen:
        latest[(r.get("policy"), r.get("target"))] = r
    picked = [r for r in latest.values() if changed(r)]
    if total is not None:
        total.append(len(picked))
    return picked if last is None else picked[-last:] if last > 0 else []
