"""The Merkle tree against RFC 9162 and the test vectors of Certificate Transparency's reference
implementation (google/certificate-transparency, merkle tree tests): roots, inclusion and
consistency proofs, built from stored perfect subtrees as the database builds them."""

from __future__ import annotations

import hashlib
import random

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.audit import tree, verifier

LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f")]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
INCLUSION = [  # (leaf index, tree size, audit path)
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
CONSISTENCY = [  # (first size, second size, proof)
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]


def reference_root(leaves: list[bytes]) -> bytes:
    """MTH exactly as RFC 9162 2.1.1 writes it, recursively over leaf hashes."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return verifier.node_hash(reference_root(leaves[:k]), reference_root(leaves[k:]))


def stored_nodes(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    """The nodes the sequencer stores for these leaves."""
    compact, nodes = verifier.CompactRange(), {}
    for leaf in leaves:
        nodes.update({(level, idx): h for level, idx, h in compact.append(leaf)})
    return nodes


def test_roots_match_the_reference_vectors() -> None:
    compact = verifier.CompactRange()
    assert compact.root().hex() == ROOTS[0]
    nodes = stored_nodes([verifier.leaf_hash(d) for d in LEAVES])
    for size, data in enumerate(LEAVES, start=1):
        compact.append(verifier.leaf_hash(data))
        assert compact.root().hex() == ROOTS[size]
        assert tree._range_hash(0, size, lambda lv, i: nodes[(lv, i)]).hex() == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_proofs_match_the_reference_vectors(index: int, size: int,
                                                      path: list[str]) -> None:
    leaves = [verifier.leaf_hash(d) for d in LEAVES]
    nodes = stored_nodes(leaves)
    proof = tree._path(index, 0, size, lambda lv, i: nodes[(lv, i)])
    assert [p.hex() for p in proof] == path
    root = bytes.fromhex(ROOTS[size])
    assert verifier.verify_inclusion(leaves[index], index, size, proof, root)
    assert not verifier.verify_inclusion(leaves[index], index, size, proof,
                                         bytes.fromhex(ROOTS[size - 1]))
    assert not verifier.verify_inclusion(leaves[index], index + 1, size, proof, root)


@pytest.mark.parametrize(("first", "second", "expected"), CONSISTENCY)
def test_consistency_proofs_match_the_reference_vectors(first: int, second: int,
                                                        expected: list[str]) -> None:
    nodes = stored_nodes([verifier.leaf_hash(d) for d in LEAVES])
    proof = [] if first == second else tree._subproof(
        first, 0, second, True, lambda lv, i: nodes[(lv, i)])
    assert [p.hex() for p in proof] == expected
    old, new = bytes.fromhex(ROOTS[first]), bytes.fromhex(ROOTS[second])
    assert verifier.verify_consistency(first, second, old, new, proof)
    if first != second:
        assert not verifier.verify_consistency(first, second, new, new, proof)


def test_every_proof_of_every_size_up_to_70_verifies_and_nothing_else_does() -> None:
    rng = random.Random(9162)
    leaves = [verifier.leaf_hash(rng.randbytes(rng.randint(0, 40))) for _ in range(70)]
    nodes = stored_nodes(leaves)

    def node(level: int, idx: int) -> bytes:
        return nodes[(level, idx)]

    roots = [reference_root(leaves[:n]) for n in range(71)]
    for size in range(1, 71):
        assert tree._range_hash(0, size, node) == roots[size]
        for index in range(size):
            proof = tree._path(index, 0, size, node)
            assert verifier.verify_inclusion(leaves[index], index, size, proof, roots[size])
            assert not verifier.verify_inclusion(leaves[(index + 1) % 70], index, size, proof,
                                                 roots[size])
        for first in range(1, size):
            proof = tree._subproof(first, 0, size, True, node)
            assert verifier.verify_consistency(first, size, roots[first], roots[size], proof)
            forged = bytes(32) if first == 1 else roots[first - 1]
            assert not verifier.verify_consistency(first, size, forged, roots[size], proof)
            if proof:
                assert not verifier.verify_consistency(first, size, roots[first], roots[size],
                                                       proof[:-1])


def test_a_signed_note_round_trips_and_a_changed_byte_breaks_it() -> None:
    key = Ed25519PrivateKey.generate()
    body = verifier.note_body("example.com/log", 8, bytes.fromhex(ROOTS[8]))
    text = body + "\n" + verifier.signature_line("example.com/log", key.public_key(),
                                                 key.sign(body.encode()))
    note = verifier.parse_note(text)
    assert (note.origin, note.size, note.root.hex()) == ("example.com/log", 8, ROOTS[8])
    assert verifier.any_signature_by(note, key.public_key())
    assert not verifier.any_signature_by(note, Ed25519PrivateKey.generate().public_key())
    forged = verifier.parse_note(text.replace("\n8\n", "\n9\n"))
    assert not verifier.any_signature_by(forged, key.public_key())
    with pytest.raises(verifier.NoteError):
        verifier.parse_note(body)  # unsigned
