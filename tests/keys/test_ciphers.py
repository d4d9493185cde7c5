import os

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from app.keys.ciphers import SM4GCM, cipher


def test_sm4_gb_t_32907_vector() -> None:
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    encryptor = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()  # noqa: S305 - one-block KAT
    assert (encryptor.update(key) + encryptor.finalize()).hex() == \
        "681edf34d206965e86b3e94f536e4246"


def test_sm3_vector() -> None:
    digest = hashes.Hash(hashes.SM3())
    digest.update(b"abc")
    assert digest.finalize().hex() == \
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


@pytest.mark.parametrize("name", ["aes-256-gcm", "sm4-gcm", "aes", "sm4"])
def test_round_trip_and_tamper(name: str) -> None:
    spec = cipher(name)
    aead = spec.aead(os.urandom(spec.key_bytes))
    nonce = os.urandom(12)
    sealed = aead.encrypt(nonce, "身份证 11010519491231002X".encode(), b"aad")
    assert aead.decrypt(nonce, sealed, b"aad").decode() == "身份证 11010519491231002X"
    flipped = bytes([sealed[0] ^ 1]) + sealed[1:]
    with pytest.raises(InvalidTag):
        aead.decrypt(nonce, flipped, b"aad")
    with pytest.raises(InvalidTag):
        aead.decrypt(nonce, sealed, b"other")


def test_sm4_keys_are_128_bits() -> None:
    with pytest.raises(ValueError, match="128"):
        SM4GCM(os.urandom(32))
