"""What the keyring refuses with: an erased subject, a sealed or retired KEK, a damaged key."""

from __future__ import annotations

from app.errors import GatewayError, ServiceUnavailable


class NotWired(RuntimeError):
    """A keyring nobody wired refuses to destroy or rotate keys instead of skipping the
    legal-hold checks or leaving stored values under the old key."""


class SubjectErased(GatewayError):
    status, type, title = 410, "subject-erased", "Data subject erased"


class NoSuchKey(SubjectErased):
    """The subject never had a key of this version. Where a caller presents a value of their
    own choosing, this must look like a value that does not open, not like an erasure."""


class Sealed(ServiceUnavailable):
    type, title = "sealed", "Service sealed"


class KeyRetired(ServiceUnavailable):
    type, title = "key-retired", "Key retired"


class KeyDamaged(GatewayError):
    """A wrapped key that does not authenticate under a KEK whose check value does: the stored
    key itself was altered. Retrying cannot help; an operator restores it from a backup."""

    status, type, title = 500, "key-damaged", "Data key damaged"
