"""Rate limits per caller (the token's `sub`) and route class (the path's first segment after
`/v1/`, e.g. `records`, `pii`), as token buckets in each process; the PII routes are also
limited by characters scanned per second.

Limits are per process: with N workers a caller gets up to N times the rate, which is what an
operator sizes for. A refusal is a 429 with `Retry-After`. Refusals are audited, but at most
once a minute per caller and class (with the count since the last entry), so a flood cannot
turn the audit log into its amplifier.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from app.errors import GatewayError

MAX_BUCKETS = 100_000
PII_CHARACTERS = "pii-characters"  # the class that counts characters scanned, not requests
AUDIT_EVERY = 60.0


class RateLimited(GatewayError):
    status, type, title = 429, "rate-limited", "Too many requests"


@dataclass(frozen=True)
class Limit:
    rate: float  # per second; 0 means unlimited
    burst: float


def parse_limits(text: str) -> dict[str, Limit]:
    """`default=100/200,pii=20/40`: class=rate per second/burst; `0` is unlimited."""
    limits: dict[str, Limit] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, spec = part.partition("=")
        rate, _, burst = spec.partition("/")
        try:
            value = Limit(rate=float(rate), burst=float(burst or rate))
        except ValueError:
            raise ValueError(f"{part!r}: expected class=rate/burst, e.g. pii=20/40") from None
        if not name.strip() or value.rate < 0 or (value.rate > 0 and value.burst < 1):
            raise ValueError(f"{part!r}: expected class=rate/burst with burst >= 1")
        limits[name.strip()] = value
    limits.setdefault("default", Limit(rate=0, burst=1))
    return limits


@dataclass
class _Bucket:
    tokens: float
    at: float
    refused: int = 0
    audited_at: float = float("-inf")


class RateLimiter:
    def __init__(self, limits: dict[str, Limit], *,
                 clock: Callable[[], float] = time.monotonic):
        self.limits, self._clock = limits, clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()

    def limit(self, route_class: str) -> Limit:
        return self.limits.get(route_class, self.limits["default"])

    def take(self, caller: str, route_class: str, amount: float = 1) -> tuple[int, bool] | None:
        """Spend `amount` from the caller's bucket for the class. None when allowed; else the
        seconds to wait and whether this refusal is due to be audited."""
        limit = self.limit(route_class)
        if limit.rate <= 0:
            return None
        amount = min(amount, limit.burst)  # a request larger than the burst needs it all
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get((caller, route_class))
            if bucket is None:
                self._make_room(now)
                bucket = self._buckets[(caller, route_class)] = _Bucket(limit.burst, now)
            bucket.tokens = min(limit.burst, bucket.tokens + (now - bucket.at) * limit.rate)
            bucket.at = now
            if bucket.tokens >= amount:
                bucket.tokens -= amount
                return None
            bucket.refused += 1
            wait = math.ceil((amount - bucket.tokens) / limit.rate)
            due = now - bucket.audited_at >= AUDIT_EVERY
            if due:
                bucket.audited_at = now
            return max(1, wait), due

    def refused_since_audit(self, caller: str, route_class: str) -> int:
        with self._lock:
            bucket = self._buckets.get((caller, route_class))
            if bucket is None:
                return 0
            count, bucket.refused = bucket.refused, 0
            return count

    def _make_room(self, now: float) -> None:
        # Full buckets hold no state worth keeping: a caller seen again starts full anyway.
        if len(self._buckets) < MAX_BUCKETS:
            return
        for key, bucket in list(self._buckets.items()):
            limit = self.limit(key[1])
            if bucket.tokens + (now - bucket.at) * limit.rate >= limit.burst:
                del self._buckets[key]
        while len(self._buckets) >= MAX_BUCKETS:  # all busy: forget the oldest
            del self._buckets[min(self._buckets, key=lambda k: self._buckets[k].at)]


def route_class(path: str) -> str:
    parts = path.split("/")
    return parts[2] if len(parts) > 2 and parts[1] == "v1" and parts[2] else "default"
