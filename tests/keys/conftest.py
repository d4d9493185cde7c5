from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from app.keys.keyring import Keyring
from app.runtime import Runtime


@pytest.fixture
def keyring(runtime: Runtime) -> Keyring:
    assert runtime.keyring is not None
    return runtime.keyring


@pytest.fixture
def session(runtime: Runtime) -> Iterator[Session]:
    with runtime.session_factory() as session:
        yield session
        session.commit()
