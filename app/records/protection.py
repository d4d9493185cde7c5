"""Protecting a field as policy says when it is written, and revealing it as access allows.

`encrypt` and `tokenize` both give a ciphertext under the subject's data key, bound to the
subject, the context (record or protection context) and the field: erasing the subject makes
every copy unreadable. `hash` is keyed HMAC, `mask:<operator>` keeps only the masked form.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from sqlalchemy.orm import Session

from app.errors import ServiceUnavailable
from app.keys.fields import decrypt_field, encrypt_field
from app.keys.keyring import Keyring
from app.pii import operators
from app.policy.models import Access, DataField, FieldType

ENTITY_OF = {FieldType.NAME: "PERSON", FieldType.EMAIL: "EMAIL_ADDRESS",
             FieldType.PHONE: "PHONE_NUMBER", FieldType.CN_RESIDENT_ID: "CN_RESIDENT_ID",
             FieldType.ADDRESS: "LOCATION", FieldType.DATE: "DATE_TIME"}


def _mask(spec: DataField, value: Any, operator: str = "mask") -> str:
    return operators.apply(operator, str(value), ENTITY_OF.get(spec.type, "GENERIC"), {},
                           operators.OperatorContext())


KEYED = ("encrypt", "tokenize")  # protections that encrypt under the subject's data key


def protect(session: Session, keyring: Keyring, *, subject_id: str, context: str, name: str,
            spec: DataField, value: Any, hash_key: bytes | None) -> Any:
    protection = spec.protection
    if protection in KEYED:
        return encrypt_field(session, keyring, subject_id=subject_id, field=name,
                             context=context, cipher=spec.cipher,
                             value=json.dumps(value, ensure_ascii=False))
    if protection == "hash":
        if not hash_key:
            raise ServiceUnavailable("the hash key is not available")
        return hmac.new(hash_key, str(value).encode(), hashlib.sha256).hexdigest()
    if protection.startswith("mask:"):
        return _mask(spec, value, protection.split(":", 1)[1])
    return value


def reveal(session: Session, keyring: Keyring, *, subject_id: str, context: str, name: str,
           spec: DataField, stored: Any, access: Access) -> Any:
    """The value as this caller may see it; call only when access is not denied."""
    if spec.protection in KEYED:
        value = json.loads(decrypt_field(session, keyring, subject_id=subject_id, field=name,
                                         context=context, token=str(stored)))
    else:
        value = stored
    if access is Access.MASKED and spec.protection in (*KEYED, "clear"):
        return _mask(spec, value)
    return value
