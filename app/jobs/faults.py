"""Named crash points for fault-injection tests: with PGW_CRASH_AT=<name> in the environment,
the process kills itself with SIGKILL when it reaches that point, as a power cut would. Unset
(always, in production) it does nothing."""

from __future__ import annotations

import os
import signal

CRASH_ENV = "PGW_CRASH_AT"


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
