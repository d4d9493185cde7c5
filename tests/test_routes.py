"""Every route but health, metrics and the API docs declares the scope it needs."""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute

from app.auth.guard import RequireScope
from app.console.guard import Needs
from app.console.router import UNSCOPED_PATHS
from app.main import create_app
from app.ops.router import PUBLIC_PATHS

# Server-rendered pages, outside the API contract: the privacy centre authenticates a person by
# the session a one-time code opened (tests/privacy), not by a bearer token and scope.
PAGE_PREFIXES = ("/privacy",)


def _page(route: APIRoute) -> bool:
    return route.path.startswith(PAGE_PREFIXES) and not route.include_in_schema


def _scopes(dependant: Any) -> list[str]:
    found: list[str] = []
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, RequireScope | Needs):
            found.extend(scope.value for scope in dependency.call.scopes)
        found.extend(_scopes(dependency))
    return found


def api_routes(routes: list[Any]) -> list[APIRoute]:
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):  # FastAPI's wrapper of an included router
            found.extend(api_routes(route.original_router.routes))
    return found


def test_every_route_declares_a_scope(settings: Any) -> None:
    app = create_app(settings)
    routes = [r for r in api_routes(app.routes) if not _page(r)]
    assert routes, "no API routes found"
    missing = [r.path for r in routes if r.path not in PUBLIC_PATHS | set(UNSCOPED_PATHS)
               and not _scopes(r.dependant)]
    assert missing == []
    assert {r.path for r in routes if r.path in UNSCOPED_PATHS} == set(UNSCOPED_PATHS)
    assert {r.path for r in routes if r.path in PUBLIC_PATHS} == set(PUBLIC_PATHS)


def test_openapi_shows_bearer_security_on_every_scoped_operation(settings: Any) -> None:
    schema = create_app(settings).openapi()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if path in PUBLIC_PATHS:
                assert "security" not in operation
            else:
                requirements = operation.get("security")
                assert requirements, (method, path)
                assert all(list(r) == ["HTTPBearer"] and len(r["HTTPBearer"]) == 1
                           for r in requirements), (method, path)


def test_pages_stay_out_of_the_api_contract(settings: Any) -> None:
    app = create_app(settings)
    pages = [r for r in api_routes(app.routes) if r.path.startswith(PAGE_PREFIXES)]
    assert pages
    assert all(not r.include_in_schema for r in pages)
    assert not [p for p in app.openapi()["paths"] if p.startswith(PAGE_PREFIXES)]
