"""A scan's time limit (PGW_PII_SCAN_SECONDS): checked between windows, and the longest a scan
waits for the helper process."""

from __future__ import annotations

import time

from app.errors import ServiceUnavailable


class ScanTimeout(ServiceUnavailable):
    type, title = "pii-scan-timeout", "PII scan took too long"

    def __init__(self, limit: float):
        super().__init__(f"the text could not be scanned for personal data within {limit:g} s "
                         "(PGW_PII_SCAN_SECONDS); nothing was stored or returned",
                         limit_seconds=limit)


class Deadline:
    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self._at = time.monotonic() + (seconds or 0)

    def remaining(self) -> float:
        """Seconds left (an hour when there is no limit)."""
        return 3600.0 if self.seconds is None else max(self._at - time.monotonic(), 0.0)

    def check(self) -> None:
        if self.seconds is not None and time.monotonic() > self._at:
            raise ScanTimeout(self.seconds)
