"""What an operator may know about keys: versions, counts, rotation progress; never material."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.clock import isoformat
from app.keys import rows
from app.keys.keyring import Keyring
from app.keys.models import KeyRotation, SubjectKey


def key_status(session: Session, keyring: Keyring) -> dict[str, Any]:
    by_state = dict(session.execute(select(SubjectKey.state, func.count())
                                    .group_by(SubjectKey.state)).all())
    by_kek = dict(session.execute(select(SubjectKey.kek_version, func.count())
                                  .where(SubjectKey.wrapped_dek.is_not(None))
                                  .group_by(SubjectKey.kek_version)).all())
    pending = session.scalar(select(func.count()).select_from(SubjectKey).where(
        SubjectKey.destroy_after.is_not(None))) or 0
    rotations = session.scalars(select(KeyRotation).order_by(KeyRotation.id.desc()).limit(5))
    problems = keyring.sync(session)
    return {
        "sealed": bool(keyring.seal_reasons),
        "problems": problems,
        "provider": keyring.kek.name,
        "cipher": keyring.cipher.name,
        "kek": {"versions": keyring.kek.versions(), "current": keyring.current_kek_version(),
                "min_accepted": rows.min_kek_version(session)},
        "subject_keys": {"by_state": by_state, "by_kek_version": {str(k): v
                                                                  for k, v in by_kek.items()},
                         "pending_destruction": pending},
        "rotations": [{"id": r.id, "kind": r.kind, "target_version": r.target_version,
                       "status": r.status, "processed": r.processed, "total": r.total,
                       "started_at": isoformat(r.started_at),
                       "finished_at": isoformat(r.finished_at) if r.finished_at else None}
                      for r in rotations],
    }
