"""Turning checked values into their storage view, and back.

Each field is protected as policy says; free text marked `scan_pii` is scanned, what is found is
shown through the field's `pii_operator` in the stored view, and the original is kept encrypted
under the subject's key. Findings carry the field, type and offsets, never the value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.config import Settings
from app.keys.fields import (
    BLIND_INDEX_KEY,
    CiphertextInvalid,
    blind_index,
    decrypt_field,
    encrypt_field,
    is_protected,
    reencrypt_field,
)
from app.keys.keyring import Keyring
from app.pii import operators
from app.pii.engine import Finding
from app.pii.schemas import OperatorSpec
from app.pii.service import redact, scan_text
from app.policy.models import Access, DataField, FieldType, RecordType, Retention, RetentionTrigger
from app.records import protection
from app.retention import rules

INDEXED_TYPES = {FieldType.EMAIL: "email", FieldType.PHONE: "phone",
                 FieldType.CN_RESIDENT_ID: "cn_resident_id"}

Scanner = Callable[[str], list[Finding]]


@dataclass
class Stored:
    data: dict[str, Any] = field(default_factory=dict)
    originals: dict[str, str] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)
    indexes: list[tuple[str, str, str]] = field(default_factory=list)  # field, kind, digest


def scanner(settings: Settings) -> Scanner:
    """Finds PII in free text with the process's engine (loaded once per process).

    A text that cannot be scanned within PGW_PII_SCAN_SECONDS raises ScanTimeout (503), so the
    write it belongs to fails as a whole and nothing is stored unscanned.
    """

    def scan(text: str) -> list[Finding]:
        if not text.strip():
            return []
        return scan_text(settings.nlp_model_en, text, time_limit=settings.pii_scan_seconds)[1]

    return scan


def record_context(record_id: str) -> str:
    return f"record:{record_id}"


def scan_texts(spec: RecordType, values: dict[str, Any],
               scan: Scanner) -> dict[str, list[Finding]]:
    """Findings in each scanned text field. Runs before the transaction begins: on SQLite the
    write lock is held from the first statement, and a scan takes milliseconds."""
    return {name: scan(value) for name, value in values.items()
            if spec.fields[name].scan_pii and isinstance(value, str)}


def protect_values(session: Session, keyring: Keyring, *, subject_id: str, context: str,
                   spec: RecordType, values: dict[str, Any], hash_key: bytes | None,
                   scans: dict[str, list[Finding]], indexes: bool = True,
                   also: set[str | None] | None = None) -> Stored:
    """Each value as policy protects it at rest; `context` is bound into every ciphertext.
    `also` names ciphers the write encrypts with after this (None: the deployment's), so that
    their keys are prepared with the values' own."""
    ciphers: set[str | None] = {
        spec.fields[name].cipher for name in values
        if (scans[name] if name in scans else spec.fields[name].protection in protection.KEYED)}
    keyring.prepare(session, subject_id, ciphers | (also or set()))
    stored = Stored()
    index_key = None
    for name, value in values.items():
        declared = spec.fields[name]
        if name in scans:
            found = scans[name]
            stored.data[name] = _shown(value, found, declared)
            stored.findings.extend({"field": name, "type": f.type, "start": f.start,
                                    "end": f.end} for f in found)
            if found:
                stored.originals[name] = encrypt_field(
                    session, keyring, subject_id=subject_id, field=f"{name}#original",
                    context=context, cipher=declared.cipher, value=value)
        else:
            stored.data[name] = protection.protect(
                session, keyring, subject_id=subject_id, context=context, name=name,
                spec=declared, value=value, hash_key=hash_key)
        kind = INDEXED_TYPES.get(declared.type)
        if indexes and declared.blind_index and kind is not None:
            index_key = index_key or keyring.service_key(session, BLIND_INDEX_KEY)
            stored.indexes.append((name, kind, blind_index(index_key, kind, str(value))))
    return stored


def _shown(text: str, found: list[Finding], spec: DataField) -> str:
    """The text with what was found in it shown through the field's PII operator."""
    if not found:
        return text
    return redact(text, found, {"DEFAULT": OperatorSpec(type=spec.pii_operator)},
                  operators.OperatorContext()).text


def reveal_value(session: Session, keyring: Keyring, *, subject_id: str, context: str,
                 name: str, spec: DataField, stored: Any, original: str | None,
                 clear: bool) -> Any:
    """The field as the caller may see it: `clear`, or masked."""
    if spec.scan_pii:
        if clear and original is not None:
            return decrypt_field(session, keyring, subject_id=subject_id,
                                 field=f"{name}#original", context=context, token=original)
        return stored  # the stored view already has its PII protected
    return protection.reveal(session, keyring, subject_id=subject_id, context=context,
                             name=name, spec=spec, stored=stored,
                             access=Access.CLEAR if clear else Access.MASKED)


def reencrypt(session: Session, keyring: Keyring, *, subject_id: str, record_id: str,
              data: dict[str, Any],
              originals: dict[str, str]) -> tuple[dict[str, Any], dict[str, str], int]:
    """The same values under the subject's current keys; returns new data, originals, count.

    Ciphertexts describe themselves, so this needs no policy (which may have changed since the
    record was written). A clear value that merely looks like a ciphertext cannot decrypt under
    this record's associated data, and is left as it is.
    """
    context = record_context(record_id)
    data, originals, count = dict(data), dict(originals), 0
    for target, suffix in ((data, ""), (originals, "#original")):
        for name, value in target.items():
            if not is_protected(value):
                continue
            try:
                target[name] = reencrypt_field(session, keyring, subject_id=subject_id,
                                               field=name + suffix, context=context,
                                               token=str(value))
            except CiphertextInvalid:
                continue
            count += 1
    return data, originals, count


# -- retention ------------------------------------------------------------------------------

def deadline(retention: Retention, *, collected: datetime, now: datetime) -> datetime | None:
    """When data kept under `retention` is due; None while a consent-withdrawal countdown has
    not started."""
    if retention.trigger is RetentionTrigger.COLLECTION:
        return collected + timedelta(days=retention.days)
    if retention.trigger is RetentionTrigger.LAST_ACTIVITY:
        return now + timedelta(days=retention.days)
    return None


def field_deadlines(spec: RecordType, names: Iterable[str], *, collected: datetime,
                    now: datetime) -> dict[str, str]:
    due = {}
    for name in names:
        own = spec.fields[name].retention
        if own is not None:
            when = deadline(own, collected=collected, now=now)
            if when is not None:
                due[name] = rules.stamp(when)
    return due
