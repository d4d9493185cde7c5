from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.retention import rules

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def test_a_field_expires_at_its_stored_deadline_and_not_before() -> None:
    deadlines = {"phone": rules.stamp(NOW), "email": rules.stamp(NOW + timedelta(seconds=1))}
    assert rules.field_expired(deadlines, "phone", NOW)
    assert not rules.field_expired(deadlines, "email", NOW)
    assert not rules.field_expired(deadlines, "name", NOW)  # no deadline of its own
    assert rules.expired_fields(deadlines, NOW + timedelta(days=1)) == ["email", "phone"]
    assert rules.expired_fields(deadlines, NOW - timedelta(days=1)) == []
