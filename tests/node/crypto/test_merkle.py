"""Tests for node/crypto/_merkle.py: the shared RFC 6962 vectors, then properties.

The vectors (tests/vectors/rfc6962, from transparency-dev/merkle) pin the
verifiers to an independent implementation; the hypothesis properties pin
generation and verification to each other and to a naive recursive
reference written straight from RFC 9162 2.1.1.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.crypto import (
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_inclusion,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from node.errors import MerkleProofError

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "rfc6962"


def _cases(kind: str) -> list[Any]:
    files = sorted((VECTORS / kind).rglob("*.json"))
    return [pytest.param(path, id=str(path.relative_to(VECTORS))) for path in files]


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


INCLUSION_CASES = _cases("inclusion")
CONSISTENCY_CASES = _cases("consistency")


def test_vectors_are_all_present() -> None:
    # A lost vector file would silently shrink the parametrized tests.
    assert len(INCLUSION_CASES) == 98
    assert len(CONSISTENCY_CASES) == 98
    assert (VECTORS / "README.md").is_file()
    assert (VECTORS / "LICENSE").is_file()


@pytest.mark.parametrize("path", INCLUSION_CASES)
def test_inclusion_vector(path: Path) -> None:
    case = _load(path)
    kwargs: dict[str, Any] = {
        "index": case["leafIdx"],
        "size": case["treeSize"],
        "leaf_hash": _b64(case["leafHash"]),
        "proof": [_b64(p) for p in case["proof"] or []],
        "root": _b64(case["root"]),
    }
    if case["wantErr"]:
        with pytest.raises(MerkleProofError):
            verify_inclusion(**kwargs)
    else:
        verify_inclusion(**kwargs)


@pytest.mark.parametrize("path", CONSISTENCY_CASES)
def test_consistency_vector(path: Path) -> None:
    case = _load(path)
    kwargs: dict[str, Any] = {
        "old_size": case["size1"],
        "new_size": case["size2"],
        "old_root": _b64(case["root1"]),
        "new_root": _b64(case["root2"]),
        "proof": [_b64(p) for p in case["proof"] or []],
    }
    if case["wantErr"]:
        with pytest.raises(MerkleProofError):
            verify_consistency(**kwargs)
    else:
        verify_consistency(**kwargs)


# ------------------------------------------------------------ known answers


def test_hash_primitives() -> None:
    assert hashlib.sha256(b"").hexdigest() == EMPTY_ROOT.hex()
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    assert root_from_leaf_hashes([]) == EMPTY_ROOT
    assert CompactRange().root() == EMPTY_ROOT


def test_rfc6962_reference_roots() -> None:
    # Roots of the 8-leaf test tree used by RFC 6962 implementations
    # (certificate-transparency-go, transparency-dev/merkle testonly).
    leaves = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ]
    want = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
    hashes = [leaf_hash(leaf) for leaf in leaves]
    for n in range(1, 9):
        assert root_from_leaf_hashes(hashes[:n]).hex() == want[n - 1]


def test_million_leaves() -> None:
    # The node's log reaches a million entries (SPEC section 9); the root
    # must not recurse and the frontier must agree with the batch root.
    hashes = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(1_000_000)]
    root = root_from_leaf_hashes(hashes)
    rng = CompactRange(hashes)
    assert rng.size == 1_000_000
    assert rng.root() == root
    proof = inclusion_proof(765_432, hashes)
    assert len(proof) == 20
    verify_inclusion(index=765_432, size=len(hashes), leaf_hash=hashes[765_432], proof=proof, root=root)


# ------------------------------------------------------------- input checks


def test_generation_rejects_bad_arguments() -> None:
    hashes = [leaf_hash(b"%d" % i) for i in range(4)]
    with pytest.raises(ValueError, match="outside"):
        inclusion_proof(4, hashes)
    with pytest.raises(ValueError, match="outside"):
        inclusion_proof(-1, hashes)
    with pytest.raises(ValueError, match="outside"):
        consistency_proof(5, hashes)
    with pytest.raises(ValueError, match="32 bytes"):
        root_from_leaf_hashes([b"short"])
    with pytest.raises(ValueError, match="32 bytes"):
        CompactRange().append(b"")
    with pytest.raises(ValueError, match="nodes"):
        CompactRange.from_nodes(3, [hashes[0]])
    assert consistency_proof(0, hashes) == []
    assert consistency_proof(4, hashes) == []


def test_verify_inclusion_rejections_name_the_defect() -> None:
    hashes = [leaf_hash(b"%d" % i) for i in range(5)]
    root = root_from_leaf_hashes(hashes)
    proof = inclusion_proof(2, hashes)
    good: dict[str, Any] = {"index": 2, "size": 5, "leaf_hash": hashes[2], "proof": proof, "root": root}
    verify_inclusion(**good)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"index": 5}, "not below tree size"),
        ({"index": -1}, "non-negative"),
        ({"leaf_hash": b""}, "leaf hash must be 32 bytes"),
        ({"root": b""}, "root must be 32 bytes"),
        ({"proof": [*proof, root]}, "needs 3 hashes, got 4"),
        ({"proof": proof[:-1]}, "needs 3 hashes, got 2"),
        ({"proof": [proof[0][:31], *proof[1:]]}, "proof hash 0 must be 32 bytes"),
        ({"root": EMPTY_ROOT}, "yields root"),
    ]
    for change, message in cases:
        with pytest.raises(MerkleProofError, match=message):
            verify_inclusion(**{**good, **change})


def test_inclusion_proof_binds_path_shape_not_size() -> None:
    # RFC 6962 property, not a bug: leaf 0 has the path "LL" in trees of 3
    # and of 4 leaves, so the proof checks out for either size. The size is
    # bound by the signed checkpoint carrying the root, never by the proof.
    hashes = [leaf_hash(b"%d" % i) for i in range(3)]
    root = root_from_leaf_hashes(hashes)
    proof = inclusion_proof(0, hashes)
    verify_inclusion(index=0, size=4, leaf_hash=hashes[0], proof=proof, root=root)
    with pytest.raises(MerkleProofError):
        verify_inclusion(index=0, size=5, leaf_hash=hashes[0], proof=proof, root=root)


def test_empty_root_with_empty_leaf_is_rejected() -> None:
    # The trick a naive verifier falls for: with no proof, the "computed
    # root" is the leaf itself, so an empty leaf "matches" an empty root.
    with pytest.raises(MerkleProofError, match="32 bytes"):
        verify_inclusion(index=0, size=1, leaf_hash=b"", proof=[], root=b"")
    with pytest.raises(MerkleProofError, match="not below"):
        verify_inclusion(index=0, size=0, leaf_hash=EMPTY_ROOT, proof=[], root=EMPTY_ROOT)


def test_verify_consistency_rejections_name_the_defect() -> None:
    hashes = [leaf_hash(b"%d" % i) for i in range(7)]
    old, new = root_from_leaf_hashes(hashes[:3]), root_from_leaf_hashes(hashes)
    proof = consistency_proof(3, hashes)
    good: dict[str, Any] = {"old_size": 3, "new_size": 7, "old_root": old, "new_root": new, "proof": proof}
    verify_consistency(**good)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"old_size": 8}, "smaller than old size"),
        ({"old_size": 0}, "proves nothing"),
        ({"old_size": 7, "old_root": new}, "sizes are equal"),
        ({"proof": []}, "needs"),
        ({"proof": [*proof, new]}, "needs"),
        ({"old_root": old[:16]}, "old root must be 32 bytes"),
        ({"new_root": b""}, "new root must be 32 bytes"),
        ({"proof": [b"", *proof[1:]]}, "proof hash 0 must be 32 bytes"),
        ({"old_root": new}, "old root"),
        ({"new_root": old}, "new root"),
    ]
    for change, message in cases:
        with pytest.raises(MerkleProofError, match=message):
            verify_consistency(**{**good, **change})


# --------------------------------------------------------------- properties


def reference_root(hashes: list[bytes]) -> bytes:
    """RFC 9162 2.1.1 MTH, written as the RFC's recursion (fine for small n)."""
    n = len(hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return hashes[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(reference_root(hashes[:k]), reference_root(hashes[k:]))


def path_shape(index: int, size: int) -> str:
    """The left/right turns from the root to leaf ``index`` in a tree of ``size``.

    An inclusion proof binds exactly this shape: two (index, size) pairs with
    the same shape hash a proof identically, as RFC 6962 intends.
    """
    turns = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = 1
        while k * 2 < hi - lo:
            k *= 2
        if index < lo + k:
            turns.append("L")
            hi = lo + k
        else:
            turns.append("R")
            lo += k
    return "".join(turns)


# Distinct leaves: with duplicates, a proof for one copy is, correctly, also
# a proof for the other, which would blur the binding properties below.
LEAVES = st.lists(st.binary(max_size=8), min_size=1, max_size=70, unique=True)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=70))
def test_root_matches_reference(n: int) -> None:
    hashes = [leaf_hash(b"leaf %d" % i) for i in range(n)]
    assert root_from_leaf_hashes(hashes) == reference_root(hashes)


def test_root_matches_reference_for_every_size_to_70() -> None:
    hashes = [leaf_hash(b"leaf %d" % i) for i in range(71)]
    for n in range(71):
        assert root_from_leaf_hashes(hashes[:n]) == reference_root(hashes[:n])


@settings(max_examples=40, deadline=None)
@given(LEAVES)
def test_compact_range_tracks_root(leaves: list[bytes]) -> None:
    hashes = [leaf_hash(leaf) for leaf in leaves]
    rng = CompactRange()
    for n, h in enumerate(hashes, start=1):
        rng.append(h)
        assert rng.size == n
        assert rng.root() == root_from_leaf_hashes(hashes[:n])
        restored = CompactRange.from_nodes(rng.size, rng.nodes)
        assert restored.root() == rng.root()
    assert CompactRange(hashes).root() == rng.root()
    copy = rng.copy()
    copy.append(hashes[0])
    assert rng.size == len(hashes)


@settings(max_examples=40, deadline=None)
@given(LEAVES, st.data())
def test_inclusion_proofs_verify_and_bind(leaves: list[bytes], data: st.DataObject) -> None:
    hashes = [leaf_hash(leaf) for leaf in leaves]
    size = len(hashes)
    root = root_from_leaf_hashes(hashes)
    for index in range(size):
        proof = inclusion_proof(index, hashes)
        verify_inclusion(index=index, size=size, leaf_hash=hashes[index], proof=proof, root=root)
        assert root_from_inclusion(index=index, size=size, leaf_hash=hashes[index], proof=proof) == root

    index = data.draw(st.integers(0, size - 1), label="index")
    proof = inclusion_proof(index, hashes)
    # Any flipped bit in any proof hash or in the leaf breaks the proof.
    if proof:
        which = data.draw(st.integers(0, len(proof) - 1), label="which")
        bit = data.draw(st.integers(0, 255), label="bit")
        tampered = bytearray(proof[which])
        tampered[bit // 8] ^= 1 << (bit % 8)
        bad = [*proof[:which], bytes(tampered), *proof[which + 1 :]]
        with pytest.raises(MerkleProofError):
            verify_inclusion(index=index, size=size, leaf_hash=hashes[index], proof=bad, root=root)
    other_leaf = leaf_hash(leaves[index] + b"!")
    with pytest.raises(MerkleProofError):
        verify_inclusion(index=index, size=size, leaf_hash=other_leaf, proof=proof, root=root)
    # Another index fails: paths to different leaves always differ.
    other_index = data.draw(st.integers(0, size + 1), label="other index")
    other_index += other_index >= index  # skip the true index without filtering
    with pytest.raises(MerkleProofError):
        verify_inclusion(index=other_index, size=size, leaf_hash=hashes[index], proof=proof, root=root)
    # Another size fails unless it gives the leaf the very same path shape
    # (e.g. leaf 0 of 3 and of 4): RFC 6962 proofs bind the shape, and the
    # size is bound by the signed checkpoint that carries the root.
    other_size = data.draw(st.integers(0, 2 * size + 1), label="other size")
    other_size += other_size >= size
    same_shape = index < other_size and path_shape(index, other_size) == path_shape(index, size)
    if same_shape:
        verify_inclusion(index=index, size=other_size, leaf_hash=hashes[index], proof=proof, root=root)
    else:
        with pytest.raises(MerkleProofError):
            verify_inclusion(index=index, size=other_size, leaf_hash=hashes[index], proof=proof, root=root)


@settings(max_examples=40, deadline=None)
@given(LEAVES, st.data())
def test_consistency_proofs_verify(leaves: list[bytes], data: st.DataObject) -> None:
    hashes = [leaf_hash(leaf) for leaf in leaves]
    new_size = len(hashes)
    new_root = root_from_leaf_hashes(hashes)
    for old_size in range(1, new_size + 1):
        old_root = root_from_leaf_hashes(hashes[:old_size])
        proof = consistency_proof(old_size, hashes)
        verify_consistency(
            old_size=old_size, new_size=new_size, old_root=old_root, new_root=new_root, proof=proof
        )

    old_size = data.draw(st.integers(1, new_size), label="old size")
    old_root = root_from_leaf_hashes(hashes[:old_size])
    proof = consistency_proof(old_size, hashes)
    kwargs: dict[str, Any] = {
        "old_size": old_size,
        "new_size": new_size,
        "old_root": old_root,
        "new_root": new_root,
        "proof": proof,
    }
    if proof:
        # Every proof hash feeds the new root, so any flipped bit shows.
        which = data.draw(st.integers(0, len(proof) - 1), label="which")
        bit = data.draw(st.integers(0, 255), label="bit")
        tampered = bytearray(proof[which])
        tampered[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(MerkleProofError):
            verify_consistency(**{**kwargs, "proof": [*proof[:which], bytes(tampered), *proof[which + 1 :]]})
    # A forked history (one old leaf rewritten) cannot be proven consistent,
    # whichever of the two checkpoints was the forked one.
    forked_at = data.draw(st.integers(0, old_size - 1), label="forked at")
    forked = [*hashes[:forked_at], leaf_hash(leaves[forked_at] + b"!"), *hashes[forked_at + 1 :]]
    with pytest.raises(MerkleProofError):
        verify_consistency(**{**kwargs, "new_root": root_from_leaf_hashes(forked)})
    with pytest.raises(MerkleProofError):
        verify_consistency(**{**kwargs, "old_root": root_from_leaf_hashes(forked[:old_size])})


@settings(max_examples=150, deadline=None)
@given(n=st.integers(min_value=0, max_value=140), data=st.data())
def test_merkle_levels_agree_with_the_reference_functions(n: int, data: st.DataObject) -> None:
    from node.crypto import MerkleLevels, consistency_proof, root_from_leaf_hashes

    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n)]
    levels = MerkleLevels()
    for leaf in leaves:
        levels.append(leaf)
    assert levels.size == n
    assert levels.root() == root_from_leaf_hashes(leaves)
    if n:
        new = data.draw(st.integers(min_value=1, max_value=n))
        old = data.draw(st.integers(min_value=0, max_value=new))
        assert levels.root(new) == root_from_leaf_hashes(leaves[:new])
        assert levels.consistency_proof(old, new) == consistency_proof(old, leaves[:new])
