"""The one source of the current time, so tests and jobs can inject their own."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso_or_none(moment: datetime | None) -> str | None:
    """`moment.isoformat()`, or None for no time."""
    return moment.isoformat() if moment is not None else None


def isoformat(moment: datetime) -> str:
    """Canonical UTC form with microseconds: `2026-11-22T21:00:00.000000Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
