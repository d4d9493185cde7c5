"""The verifier on its own, with no database: what an auditor runs."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.audit import verifier
from app.keys.signing import Signer


def make_chain(count: int, *, actor: str = "svc") -> list[dict[str, Any]]:
    entries, prev = [], verifier.GENESIS_HASH
    for seq in range(1, count + 1):
        entry = {"seq": seq, "ts": f"2026-01-01T00:00:{seq:02d}.000000Z", "actor": actor,
                 "roles": ["agent"], "action": "record.read", "purpose": "support",
                 "subject_id": f"s{seq}", "resource": None, "outcome": "allowed",
                 "details": {"n": seq}, "request_id": None, "policy_version": "p1",
                 "prev_hash": prev}
        entry["hash"] = prev = verifier.entry_hash(entry)
        entries.append(entry)
    return entries


def make_checkpoint(signer: Signer, entries: list[dict[str, Any]], size: int) -> dict[str, Any]:
    body = {"size": size, "head": entries[size - 1]["hash"],
            "created_at": "2026-01-01T01:00:00.000000Z", "key_id": signer.key_id}
    return {**body, "signature": signer.sign(verifier.checkpoint_message(body))}


SIGNER = Signer(Ed25519PrivateKey.generate())


def test_intact_chain_verifies() -> None:
    entries = make_chain(10)
    result = verifier.verify(entries, [make_checkpoint(SIGNER, entries, 10)], SIGNER.public_key)
    tree = verifier.CompactRange()
    for entry in entries:
        tree.append(verifier.entry_leaf_hash(entry))
    assert result.as_dict() == {"ok": True, "entries": 10, "head": entries[-1]["hash"],
                                "first_bad_seq": None, "reason": None, "checkpoints": 1,
                                "root": tree.root().hex()}


def test_hash_is_stable_across_key_order() -> None:
    entry = make_chain(1)[0]
    assert verifier.entry_hash(dict(reversed(list(entry.items())))) == entry["hash"]


def test_edited_entry_is_located() -> None:
    entries = make_chain(10)
    entries[6]["details"] = {"n": 999}
    result = verifier.verify(entries, [], None)
    assert (result.ok, result.first_bad_seq, result.entries) == (False, 7, 6)
    assert "altered" in (result.reason or "")


def test_rehashed_edit_breaks_the_next_link() -> None:
    entries = make_chain(10)
    entries[3]["actor"] = "someone-else"
    entries[3]["hash"] = verifier.entry_hash(entries[3])
    result = verifier.verify(entries, [], None)
    assert (result.ok, result.first_bad_seq) == (False, 5)


def test_removed_entry_is_located() -> None:
    entries = make_chain(10)
    del entries[4]
    result = verifier.verify(entries, [], None)
    assert (result.ok, result.first_bad_seq) == (False, 5)
    assert "missing" in (result.reason or "")


def test_reordered_entries_are_located() -> None:
    entries = make_chain(10)
    entries[2], entries[3] = entries[3], entries[2]
    result = verifier.verify(entries, [], None)
    assert (result.ok, result.first_bad_seq) == (False, 3)


def test_truncation_below_a_checkpoint_is_detected() -> None:
    entries = make_chain(10)
    checkpoint = make_checkpoint(SIGNER, entries, 10)
    result = verifier.verify(entries[:7], [checkpoint], SIGNER.public_key)
    assert (result.ok, result.first_bad_seq) == (False, 8)
    assert "truncated" in (result.reason or "")


def test_forged_checkpoint_is_rejected() -> None:
    entries = make_chain(5)
    forger = Signer(Ed25519PrivateKey.generate())
    forged = make_checkpoint(forger, entries, 5)
    forged["key_id"] = SIGNER.key_id
    result = verifier.verify(entries, [forged], SIGNER.public_key)
    assert not result.ok
    assert "signature" in (result.reason or "")


def test_checkpoint_with_changed_head_is_rejected() -> None:
    entries = make_chain(5)
    checkpoint = make_checkpoint(SIGNER, entries, 5)
    checkpoint["head"] = "f" * 64
    assert not verifier.verify(entries, [checkpoint], SIGNER.public_key).ok


def test_rewritten_chain_does_not_match_the_signed_head() -> None:
    entries = make_chain(6)
    checkpoint = make_checkpoint(SIGNER, entries, 6)
    # The attacker edits entry 2 and recomputes every later hash: the chain is self-consistent,
    # but the signed checkpoint pins the original head.
    entries[1]["outcome"] = "denied"
    prev = entries[0]["hash"]
    for entry in entries[1:]:
        entry["prev_hash"] = prev
        entry["hash"] = prev = verifier.entry_hash(entry)
    result = verifier.verify(entries, [checkpoint], SIGNER.public_key)
    # with no tree and no checkpoint before it, the edited entry is one of 1 to 6, not 6
    assert (result.ok, result.first_bad_seq) == (False, None)
    assert "the first entry that differs from what was signed is one of entries 1 to 6, " \
        in (result.reason or "")
