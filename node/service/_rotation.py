"""Key rotation at the node: the trust it works with, and its own new keys.

node/trust/_updates.py checks and applies updates (pure); this module holds
what touches files: the trust a node rebuilds from its store at start, and
the switch to a new signing key once the update that grants it is committed.

A new private key waits beside the current one as `<key file>.next` (written
by `ewx pki rotate`). When the update granting it is announced, the current
file is kept as `<key file>.retired-<key id>` and `.next` takes its place;
both renames are atomic, and a node that crashed between the commit and the
renames finishes them at its next start (`install_pending_keys`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.config import NodeConfig
from node.crypto import KEY_PURPOSES, KeyPurpose, Signer
from node.errors import ConfigError, RefusedOperation, UsageError
from node.files import sync_directory
from node.pki import load_ed25519_private_key, write_private_key
from node.service._stores import has_node_store, read_node_store
from node.store import Store
from node.trust import CertificateRevocation, Grant, KeyRevocation, Trust, build_update, replay, sign_update

log = structlog.get_logger("ewx.node")

NEXT_SUFFIX: Final = ".next"
RETIRED_SUFFIX: Final = ".retired-"
DEFAULT_KEY_VALIDITY: Final = timedelta(days=730)
"""How long a key made by `ewx pki rotate` is valid, unless told otherwise."""


def next_key_path(config: NodeConfig, purpose: KeyPurpose) -> Path:
    """Where `ewx pki rotate` leaves the new private key for `purpose`."""
    current = config.keys.path_for(purpose)
    return current.with_name(current.name + NEXT_SUFFIX)


def trust_with_updates(config: NodeConfig, trust: Trust, store: Store) -> Trust:
    """The trust file amended by every update the store holds, each checked again.

    An update that no longer verifies (the trust file was replaced by one
    that does not fit it) is left out with an error event, and so are the
    same member's later ones: the node runs on what it can still verify.
    """
    amended, refused = replay(trust, (envelope for _, _, envelope in store.trust_updates()))
    for _, exc in refused:
        log.error("trust_update_not_applied", node=config.node_id, reason=exc.reason, error=str(exc))
    return amended


def node_trust(config: NodeConfig) -> Trust:
    """The trust a node works with, read beside it (running or not) without creating a store."""
    trust = config.load_trust()
    if not has_node_store(config):
        return trust
    store = read_node_store(config)
    try:
        return trust_with_updates(config, trust, store)
    finally:
        store.close()


def pending_signers(
    config: NodeConfig, trust: Trust, granted: Sequence[str] = ()
) -> dict[KeyPurpose, Signer]:
    """The `.next` keys that `trust` lists as this node's (restricted to `granted` ids if given).

    Read before an announcement commits, so that an unreadable key file
    refuses the announcement instead of leaving a granted key unusable.
    """
    found: dict[KeyPurpose, Signer] = {}
    for purpose in KEY_PURPOSES:
        path = next_key_path(config, purpose)
        if not path.exists():
            continue
        signer = Signer.of(config.node_id, purpose, load_ed25519_private_key(path))
        if granted and signer.key_id not in granted:
            continue
        entry = trust.key(signer.key_id)
        if entry is None or entry.owner != config.node_id or entry.purpose != purpose:
            continue
        found[purpose] = signer
    return found


def install(
    config: NodeConfig, signers: dict[KeyPurpose, Signer], retiring: dict[KeyPurpose, Signer]
) -> None:
    """Move each `.next` key into place, keeping the key it replaces beside it.

    The update is committed by then and the node signs with the new key
    whatever happens here; a rename that fails (a read-only key folder, say)
    is logged and tried again at the next start.
    """
    for purpose, signer in signers.items():
        current = config.keys.path_for(purpose)
        old = retiring.get(purpose)
        try:
            if old is not None and current.exists():
                os.replace(current, current.with_name(f"{current.name}{RETIRED_SUFFIX}{old.key_id}"))
            os.replace(next_key_path(config, purpose), current)
            sync_directory(current.parent)
        except OSError as exc:
            log.error(
                "signing_key_install_failed",
                node=config.node_id,
                purpose=purpose,
                key_id=signer.key_id,
                error=exc.strerror or str(exc),
                path=str(current),
            )
            continue
        log.info("signing_key_installed", node=config.node_id, purpose=purpose, key_id=signer.key_id)


def install_pending_keys(config: NodeConfig, trust: Trust) -> None:
    """Finish a rotation interrupted after its update was committed (called at start)."""
    waiting = pending_signers(config, trust)
    if not waiting:
        return
    retiring: dict[KeyPurpose, Signer] = {}
    for purpose in waiting:
        try:
            retiring[purpose] = Signer.of(
                config.node_id, purpose, load_ed25519_private_key(config.keys.path_for(purpose))
            )
        except ConfigError:
            continue
    install(config, waiting, retiring)


def prepare_rotation(
    config: NodeConfig,
    *,
    now: datetime,
    purposes: Sequence[KeyPurpose] = (),
    valid_for: timedelta = DEFAULT_KEY_VALIDITY,
    key_revocations: Sequence[KeyRevocation] = (),
    certificate_revocations: Sequence[CertificateRevocation] = (),
) -> bytes:
    """Make new keys for `purposes` (as `.next` files) and the update that grants them.

    Returns a SignedTrustUpdate signed by the node's current alert key and
    still lacking the national CA's signature (`ewx pki endorse` adds it).
    The old keys stay valid until their own not_after unless revoked here
    (alerts they signed that still wait in the outbox are re-signed if need
    be, NodeService._deliverable). Works beside a running node (the store is
    only read). Nothing is written if anything is refused.
    """
    if not (purposes or key_revocations or certificate_revocations):
        raise UsageError("nothing to do: name a key purpose to rotate or something to revoke")
    waiting = [
        next_key_path(config, purpose) for purpose in purposes if next_key_path(config, purpose).exists()
    ]
    if waiting:
        raise RefusedOperation(
            f"{waiting[0]} exists: a rotation is already prepared; announce it, or remove the file to start over"
        )
    trust = node_trust(config)
    signers = config.load_signers(trust)
    new_keys = {purpose: Ed25519PrivateKey.generate() for purpose in dict.fromkeys(purposes)}
    update = build_update(
        trust=trust,
        member=config.node_id,
        issued_at=now,
        grants=[
            Grant(purpose=purpose, public_key=key.public_key(), not_before=now, not_after=now + valid_for)
            for purpose, key in new_keys.items()
        ],
        key_revocations=key_revocations,
        certificate_revocations=certificate_revocations,
    )
    signed = sign_update(update, signers["alert"])
    for purpose, key in new_keys.items():
        write_private_key(next_key_path(config, purpose), key)
    return signed
