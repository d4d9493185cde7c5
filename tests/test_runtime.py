from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app
from tests.server import LiveServer


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def garbage_cycle() -> weakref.ref[Node]:
    """Two objects referring to each other and to nothing else: only the collector frees them."""
    first, second = Node(), Node()
    first.other, second.other = second, first
    return weakref.ref(first)


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("unfrozen")
def test_a_started_gateway_freezes_its_startup_heap_and_still_collects_new_garbage(
        settings: Settings, start_server: Callable[[FastAPI], LiveServer]) -> None:
    gc.disable()  # so that only the gateway's start and the explicit collection below collect
    try:
        assert gc.get_freeze_count() == 0
        before_start = garbage_cycle()
        live = start_server(create_app(settings))
        assert live.client().get("/readyz").status_code == 200
        # What start-up loaded is out of the collector's generations...
        assert gc.get_freeze_count() > 10_000
        # ...garbage left before the freeze was collected, not frozen forever...
        assert before_start() is None
        # ...and cycles made while serving are still collected.
        after_start = garbage_cycle()
        assert after_start() is not None
        gc.collect()
        assert after_start() is None
    finally:
        gc.enable()
