"""Write files atomically: a reader (or a crash) sees the old file or the whole new one, never
half of it. Results, policy files, and files that hold secrets (tokens, kubeconfigs: mode 0600
from their creation)."""

from __future__ import annotations

import errno
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence, TextIO


@contextmanager
def atomic_writer(path: str | Path, mode: int | None = None) -> Iterator[TextIO]:
    """A text file (UTF-8) that becomes ``path`` when the block ends without an exception: written
    to a new temporary file in the same folder (O_EXCL, not following links, a unique name),
    flushed to disk, then renamed over ``path``; removed on an exception. ``mode``: the file's
    permissions from its creation on, whatever the umask (None: the umask's default, as open()
    gives). IsADirectoryError naming ``path`` when a folder is in its place (not the temporary
    file's name); OSError when the folder is not writable."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise IsADirectoryError(errno.EISDIR, "is a folder where the file goes; move it or name another place",
                                str(path))
    if special_file(path):
        raise OSError(errno.EINVAL, f"{SPECIAL_FILE}; name a file", str(path))
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, 0o666 if mode is None else mode)
    try:
        if mode is not None:
            os.fchmod(fd, mode)  # O_CREAT's mode is masked by the umask; make it exactly ``mode``
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fd = -1
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise


#: Why a device, pipe or socket is never written: the rename would replace it (as root, /dev/null).
SPECIAL_FILE = "is a device, pipe or socket, not a regular file: writing would replace it with one"


def special_file(path: str | Path) -> bool:
    """Whether ``path`` (or what its link points to) exists and is neither a file nor a folder: a
    device (/dev/null), a pipe, a socket, or a link to one (/dev/stdout)."""
    path = Path(path)
    try:
        return path.exists() and not path.is_file() and not path.is_dir()
    except OSError:  # a name too long, a looping link: the write says what is wrong
        return False


def write_text_atomic(path: str | Path, text: str, mode: int | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_writer`)."""
    with atomic_writer(path, mode) as fh:
        fh.write(text)
    return Path(path)


def remove_earlier(folder: str | Path, names: Sequence[str]) -> None:
    """Remove the files ``names`` an earlier run left in ``folder``, in that order, before a run
    writes its own set there: one killed midway, or one that writes fewer of them (no report),
    then never leaves an earlier run's file beside its own. Put the file that marks a complete
    set (written last) first. A folder in a file's place is left; writing there says so."""
    for name in names:
        path = Path(folder) / name
        if path.is_symlink() or path.is_file():
            path.unlink()


def write_private_file(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` readable and writable by the owner only (0600), atomically:
    created 0600 (so no other user can ever open it, not even for a moment)."""
    return write_text_atomic(path, text, mode=0o600)
