from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from pgw_client import Gateway
from tests.server import LiveServer
from tests.tokens import make_token

CRM_SCOPES = "records:write records:read dsr:submit dsr:verify consent:write consent:read"
MakeGateway = Callable[..., Gateway]


@pytest.fixture
def gateway(live: LiveServer) -> Iterator[MakeGateway]:
    """gateway(*roles, sub=..., scope=..., url=...): the client with such a token."""
    made: list[Gateway] = []

    def make(*roles: str, sub: str = "svc-crm", scope: str = CRM_SCOPES,
             url: str | None = None) -> Gateway:
        client = Gateway(url or live.url, token=make_token(sub=sub, scope=scope,
                                                           roles=list(roles)))
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
