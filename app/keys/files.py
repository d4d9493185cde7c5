"""Key material on disk: created atomically with mode 0600, never logged."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

SECRET_FILE_MODE = 0o600


class KeyFileError(Exception):
    """A key file is missing, unreadable or too widely readable."""


def write_new(path: Path, data: bytes) -> bool:
    """Create `path` with mode 0600 unless it exists; True if this call created it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, SECRET_FILE_MODE)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # atomic, and fails if another process won the race
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def read(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} does not exist") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"key file {path} is readable by others; run chmod 600 on it")
    return path.read_bytes()


def read_or_create(path: Path, *, generate: Callable[[], bytes], create: bool) -> bytes:
    """Read a key file; when `create` is true and it is missing, generate it first."""
    if create and not path.exists():
        write_new(path, generate())
    return read(path)
