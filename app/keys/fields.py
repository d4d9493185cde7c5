"""Field encryption and blind indexes.

A protected value is `pgw1.` + base64(cipher code, key version, nonce, ciphertext and tag).
The associated data binds it to its subject, its context (a record id, or a protection
context) and its field: moved anywhere else, it fails to decrypt, and there is no fallback.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import os
import struct
from binascii import b2a_base64

import phonenumbers
from cryptography.exceptions import InvalidTag
from sqlalchemy.orm import Session

from app.errors import GatewayError
from app.keys.ciphers import BY_CODE, NONCE_BYTES
from app.keys.datakey import DataKey
from app.keys.keyring import Keyring

PREFIX = "pgw1."
_HEADER_FORMAT = struct.Struct(">BI")  # cipher code, key version
_HEADER = _HEADER_FORMAT.size
if (_HEADER, NONCE_BYTES) != (5, 12):  # decrypt_field slices by these
    raise RuntimeError("the token layout changed: update decrypt_field")
BLIND_INDEX_KEY = "blind_index"


class CiphertextInvalid(GatewayError):
    status, type, title = 422, "invalid-ciphertext", "Value does not decrypt"


def _aad(subject_id: str, context: str, field: str, key: DataKey) -> bytes:
    """pgw1, subject, context, field, key version and cipher code, NUL-separated."""
    if "\x00" in subject_id or "\x00" in context or "\x00" in field:
        # a NUL inside a name would make the encoding ambiguous
        raise ValueError("subject, context and field names cannot contain NUL")
    return f"pgw1\x00{subject_id}\x00{context}\x00{field}".encode() + key.aad_tail


# Random 96-bit nonces, read from the OS in blocks: one system call per 512 nonces instead of
# one each. list.pop() is atomic, so each nonce is handed out once, to one thread; a forked
# child empties the pool (what it inherited is its parent's), so no two processes share one.
_NONCE_BLOCK = 512
_nonce_pool: list[bytes] = []


def _nonce() -> bytes:
    while True:
        try:
            return _nonce_pool.pop()
        except IndexError:
            block = os.urandom(NONCE_BYTES * _NONCE_BLOCK)
            _nonce_pool.extend(block[i:i + NONCE_BYTES]
                               for i in range(0, len(block), NONCE_BYTES))


os.register_at_fork(after_in_child=_nonce_pool.clear)


def encrypt_field(session: Session, keyring: Keyring, *, subject_id: str, field: str,
                  value: str, context: str = "", cipher: str | None = None) -> str:
    """Protect one value; `cipher` (a field's policy) overrides the deployment's PGW_CIPHER."""
    key = keyring.for_encryption(session, subject_id, cipher)
    try:  # _nonce() without the call, on the hot path
        nonce = _nonce_pool.pop()
    except IndexError:
        nonce = _nonce()
    sealed = key.aead.encrypt(nonce, value.encode(), _aad(subject_id, context, field, key))
    return PREFIX + b2a_base64(key.header + nonce + sealed, newline=False).decode()


def token_version(token: str) -> int:
    version: int = _HEADER_FORMAT.unpack_from(_decode(token))[1]
    return version


def _decode(token: str) -> bytes:
    if not token.startswith(PREFIX):
        raise CiphertextInvalid("not a protected value of this service")
    try:
        blob = binascii.a2b_base64(token[5:], strict_mode=True)
    except (binascii.Error, ValueError):
        raise CiphertextInvalid("protected value is malformed") from None
    if len(blob) < _HEADER + NONCE_BYTES + 16 or blob[0] not in BY_CODE:
        raise CiphertextInvalid("protected value is malformed")
    return blob


def decrypt_field(session: Session, keyring: Keyring, *, subject_id: str, field: str,
                  token: str, context: str = "") -> str:
    blob = _decode(token)
    key = keyring.for_decryption(session, subject_id, int.from_bytes(blob[1:5], "big"))
    if blob[:5] != key.header:  # the version matches by lookup, so this compares the cipher
        raise CiphertextInvalid("protected value does not decrypt with this subject's key")
    try:  # header (5 bytes), nonce (12), ciphertext and tag
        plain = key.aead.decrypt(blob[5:17], blob[17:], _aad(subject_id, context, field, key))
    except InvalidTag:
        raise CiphertextInvalid("protected value does not decrypt here: it belongs to another "
                                "subject, record or field, or was altered") from None
    return plain.decode()


# -- blind indexes -------------------------------------------------------------------------

def normalise_for_index(kind: str, value: str) -> str:
    """E-mail lower-cased, phone in E.164 (mainland China by default), ID upper-cased."""
    value = value.strip()
    if kind == "email":
        return value.lower()
    if kind == "phone":
        try:
            number = phonenumbers.parse(value, "CN")
        except phonenumbers.NumberParseException:
            return "".join(c for c in value if c.isdigit() or c == "+")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if kind == "cn_resident_id":
        return "".join(value.split()).upper()
    return value


def blind_index(key: bytes, kind: str, value: str) -> str:
    """Keyed HMAC of the normalised value: finds equal values, reveals nothing about them."""
    message = f"{kind}\x00{normalise_for_index(kind, value)}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def reencrypt_field(session: Session, keyring: Keyring, *, subject_id: str, field: str,
                    token: str, context: str = "") -> str:
    """The same value under the subject's current key for the token's cipher."""
    code = _HEADER_FORMAT.unpack_from(_decode(token))[0]
    clear = decrypt_field(session, keyring, subject_id=subject_id, field=field,
                          context=context, token=token)
    return encrypt_field(session, keyring, subject_id=subject_id, field=field, value=clear,
                         context=context, cipher=BY_CODE[code].name)


def is_protected(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)
