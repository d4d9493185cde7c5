"""Field ciphers: AES-256-GCM (default) and SM4-GCM (GB/T 32907, for national-standard
deployments). `cryptography` has no SM4 AEAD class, so SM4-GCM goes through the Cipher API."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
TAG_BYTES = 16


class Aead(Protocol):
    def encrypt(self, nonce: bytes, data: bytes, aad: bytes | None) -> bytes: ...
    def decrypt(self, nonce: bytes, data: bytes, aad: bytes | None) -> bytes: ...


class SM4GCM:
    """The AESGCM interface over SM4: ciphertext followed by the 16-byte tag."""

    def __init__(self, key: bytes):
        if len(key) != 16:
            raise ValueError("SM4 keys are 128 bits")
        self._key = key

    def encrypt(self, nonce: bytes, data: bytes, aad: bytes | None) -> bytes:
        encryptor = Cipher(algorithms.SM4(self._key), modes.GCM(nonce)).encryptor()
        if aad:
            encryptor.authenticate_additional_data(aad)
        return encryptor.update(data) + encryptor.finalize() + encryptor.tag

    def decrypt(self, nonce: bytes, data: bytes, aad: bytes | None) -> bytes:
        if len(data) < TAG_BYTES:
            raise InvalidTag()
        decryptor = Cipher(algorithms.SM4(self._key),
                           modes.GCM(nonce, data[-TAG_BYTES:])).decryptor()
        if aad:
            decryptor.authenticate_additional_data(aad)
        return decryptor.update(data[:-TAG_BYTES]) + decryptor.finalize()


class CipherName(StrEnum):
    """The field ciphers, by the names policies, settings and key rows give them."""

    AES_256_GCM = "aes-256-gcm"
    SM4_GCM = "sm4-gcm"


@dataclass(frozen=True)
class CipherSpec:
    name: CipherName
    code: int  # one byte in the ciphertext header
    key_bytes: int

    def aead(self, key: bytes) -> Aead:
        return AESGCM(key) if self.name is CipherName.AES_256_GCM else SM4GCM(key)


CIPHERS = {spec.name: spec for spec in (CipherSpec(CipherName.AES_256_GCM, 1, 32),
                                        CipherSpec(CipherName.SM4_GCM, 2, 16))}
BY_CODE = {spec.code: spec for spec in CIPHERS.values()}
ALIASES = {"aes": CipherName.AES_256_GCM, "sm4": CipherName.SM4_GCM}


def cipher_name(name: str) -> CipherName:
    """The cipher a name or its alias (`aes`, `sm4`) means; ValueError for any other."""
    return CipherName(ALIASES.get(name, name))


def cipher(name: str) -> CipherSpec:
    return CIPHERS[cipher_name(name)]
