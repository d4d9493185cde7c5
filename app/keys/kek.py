"""Key-encryption keys: versioned, behind a small registry of providers (PGW_KEK_PROVIDER).

- `local`: one 256-bit key file per version in `<data dir>/kek/` (mode 0600); the first is made
  on first start in dev; in prod it must already exist.
- `env`: PGW_KEK, either one base64 key (version 1) or `1:<base64>,2:<base64>`.
- `pkcs11`: AES keys inside a PKCS#11 token (an HSM, or SoftHSM2), labelled `pgw-kek-v<N>`,
  generated in the token and never extractable: DEKs are wrapped and unwrapped inside it.

A DEK is wrapped with AES-256-GCM under the KEK, with the subject and DEK version as associated
data, so a wrapped key cannot be moved to another subject.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.config import Settings
from app.keys import files

NONCE = 12


class KekUnavailable(Exception):
    """No usable key-encryption key: the service starts sealed."""


class KekProvider(Protocol):
    name: str

    def versions(self) -> list[int]: ...
    def reload(self) -> None: ...
    def create_version(self) -> int: ...
    def wrap(self, version: int, dek: bytes, aad: bytes) -> bytes: ...
    def unwrap(self, version: int, wrapped: bytes, aad: bytes) -> bytes: ...


class _SoftwareKeks:
    """Wrapping with KEK bytes held in memory (local and env providers)."""

    def __init__(self, keys: dict[int, bytes]):
        self._keys = {v: AESGCM(k) for v, k in keys.items()}

    def versions(self) -> list[int]:
        return sorted(self._keys)

    def reload(self) -> None:
        """Learn versions added since start (nothing to learn by default)."""

    def _aead(self, version: int) -> AESGCM:
        try:
            return self._keys[version]
        except KeyError:
            raise KekUnavailable(f"KEK version {version} is not available") from None

    def wrap(self, version: int, dek: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE)
        return nonce + self._aead(version).encrypt(nonce, dek, aad)

    def unwrap(self, version: int, wrapped: bytes, aad: bytes) -> bytes:
        return self._aead(version).decrypt(wrapped[:NONCE], wrapped[NONCE:], aad)


class LocalKeks(_SoftwareKeks):
    name = "local"
    _FILE = re.compile(r"^kek-v(\d+)\.key$")

    def __init__(self, directory: Path, *, create: bool):
        self.directory = directory
        keys = self._read()
        if not keys and create:
            files.write_new(directory / "kek-v1.key", secrets.token_bytes(32))
            keys = self._read()
        if not keys:
            raise KekUnavailable(f"no KEK file in {directory} (PGW_KEK_PROVIDER=local)")
        super().__init__(keys)

    def reload(self) -> None:
        """Pick up versions another process created (a rotation run from the CLI); versions
        already loaded are kept as they are."""
        for version, key in self._read().items():
            self._keys.setdefault(version, AESGCM(key))

    def _read(self) -> dict[int, bytes]:
        if not self.directory.is_dir():
            return {}
        keys = {}
        for path in self.directory.iterdir():
            match = self._FILE.match(path.name)
            if match:
                try:
                    keys[int(match.group(1))] = files.read(path)
                except files.KeyFileError as exc:
                    raise KekUnavailable(str(exc)) from None
        return keys

    def create_version(self) -> int:
        while True:  # another process may create the same version first: take the next one
            self.reload()
            version = max(self.versions()) + 1
            path = self.directory / f"kek-v{version}.key"
            if files.write_new(path, secrets.token_bytes(32)):
                self._keys[version] = AESGCM(files.read(path))
                return version


class EnvKeks(_SoftwareKeks):
    name = "env"

    def __init__(self, value: str):
        keys: dict[int, bytes] = {}
        try:
            for part in filter(None, (p.strip() for p in value.split(","))):
                version, _, material = part.rpartition(":")
                key = base64.b64decode(material, validate=True)
                if len(key) != 32:
                    raise ValueError
                keys[int(version) if version else 1] = key
        except (ValueError, binascii.Error):
            raise KekUnavailable("PGW_KEK must be base64 of 32 bytes, or '1:<b64>,2:<b64>'")\
                from None
        if not keys:
            raise KekUnavailable("PGW_KEK is empty (PGW_KEK_PROVIDER=env)")
        super().__init__(keys)

    def create_version(self) -> int:
        raise KekUnavailable("with PGW_KEK_PROVIDER=env, add the new version to PGW_KEK")


class Pkcs11Keks:
    """KEKs inside a PKCS#11 token; the session is opened once and serialised by a lock."""

    name = "pkcs11"
    LABEL = "pgw-kek-v{}"

    def __init__(self, module: str, token_label: str, pin: str, *, create: bool):
        import pkcs11
        from pkcs11.mechanisms import GCMParams

        self._pkcs11, self._params = pkcs11, GCMParams
        try:
            token = pkcs11.lib(module).get_token(token_label=token_label)
            self._session = token.open(user_pin=pin, rw=True)
        except (pkcs11.PKCS11Error, RuntimeError, OSError) as exc:
            raise KekUnavailable(f"PKCS#11 token {token_label!r} unavailable "
                                 f"({type(exc).__name__})") from None
        self._lock = threading.Lock()
        self._keys = self._find()
        if not self._keys and create:
            self.create_version()
        if not self._keys:
            raise KekUnavailable(f"no {self.LABEL.format('N')} key in token {token_label!r}")

    def _find(self) -> dict[int, Any]:
        attribute = self._pkcs11.Attribute
        keys = {}
        secret_keys = {attribute.CLASS: self._pkcs11.ObjectClass.SECRET_KEY}
        for obj in self._session.get_objects(secret_keys):
            match = re.match(r"^pgw-kek-v(\d+)$", obj[attribute.LABEL] or "")
            if match:
                keys[int(match.group(1))] = obj
        return keys

    def versions(self) -> list[int]:
        return sorted(self._keys)

    def reload(self) -> None:
        with self._lock:
            for version, key in self._find().items():
                self._keys.setdefault(version, key)

    def create_version(self) -> int:
        attribute = self._pkcs11.Attribute
        version = max(self._keys, default=0) + 1
        with self._lock:
            self._keys[version] = self._session.generate_key(
                self._pkcs11.KeyType.AES, 256, label=self.LABEL.format(version), store=True,
                template={attribute.EXTRACTABLE: False, attribute.SENSITIVE: True})
        return version

    def _key(self, version: int) -> Any:
        try:
            return self._keys[version]
        except KeyError:
            raise KekUnavailable(f"KEK version {version} is not in the token") from None

    def wrap(self, version: int, dek: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE)
        with self._lock:
            return nonce + bytes(self._key(version).encrypt(
                dek, mechanism=self._pkcs11.Mechanism.AES_GCM,
                mechanism_param=self._params(nonce, aad, 128)))

    def unwrap(self, version: int, wrapped: bytes, aad: bytes) -> bytes:
        with self._lock:
            try:
                return bytes(self._key(version).decrypt(
                    wrapped[NONCE:], mechanism=self._pkcs11.Mechanism.AES_GCM,
                    mechanism_param=self._params(wrapped[:NONCE], aad, 128)))
            except self._pkcs11.PKCS11Error:
                raise ValueError("the wrapped key does not authenticate") from None


def _local(settings: Settings) -> KekProvider:
    return LocalKeks(settings.data_dir / "kek", create=settings.is_dev)


def _env(settings: Settings) -> KekProvider:
    if settings.kek is None:
        raise KekUnavailable("PGW_KEK is not set (PGW_KEK_PROVIDER=env)")
    return EnvKeks(settings.kek.get_secret_value())


# A PKCS#11 login belongs to the whole process, so each token is opened once per process and
# shared; a second login with other credentials is refused by the token (UserAlreadyLoggedIn).
_TOKENS: dict[tuple[str, str, str], Pkcs11Keks] = {}
_TOKENS_LOCK = threading.Lock()


def _pkcs11(settings: Settings) -> KekProvider:
    if not (settings.pkcs11_module and settings.pkcs11_token_label and settings.pkcs11_pin):
        raise KekUnavailable("PGW_PKCS11_MODULE, PGW_PKCS11_TOKEN_LABEL and PGW_PKCS11_PIN "
                             "are required (PGW_KEK_PROVIDER=pkcs11)")
    pin = settings.pkcs11_pin.get_secret_value()
    key = (settings.pkcs11_module, settings.pkcs11_token_label,
           hashlib.sha256(pin.encode()).hexdigest())
    with _TOKENS_LOCK:
        if key not in _TOKENS:
            _TOKENS[key] = Pkcs11Keks(settings.pkcs11_module, settings.pkcs11_token_label, pin,
                                      create=settings.is_dev)
        return _TOKENS[key]


PROVIDERS: dict[str, Callable[[Settings], KekProvider]] = {
    "local": _local, "env": _env, "pkcs11": _pkcs11,
}


def load_kek(settings: Settings) -> KekProvider:
    try:
        factory = PROVIDERS[settings.kek_provider]
    except KeyError:
        raise KekUnavailable(f"unknown PGW_KEK_PROVIDER {settings.kek_provider!r}; "
                             f"choose from {', '.join(PROVIDERS)}") from None
    return factory(settings)
