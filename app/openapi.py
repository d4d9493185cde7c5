"""The OpenAPI document: each operation's scope (`auth.openapi`) and every problem it can answer
with. A route declares the problems of its own work once, `responses=problems(NotFound, ...)`;
those of the machinery it runs on are read from its dependencies (the guard, the session, the
keyring, the signers) and the middleware, so no operation's list is written by hand twice."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from app import deps
from app.auth.guard import RequireScope, UnknownRole
from app.auth.limits import RateLimited
from app.auth.openapi import document_scopes, required_scopes
from app.auth.tokens import KeysUnavailable
from app.errors import (
    DATABASE_PROBLEMS,
    PROBLEM_BASE,
    PROBLEM_MEDIA_TYPE,
    PROBLEM_SCHEMA,
    PROBLEM_SCHEMA_NAME,
    GatewayError,
    InsufficientScope,
    Invalid,
    PayloadTooLarge,
    ServiceUnavailable,
    Unauthorized,
    problem_response,
    problem_types,
)
from app.keys.errors import Sealed

# Every request passes the middleware: a body over the limit, a NUL in the path or query.
EVERY_REQUEST: tuple[type[GatewayError], ...] = (PayloadTooLarge, Invalid)
GUARD: tuple[type[GatewayError], ...] = (Unauthorized, InsufficientScope, UnknownRole,
                                         RateLimited, KeysUnavailable, *DATABASE_PROBLEMS)
# What each dependency may refuse with (the guard is matched by type: one instance per scope).
DEPENDENCIES: dict[Callable[..., Any], tuple[type[GatewayError], ...]] = {
    deps.get_session: DATABASE_PROBLEMS,
    deps.get_keyring: (Sealed,),
    deps.get_audit_signer: (ServiceUnavailable,),
    deps.get_receipt_signer: (ServiceUnavailable,),
}
UNDOCUMENTED = ("/healthz", "/readyz", "/metrics")  # operations' probes: not problem JSON


def dependency_problems(dependant: Any) -> list[type[GatewayError]]:
    """The problems a route's dependency tree may answer with."""
    found: list[type[GatewayError]] = []
    for dependency in dependant.dependencies:
        call = dependency.call
        found.extend(GUARD if isinstance(call, RequireScope) else DEPENDENCIES.get(call, ()))
        found.extend(dependency_problems(dependency))
    return found


def _declared_types(response: dict[str, Any]) -> list[str]:
    """The problem types of a response entry made by `errors.problems`, else none."""
    schema = response.get("content", {}).get(PROBLEM_MEDIA_TYPE, {}).get("schema", {})
    for part in schema.get("allOf", ()):
        enum = part.get("properties", {}).get("type", {}).get("enum")
        if enum:
            return [uri.removeprefix(PROBLEM_BASE) for uri in enum]
    return []


def _merge(operation: dict[str, Any], errors: Iterable[type[GatewayError]]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    by_status: dict[int, list[str]] = {}
    for status, response in responses.items():
        if status.isdigit() and int(status) >= 400:
            by_status[int(status)] = _declared_types(response)
    for error in errors:
        by_status.setdefault(error.status, []).extend(error.problem_types())
    for code, types in sorted(by_status.items()):
        responses[str(code)] = problem_response(code, types)
    operation["responses"] = dict(sorted(responses.items()))


def document_problems(schema: dict[str, Any], app: FastAPI) -> None:
    """Give every operation each problem status and type it can answer with."""
    for route in iter_route_contexts(app.routes):
        dependant = getattr(route, "dependant", None)
        operations = schema.get("paths", {}).get(route.path_format or "")
        if dependant is None or not operations or route.path_format in UNDOCUMENTED:
            continue
        errors = [*EVERY_REQUEST, *dependency_problems(dependant)]
        names = " or ".join(f"`{scope}`" for scope in required_scopes(dependant))
        for method in route.methods or ():
            operation = operations.get(method.lower())
            if operation is None:
                continue
            # a body that is not JSON at all is a 400 (one that is, but wrong, a 422)
            _merge(operation, [*errors, *((GatewayError,) if "requestBody" in operation
                                          else ())])
            if names:
                operation["responses"]["403"]["description"] += (
                    f" (`insufficient-scope`: the token has no {names})")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components[PROBLEM_SCHEMA_NAME] = PROBLEM_SCHEMA
    for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422, replaced
        components.pop(unused, None)


def install_openapi(app: FastAPI) -> None:
    """Make app.openapi() return the document with scopes and problems added."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = generate()  # cached by FastAPI after the first call
        if fresh:
            document_scopes(schema, app)
            document_problems(schema, app)
            schema["x-problem-types"] = problem_types()  # every type, for generated clients
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
