"""Who is calling, and the per-route scope check every non-public route declares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth.scopes import Scope
from app.auth.tokens import TokenVerifier
from app.errors import InsufficientScope, Unauthorized

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
        claims = verifier.verify(credentials.credentials)
        if not any(scope.value in claims.scopes for scope in self.scopes):
            names = " or ".join(repr(scope.value) for scope in self.scopes)
            raise InsufficientScope(f"this operation needs the scope {names}",
                                    required_scope=" ".join(s.value for s in self.scopes))
        return Caller(sub=claims.sub, roles=claims.roles, scopes=claims.scopes,
                      request_id=getattr(request.state, "request_id", None))
