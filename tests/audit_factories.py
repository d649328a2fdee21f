"""A real three-node exchange with every kind of message, exported for replay and proof tests.

Three NodeServices over real stores on one ticking clock (every clock read is
one second later, so log times are distinct and ordered), envelopes moved by
hand as in tests/unit/test_audit.py, then each log exported with
node.service.export_bundle two days after the start. The scenario:

    KR-A1   KR ALERT (SEVERE) to US and JP
    US-ACK1 US ACK of KR-A1 (RECEIVED)
    JP-ACK1 JP ACK of KR-A1 (UNDER_REVIEW); to US relayed by KR
    US-R1   US RESPONSE to KR-A1
    JP-C1   JP CONSULT on KR-A1
    KR-A2   KR UPDATE of KR-A1 (EXTREME)                  -> KR-A1 updated
    KR-X2   KR CANCEL of KR-A2 (SITUATION_RESOLVED)       -> KR-A2 cancelled
    KR-E1   KR ALERT expiring one hour after the start    -> expired at export
    US-E1   US ERROR about KR-E1 (NOT_UNDERSTOOD)
    US-B1   US ALERT to KR only                           -> active
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from node.audit import Bundle, read_bundle, write_bundle
from node.config import NodeConfig
from node.crypto import (
    Checkpoint,
    KeyPurpose,
    Signer,
    cosign,
    leaf_hash,
    root_from_leaf_hashes,
    sign_checkpoint,
)
from node.ids import COUNTRIES, Country
from node.pki import init_federation
from node.service import NodeService, export_bundle
from node.trust import Trust, witness_name

INFO: dict[str, Any] = {
    "category": "EXPORT_CONTROL",
    "urgency": "IMMEDIATE",
    "severity": "SEVERE",
    "certainty": "OBSERVED",
    "headline": "China export licensing on gallium",
    "items": [{"hs_code": "811292", "hs_edition": "HS2022"}],
    "source_countries": ["CN"],
    "supply_impact": "ABOVE_60",
}


class TickClock:
    """A clock that moves one second forward on every read."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@dataclass
class Scenario:
    """The exported federation and what tests need to forge or re-sign things."""

    root: Path
    trust_path: Path
    trust: Trust
    paths: dict[Country, Path]
    bundles: dict[Country, Bundle]
    signers: dict[Country, dict[KeyPurpose, Signer]]
    start: datetime
    exported_at: datetime


def deliver(
    svc: dict[Country, NodeService], origin: Country, peer: Country, *, via: Country | None = None
) -> None:
    """Hand every pending envelope of `origin` to `peer` (directly, or relayed by `via`)."""
    for _, _, envelope in svc[origin].pending(peer):
        if via is None:
            receipt = svc[peer].receive(envelope, peer=origin)
        else:
            receipt = svc[peer].receive(envelope, peer=via, direct=False)
        svc[origin].accept_receipt(peer, receipt)


def build_scenario(root: Path) -> Scenario:
    """Run the scenario of the module docstring under `root` and export the three logs."""
    init_federation(root)
    start = datetime.now(UTC).replace(microsecond=0)
    clock = TickClock(start)
    configs = {cc: NodeConfig.load(root / cc / "node.toml") for cc in COUNTRIES}
    svc = {cc: NodeService.open(configs[cc], clock=clock) for cc in COUNTRIES}
    exported_at = start + timedelta(days=2)
    try:
        info = {**INFO, "expires": start + timedelta(days=30)}
        svc["KR"].publish(msg_type="ALERT", info=info, alert_id="KR-A1")
        deliver(svc, "KR", "US")
        deliver(svc, "KR", "JP")
        svc["US"].publish(msg_type="ACK", reference=("KR", "KR-A1"), reason="RECEIVED", alert_id="US-ACK1")
        deliver(svc, "US", "KR")
        deliver(svc, "US", "JP")
        svc["JP"].publish(
            msg_type="ACK", reference=("KR", "KR-A1"), reason="UNDER_REVIEW", alert_id="JP-ACK1"
        )
        deliver(svc, "JP", "KR")
        deliver(svc, "JP", "US", via="KR")
        svc["US"].publish(
            msg_type="RESPONSE",
            reference=("KR", "KR-A1"),
            response={
                "measures": ["STOCKPILE_RELEASE"],
                "assistance": "OFFERED",
                "assistance_measures": ["JOINT_PROCUREMENT"],
                "expected_duration_days": 90,
            },
            alert_id="US-R1",
        )
        deliver(svc, "US", "KR")
        deliver(svc, "US", "JP")
        svc["JP"].publish(
            msg_type="CONSULT",
            reference=("KR", "KR-A1"),
            consult={
                "impact": "FROM_30_TO_60",
                "cause": "EXPORT_CONTROL",
                "sectors": ["SEMICONDUCTORS"],
                "assistance_wanted": ["ALTERNATIVE_SOURCING"],
            },
            alert_id="JP-C1",
        )
        deliver(svc, "JP", "KR")
        deliver(svc, "JP", "US")
        svc["KR"].publish(
            msg_type="UPDATE",
            reference=("KR", "KR-A1"),
            info={**info, "severity": "EXTREME"},
            alert_id="KR-A2",
        )
        deliver(svc, "KR", "US")
        deliver(svc, "KR", "JP")
        svc["KR"].publish(
            msg_type="CANCEL", reference=("KR", "KR-A2"), reason="SITUATION_RESOLVED", alert_id="KR-X2"
        )
        deliver(svc, "KR", "US")
        deliver(svc, "KR", "JP")
        svc["KR"].publish(
            msg_type="ALERT",
            info={**INFO, "headline": "Germanium export licensing", "expires": start + timedelta(hours=1)},
            alert_id="KR-E1",
        )
        deliver(svc, "KR", "US")
        deliver(svc, "KR", "JP")
        svc["US"].publish(
            msg_type="ERROR", reference=("KR", "KR-E1"), reason="NOT_UNDERSTOOD", alert_id="US-E1"
        )
        deliver(svc, "US", "KR")
        deliver(svc, "US", "JP")
        svc["US"].publish(
            msg_type="ALERT",
            info={**info, "headline": "Rare earth magnet shipments delayed", "category": "LOGISTICS"},
            recipients=["KR"],
            alert_id="US-B1",
        )
        deliver(svc, "US", "KR")
        paths: dict[Country, Path] = {}
        for cc in COUNTRIES:
            paths[cc] = root / f"{cc}.ewxlog"
            export_bundle(configs[cc], paths[cc], now=exported_at)
    finally:
        for service in svc.values():
            service.close()
    return Scenario(
        root=root,
        trust_path=root / "federation.json",
        trust=Trust.load(root / "federation.json"),
        paths=paths,
        bundles={cc: read_bundle(p) for cc, p in paths.items()},
        signers={cc: dict(configs[cc].load_signers()) for cc in COUNTRIES},
        start=start,
        exported_at=exported_at,
    )


def signed_checkpoint(
    scn: Scenario,
    cc: Country,
    entries: list[bytes],
    *,
    size: int | None = None,
    cosigners: tuple[Country, ...] = (),
    at: datetime | None = None,
) -> str:
    """cc's checkpoint over the first `size` entries, signed with its log key, cosigned by `cosigners`."""
    n = len(entries) if size is None else size
    origin = scn.bundles[cc].log_origin
    cp = Checkpoint(
        origin=origin, size=n, root_hash=root_from_leaf_hashes([leaf_hash(e) for e in entries[:n]])
    )
    note = sign_checkpoint(cp, name=origin, private_key=scn.signers[cc]["log"].private_key)
    stamp = int((at or scn.exported_at).timestamp())
    for peer in cosigners:
        note += cosign(
            cp, name=witness_name(peer), private_key=scn.signers[peer]["witness"].private_key, timestamp=stamp
        )
    return note


def rewrite(
    scn: Scenario, out: Path, cc: Country, entries: list[bytes], *, checkpoint: str | None = None
) -> Path:
    """cc's bundle with `entries` (checkpoint re-signed over them unless given), written to `out`."""
    original = scn.bundles[cc]
    buffer = io.BytesIO()
    write_bundle(
        buffer,
        node=cc,
        log_origin=original.log_origin,
        entries=iter(entries),
        size=len(entries),
        checkpoint=checkpoint if checkpoint is not None else signed_checkpoint(scn, cc, entries),
        exported_at=original.exported_at,
    )
    out.write_bytes(buffer.getvalue())
    return out


def with_history(bundle: Bundle, history: list[str]) -> Bundle:
    """`bundle` with `history` (earlier own checkpoints with cosignature lines)."""
    return dataclasses.replace(bundle, history=history)
