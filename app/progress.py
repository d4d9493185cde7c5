"""A progress bar on standard error for long command-line operations."""

from __future__ import annotations

import sys
from collections.abc import Callable


def bar(done: int, total: int) -> None:
    width = 30
    filled = width if not total else min(width, width * done // total)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    sys.stderr.flush()


def wanted(requested: bool) -> bool:
    """Progress is shown when asked for (`--progress`) or when stderr is a terminal, so logs
    and pipes stay clean; never on stdout, which carries the command's data."""
    return requested or sys.stderr.isatty()


def _silent(done: int, total: int) -> None:
    pass


def reporter(requested: bool) -> Callable[[int, int], None]:
    """A progress callback: `bar`, ending its line when done, or nothing."""
    if not wanted(requested):
        return _silent

    def show(done: int, total: int) -> None:
        bar(done, total)
        if done >= total:
            sys.stderr.write("\n")
            sys.stderr.flush()

    return show


def counter(requested: bool) -> Callable[[str], None]:
    """For work whose size is not known before: one line rewritten with what is done so far;
    `counter(...)("")` ends the line."""
    if not wanted(requested):
        return lambda text: None

    def show(text: str) -> None:
        sys.stderr.write(f"\r{text}" if text else "\n")
        sys.stderr.flush()

    return show
