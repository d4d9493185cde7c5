"""Who is calling, and the per-route scope check every non-public route declares."""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field, replace
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app.auth import limits
from app.auth.limits import RateLimiter
from app.auth.scopes import Scope
from app.auth.tokens import TokenVerifier
from app.config import Settings, UnknownRoles
from app.errors import Forbidden, InsufficientScope, Unauthorized

logger = logging.getLogger("pgw.auth")
_bearer = HTTPBearer(auto_error=False, description="JWT issued by your identity provider")


@dataclass(frozen=True)
class Caller:
    """The authenticated actor of a request or job, as the audit log records it."""

    sub: str
    roles: tuple[str, ...] = ()
    scopes: frozenset[str] = field(default_factory=frozenset)
    request_id: str | None = None

    @classmethod
    def system(cls, name: str, *, request_id: str | None = None) -> Caller:
        """A caller for jobs and command-line operations run by an operator."""
        return cls(sub=f"system:{name}", roles=("system",), request_id=request_id)

    def has(self, scope: Scope) -> bool:
        return scope.value in self.scopes


class RequireScope:
    """Dependency that authenticates the bearer token and checks for one of the given scopes."""

    def __init__(self, *scopes: Scope):
        if not scopes:
            raise ValueError("name at least one scope")
        self.scopes = scopes

    async def __call__(
        self, request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Caller:
        if credentials is None:
            raise Unauthorized("a bearer token is required")
        verifier: TokenVerifier = request.app.state.token_verifier
        await verifier.prepare(credentials.credentials)
        claims = verifier.verify(credentials.credentials)
        caller = Caller(sub=claims.sub, roles=claims.roles, scopes=claims.scopes,
                        request_id=getattr(request.state, "request_id", None))
        await spend(request, caller)
        caller = await known_roles(request, caller, verifier)
        if not any(scope.value in claims.scopes for scope in self.scopes):
            required = " ".join(s.value for s in self.scopes)
            await audit_denial(request, caller, action="auth.scope_denied",
                               details={"required": required})
            names = " or ".join(repr(scope.value) for scope in self.scopes)
            raise InsufficientScope(f"this operation needs the scope {names}",
                                    required_scope=required)
        return caller


class UnknownRole(Forbidden):
    type, title = "unknown-role", "Unknown role"


_LOGGED_UNKNOWN: set[str] = set()  # names already logged by this process (bounded)


def _log_ignored(names: list[str]) -> None:
    fresh = [n for n in names if n not in _LOGGED_UNKNOWN]
    if fresh and len(_LOGGED_UNKNOWN) < 1000:
        _LOGGED_UNKNOWN.update(fresh)
        logger.warning("ignoring token roles no policy defines (PGW_JWT_UNKNOWN_ROLES=ignore): "
                       "%s", ", ".join(repr(n[:64]) for n in fresh))


def _unknown_role_detail(unknown: list[str], known: list[str]) -> str:
    named = []
    for name in unknown[:10]:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        named.append(repr(name[:64]) + (f" (did you mean {close[0]!r}?)" if close else ""))
    return ("the token carries roles no policy defines: " + ", ".join(named) + "; fix the "
            "role in the identity provider or the policy, or set PGW_JWT_UNKNOWN_ROLES=ignore")


async def known_roles(request: Request, caller: Caller, verifier: TokenVerifier) -> Caller:
    """The caller with only the roles the policy defines. A role it does not define is a 403
    naming it (audited), never a silent narrowing that reads like a missing record; with
    PGW_JWT_UNKNOWN_ROLES=ignore it is logged, counted and dropped."""
    settings: Settings = request.app.state.settings
    defined = request.app.state.runtime.policy.body.roles
    ignored = settings.jwt_ignored_roles
    unknown = [r for r in caller.roles if r not in defined and r not in ignored]
    known = tuple(r for r in caller.roles if r in defined)
    if unknown:
        handling = "ignored" if settings.jwt_unknown_roles is UnknownRoles.IGNORE else "refused"
        if verifier.metrics is not None:
            verifier.metrics.unknown_roles.labels(handling=handling).inc()
        if handling == "refused":
            await audit_denial(request, caller, action="auth.unknown_role",
                               details={"unknown_roles": [n[:64] for n in unknown[:10]]})
            raise UnknownRole(_unknown_role_detail(unknown, sorted(defined)),
                              unknown_roles=[n[:64] for n in unknown[:10]])
        _log_ignored(unknown)
    return caller if known == caller.roles else replace(caller, roles=known)


def _route(request: Request) -> str:
    route = request.scope.get("route")
    return f"{request.method} {getattr(route, 'path', None) or 'unmatched'}"


async def audit_denial(request: Request, caller: Caller, *, action: str,
                       details: dict[str, Any]) -> None:
    """Audit a refusal in a transaction of its own, before the refusal is answered; if the
    entry cannot be written, the caller gets that error instead."""
    from app.audit import service as audit  # the audit domain imports Caller from here

    runtime = request.app.state.runtime

    def write() -> None:
        with runtime.transaction() as session:
            audit.record(session, caller=caller, action=action, outcome=audit.Outcome.DENIED,
                         resource=f"route:{_route(request)}", details=details)

    await anyio.to_thread.run_sync(write)


def _refusal(request: Request, caller: Caller, amount: float,
             kind: str) -> tuple[limits.RateLimited, dict[str, Any] | None] | None:
    """The 429 for spending `amount`, and the audit details if this refusal is to be audited."""
    limiter: RateLimiter = request.app.state.rate_limiter
    refused = limiter.take(caller.sub, kind, amount)
    if refused is None:
        return None
    wait, due = refused
    details = {"route_class": kind, "refused_since_last_entry":
               limiter.refused_since_audit(caller.sub, kind)} if due else None
    return limits.RateLimited(
        f"the rate limit for {kind!r} is spent (PGW_RATE_LIMITS); try again in {wait} s",
        headers={"Retry-After": str(wait)}), details


async def spend(request: Request, caller: Caller) -> None:
    """One request from the caller's rate limit for the route's class; 429 when spent."""
    refused = _refusal(request, caller, 1, limits.route_class(request.url.path))
    if refused is not None:
        error, details = refused
        if details is not None:
            await audit_denial(request, caller, action="auth.rate_limited", details=details)
        raise error


def spend_characters(request: Request, session: Session, caller: Caller, count: int) -> None:
    """Characters to scan from the caller's PII budget; 429 (audited with the request's
    denials, at most once a minute) when spent."""
    from app.audit import service as audit

    refused = _refusal(request, caller, count, limits.PII_CHARACTERS)
    if refused is not None:
        error, details = refused
        if details is not None:
            audit.record(session, caller=caller, action="auth.rate_limited",
                         outcome=audit.Outcome.DENIED, resource=f"route:{_route(request)}",
                         details=details)
        raise error
