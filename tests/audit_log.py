"""Reading the audit log in tests below HTTP: the sequencer moves committed entries from the
queue onto the log within a second; tests run it themselves before they look."""

from __future__ import annotations

from app.audit import service as audit
from app.audit import tree
from app.config import Settings
from app.runtime import Runtime, open_runtime


def sequenced(runtime: Runtime) -> int:
    """Run the sequencer until every committed entry is in the log; returns its size."""
    with runtime.session_factory() as session:
        audit.catch_up(session)
        session.commit()
        return tree.tree_size(session)


def sequence(settings: Settings) -> int:
    runtime = open_runtime(settings)
    try:
        return sequenced(runtime)
    finally:
        runtime.close()
