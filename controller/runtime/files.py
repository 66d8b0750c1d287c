"""Write files atomically: a reader (or a crash) sees the old file or the whole new one, never
half of it. Results, policy files, and files that hold secrets (tokens, kubeconfigs: mode 0600
from their creation)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_text_atomic(path: str | Path, text: str, mode: int | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``path``: to a new temporary file in the same folder (O_EXCL,
    not following links), flushed to disk, then renamed over ``path``. ``mode``: the file's
    permissions from its creation on, whatever the umask (None: the umask's default, as
    open() gives). OSError when the folder is not writable (the temporary file removed)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, 0o666 if mode is None else mode)
    try:
        if mode is not None:
            os.fchmod(fd, mode)  # O_CREAT's mode is masked by the umask; make it exactly ``mode``
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fd = -1
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_private_file(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` readable and writable by the owner only (0600), atomically:
    created 0600 (so no other user can ever open it, not even for a moment)."""
    return write_text_atomic(path, text, mode=0o600)
