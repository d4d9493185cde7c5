"""The OpenAPI document names the scope each operation needs. It is read from the same
`RequireScope` dependency that enforces it, so the document and the server cannot disagree."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from app.auth.guard import RequireScope

SCHEME = "HTTPBearer"  # the name FastAPI gives the guard's HTTPBearer scheme


def required_scopes(dependant: Any) -> list[str]:
    """The scopes a route's dependency tree requires (any one of them suffices)."""
    found: list[str] = []
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, RequireScope):
            found.extend(scope.value for scope in dependency.call.scopes)
        found.extend(required_scopes(dependency))
    return list(dict.fromkeys(found))


def document_scopes(schema: dict[str, Any], app: FastAPI) -> None:
    """Add "Required scope" to each scoped operation's description and its security."""
    for route in iter_route_contexts(app.routes):
        dependant = getattr(route, "dependant", None)
        operations = schema.get("paths", {}).get(route.path_format or "")
        if dependant is None or not operations:
            continue
        scopes = required_scopes(dependant)
        if not scopes:
            continue
        names = " or ".join(f"`{scope}`" for scope in scopes)
        for method in route.methods or ():
            operation = operations.get(method.lower())
            if operation is None:
                continue
            description = operation.get("description", "").rstrip()
            line = f"Required scope: {names}."
            operation["description"] = f"{description}\n\n{line}" if description else line
            operation["security"] = [{SCHEME: [scope]} for scope in scopes]
    scheme = schema.get("components", {}).get("securitySchemes", {}).get(SCHEME)
    if scheme is not None:
        scheme["bearerFormat"] = "JWT"
