"""The OpenAPI document names the scope of every operation, and it is the scope the server
enforces: without it the call is refused naming it, with it alone the scope check passes."""

from __future__ import annotations

import re
from typing import Any

from app.auth.scopes import Scope
from app.ops.router import PUBLIC_PATHS
from tests.server import LiveServer
from tests.tokens import make_token

_REQUIRED = re.compile(r"Required scope: (`[a-z]+:[a-z]+`(?: or `[a-z]+:[a-z]+`)*)\.$")


def documented_scopes(operation: dict[str, Any]) -> list[str]:
    """The scopes an operation's description names, checked against its security."""
    found = _REQUIRED.search(operation.get("description", ""))
    assert found, operation.get("description")
    scopes = re.findall(r"`([a-z]+:[a-z]+)`", found.group(1))
    assert operation["security"] == [{"HTTPBearer": [scope]} for scope in scopes]
    return scopes


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, operation) for path, item in schema["paths"].items()
            for method, operation in item.items()]


def call(live: LiveServer, method: str, path: str, scope: str, sub: str) -> Any:
    url = re.sub(r"\{[^}]+\}", "x", path)
    with live.client(make_token(sub=sub, scope=scope)) as client:
        return client.request(method, url, json={} if method in {"POST", "PATCH"} else None)


def test_every_scoped_operation_names_its_scope_and_the_bearer_jwt_scheme(
        live: LiveServer) -> None:
    schema = live.client().get("/openapi.json").json()
    scheme = schema["components"]["securitySchemes"]["HTTPBearer"]
    assert (scheme["scheme"], scheme["bearerFormat"]) == ("bearer", "JWT")
    scoped = [(m, p) for m, p, op in operations(schema) if p not in PUBLIC_PATHS]
    assert len(scoped) > 40
    for method, path, operation in operations(schema):
        if path in PUBLIC_PATHS:
            assert "security" not in operation, (method, path)
            assert "Required scope" not in operation.get("description", "")
        else:
            assert set(documented_scopes(operation)) <= {s.value for s in Scope}, (method, path)


def test_the_documented_scope_is_the_one_the_server_enforces(live: LiveServer) -> None:
    schema = live.client().get("/openapi.json").json()
    every = {scope.value for scope in Scope}
    for method, path, operation in operations(schema):
        if path in PUBLIC_PATHS:
            continue
        scopes = documented_scopes(operation)
        # every scope but the documented ones: refused, and the refusal names them
        refused = call(live, method, path, " ".join(sorted(every - set(scopes))), "svc-lacking")
        assert refused.status_code == 403, (method, path, refused.text)
        problem = refused.json()
        assert problem["type"].endswith("insufficient-scope"), (method, path, problem)
        assert problem["required_scope"].split() == scopes, (method, path)
        # the documented scope alone gets past the scope check (any other answer may follow)
        for scope in scopes:
            allowed = call(live, method, path, scope, "svc-holding")
            assert not (allowed.status_code == 403 and
                        allowed.json()["type"].endswith("insufficient-scope")), (method, path)
