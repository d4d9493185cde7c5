"""The events a subscriber can choose, and what each one's `data` holds.

One registry: the router's schema, registration, publishing and the README's table all follow
`Event` and `DATA`. An event carries ids, types, purposes and field names, never a value a
person gave (no field value, no e-mail, no free text such as a rejection reason): a receiver
that needs data reads it through the API, under its own scopes, audited. Subject ids appear as
`subject.erased` has always sent them.

`VERSION` is the version of these shapes. Adding an event or a field keeps it (receivers
ignore what they do not know); removing or renaming a field, or changing its meaning, raises it.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

VERSION = 1
ALL = "*"


class Event(StrEnum):
    CONSENT_GIVEN = "consent.given"
    CONSENT_WITHDRAWN = "consent.withdrawn"
    DSR_RECEIVED = "dsr.received"
    DSR_COMPLETED = "dsr.completed"
    DSR_OVERDUE = "dsr.overdue"
    DSR_REJECTED = "dsr.rejected"
    DSR_EXTENDED = "dsr.extended"
    DSR_FAILED = "dsr.failed"
    SUBJECT_ERASED = "subject.erased"
    SUBJECT_RECTIFIED = "subject.rectified"
    SUBJECT_RESTRICTED = "subject.restricted"
    SUBJECT_OBJECTED = "subject.objected"
    RECORD_DELETED = "record.deleted"
    RECORD_DEIDENTIFIED = "record.deidentified"


_DSR = ("dsr_id", "subject_id", "type", "jurisdiction", "status", "due_at")
# The keys of each event's `data`; publishing another key is a defect, refused.
DATA: dict[Event, tuple[str, ...]] = {
    Event.CONSENT_GIVEN: ("consent_event_id", "subject_id", "purpose", "notice_id",
                          "notice_version", "channel"),
    Event.CONSENT_WITHDRAWN: ("consent_event_id", "subject_id", "purpose", "channel"),
    Event.DSR_RECEIVED: _DSR,
    Event.DSR_COMPLETED: _DSR,
    Event.DSR_OVERDUE: _DSR,
    Event.DSR_REJECTED: _DSR,
    Event.DSR_EXTENDED: _DSR,
    Event.DSR_FAILED: _DSR,
    Event.SUBJECT_ERASED: ("subject_id", "dsr_id"),
    Event.SUBJECT_RECTIFIED: ("subject_id", "dsr_id", "fields", "records"),
    Event.SUBJECT_RESTRICTED: ("subject_id", "dsr_id", "records"),
    Event.SUBJECT_OBJECTED: ("subject_id", "dsr_id", "consents_withdrawn", "records"),
    Event.RECORD_DELETED: ("records", "reason"),
    Event.RECORD_DEIDENTIFIED: ("records", "reason"),
}
# The keys of each item of `records` in record.* events: a de-identified record lives on,
# unlinked from its subject, so its event does not link it again.
RECORD_ITEM: dict[Event, tuple[str, ...]] = {
    Event.RECORD_DELETED: ("record_id", "record_type", "purpose", "subject_id"),
    Event.RECORD_DEIDENTIFIED: ("record_id", "record_type", "purpose"),
}
FAMILIES = tuple(sorted({f"{event.value.split('.')[0]}.*" for event in Event}))
PATTERNS = (*(event.value for event in Event), *FAMILIES, ALL)


def check(name: str) -> str:
    """`name` if a subscriber may choose it (an event, `family.*` or `*`); else ValueError
    naming it."""
    if name in PATTERNS:
        return name
    raise ValueError(f"unknown event {name!r}; known: {', '.join(PATTERNS)}")


def matches(chosen: Iterable[str], event: Event) -> bool:
    """Whether a subscriber that chose `chosen` gets `event`. A wildcard takes events added
    later to its family as well."""
    family = f"{event.value.split('.')[0]}.*"
    return any(name in (event.value, family, ALL) for name in chosen)


def check_data(event: Event, data: dict[str, object]) -> None:
    """Refuse a key the event does not document (a defect, not bad input): what is sent
    stays what the README promises, and a value cannot slip in under a new name."""
    extra = sorted(set(data) - set(DATA[event]))
    if extra:
        raise ValueError(f"{event} data holds undocumented keys {extra}")
    item = RECORD_ITEM.get(event)
    if item is None:
        return
    records = data.get("records", [])
    if not isinstance(records, list) or any(
            not isinstance(r, dict) or set(r) - set(item) for r in records):
        raise ValueError(f"{event} records may hold only {', '.join(item)}")
