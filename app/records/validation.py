"""Checking data against the data dictionary before anything is stored or returned:
record type, declared fields, minimisation for the stated purpose, and each field's type."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import phonenumbers

from app.clock import utcnow
from app.errors import Forbidden, Invalid
from app.pii.checksums import valid_resident_id
from app.policy.loader import Policy
from app.policy.models import DataField, FieldType, RecordType

# RFC 5321 limits: a local part of at most 64 characters, domain labels of 1-63 that neither
# start nor end with a hyphen, and at most 254 characters in all.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL = re.compile(rf"^[A-Za-z0-9._%+-]{{1,64}}@(?:{_LABEL}\.)+[A-Za-z]{{2,24}}$")
MAX_EMAIL = 254
EARLIEST, LATEST = date(1850, 1, 1), date(2200, 12, 31)  # any date a record can mean
MAX_DECIMAL_EXPONENT = 15  # amounts below 10^16, with at most 12 decimal places
MAX_TEXT = {FieldType.FREE_TEXT: 20_000}
DEFAULT_MAX_TEXT = 1_000


class PurposeNotAllowed(Forbidden):
    type, title = "purpose-not-allowed", "Purpose not allowed"


@dataclass
class Checked:
    record_type: RecordType
    values: dict[str, Any]
    dropped: list[str] = field(default_factory=list)


def record_type(policy: Policy, name: str) -> RecordType:
    spec = policy.body.record_types.get(name)
    if spec is None:
        raise Invalid(f"unknown record type {name!r}", field="record_type",
                      supported=sorted(policy.body.record_types))
    return spec


def check_purpose(policy: Policy, spec: RecordType, type_name: str, purpose: str) -> None:
    policy.purpose(purpose)
    if not any(purpose in f.purposes for f in spec.fields.values()):
        raise PurposeNotAllowed(f"purpose {purpose!r} may not collect or use {type_name} "
                                "records")


def check_record(policy: Policy, *, type_name: str, purpose: str,
                 data: dict[str, Any], partial: bool = False) -> Checked:
    """Validate a write; errors name the field. `partial` is for rectification (PATCH)."""
    spec = record_type(policy, type_name)
    check_purpose(policy, spec, type_name, purpose)
    checked = Checked(record_type=spec, values={})
    errors = []
    for name, value in data.items():
        declared = spec.fields.get(name)
        if declared is None:
            if spec.undeclared_fields == "drop":
                checked.dropped.append(name)
                continue
            errors.append({"field": f"data.{name}", "reason": f"{type_name} has no field {name!r}"})
            continue
        if purpose not in declared.purposes:
            if spec.unneeded_fields == "drop":
                checked.dropped.append(name)
                continue
            errors.append({"field": f"data.{name}",
                           "reason": f"field {name} is not collected for purpose {purpose}"})
            continue
        if value is None:
            continue
        try:
            checked.values[name] = normalise(declared, value)
        except ValueError as exc:
            errors.append({"field": f"data.{name}", "reason": str(exc)})
    if not partial:
        for name, declared in spec.fields.items():
            if declared.required and purpose in declared.purposes and name not in checked.values:
                errors.append({"field": f"data.{name}", "reason": "required"})
    if errors:
        raise Invalid(errors[0]["reason"], errors=errors)
    return checked


def normalise(spec: DataField, value: Any) -> Any:
    """The canonical form of a value of this field type, or ValueError saying what is wrong."""
    kind = spec.type
    if kind is FieldType.BOOLEAN:
        if not isinstance(value, bool):
            raise ValueError("expected true or false")
        return value
    if kind is FieldType.INTEGER:
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 2**53:
            raise ValueError("expected an integer")
        return value
    if kind is FieldType.DECIMAL:
        try:
            number = Decimal(str(value)) if isinstance(value, int | float | str) and \
                not isinstance(value, bool) else None
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            raise ValueError("expected a decimal number")
        exponent = number.as_tuple().exponent
        if number and (number.adjusted() > MAX_DECIMAL_EXPONENT or
                       (isinstance(exponent, int) and exponent < -12)):
            raise ValueError(f"out of range: at most {MAX_DECIMAL_EXPONENT + 1} digits before "
                             "the point and 12 after it")
        return str(number)
    if not isinstance(value, str):
        raise ValueError("expected text")
    limit = MAX_TEXT.get(kind, DEFAULT_MAX_TEXT)
    if len(value) > limit:
        raise ValueError(f"longer than {limit} characters")
    if kind is FieldType.EMAIL:
        if len(value.strip()) > MAX_EMAIL or not EMAIL.match(value.strip()):
            raise ValueError("not an e-mail address")
        return value.strip()
    if kind is FieldType.PHONE:
        try:
            parsed = phonenumbers.parse(value, "CN")
        except phonenumbers.NumberParseException:
            raise ValueError("not a phone number") from None
        if not phonenumbers.is_valid_number(parsed):
            raise ValueError("not a valid phone number")
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if kind is FieldType.CN_RESIDENT_ID:
        compact = "".join(value.split()).upper()
        if not valid_resident_id(compact):
            raise ValueError("not a valid resident ID (check character, region or birth date)")
        return compact
    if kind is FieldType.DATE:
        return _date(spec, value).isoformat()
    return value


def _date(spec: DataField, value: str) -> date:
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError("expected a date as YYYY-MM-DD") from None
    if not EARLIEST <= day <= LATEST:
        raise ValueError(f"out of range: expected a date from {EARLIEST} to {LATEST}")
    if spec.not_in_future and day > utcnow().date():
        raise ValueError("in the future, which this field cannot be")
    return day
