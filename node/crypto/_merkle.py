"""RFC 6962 / RFC 9162 Merkle tree hashing and proofs (SHA-256).

Everything here is a pure function of its arguments: the node keeps the leaf
hashes (or a :class:`CompactRange`) and calls in; nothing here does I/O.

Hashing follows RFC 9162 section 2.1.1: a leaf hash is ``H(0x00 || entry)``,
an interior node ``H(0x01 || left || right)``, a tree of ``n > 1`` leaves is
split at the largest power of two smaller than ``n``, and the empty tree hashes
to ``H("")``. The distinct prefixes keep a leaf from ever being passed off as
an interior node (second-preimage resistance).

Proof generation follows RFC 9162 2.1.3.1 and 2.1.4.1, verification follows
2.1.3.2 and 2.1.4.2, with the explicit input checks the RFC's prose relies
on (hash lengths, index range, exact proof length), because a verifier that
skips them can be tricked, e.g. into accepting an empty leaf as the root of a
one-leaf tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from node.errors import MerkleProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "MerkleProofError",
    "SubtreeRoot",
    "consistency_proof",
    "frontier_subtrees",
    "inclusion_proof",
    "interior_count",
    "leaf_hash",
    "levels_consistency_proof",
    "node_hash",
    "range_root",
    "root_from_inclusion",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Size in bytes of every hash in the tree (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""Root hash of the empty tree: SHA-256 of the empty string (RFC 9162 2.1.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(entry: bytes) -> bytes:
    """Return the RFC 6962 leaf hash ``SHA-256(0x00 || entry)``.

    ``entry`` must be the stored entry bytes exactly; hashing a re-encoding
    would make roots irreproducible from the stored log.
    """
    return hashlib.sha256(_LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 6962 interior node hash ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _require_hash(what: str, value: bytes, error: type[Exception] = ValueError) -> None:
    # Hash lengths are checked up front: SHA-256 never yields anything but 32
    # bytes, so any other length is malformed input, and letting it through is
    # exactly what the "empty root and empty leaf" trick exploits.
    if not isinstance(value, bytes | bytearray | memoryview):
        raise error(f"{what} must be bytes, got {type(value).__name__}")
    if len(value) != HASH_SIZE:
        raise error(f"{what} must be {HASH_SIZE} bytes, got {len(value)}")


def _largest_power_of_two_below(n: int) -> int:
    """Return the largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _root_of_range(hashes: Sequence[bytes], start: int, end: int) -> bytes:
    """Return the Merkle root of ``hashes[start:end]`` (no length checks).

    Bottom-up pairing, carrying an unpaired last node up a level unchanged,
    gives the same root as RFC 9162's split at the largest power of two: the
    left part of every split is a perfect subtree, which pairing builds
    exactly, and the leftover right edge is what gets carried. Iterating level
    by level keeps the Python stack flat and hashes each node once.
    """
    if end <= start:
        return EMPTY_ROOT
    level = list(hashes[start:end])
    sha256 = hashlib.sha256
    prefix = _NODE_PREFIX
    while len(level) > 1:
        paired = len(level) & ~1
        nxt = [sha256(prefix + level[i] + level[i + 1]).digest() for i in range(0, paired, 2)]
        if paired != len(level):
            nxt.append(level[-1])
        level = nxt
    return bytes(level[0])


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """Return the Merkle tree hash (RFC 9162 MTH) of a list of leaf hashes.

    Runs in O(n) hashes with O(n) memory and no recursion, so a million
    leaves take about a second. Raises ``ValueError`` if any leaf hash is not
    32 bytes, since such a root could never be reproduced by a verifier.
    """
    for i, h in enumerate(hashes):
        _require_hash(f"leaf hash {i}", h)
    return _root_of_range(hashes, 0, len(hashes))


class CompactRange:
    """The right frontier of a growing tree: its root in O(log n) per append.

    Holds one hash per set bit of ``size``: the roots of the perfect subtrees
    that make up the tree, largest (leftmost) first. Appending merges equal
    sized subtrees like a binary counter carry, so the node can keep its root
    current without rehashing the log, and can persist ``(size, nodes)`` to
    resume after a restart without replaying every entry.
    """

    __slots__ = ("_nodes", "_size")

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        """Start an empty range and append each of ``leaf_hashes`` in order."""
        self._size = 0
        self._nodes: list[bytes] = []
        self.extend(leaf_hashes)

    @classmethod
    def from_nodes(cls, size: int, nodes: Sequence[bytes]) -> CompactRange:
        """Rebuild a range from a persisted ``size`` and its :attr:`nodes`.

        Raises ``ValueError`` if the number of nodes does not match the number
        of set bits in ``size`` or a node is not 32 bytes; the nodes
        themselves cannot be checked without the leaves, so callers should
        compare :meth:`root` against a signed checkpoint.
        """
        if size < 0:
            raise ValueError(f"size must be non-negative, got {size}")
        if len(nodes) != size.bit_count():
            raise ValueError(f"a range of size {size} has {size.bit_count()} nodes, got {len(nodes)}")
        for i, h in enumerate(nodes):
            _require_hash(f"node {i}", h)
        rng = cls()
        rng._size = size
        rng._nodes = [bytes(h) for h in nodes]
        return rng

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def nodes(self) -> tuple[bytes, ...]:
        """Roots of the perfect subtrees covering the leaves, leftmost first."""
        return tuple(self._nodes)

    def append(self, leaf_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Append one leaf hash (not the entry: hash it with :func:`leaf_hash`).

        Returns the perfect subtrees this leaf completed, as (height, index,
        root) with height 1 or more (see :data:`SubtreeRoot`), for a caller
        that keeps them (the node's store).
        """
        _require_hash("leaf hash", leaf_hash)
        node = bytes(leaf_hash)
        completed: list[tuple[int, int, bytes]] = []
        # Each trailing one bit of the old size is a perfect subtree of the
        # same height as ``node`` waiting for its right sibling: merge them.
        n, height, new_size = self._size, 0, self._size + 1
        while n & 1:
            node = node_hash(self._nodes.pop(), node)
            n >>= 1
            height += 1
            completed.append((height, (new_size >> height) - 1, node))
        self._nodes.append(node)
        self._size = new_size
        return completed

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append each of ``leaf_hashes`` in order."""
        for h in leaf_hashes:
            self.append(h)

    def root(self) -> bytes:
        """Return the root hash of the tree of the leaves appended so far.

        The tree of size n is the perfect subtree of the largest power of two
        below n on the left and the tree of the remainder on the right, so
        folding the frontier from the right reproduces RFC 9162 MTH exactly.
        """
        if not self._nodes:
            return EMPTY_ROOT
        root = self._nodes[-1]
        for h in reversed(self._nodes[:-1]):
            root = node_hash(h, root)
        return root

    def copy(self) -> CompactRange:
        """Return an independent copy (e.g. to compute a root speculatively)."""
        return CompactRange.from_nodes(self._size, self._nodes)

    def __repr__(self) -> str:
        """Show the size and root, enough to compare ranges in test output."""
        return f"CompactRange(size={self._size}, root={self.root().hex()})"


def inclusion_proof(index: int, hashes: Sequence[bytes]) -> list[bytes]:
    """Return the audit path for leaf ``index`` in the tree of ``hashes``.

    Implements RFC 9162 2.1.3.1 PATH(m, D[n]) iteratively: walk from the root
    down to the leaf, taking the root of the sibling subtree at each split,
    then reverse so the proof runs leaf to root as verifiers expect. Costs
    O(n) hashes because sibling subtrees are recomputed from the leaves.
    Raises ``ValueError`` if ``index`` is outside ``[0, len(hashes))`` or a
    leaf hash is not 32 bytes.
    """
    n = len(hashes)
    if not 0 <= index < n:
        raise ValueError(f"index {index} is outside a tree of size {n}")
    for i, h in enumerate(hashes):
        _require_hash(f"leaf hash {i}", h)
    path: list[bytes] = []
    lo, hi = 0, n
    while hi - lo > 1:
        mid = lo + _largest_power_of_two_below(hi - lo)
        if index < mid:
            path.append(_root_of_range(hashes, mid, hi))
            hi = mid
        else:
            path.append(_root_of_range(hashes, lo, mid))
            lo = mid
    path.reverse()
    return path


def consistency_proof(old_size: int, hashes: Sequence[bytes]) -> list[bytes]:
    """Return the proof that the tree of ``hashes[:old_size]`` is a prefix of ``hashes``.

    Implements RFC 9162 2.1.4.1 PROOF(m, D[n]) = SUBPROOF(m, D[n], true)
    iteratively. The proof is empty when ``old_size`` equals ``len(hashes)``,
    and also when ``old_size`` is 0, matching the empty proof a C2SP
    tlog-witness request carries for ``old 0``; note that
    :func:`verify_consistency` refuses size 0 (a proof from the empty tree
    proves nothing), so a first checkpoint must be accepted explicitly.
    Raises ``ValueError`` if ``old_size`` is outside ``[0, len(hashes)]`` or a
    leaf hash is not 32 bytes.
    """
    n = len(hashes)
    if not 0 <= old_size <= n:
        raise ValueError(f"old size {old_size} is outside [0, {n}]")
    for i, h in enumerate(hashes):
        _require_hash(f"leaf hash {i}", h)
    return levels_consistency_proof(
        lambda height, index: _root_of_range(hashes, index << height, (index + 1) << height), old_size, n
    )


def _inclusion_proof_length(index: int, size: int) -> int:
    # Hashes below the point where the paths to ``index`` and to the last
    # leaf diverge ("inner"), plus one left sibling for each set bit of the
    # index above it ("border"); see transparency-dev/merkle decompInclProof.
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def _consistency_proof_length(old_size: int, new_size: int) -> int:
    # A consistency proof is the tail of the inclusion proof of leaf
    # old_size - 1, minus the levels inside the largest perfect subtree that
    # ends at old_size, plus that subtree's root unless it is the whole old
    # tree (old_size a power of two), in which case the verifier has it.
    shift = (old_size & -old_size).bit_length() - 1
    length = _inclusion_proof_length(old_size - 1, new_size) - shift
    if old_size != 1 << shift:
        length += 1
    return length


def root_from_inclusion(*, index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]) -> bytes:
    """Return the root implied by an inclusion proof (RFC 9162 2.1.3.2 steps 1-5).

    The caller compares the result with a trusted root; :func:`verify_inclusion`
    does both. Raises :class:`MerkleProofError` if ``index >= size``, a hash is
    not 32 bytes, or the proof has the wrong number of hashes for
    ``(index, size)``.
    """
    if size < 0 or index < 0:
        raise MerkleProofError(f"index {index} and size {size} must be non-negative")
    if index >= size:
        raise MerkleProofError(f"index {index} is not below tree size {size}")
    _require_hash("leaf hash", leaf_hash, MerkleProofError)
    for i, p in enumerate(proof):
        _require_hash(f"proof hash {i}", p, MerkleProofError)
    want = _inclusion_proof_length(index, size)
    if len(proof) != want:
        raise MerkleProofError(
            f"inclusion proof for index {index} in size {size} needs {want} hashes, got {len(proof)}"
        )
    fn, sn = index, size - 1
    r = bytes(leaf_hash)
    for p in proof:
        # The length check above makes these two RFC failure cases
        # unreachable; they stay as a second line of defence.
        if sn == 0:
            raise MerkleProofError("inclusion proof has more hashes than the tree has levels")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # On the right edge of the tree a node may have no right sibling
            # for several levels: skip those levels.
            while fn & 1 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise MerkleProofError("inclusion proof ended before reaching the root")
    return r


def verify_inclusion(*, index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` with ``root``.

    Implements RFC 9162 2.1.3.2. ``index`` and ``size`` must come from the
    verifier's own trusted context (e.g. a signed checkpoint), never only
    from the proof's sender. Returns ``None`` on success and raises
    :class:`MerkleProofError` naming the defect otherwise.
    """
    _require_hash("root", root, MerkleProofError)
    computed = root_from_inclusion(index=index, size=size, leaf_hash=leaf_hash, proof=proof)
    if computed != root:
        raise MerkleProofError(
            f"inclusion proof for index {index} in size {size} yields root "
            f"{computed.hex()}, expected {bytes(root).hex()}"
        )


def _chain_consistency(
    old_size: int, new_size: int, old_root: bytes, proof: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """Run RFC 9162 2.1.4.2 steps 2-6 and return the recomputed (old, new) roots.

    Requires ``0 < old_size < new_size`` and a proof of the right length.
    """
    path = [bytes(c) for c in proof]
    if old_size & (old_size - 1) == 0:
        # The old tree is a single perfect subtree: its root is the seed, so
        # the proof omits it (RFC 9162 2.1.4.2 step 2).
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    # Skip the levels inside the perfect subtree ending at old_size.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise MerkleProofError("consistency proof has more hashes than the tree has levels")
        if fn & 1 or fn == sn:
            # Left sibling: part of both the old and the new tree.
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn & 1 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            # Right sibling: only leaves appended after old_size.
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise MerkleProofError("consistency proof ended before reaching the new root")
    return fr, sr


def verify_consistency(
    *, old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree ``(new_size, new_root)`` extends ``(old_size, old_root)``.

    Implements RFC 9162 2.1.4.2, plus the cases the RFC leaves out, as the
    shared transparency-dev vectors expect:

    - ``old_size`` 0 is refused: every tree extends the empty tree, so such
      a "proof" proves nothing, and accepting one would let a log skip the
      check. A first checkpoint must be trusted explicitly by the caller.
    - ``old_size == new_size`` needs an empty proof and identical roots; it is
      a plain byte comparison (the vectors accept equal roots of any length
      here), as nothing about the tree is claimed beyond the roots' equality.

    Returns ``None`` on success and raises :class:`MerkleProofError` naming the
    defect otherwise.
    """
    if old_size < 0 or new_size < 0:
        raise MerkleProofError(f"sizes must be non-negative, got {old_size} and {new_size}")
    if new_size < old_size:
        raise MerkleProofError(f"new size {new_size} is smaller than old size {old_size}")
    if old_size == 0:
        raise MerkleProofError("a consistency proof from the empty tree (old size 0) proves nothing")
    if old_size == new_size:
        if len(proof) != 0:
            raise MerkleProofError(f"sizes are equal ({old_size}) but the proof has {len(proof)} hashes")
        if old_root != new_root:
            raise MerkleProofError(f"sizes are equal ({old_size}) but the roots differ")
        return
    _require_hash("old root", old_root, MerkleProofError)
    _require_hash("new root", new_root, MerkleProofError)
    for i, c in enumerate(proof):
        _require_hash(f"proof hash {i}", c, MerkleProofError)
    want = _consistency_proof_length(old_size, new_size)
    if len(proof) != want:
        raise MerkleProofError(
            f"consistency proof from size {old_size} to {new_size} needs {want} hashes, got {len(proof)}"
        )

    fr, sr = _chain_consistency(old_size, new_size, bytes(old_root), proof)
    if fr != old_root:
        raise MerkleProofError(f"consistency proof does not reproduce the old root at size {old_size}")
    if sr != new_root:
        raise MerkleProofError(f"consistency proof does not reproduce the new root at size {new_size}")


SubtreeRoot = Callable[[int, int], bytes]
"""``subtree_root(height, index)``: the root of the aligned perfect subtree of
``2**height`` leaves starting at leaf ``index * 2**height`` (height 0: the leaf
hash itself). What :func:`range_root` and :func:`levels_consistency_proof`
stand on, so the node's store can answer from its tables and
:class:`MerkleLevels` from memory with one implementation of the RFC's splits."""


def range_root(subtree_root: SubtreeRoot, start: int, end: int) -> bytes:
    """RFC 6962 MTH of leaves [start, end), as split by the RFC, in O(log n) lookups."""
    n = end - start
    if n == 0:
        return EMPTY_ROOT
    if n & (n - 1) == 0 and start % n == 0:
        return subtree_root(n.bit_length() - 1, start // n)
    k = _largest_power_of_two_below(n)
    return node_hash(range_root(subtree_root, start, start + k), range_root(subtree_root, start + k, end))


def levels_consistency_proof(subtree_root: SubtreeRoot, old_size: int, new_size: int) -> list[bytes]:
    """RFC 9162 PROOF(old_size, D[new_size]), as :func:`consistency_proof`, in O(log^2 n)
    lookups; the caller checks ``0 <= old_size <= new_size <= size``."""
    if old_size in (0, new_size):
        return []
    # SUBPROOF appends one subtree root after each recursive call, so the
    # roots collected top-down are emitted in reverse, with the base case
    # (if any) ending up first.
    collected: list[bytes] = []
    m, lo, hi = old_size, 0, new_size
    whole_old_tree = True  # SUBPROOF's flag b: is this subtree the whole old tree?
    while True:
        if m == hi - lo:
            if not whole_old_tree:
                # The verifier knows the old root only when it is this very
                # subtree, otherwise it needs this subtree's hash as a seed.
                collected.append(range_root(subtree_root, lo, hi))
            break
        k = _largest_power_of_two_below(hi - lo)
        if m <= k:
            collected.append(range_root(subtree_root, lo + k, hi))
            hi = lo + k
        else:
            collected.append(range_root(subtree_root, lo, lo + k))
            lo += k
            m -= k
            whole_old_tree = False
    collected.reverse()
    return collected


def frontier_subtrees(size: int) -> list[tuple[int, int]]:
    """(height, index) of the perfect subtrees that make up a tree of ``size``
    leaves, leftmost (largest) first: the nodes of its :class:`CompactRange`."""
    out: list[tuple[int, int]] = []
    offset = 0
    for height in range(size.bit_length() - 1, -1, -1):
        if size >> height & 1:
            out.append((height, offset >> height))
            offset += 1 << height
    return out


def interior_count(size: int) -> int:
    """How many completed perfect subtrees of height 1 or more a tree of ``size`` leaves has
    (``size // 2 + size // 4 + ...``, which is ``size - popcount(size)``)."""
    return size - size.bit_count()


class MerkleLevels:
    """Every leaf hash plus the root of every completed, aligned perfect subtree, in memory.

    Recomputing subtree roots from the leaves costs O(n) per proof; keeping
    each completed perfect subtree's root (2n hashes in all, packed 32 bytes
    each) makes any RFC 6962 range root O(log n) lookups. A running node keeps
    the same levels in its store instead (node/store, table `merkle`), since
    64 bytes per entry in memory is what a long-lived node must not hold;
    these are for a store read whose file predates that table, and for tests.
    """

    def __init__(self) -> None:
        self._levels: list[bytearray] = [bytearray()]

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self._levels[0]) // HASH_SIZE

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash and fold every perfect subtree it completes."""
        _require_hash("leaf hash", leaf)
        self._levels[0] += leaf
        height, count = 0, self.size
        while count % 2 == 0 and count:
            level = self._levels[height]
            node = hashlib.sha256(_NODE_PREFIX + level[-2 * HASH_SIZE :]).digest()
            if len(self._levels) == height + 1:
                self._levels.append(bytearray())
            self._levels[height + 1] += node
            height, count = height + 1, count // 2

    def subtree_root(self, height: int, index: int) -> bytes:
        """The root of the aligned perfect subtree (see :data:`SubtreeRoot`)."""
        level = self._levels[height]
        return bytes(level[index * HASH_SIZE : (index + 1) * HASH_SIZE])

    def leaf(self, index: int) -> bytes:
        """The leaf hash at `index`."""
        if not 0 <= index < self.size:
            raise IndexError(index)
        return self.subtree_root(0, index)

    def range_root(self, start: int, end: int) -> bytes:
        """RFC 6962 MTH of leaves [start, end), as split by the RFC from `start`."""
        if not 0 <= start <= end <= self.size:
            raise ValueError(f"range [{start}, {end}) is outside the {self.size} leaves")
        return range_root(self.subtree_root, start, end)

    def root(self, size: int | None = None) -> bytes:
        """Root of the first `size` leaves (default all)."""
        return self.range_root(0, self.size if size is None else size)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 PROOF(old_size, D[new_size]), as merkle.consistency_proof, in O(log^2 n)."""
        n = self.size if new_size is None else new_size
        if not 0 <= old_size <= n <= self.size:
            raise ValueError(f"old size {old_size} is outside [0, {n}]")
        return levels_consistency_proof(self.subtree_root, old_size, n)
