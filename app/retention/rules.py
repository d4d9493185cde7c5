"""When a field's time is up. A record keeps its fields' deadlines in `field_retention` as
ISO 8601 strings (JSON has no timestamps); this is the one module that writes and reads them,
so the sweep, reading and dataset release decide alike."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime


def stamp(when: datetime) -> str:
    """A field's deadline as stored."""
    return when.isoformat()


def field_expired(deadlines: Mapping[str, str], name: str, now: datetime) -> bool:
    """Whether the field's own retention period is over (a field without one never is)."""
    due = deadlines.get(name)
    return due is not None and datetime.fromisoformat(due) <= now


def expired_fields(deadlines: Mapping[str, str], now: datetime) -> list[str]:
    """The fields whose retention period is over, by name."""
    return sorted(name for name in deadlines if field_expired(deadlines, name, now))
