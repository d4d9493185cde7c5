"""Everything an auditor needs to check the audit log, in one file with no database.

This module imports nothing from the gateway: an auditor copies it (`pgw audit verifier-script`)
and runs it with Python and the `cryptography` package alone.

- Entry hash (the hash chain, kept from the first version of the log): SHA-256 over the
  canonical JSON (sorted keys, no spaces, UTF-8) of every field but `hash`, `prev_hash` included.
- Merkle tree (RFC 9162, section 2.1): leaf hash = SHA-256(0x00 || canonical JSON of the entry's
  fields, the same bytes the entry hash covers); interior node = SHA-256(0x01 || left || right).
- Checkpoints are signed twice with the log's Ed25519 key: the JSON signature over
  `{"size", "head", "created_at", "key_id"}` (chain head), and a signed note in the checkpoint
  format of transparency logs (C2SP tlog-checkpoint and signed-note): `origin`, tree size and
  base64 root hash, one per line, then a blank line and `— <name> <base64(key hash ‖ signature)>`
  lines, where a witness may add its own.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

GENESIS_HASH = "0" * 64
ENTRY_FIELDS = (
    "seq", "ts", "actor", "roles", "action", "purpose", "subject_id", "resource", "outcome",
    "details", "request_id", "policy_version", "prev_hash",
)
CHECKPOINT_FIELDS = ("size", "head", "created_at", "key_id")
EXPORT_FORMAT = "pgw-audit-export"
ED25519_NOTE_TYPE = b"\x01"


# --- the hash chain ---------------------------------------------------------------------------

def canonical(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def entry_bytes(entry: Mapping[str, Any]) -> bytes:
    return canonical({name: entry[name] for name in ENTRY_FIELDS})


def entry_hash(entry: Mapping[str, Any]) -> str:
    return entry_digest(entry_bytes(entry))


def entry_digest(body: bytes) -> str:
    """The chain hash of an entry whose canonical bytes are `body` (`entry_bytes`)."""
    return hashlib.sha256(body).hexdigest()


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


# --- the Merkle tree (RFC 9162) ---------------------------------------------------------------

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def entry_leaf_hash(entry: Mapping[str, Any]) -> bytes:
    return leaf_hash(entry_bytes(entry))


def largest_power_of_two_below(n: int) -> int:
    """The k of RFC 9162: the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class CompactRange:
    """The right edge of a growing tree: one hash per perfect subtree, largest first, so the
    root of every size is known in O(log n) memory while leaves stream past."""

    def __init__(self, size: int = 0, peaks: Sequence[bytes] = ()):
        if len(peaks) != bin(size).count("1"):
            raise ValueError("a compact range has one hash per set bit of its size")
        self.size, self.peaks = size, list(peaks)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash; returns the perfect subtrees it completes as (level, index, hash),
        the leaf itself first."""
        index, node, level = self.size, leaf, 0
        completed = [(0, index, leaf)]
        while (index >> level) & 1:
            node = node_hash(self.peaks.pop(), node)
            level += 1
            completed.append((level, index >> level, node))
        self.peaks.append(node)
        self.size += 1
        return completed

    def root(self) -> bytes:
        if not self.peaks:
            return EMPTY_ROOT
        root = self.peaks[-1]
        for peak in reversed(self.peaks[:-1]):
            root = node_hash(peak, root)
        return root


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes],
                     root: bytes) -> bool:
    """RFC 9162, 2.1.3.2."""
    if index >= size or index < 0:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162, 2.1.4.2: is the tree of size `second` an append-only extension of `first`?"""
    if first > second or first < 0:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # an exact power of two: the old root is a node of the new tree
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_root and sr == second_root and sn == 0


# --- signed notes (checkpoints in the transparency-log format) --------------------------------

@dataclass(frozen=True)
class Note:
    origin: str
    size: int
    root: bytes
    body: str
    signatures: tuple[tuple[str, bytes], ...]  # (name, key hash ‖ signature)


def note_key_hash(name: str, public_key: Ed25519PublicKey) -> bytes:
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(name.encode() + b"\n" + ED25519_NOTE_TYPE + raw).digest()[:4]


def note_body(origin: str, size: int, root: bytes) -> str:
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def signature_line(name: str, public_key: Ed25519PublicKey, signature: bytes) -> str:
    blob = base64.b64encode(note_key_hash(name, public_key) + signature).decode()
    return f"\u2014 {name} {blob}\n"


class NoteError(ValueError):
    pass


def _decimal(text: str) -> bool:
    """ASCII digits without a leading zero (str.isdigit also takes other scripts' digits)."""
    return text.isascii() and text.isdigit() and (text == "0" or not text.startswith("0"))


def parse_note(text: str) -> Note:
    body, sep, sigs = text.partition("\n\n")
    if not sep or not text.endswith("\n"):
        raise NoteError("a signed note has a body, a blank line, then signature lines, each "
                        "ending with a newline")
    lines = body.split("\n")
    if len(lines) < 3 or not _decimal(lines[1]):
        raise NoteError("a checkpoint body is the origin, the tree size and the root hash")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except ValueError:
        raise NoteError("the root hash is not base64") from None
    if len(root) != 32:
        raise NoteError("the root hash is not 32 bytes")
    signatures = []
    for line in sigs.splitlines():
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != "\u2014":
            raise NoteError(f"malformed signature line {line!r}")
        try:
            signatures.append((parts[1], base64.b64decode(parts[2], validate=True)))
        except ValueError:
            raise NoteError("a signature is not base64") from None
    return Note(lines[0], int(lines[1]), root, body + "\n", tuple(signatures))


def note_signed_by(note: Note, name: str, public_key: Ed25519PublicKey) -> bool:
    wanted = note_key_hash(name, public_key)
    for signer, blob in note.signatures:
        if signer == name and blob[:4] == wanted:
            try:
                public_key.verify(blob[4:], note.body.encode())
                return True
            except InvalidSignature:
                return False
    return False


def any_signature_by(note: Note, public_key: Ed25519PublicKey) -> bool:
    return any(note_signed_by(note, name, public_key) for name, _ in note.signatures)


# A witness's co-signature (C2SP tlog-cosignature): key hash over type 0x04, and the signed
# message binds the time of co-signing, carried in the signature as 8 bytes big-endian.
COSIGNATURE_TYPE = b"\x04"


def cosignature_key_hash(name: str, public_key: Ed25519PublicKey) -> bytes:
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(name.encode() + b"\n" + COSIGNATURE_TYPE + raw).digest()[:4]


def cosignature_message(body: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


def cosignature_line(name: str, public_key: Ed25519PublicKey, timestamp: int,
                     signature: bytes) -> str:
    blob = cosignature_key_hash(name, public_key) + timestamp.to_bytes(8, "big") + signature
    return f"\u2014 {name} {base64.b64encode(blob).decode()}\n"


def cosigned_by(note: Note, name: str, public_key: Ed25519PublicKey) -> int | None:
    """The time `name` co-signed this checkpoint, if its co-signature verifies."""
    wanted = cosignature_key_hash(name, public_key)
    for signer, blob in note.signatures:
        if signer == name and blob[:4] == wanted and len(blob) == 76:
            timestamp = int.from_bytes(blob[4:12], "big")
            try:
                public_key.verify(blob[12:], cosignature_message(note.body, timestamp))
                return timestamp
            except InvalidSignature:
                return None
    return None


# --- walking a log: chain, tree and checkpoints -----------------------------------------------

@dataclass
class Verification:
    ok: bool
    entries: int
    head: str
    first_bad_seq: int | None = None
    reason: str | None = None
    checkpoints: int = 0
    root: str | None = None
    roots: dict[int, bytes] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result.pop("roots")
        if result["root"] is None:
            result.pop("root")
        return result


def verify(entries: Iterable[Mapping[str, Any]], checkpoints: Iterable[Mapping[str, Any]],
           public_key: Ed25519PublicKey | None, *, roots_at: Iterable[int] = (),
           on_nodes: Callable[[list[tuple[int, int, bytes]]], None] | None = None,
           ) -> Verification:
    """Walk the chain in order; stop at the first entry or checkpoint that does not hold.

    `entries` must come in the order the log claims (sequence order); `checkpoints` may come in
    any order. Without a public key, checkpoint heads and roots are still compared with the log.
    The Merkle roots at the sizes in `roots_at` are kept in the result (to compare with a
    checkpoint an auditor kept from earlier). `on_nodes` is given each perfect subtree's
    (level, index, hash) as an entry completes it, to compare with a stored tree.
    """
    by_size: dict[int, Mapping[str, Any]] = {}
    for checkpoint in checkpoints:
        problem = _checkpoint_problem(checkpoint, public_key)
        if problem is not None:
            return Verification(False, 0, GENESIS_HASH, None, problem)
        by_size[int(checkpoint["size"])] = checkpoint

    wanted = set(roots_at)
    tree, roots = CompactRange(), {}
    expected_seq, prev, count = 1, GENESIS_HASH, 0
    for entry in entries:
        bad = _check_entry(entry, expected_seq, prev)
        if bad is not None:
            return Verification(False, count, prev, expected_seq, bad, len(by_size))
        made = tree.append(entry_leaf_hash(entry))
        if on_nodes is not None:
            on_nodes(made)
        signed = by_size.get(expected_seq)
        if signed is not None:
            bad = _compare_checkpoint(signed, entry, tree.root())
            if bad is not None:
                held = max((size for size in by_size if size < expected_seq), default=0)
                if held + 1 < expected_seq:  # which of them: the checkpoint cannot say
                    return Verification(False, count, prev, None,
                                        _changed_between(held, expected_seq, bad),
                                        len(by_size))
                return Verification(False, count, prev, expected_seq, bad, len(by_size))
        if expected_seq in wanted:
            roots[expected_seq] = tree.root()
        prev, expected_seq, count = entry["hash"], expected_seq + 1, count + 1

    beyond = [size for size in by_size if size > count]
    if beyond:
        return Verification(False, count, prev, count + 1,
                            f"log truncated: a signed checkpoint covers {max(beyond)} entries, "
                            f"only {count} are present", len(by_size))
    return Verification(True, count, prev, None, None, len(by_size),
                        root=tree.root().hex(), roots=roots)


def _checkpoint_problem(checkpoint: Mapping[str, Any],
                        public_key: Ed25519PublicKey | None) -> str | None:
    size = checkpoint.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        return "checkpoint with invalid size"
    if public_key is None:
        return None
    if not checkpoint_signature_ok(checkpoint, public_key):
        return (f"checkpoint at size {size}: signature does not verify (signed with another "
                "key: the wrong public key given, or a forged checkpoint)")
    if checkpoint.get("note") is not None:
        try:
            note = parse_note(str(checkpoint["note"]))
        except NoteError as exc:
            return f"checkpoint at size {size}: {exc}"
        if not any_signature_by(note, public_key) or note.size != size \
                or note.root.hex() != checkpoint.get("root"):
            return f"checkpoint at size {size}: its signed note does not verify"
    return None


def _compare_checkpoint(signed: Mapping[str, Any], entry: Mapping[str, Any],
                        root: bytes) -> str | None:
    seq = entry["seq"]
    if signed.get("head") != entry["hash"]:
        return f"entry {seq} does not match the signed checkpoint at that size"
    if signed.get("root") is not None and signed["root"] != root.hex():
        return f"the tree of {seq} entries does not match the root of its signed checkpoint"
    return None


def _changed_between(held: int, size: int, bad: str) -> str:
    """The chain holds and matched the checkpoint at `held` (0: none), not the one at `size`:
    an entry between was changed and the chain recomputed after it. The entries carry nothing
    that says which; an older copy of them, or the tree the live log stored, does."""
    still = f" (the checkpoint at size {held} still holds)" if held else ""
    return (f"{bad}: the first entry that differs from what was signed is one of entries "
            f"{held + 1} to {size}{still}, changed with the hash chain recomputed after it; "
            "the checkpoints cannot say which. --against an older export names it, and so does "
            "`pgw audit verify` on the live log while its stored Merkle tree is intact")


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


# --- export files -----------------------------------------------------------------------------

class ExportFormatError(ValueError):
    pass


def read_export(lines: Iterable[str]) -> tuple[dict[str, Any], list[dict[str, Any]],
                                               Iterator[dict[str, Any]]]:
    """The header, the checkpoints, and an iterator over the entries of an export file."""
    stream = iter(enumerate(lines, start=1))
    header = _parse(next(stream, (1, ""))[1], 1)
    if header.get("type") != "header" or header.get("format") != EXPORT_FORMAT:
        raise ExportFormatError("line 1 is not a pgw audit export header")
    checkpoints: list[dict[str, Any]] = []
    first: dict[str, Any] | None = None
    for number, line in stream:
        if not line.strip():
            continue
        item = _parse(line, number)
        if item.get("type") != "checkpoint":
            first = item
            break
        checkpoints.append(item)

    def entries() -> Iterator[dict[str, Any]]:
        if first is None:
            return
        yield first
        for number, line in stream:
            if line.strip():
                yield _parse(line, number)

    return header, checkpoints, entries()


def verify_export(lines: Iterable[str], public_key: Ed25519PublicKey, *,
                  kept: Sequence[Note] = ()) -> Verification:
    """Verify an export: the chain, the tree, every checkpoint signature, full coverage, and
    that the log extends each checkpoint the auditor `kept` from earlier."""
    header, checkpoints, entries = read_export(lines)
    for note in kept:
        if not any_signature_by(note, public_key):
            raise ExportFormatError(f"the kept checkpoint at size {note.size} is not signed by "
                                    "this key")
    result = verify(entries, checkpoints, public_key, roots_at=[n.size for n in kept])
    if not result.ok:
        return result
    covered = max((int(c["size"]) for c in checkpoints), default=0)
    if covered < result.entries:
        return _failed(result, covered + 1, f"entries {covered + 1} to {result.entries} are "
                       "not covered by a signed checkpoint")
    if (header.get("entries"), header.get("head")) != (result.entries, result.head):
        return _failed(result, None, "the header does not describe the entries that follow")
    return hold_to_kept(result, kept)


def hold_to_kept(result: Verification, kept: Sequence[Note]) -> Verification:
    """A verified log, held against the checkpoints an auditor kept: it must extend each (the
    Merkle roots at their sizes, recomputed from the entries, were asked for with `roots_at`)."""
    if not result.ok:
        return result
    for note in kept:
        if note.size > result.entries:
            return _failed(result, result.entries + 1, f"log truncated: the checkpoint you kept "
                           f"covers {note.size} entries, only {result.entries} are present")
        if result.roots.get(note.size) != note.root:
            return _failed(result, None, f"the log was rewritten: its first {note.size} entries "
                           "differ from the checkpoint you kept (compare with an export made "
                           "then, with --against, to find the first entry that differs)")
    return result


def first_difference(old: Iterable[Mapping[str, Any]],
                     new: Iterable[Mapping[str, Any]]) -> int | None:
    """The first sequence number whose entry differs between two exports (None: the new one
    extends the old one)."""
    new_entries = iter(new)
    for entry in old:
        other = next(new_entries, None)
        if other is None or other.get("hash") != entry.get("hash") \
                or entry_hash(other) != other.get("hash"):
            return int(entry["seq"])
    return None


def against_older(result: Verification, older: Path, newer: Iterable[Mapping[str, Any]],
                  public_key: Ed25519PublicKey) -> Verification:
    """Hold the `result` of the `newer` entries (an export's, or the live log's) against an
    older export the auditor kept. The older one must verify on its own (its signed checkpoints
    were then the log's word), and the log must begin with exactly its entries: any entry
    changed, removed or missing since is named, the first of them, whether or not the newer log
    verifies on its own (a log rewritten and signed again does)."""
    with older.open(encoding="utf-8") as lines:
        before = verify_export(lines, public_key)
    if not before.ok:
        raise ExportFormatError(f"the older export ({older}) does not verify itself: "
                                f"{before.reason}")
    with older.open(encoding="utf-8") as old:
        seq = first_difference(read_export(old)[2], newer)
    if seq is None:
        return result
    if result.ok:
        return _failed(result, seq, "the log was rewritten: against the older export "
                       f"({before.entries} entries), the first entry that differs (or is gone) "
                       f"is {seq}")
    result.first_bad_seq = seq
    result.reason = f"{result.reason}; the first entry that differs is {seq}"
    return result


def _failed(result: Verification, seq: int | None, reason: str) -> Verification:
    result.ok, result.first_bad_seq, result.reason = False, seq, reason
    return result


ENTRY_KEYS = frozenset({*ENTRY_FIELDS, "hash", "type"})
CHECKPOINT_KEYS = frozenset({*CHECKPOINT_FIELDS, "signature", "root", "note", "type"})


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        raise ExportFormatError("a key appears twice in one object")
    return value


def _parse(line: str, number: int) -> dict[str, Any]:
    try:
        value = json.loads(line, object_pairs_hook=_unique)
    except json.JSONDecodeError:
        raise ExportFormatError(f"line {number} is not JSON") from None
    except ExportFormatError as exc:
        raise ExportFormatError(f"line {number}: {exc}") from None
    if not isinstance(value, dict):
        raise ExportFormatError(f"line {number} is not a JSON object")
    kind = value.get("type")
    allowed = {"entry": ENTRY_KEYS, "checkpoint": CHECKPOINT_KEYS}.get(str(kind))
    if allowed is not None and not set(value) <= allowed:
        raise ExportFormatError(f"line {number}: unknown fields "
                                f"{sorted(set(value) - allowed)}")
    if kind == "checkpoint" and ("root" in value) != ("note" in value):
        raise ExportFormatError(f"line {number}: a checkpoint has a root and a note, or neither")
    return value


# --- proofs as served by GET /v1/audit/entries/{seq}/proof and /v1/audit/consistency ----------

# what each proof document holds, and of which JSON type (as the gateway serves them)
PROOF_FIELDS: dict[str, dict[str, type]] = {
    "inclusion": {"entry": dict, "tree_size": int, "proof": list, "checkpoint": str},
    "consistency": {"proof": list, "checkpoint": str},
}
PROBLEM_MEMBERS = ("type", "title", "status", "detail")  # RFC 9457: the gateway's refusal
JSON_KINDS = {dict: "a JSON object", int: "an integer", list: "a list of hex strings",
              str: "a string"}


def proof_document(text: str, what: str) -> dict[str, Any]:
    """The `what` ("inclusion" or "consistency") proof in `text`, or a ValueError that says
    what is wrong with it, and what the gateway said when the file holds its refusal."""
    try:
        document = json.loads(text)
    except ValueError:
        raise ValueError(f"the {what} proof is not JSON") from None
    if not isinstance(document, dict):
        raise ValueError(f"the {what} proof is not a JSON object")
    _check_proof_fields(document, what)
    return document


def _check_proof_fields(document: Mapping[str, Any], what: str) -> None:
    fields = PROOF_FIELDS[what]
    missing = [name for name in fields if name not in document]
    if missing and any(name in document for name in PROBLEM_MEMBERS):
        said = ": ".join(str(document[name]) for name in ("title", "detail") if name in document)
        raise ValueError(f"the gateway refused: this file holds its answer (HTTP "
                         f"{document.get('status', '?')}: {said}), not a proof")
    if missing:
        raise ValueError(f"the {what} proof has no {', '.join(missing)} (it should have "
                         f"{', '.join(fields)})")
    for name, kind in fields.items():
        value = document[name]
        if not isinstance(value, kind) or isinstance(value, bool) or \
                (name == "proof" and not all(isinstance(h, str) for h in document[name])):
            raise ValueError(f"the {what} proof's {name} is not {JSON_KINDS[kind]}")


def check_inclusion_proof(document: Mapping[str, Any], public_key: Ed25519PublicKey, *,
                          kept: Note | None = None) -> str:
    """Check an inclusion proof document; returns a one-line verdict or raises ValueError.
    With the checkpoint an auditor `kept`, the proof must be against that very tree."""
    _check_proof_fields(document, "inclusion")
    note = parse_note(document["checkpoint"])
    if not any_signature_by(note, public_key):
        raise ValueError("the checkpoint is not signed by this key")
    entry = document["entry"]
    missing = [name for name in (*ENTRY_FIELDS, "hash") if name not in entry]
    if missing:
        raise ValueError(f"the inclusion proof's entry has no {', '.join(missing)}")
    if kept is not None:
        _same_tree(note, kept, public_key, entry.get("seq"))
    if entry_hash(entry) != entry.get("hash"):
        raise ValueError(f"entry {entry.get('seq')} was altered (hash does not match)")
    proof = [bytes.fromhex(h) for h in document["proof"]]
    if note.size != document["tree_size"] or not verify_inclusion(
            entry_leaf_hash(entry), int(entry["seq"]) - 1, note.size, proof, note.root):
        raise ValueError(f"entry {entry.get('seq')} is not in the signed tree of size "
                         f"{note.size}")
    return f"OK: entry {entry['seq']} is in the log of {note.size} entries signed by " \
           f"{note.origin}" + ("" if kept is None else ", the tree of the checkpoint you kept")


def _same_tree(note: Note, kept: Note, public_key: Ed25519PublicKey, seq: Any) -> None:
    if not any_signature_by(kept, public_key):
        raise ValueError(f"the checkpoint you kept (size {kept.size}) is not signed by this key")
    if note.size != kept.size:
        raise ValueError(
            f"the proof is against the tree of {note.size} entries, the checkpoint you kept is "
            f"of {kept.size}: an inclusion proof alone cannot show that one extends the other. "
            f"Fetch the proof in the tree you kept (/v1/audit/entries/{seq}/proof?tree_size="
            f"{kept.size}, if the entry is in it), or check that the proof's tree extends "
            f"yours (/v1/audit/consistency?from_size={kept.size}&to_size={note.size}, then "
            "`consistency` with --checkpoint)")
    if (note.origin, note.root) != (kept.origin, kept.root):
        raise ValueError(f"the proof's checkpoint and the one you kept are two different trees "
                         f"of {note.size} entries: the log was rewritten")


def check_consistency_proof(old: Note, new: Note, proof_hex: Sequence[str],
                            public_key: Ed25519PublicKey) -> str:
    for note in (old, new):
        if not any_signature_by(note, public_key):
            raise ValueError(f"the checkpoint at size {note.size} is not signed by this key")
    if old.origin != new.origin:
        raise ValueError("the checkpoints are of different logs")
    proof = [bytes.fromhex(h) for h in proof_hex]
    if not verify_consistency(old.size, new.size, old.root, new.root, proof):
        raise ValueError(f"the log of {new.size} entries does not extend the one of {old.size} "
                         "you kept: it was rewritten or truncated")
    return f"OK: the log of {new.size} entries extends the one of {old.size}"


# --- command line (python verifier.py ...) ----------------------------------------------------

def _public_key(path: Path) -> Ed25519PublicKey:
    key = load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def _witnessed(note: Note, witnesses: Sequence[str]) -> Note:
    """`note`, once every witness named (NAME=PEM) has co-signed it."""
    for spec in witnesses:
        name, sep, path = spec.partition("=")
        if not sep:
            raise ValueError(f"--witness takes NAME=PEM, not {spec!r}")
        if cosigned_by(note, name, _public_key(Path(path))) is None:
            raise ValueError(f"the checkpoint at size {note.size} is not co-signed by the "
                             f"witness {name}")
    return note


def read_kept(path: Path, public_key: Ed25519PublicKey, witnesses: Sequence[str]) -> Note:
    """A checkpoint the auditor kept: signed with the log's key, co-signed by every witness
    named (NAME=PEM)."""
    note = _witnessed(parse_note(path.read_text(encoding="utf-8")), witnesses)
    if not any_signature_by(note, public_key):
        raise ValueError(f"the checkpoint you kept ({path}) is not signed by this key")
    return note


def run(args: argparse.Namespace) -> int:
    public_key = _public_key(args.public_key)
    witnesses = getattr(args, "witness", None) or []
    kept = [_witnessed(parse_note(p.read_text(encoding="utf-8")), witnesses)
            for p in args.checkpoint]
    if args.what == "export":
        with args.file.open(encoding="utf-8") as lines:
            result = verify_export(lines, public_key, kept=kept)
        if args.against is not None:
            with args.file.open(encoding="utf-8") as lines:
                result = against_older(result, args.against, read_export(lines)[2], public_key)
        if result.ok:
            print(f"OK: {result.entries} entries, {result.checkpoints} checkpoints, "  # noqa: T201
                  f"root {result.root}")
            return 0
        where = "" if result.first_bad_seq is None else \
            f"first bad sequence number {result.first_bad_seq}: "
        print(f"TAMPERED: {where}{result.reason}")  # noqa: T201
        return 1
    document = proof_document(args.file.read_text(encoding="utf-8"), args.what)
    if args.what == "inclusion":
        print(check_inclusion_proof(document, public_key,  # noqa: T201
                                    kept=kept[0] if kept else None))
        return 0
    new = parse_note(document["checkpoint"])
    print(check_consistency_proof(kept[0], new, document["proof"], public_key))  # noqa: T201
    return 0


def misused_option(what: str, *, checkpoints: int, against: bool, witnesses: bool) -> str | None:
    """Why this combination of options cannot be honoured (an option is never accepted and then
    ignored), or None. `what` is export, inclusion or consistency."""
    if witnesses and not checkpoints:
        return ("--witness needs --checkpoint: a witness vouches for the checkpoint you kept "
                "(take it from the witness's directory)")
    if what == "consistency" and checkpoints != 1:
        return "consistency needs exactly one --checkpoint you kept"
    if what == "inclusion" and checkpoints > 1:
        return "inclusion takes at most one --checkpoint (the tree the proof must be in)"
    if what != "export" and against:
        return f"--against compares two exports; it does not apply to {what} proofs"
    return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=["export", "inclusion", "consistency"],
                        help="an export file, an inclusion proof, or a consistency proof")
    parser.add_argument("file", type=Path, help="the export (JSON Lines) or proof (JSON)")
    parser.add_argument("--public-key", type=Path, required=True, help="the log's PEM key")
    parser.add_argument("--checkpoint", type=Path, action="append", default=[],
                        help="a checkpoint (signed note) you kept from earlier: the export "
                             "must extend it, an inclusion proof be in its tree, a "
                             "consistency proof start from it")
    parser.add_argument("--against", type=Path,
                        help="(export) an older export you kept: the log must begin with its "
                             "entries (names the first entry that differs)")
    parser.add_argument("--witness", action="append", default=[], metavar="NAME=PEM",
                        help="a witness that must have co-signed each kept checkpoint "
                             "(needs --checkpoint)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify a privacy-gateway audit log offline.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    problem = misused_option(args.what, checkpoints=len(args.checkpoint),
                             against=args.against is not None, witnesses=bool(args.witness))
    if problem is not None:
        parser.error(problem)
    try:
        return run(args)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        print(f"FAILED: {exc}")  # noqa: T201
        return 1


if __name__ == "__main__":
    sys.exit(main())
