"""A progress bar on standard error for long command-line operations."""

from __future__ import annotations

import sys


def bar(done: int, total: int) -> None:
    width = 30
    filled = width if not total else min(width, width * done // total)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    sys.stderr.flush()
