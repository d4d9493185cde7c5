from __future__ import annotations

import httpx
import pytest

from tests.gateway import Clients


@pytest.fixture
def analyst(clients: Clients) -> httpx.Client:
    """A caller with the datasets:export scope."""
    return clients(sub="analyst", scope="datasets:export")
