"""Exporting the node's exchange log as a bundle for auditors (`ewx log export`).

The node side of docs/bundle-format.md: it reads the store and signs the
export checkpoint with the log key. The format itself, and reading it, live in
node/audit/_bundle.py, which the offline auditor loads without the node's storage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from node.audit import Bundle, export_time_line, write_bundle
from node.config import NodeConfig
from node.crypto import Checkpoint, sign_checkpoint
from node.files import atomic_output, check_output_target
from node.service._rotation import trust_with_updates
from node.service._stores import read_node_store
from node.store import Store

PROGRESS_EVERY: Final = 1024
"""Entries written between two calls of export_bundle's `progress`, at most."""


def export_checkpoint(config: NodeConfig, store: Store, *, exported_at: datetime) -> tuple[int, str]:
    """The log's size now and the export checkpoint over it, signed with the node's log key.

    The root is the store's own (its leaf hashes), so an audit that
    recomputes it from the entries also checks the store against itself.
    """
    # The log key may have been rotated since the trust file was written.
    signer = config.load_signers(trust_with_updates(config, config.load_trust(), store))["log"]
    size, root = store.log_size, store.log_root()
    checkpoint = sign_checkpoint(
        Checkpoint(
            origin=config.log_origin,
            size=size,
            root_hash=root,
            extensions=(export_time_line(exported_at),),
        ),
        name=config.log_origin,
        private_key=signer.private_key,
    )
    return size, checkpoint


def store_bundle(config: NodeConfig, store: Store, *, now: datetime | None = None) -> Bundle:
    """The bundle `export_bundle` would write of `store`, in memory (for checking a backup)."""
    exported_at = (now or datetime.now(UTC)).astimezone(UTC)
    size, checkpoint = export_checkpoint(config, store, exported_at=exported_at)
    return Bundle(
        node=config.node_id,
        log_origin=config.log_origin,
        exported_at=exported_at,
        entries=[e for _, e in store.log_entries(0, size)],
        checkpoint=checkpoint,
        declared_size=size,
        history=[note for cp_size, _, note in store.checkpoints() if cp_size <= size],
        witnessed=[(node, note) for node, _, _, note in store.witnessed()],
    )


def export_bundle(
    config: NodeConfig,
    out: Path,
    *,
    now: datetime | None = None,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    size_known: Callable[[int], None] | None = None,
) -> int:
    """Export the node's whole log to `out` (atomically, node/files.atomic_output); returns its size.

    An existing file at `out` is replaced only with `force`.

    Reads the store directly, so it works with the node running (SQLite WAL
    gives a consistent snapshot) or stopped.

    `size_known`, if given, is told the number of entries the bundle will hold
    before the first is written; `progress` is called with how many entries
    were written since its last call, every `PROGRESS_EVERY` entries and after
    the last: the calls sum to that number.
    """
    check_output_target(out, force=force)  # before any work
    store = read_node_store(config)
    try:
        exported_at = (now or datetime.now(UTC)).astimezone(UTC)
        size, checkpoint = export_checkpoint(config, store, exported_at=exported_at)
        if size_known is not None:
            size_known(size)
        entries: Iterator[bytes] = (e for _, e in store.log_entries(0, size))
        if progress is not None:
            entries = _told(entries, progress)
        with atomic_output(out, force=force) as f:
            write_bundle(
                f,
                node=config.node_id,
                log_origin=config.log_origin,
                entries=entries,
                size=size,
                checkpoint=checkpoint,
                exported_at=exported_at,
                history=[note for cp_size, _, note in store.checkpoints() if cp_size <= size],
                witnessed=[(node, note) for node, _, _, note in store.witnessed()],
            )
    finally:
        store.close()
    return size


def _told(entries: Iterable[bytes], progress: Callable[[int], None]) -> Iterator[bytes]:
    """`entries`, telling `progress` every PROGRESS_EVERY of them and after the last."""
    count = 0
    for entry in entries:
        yield entry
        count += 1
        if count == PROGRESS_EVERY:
            progress(count)
            count = 0
    if count:
        progress(count)
