"""The identity provider's signing keys, cached in the process.

Fetched at start-up; when that fails the service starts anyway and retries with a back-off
(an identity provider started beside the gateway, as in compose, is often not up yet), and
requests that need a key answer 503 until the first key set arrives. Afterwards the set is
refreshed when its time is up (the response's Cache-Control max-age, between one minute and
PGW_JWKS_CACHE_SECONDS), and when a token names a key id the set lacks, at most once per
PGW_JWKS_REFRESH_MIN_INTERVAL_SECONDS, so tokens with made-up key ids cannot make the gateway
hammer the provider. A failed refresh keeps the cached keys: while the provider is down, tokens
signed with keys it published before are still accepted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import anyio.to_thread
from prometheus_client import CollectorRegistry, Counter, Gauge

from app.auth import oidc
from app.auth.oidc import FetchError, SigningKey

logger = logging.getLogger("pgw.auth.jwks")

MIN_CACHE_SECONDS = 60
RETRY_SECONDS = (1, 2, 5, 10, 30, 60)  # after failed fetches, then every minute


@dataclass(frozen=True)
class AuthMetrics:
    refreshes: Counter
    throttled: Counter
    keys: Gauge
    last_success: Gauge
    unknown_roles: Counter

    @classmethod
    def register(cls, registry: CollectorRegistry) -> AuthMetrics:
        return cls(
            refreshes=Counter("pgw_jwks_refreshes", "Fetches of the identity provider's key "
                              "set by reason (startup, scheduled, unknown_kid) and outcome",
                              ["reason", "outcome"], registry=registry),
            throttled=Counter("pgw_jwks_refresh_throttled", "Tokens with an unknown key id "
                              "that did not refetch the key set (rate limit)", registry=registry),
            keys=Gauge("pgw_jwks_keys", "Signing keys cached from the identity provider",
                       registry=registry, multiprocess_mode="livemin"),
            last_success=Gauge("pgw_jwks_last_success_timestamp_seconds", "When the key set "
                               "was last fetched successfully", registry=registry,
                               multiprocess_mode="livemin"),
            unknown_roles=Counter("pgw_auth_unknown_roles", "Requests whose token carries a "
                                  "role no policy defines, by what was done (refused, ignored)",
                                  ["handling"], registry=registry),
        )


@dataclass
class JwksCache:
    """The key set of one identity provider, named by its discovery issuer or its JWKS URL."""

    issuer: str | None
    jwks_url: str | None
    dev: bool
    timeout: float
    max_cache_seconds: float
    min_interval: float
    metrics: AuthMetrics | None = None
    clock: Callable[[], float] = time.monotonic
    keys: dict[str, SigningKey] = field(default_factory=dict, repr=False)
    loaded: bool = False
    last_error: str | None = None
    fetched_at: float | None = None
    expires_at: float = 0.0
    failures: int = 0
    _discovered: str | None = None
    _last_on_demand: float | None = None
    _in_flight: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # one fetch
    _claim_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def setting(self) -> str:
        return "PGW_OIDC_ISSUER" if self.issuer else "PGW_JWT_JWKS_URL"

    def get(self, kid: str) -> SigningKey | None:
        return self.keys.get(kid)

    def problems(self) -> list[str]:
        """For readiness: why no token can be verified yet; none once a key set has loaded
        (a later outage is served on the cached keys)."""
        if self.loaded:
            return []
        return [self.last_error or f"{self.setting}: the identity provider's keys are not "
                "fetched yet"]

    def _jwks_uri(self) -> str:
        if self.jwks_url:
            return self.jwks_url
        if self._discovered is None:
            assert self.issuer is not None  # noqa: S101 - one of the two is set
            self._discovered = oidc.discover_jwks_uri(self.issuer, dev=self.dev,
                                                      timeout=self.timeout)
        return self._discovered

    def refresh(self, reason: str) -> bool:
        """Fetch the key set now; on failure keep the cached keys. Blocking: off the loop."""
        with self._lock:
            return self._fetch(reason)

    def _fetch(self, reason: str) -> bool:
        try:
            found = oidc.fetch_key_set(self._jwks_uri(), setting=self.setting, dev=self.dev,
                                       timeout=self.timeout)
        except FetchError as exc:
            self._discovered = None  # the provider may have moved its keys: discover again
            self.failures += 1
            self.last_error = str(exc)
            self._count(reason, "failed")
            age = (f"serving on the {len(self.keys)} keys fetched "
                   f"{self.clock() - self.fetched_at:.0f} s ago"
                   if self.fetched_at is not None else "no keys yet: tokens get 503")
            logger.warning("identity provider keys not refreshed (%s): %s; %s", reason, exc, age)
            return False
        now = self.clock()
        new = sorted(set(found.keys) - set(self.keys))
        self.keys, self.loaded, self.fetched_at = found.keys, True, now
        self.failures, self.last_error = 0, None
        ttl = self.max_cache_seconds if found.max_age in (None, 0) else found.max_age
        self.expires_at = now + max(MIN_CACHE_SECONDS, min(ttl, self.max_cache_seconds))
        self._count(reason, "ok")
        if self.metrics is not None:
            self.metrics.keys.set(len(found.keys))
            self.metrics.last_success.set(time.time())
        if new:
            logger.info("identity provider keys loaded (%s): %d keys, new: %s", reason,
                        len(found.keys), ", ".join(k[:64] for k in new))
        return True

    def _count(self, reason: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.refreshes.labels(reason=reason, outcome=outcome).inc()

    def next_refresh_in(self) -> float:
        """Seconds until the background refresh is due."""
        if self.failures:
            return RETRY_SECONDS[min(self.failures, len(RETRY_SECONDS)) - 1]
        return max(0.0, self.expires_at - self.clock())

    # -- a token names a key id the set lacks -------------------------------------------------

    def claim(self, kid: str) -> bool:
        """Whether this caller is to refetch the set for `kid`: it lacks the key, no refetch is
        under way, and the last one for an unknown kid is PGW_JWKS_REFRESH_MIN_INTERVAL_SECONDS
        ago. Never waits: the token of a caller that is not to refetch is judged on the keys
        there are, so tokens with made-up key ids hold nothing while the provider is slow."""
        with self._claim_lock:
            if kid in self.keys:
                return False
            last = self._last_on_demand
            if self._in_flight or (last is not None and self.clock() - last < self.min_interval):
                if self.metrics is not None:
                    self.metrics.throttled.inc()
                return False
            self._in_flight, self._last_on_demand = True, self.clock()
            return True

    def _refresh_claimed(self) -> None:
        try:
            if self._lock.acquire(blocking=False):  # else a scheduled fetch is under way
                try:
                    self._fetch("unknown_kid")
                finally:
                    self._lock.release()
        finally:
            self._in_flight = False

    def refresh_for(self, kid: str) -> None:
        """Refetch the key set for an unknown `kid` if `claim` allows. Blocking."""
        if self.claim(kid):
            self._refresh_claimed()

    async def prepare(self, kid: str) -> None:
        """Before a token is verified: refetch the key set, off the loop, if `claim` allows."""
        if self.claim(kid):
            await anyio.to_thread.run_sync(self._refresh_claimed)

    # -- in the background ----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Refresh when due until `stop` is set (a thread of `start_refresher`)."""
        while not stop.wait(self.next_refresh_in()):
            self.refresh("startup" if not self.loaded else "scheduled")


def start_refresher(cache: JwksCache) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=cache.run, args=(stop,), name="pgw-jwks", daemon=True)
    thread.start()
    return thread, stop


@asynccontextmanager
async def refreshing(cache: JwksCache | None) -> AsyncIterator[None]:
    """Fetch the key set at start-up (a failure is logged and retried, not fatal) and keep it
    fresh in a thread for as long as the block runs."""
    if cache is None:
        yield
        return
    await anyio.to_thread.run_sync(cache.refresh, "startup")
    thread, stop = start_refresher(cache)
    try:
        yield
    finally:
        stop.set()
        await anyio.to_thread.run_sync(thread.join)
