"""Finding a subject by a blind index of an identifier. Apart from `service.py` because the
data-subject-request domain, which `service.py` imports, needs it too."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.records.models import BlindIndex


def subjects_with(session: Session, *, kind: str, digest: str) -> set[str]:
    """The subjects one of whose records holds an identifier of `kind` with this digest."""
    return set(session.scalars(select(BlindIndex.subject_id).where(
        BlindIndex.kind == kind, BlindIndex.digest == digest)))
