"""The hash chain and its verification, with no database: an auditor can run this on an export.

Entry hash = SHA-256 over the canonical JSON (sorted keys, no spaces, UTF-8) of every field but
`hash`, `prev_hash` included. A checkpoint is an Ed25519 signature over the canonical JSON of
`{"size", "head", "created_at", "key_id"}`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

GENESIS_HASH = "0" * 64
ENTRY_FIELDS = (
    "seq", "ts", "actor", "roles", "action", "purpose", "subject_id", "resource", "outcome",
    "details", "request_id", "policy_version", "prev_hash",
)
CHECKPOINT_FIELDS = ("size", "head", "created_at", "key_id")


def canonical(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def entry_hash(entry: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical({name: entry[name] for name in ENTRY_FIELDS})).hexdigest()


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def checkpoint_message(checkpoint: Mapping[str, Any]) -> bytes:
    return canonical({name: checkpoint[name] for name in CHECKPOINT_FIELDS})


def checkpoint_signature_ok(checkpoint: Mapping[str, Any], public_key: Ed25519PublicKey) -> bool:
    if checkpoint.get("key_id") != key_id(public_key):
        return False
    try:
        signature = base64.b64decode(checkpoint["signature"], validate=True)
        public_key.verify(signature, checkpoint_message(checkpoint))
    except (InvalidSignature, ValueError, KeyError, TypeError):
        return False
    return True


@dataclass
class Verification:
    ok: bool
    entries: int
    head: str
    first_bad_seq: int | None = None
    reason: str | None = None
    checkpoints: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify(entries: Iterable[Mapping[str, Any]], checkpoints: Iterable[Mapping[str, Any]],
           public_key: Ed25519PublicKey | None) -> Verification:
    """Walk the chain in order; stop at the first entry or checkpoint that does not hold.

    `entries` must come in the order the log claims (sequence order); `checkpoints` may come in
    any order. Without a public key, checkpoint heads are still compared with the chain.
    """
    by_size: dict[int, Mapping[str, Any]] = {}
    for checkpoint in checkpoints:
        size = checkpoint.get("size")
        if public_key is not None and not checkpoint_signature_ok(checkpoint, public_key):
            return Verification(False, 0, GENESIS_HASH, None,
                                f"checkpoint at size {size}: signature does not verify")
        if not isinstance(size, int) or size < 1:
            return Verification(False, 0, GENESIS_HASH, None, "checkpoint with invalid size")
        by_size[size] = checkpoint

    expected_seq, prev, count = 1, GENESIS_HASH, 0
    for entry in entries:
        bad = _check_entry(entry, expected_seq, prev)
        if bad is not None:
            return Verification(False, count, prev, expected_seq, bad, len(by_size))
        signed = by_size.get(expected_seq)
        if signed is not None and signed.get("head") != entry["hash"]:
            return Verification(False, count, prev, expected_seq,
                                f"entry {expected_seq} does not match the signed checkpoint "
                                "at that size", len(by_size))
        prev, expected_seq, count = entry["hash"], expected_seq + 1, count + 1

    beyond = [size for size in by_size if size > count]
    if beyond:
        return Verification(False, count, prev, count + 1,
                            f"log truncated: a signed checkpoint covers {max(beyond)} entries, "
                            f"only {count} are present", len(by_size))
    return Verification(True, count, prev, None, None, len(by_size))


def _check_entry(entry: Mapping[str, Any], expected_seq: int, prev: str) -> str | None:
    seq = entry.get("seq")
    if seq != expected_seq:
        if isinstance(seq, int) and seq > expected_seq:
            return f"entry {expected_seq} is missing (next present is {seq})"
        return f"entry {expected_seq} is out of order (found sequence number {seq})"
    if entry.get("prev_hash") != prev:
        return f"entry {seq} does not link to entry {seq - 1} (prev_hash differs)"
    try:
        recomputed = entry_hash(entry)
    except (KeyError, TypeError, ValueError):
        return f"entry {seq} is malformed"
    if recomputed != entry.get("hash"):
        return f"entry {seq} was altered (hash does not match its content)"
    return None
