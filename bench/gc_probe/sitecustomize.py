"""Log every cyclic collection of every Python process started with this directory on
PYTHONPATH and GC_PROBE_DIR set: one line per collection in GC_PROBE_DIR/gc-<pid>.log,
`<unix time> <generation> <wall ms> <objects collected>`. Used by bench/read_tail.py."""

import gc
import os
import time

_directory = os.environ.get("GC_PROBE_DIR")
if _directory:
    _log = open(os.path.join(_directory, f"gc-{os.getpid()}.log"), "a", buffering=1)  # noqa: SIM115
    _started = [0.0]

    def _note(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            _started[0] = time.perf_counter()
            return
        _log.write(f"{time.time():.3f} {info['generation']} "
                   f"{(time.perf_counter() - _started[0]) * 1000:.3f} {info['collected']}\n")

    gc.callbacks.append(_note)
