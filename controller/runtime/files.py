"""Write files atomically: a reader (or a crash) sees the old file or the whole new one, never
half of it. Results, policy files, and files that hold secrets (tokens, kubeconfigs: mode 0600
from their creation)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_private_file(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` readable and writable by the owner only (0600).

    The content goes to a new temporary file in the same folder, created 0600 with O_EXCL (so
    no other user can ever open it, not even for a moment), then renamed over ``path``: a
    reader sees either the old file or the whole new one. OSError when the folder is not
    writable.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode is masked by the umask; make it exactly 0600
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


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same folder, renamed
    over it. OSError when the folder is not writable (the temporary file removed)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
