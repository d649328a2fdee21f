"""Audit of checkpoint histories and witness views (SPEC sections 5 and 6).

Pure functions over bundles; node/audit/_verify.py calls them and merges the
findings. What they prove, with the entries' own hashes as the only truth:

- every checkpoint the node signed is reproduced by the entries at its size
  (so the log was append-only between checkpoints: no rewritten tail);
- every cosignature on the node's checkpoints is valid, by a peer's witness
  key, and each witness's cosignature times never go backwards;
- a checkpoint counts as published once both peers cosigned it: a log whose
  newest history checkpoint lacks a cosignature is reported (info);
- what each peer witnessed of this log agrees with this log: a witnessed
  root at size k that the entries do not reproduce is a fork shown to that
  peer (checkpoint_equivocation), as are two signed checkpoints of one size.

Finding kinds added here (index None; the detail names the size):
    not_append_only          a signed checkpoint of the node's own history is not
                             reproduced by its entries at that size
    bad_checkpoint_signature a history or witnessed checkpoint without a valid
                             log signature
    bad_cosignature          a cosignature by a witness key that does not verify,
                             or whose time goes backwards
    checkpoint_equivocation  two signed checkpoints of one log and size with
                             different roots (within a bundle or across bundles)
    unpublished (info)       the newest history checkpoint lacks a peer's cosignature
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from node.audit._bundle import Bundle
from node.checks import open_log_checkpoint, verify_witness_cosignature
from node.crypto import (
    SIG_TYPE_COSIGNATURE_V1,
    Checkpoint,
    CompactRange,
    SignedNote,
    leaf_hash,
    note_key_hash,
    parse_checkpoint,
    parse_signed_note,
)
from node.errors import NoteError
from node.ids import Country, peers_of
from node.trust import Trust, witness_name


@dataclass(frozen=True, slots=True)
class CheckpointFinding:
    """A finding before node/audit/_verify.py turns it into its Finding type."""

    node: Country
    kind: str
    detail: str
    severity: Literal["error", "info"] = "error"


def roots_at(entries: Sequence[bytes], sizes: set[int]) -> dict[int, bytes]:
    """The RFC 6962 root of the first `size` entries, for each wanted size."""
    tree = CompactRange()
    roots: dict[int, bytes] = {}
    if 0 in sizes:
        roots[0] = tree.root()
    for entry in entries:
        tree.append(leaf_hash(entry))
        if tree.size in sizes:
            roots[tree.size] = tree.root()
    return roots


def compared_sizes(bundles: Sequence[Bundle]) -> dict[Country, set[int]]:
    """Per log, every size at which its root is compared with a checkpoint: those of its own
    history and those its peers witnessed of it, read without checking any signature (a
    size read from a forged note costs one root more, nothing else).

    So each log's tree is hashed once, with the roots at these sizes taken on the way
    (`roots_at`), not again by each check: at a million entries a pass is ~2.5 s.
    """
    sizes: dict[Country, set[int]] = {b.node: set() for b in bundles}
    for bundle in bundles:
        notes = [(bundle.node, note) for note in bundle.history] + list(bundle.witnessed)
        for log_node, note in notes:
            try:
                size = parse_checkpoint(parse_signed_note(note).body).size
            except NoteError:
                continue
            sizes.setdefault(log_node, set()).add(size)
    return sizes


def _known_roots(
    entries: Sequence[bytes], sizes: set[int], known: Mapping[int, bytes] | None
) -> Mapping[int, bytes]:
    """`known` where it holds every size wanted (the size of the log itself aside), else a pass."""
    reachable = {s for s in sizes if s <= len(entries)}
    if known is not None and reachable <= known.keys():
        return known
    return roots_at(entries, sizes)


def _claimed_witnesses(signed: SignedNote, trust: Trust) -> dict[Country, bool]:
    """Peers that a signature line on the note claims as its witness, to tell a missing
    cosignature from a bad one: True if the line's key hash is one of the peer's witness
    keys, False if only its key name is the peer's (a key hash that matches no key, such as
    a flipped byte, must be a finding, not a line that silently does not count)."""
    present = {s.key_hash for s in signed.signatures}
    names = {s.name for s in signed.signatures}
    claimed: dict[Country, bool] = {}
    for country in trust.countries:
        if witness_name(country) in names:
            claimed[country] = False
        for key in trust.keys_of(country, "witness"):
            hashed = note_key_hash(witness_name(country), trust.public_key(key), SIG_TYPE_COSIGNATURE_V1)
            if hashed in present:
                claimed[country] = True
    return claimed


@dataclass(frozen=True, slots=True)
class Witnessing:
    """What one log's own checkpoint history shows was witnessed: split-view protection in figures."""

    newest_size: int | None = None
    """The newest checkpoint in the history with a valid log signature (None: none)."""
    newest_root: str | None = None
    cosigned_up_to: dict[Country, int] | None = None
    """Per peer, the largest checkpoint size it validly cosigned (0: none)."""

    def to_json(self) -> dict[str, object]:
        return {
            "newest_checkpoint": None
            if self.newest_size is None
            else {"size": self.newest_size, "root": self.newest_root},
            "cosigned_up_to": dict(self.cosigned_up_to or {}),
        }

    def line(self, node: Country) -> str:
        """`KR's newest checkpoint: size 40, root 1a2b...; cosigned by US up to 40, JP up to 38`."""
        if self.newest_size is None or self.newest_root is None:
            return f"{node}'s log carries no signed checkpoint history: nothing was witnessed"
        by = ", ".join(
            f"{peer} up to {size}" if size else f"not by {peer}"
            for peer, size in (self.cosigned_up_to or {}).items()
        )
        return f"{node}'s newest checkpoint: size {self.newest_size}, root {self.newest_root[:16]}; cosigned by {by}"


def history_findings(bundle: Bundle, *, trust: Trust) -> list[CheckpointFinding]:
    """Check one bundle's own checkpoint history against its entries."""
    return history_check(bundle, trust=trust)[0]


def history_check(
    bundle: Bundle, *, trust: Trust, roots: Mapping[int, bytes] | None = None
) -> tuple[list[CheckpointFinding], Witnessing]:
    """history_findings, and what the history shows was witnessed (the report's per-log summary).
    `roots`: the log's roots already taken (`compared_sizes`), by size."""
    node = bundle.node
    findings: list[CheckpointFinding] = []
    cosigned: dict[Country, int] = dict.fromkeys(peers_of(node), 0)
    opened: list[tuple[Checkpoint, SignedNote, str]] = []
    for i, note in enumerate(bundle.history):
        result = open_log_checkpoint(note, node=node, trust=trust)
        if result is None:
            findings.append(
                CheckpointFinding(
                    node, "bad_checkpoint_signature", f"history checkpoint {i + 1} has no valid log signature"
                )
            )
            continue
        opened.append((result[0], result[1], note))
    roots = _known_roots(bundle.entries, {cp.size for cp, _, _ in opened}, roots)
    seen: dict[int, bytes] = {}
    last_time: dict[Country, int] = {}
    for cp, signed, note in opened:
        if cp.size in seen and seen[cp.size] != cp.root_hash:
            findings.append(
                CheckpointFinding(
                    node,
                    "checkpoint_equivocation",
                    f"two signed checkpoints at size {cp.size} with different roots",
                )
            )
        seen[cp.size] = cp.root_hash
        if cp.size > len(bundle.entries):
            findings.append(
                CheckpointFinding(
                    node,
                    "not_append_only",
                    f"checkpoint at size {cp.size} is beyond the log's {len(bundle.entries)} entries",
                )
            )
        elif roots.get(cp.size) != cp.root_hash:
            findings.append(
                CheckpointFinding(
                    node,
                    "not_append_only",
                    f"signed checkpoint at size {cp.size} is not reproduced by the "
                    "entries: the log changed after it was checkpointed",
                )
            )
        claimed = _claimed_witnesses(signed, trust)
        for peer in peers_of(node):
            when = verify_witness_cosignature(note, witness_node=peer, trust=trust, checkpoint=cp)
            if when is None:
                if peer in claimed:
                    why = "does not verify" if claimed[peer] else "names no witness key of theirs (key hash)"
                    findings.append(
                        CheckpointFinding(
                            node, "bad_cosignature", f"{peer}'s cosignature on checkpoint {cp.size} {why}"
                        )
                    )
                continue
            cosigned[peer] = max(cosigned[peer], cp.size)
            if when < last_time.get(peer, 0):
                findings.append(
                    CheckpointFinding(
                        node,
                        "bad_cosignature",
                        f"{peer}'s cosignature time on checkpoint {cp.size} goes backwards",
                    )
                )
            last_time[peer] = when
    if opened:
        newest, _, note = opened[-1]
        missing = [
            p
            for p in peers_of(node)
            if verify_witness_cosignature(note, witness_node=p, trust=trust, checkpoint=newest) is None
        ]
        if missing:
            findings.append(
                CheckpointFinding(
                    node,
                    "unpublished",
                    f"newest checkpoint (size {newest.size}) lacks the cosignature of {', '.join(missing)}",
                    severity="info",
                )
            )
        return findings, Witnessing(newest.size, newest.root_hash.hex(), cosigned)
    return findings, Witnessing(cosigned_up_to=cosigned)


def witnessed_findings(
    bundles: Sequence[Bundle],
    *,
    trust: Trust,
    roots: Mapping[Country, Mapping[int, bytes]] | None = None,
) -> list[CheckpointFinding]:
    """Check what each node witnessed of its peers' logs against those logs. `roots`: each
    log's roots already taken (`compared_sizes`), by node and size."""
    by_node = {b.node: b for b in bundles}
    findings: list[CheckpointFinding] = []
    wanted: dict[Country, set[int]] = {}
    checked: list[tuple[Country, Country, Checkpoint]] = []
    for bundle in bundles:
        for log_node, note in bundle.witnessed:
            result = open_log_checkpoint(note, node=log_node, trust=trust)
            if result is None:
                findings.append(
                    CheckpointFinding(
                        bundle.node,
                        "bad_checkpoint_signature",
                        f"a checkpoint of {log_node}'s log that {bundle.node} "
                        "witnessed has no valid log signature",
                    )
                )
                continue
            cp = result[0]
            if verify_witness_cosignature(note, witness_node=bundle.node, trust=trust, checkpoint=cp) is None:
                findings.append(
                    CheckpointFinding(
                        bundle.node,
                        "bad_cosignature",
                        f"{bundle.node}'s own cosignature on {log_node}'s checkpoint "
                        f"{cp.size} does not verify",
                    )
                )
            checked.append((bundle.node, log_node, cp))
            wanted.setdefault(log_node, set()).add(cp.size)
    known = roots or {}
    taken = {
        node: _known_roots(by_node[node].entries, sizes, known.get(node))
        for node, sizes in wanted.items()
        if node in by_node
    }
    views: dict[tuple[Country, int], tuple[Country, bytes]] = {}
    for witness_node, log_node, cp in checked:
        other = views.setdefault((log_node, cp.size), (witness_node, cp.root_hash))
        if other[1] != cp.root_hash:
            findings.append(
                CheckpointFinding(
                    log_node,
                    "checkpoint_equivocation",
                    f"{log_node} showed {other[0]} and {witness_node} different trees at size {cp.size}",
                )
            )
        if log_node in taken:
            actual = taken[log_node].get(cp.size)
            if cp.size > len(by_node[log_node].entries) or actual != cp.root_hash:
                findings.append(
                    CheckpointFinding(
                        log_node,
                        "checkpoint_equivocation",
                        f"{witness_node} cosigned a checkpoint of {log_node}'s log at "
                        f"size {cp.size} that its exported entries do not reproduce",
                    )
                )
    return findings
