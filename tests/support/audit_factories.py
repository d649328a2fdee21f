"""Three-node exchanges run by hand and exported, for the audit, replay and proof tests and the goldens.

ThreeNodes is the one builder: three NodeServices over real stores in one
federation folder, on one clock, with publish, deliver, checkpoint-round and
export steps. Each scenario is a short script on top of it: build_scenario
here, the `fed` fixture of tests/node/audit/test_audit.py, exchange() in
tests/node/audit/test_audit_trust_updates.py, and the goldens of
scripts/gen_goldens.py (there over fixed-seed keys, so byte for byte
reproducible).

build_scenario runs every kind of message, for the replay and proof tests, on
one ticking clock (every clock read is one second later, so log times are
distinct and ordered), then exports each log with node.service.export_bundle
two days after the start. The scenario:

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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from node.audit import Bundle, read_bundle, write_bundle
from node.clock import Clock, utc_now
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
from node.ids import COUNTRIES, Country, peers_of
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


class ThreeNodes:
    """KR, US and JP as NodeServices over the federation folder `root` (<CC>/node.toml), on one clock.

    The steps a scenario is written in: publish, deliver (envelopes and
    receipts moved by hand, directly or relayed), a cosigned checkpoint round
    and export. Use it as a context manager: the services close on exit; the
    logs can be exported before or after (export_bundle reads the store).
    """

    def __init__(self, root: Path, *, clock: Clock = utc_now) -> None:
        self.root = root
        self.configs = {cc: NodeConfig.load(root / cc / "node.toml") for cc in COUNTRIES}
        self.svc: dict[Country, NodeService] = {}
        try:
            for cc in COUNTRIES:
                self.svc[cc] = NodeService.open(self.configs[cc], clock=clock)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> ThreeNodes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every open service."""
        for service in self.svc.values():
            service.close()

    def publish(self, cc: Country, **fields: Any) -> None:
        """cc publishes one message (NodeService.publish's keyword arguments)."""
        self.svc[cc].publish(**fields)

    def deliver(self, origin: Country, *peers: Country, via: Country | None = None) -> None:
        """Hand every pending envelope of `origin` to each of `peers` in turn (directly, or
        relayed by `via`) and give the receipts back to `origin`."""
        for peer in peers:
            for _, _, envelope in self.svc[origin].pending(peer):
                if via is None:
                    receipt = self.svc[peer].receive(envelope, peer=origin)
                else:
                    receipt = self.svc[peer].receive(envelope, peer=via, direct=False)
                self.svc[origin].accept_receipt(peer, receipt)

    def checkpoint_round(self) -> None:
        """Every node signs a checkpoint and has both peers cosign it (SPEC section 5)."""
        for cc in COUNTRIES:
            if self.svc[cc].issue_checkpoint() is None:
                raise RuntimeError(f"{cc}'s log did not grow since its last checkpoint")
            for peer in peers_of(cc):
                request = self.svc[cc].witness_request(peer)
                if request is None:
                    raise RuntimeError(f"nothing for {peer} to cosign of {cc}'s log")
                size, body = request
                self.svc[cc].record_cosignature(peer, size, self.svc[peer].witness(cc, body))

    def export(
        self,
        folder: Path,
        *,
        now: datetime | None = None,
        nodes: Sequence[Country] = COUNTRIES,
        suffix: str = "",
    ) -> dict[Country, Path]:
        """Export each of `nodes`' logs to folder/<CC><suffix>.ewxlog, as of `now`; the paths."""
        paths: dict[Country, Path] = {}
        for cc in nodes:
            paths[cc] = folder / f"{cc}{suffix}.ewxlog"
            export_bundle(self.configs[cc], paths[cc], now=now)
        return paths

    def trust(self) -> Trust:
        """The federation's trust file, loaded."""
        return Trust.load(self.root / "federation.json")

    def signers(self) -> dict[Country, dict[KeyPurpose, Signer]]:
        """Every node's signing keys, by purpose."""
        return {cc: dict(self.configs[cc].load_signers()) for cc in COUNTRIES}


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


def build_scenario(root: Path) -> Scenario:
    """Run the scenario of the module docstring under `root` and export the three logs."""
    init_federation(root)
    start = datetime.now(UTC).replace(microsecond=0)
    exported_at = start + timedelta(days=2)
    info = {**INFO, "expires": start + timedelta(days=30)}
    with ThreeNodes(root, clock=TickClock(start)) as nodes:
        nodes.publish("KR", msg_type="ALERT", info=info, alert_id="KR-A1")
        nodes.deliver("KR", "US", "JP")
        nodes.publish("US", msg_type="ACK", reference=("KR", "KR-A1"), reason="RECEIVED", alert_id="US-ACK1")
        nodes.deliver("US", "KR", "JP")
        nodes.publish(
            "JP", msg_type="ACK", reference=("KR", "KR-A1"), reason="UNDER_REVIEW", alert_id="JP-ACK1"
        )
        nodes.deliver("JP", "KR")
        nodes.deliver("JP", "US", via="KR")
        nodes.publish(
            "US",
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
        nodes.deliver("US", "KR", "JP")
        nodes.publish(
            "JP",
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
        nodes.deliver("JP", "KR", "US")
        nodes.publish(
            "KR",
            msg_type="UPDATE",
            reference=("KR", "KR-A1"),
            info={**info, "severity": "EXTREME"},
            alert_id="KR-A2",
        )
        nodes.deliver("KR", "US", "JP")
        nodes.publish(
            "KR", msg_type="CANCEL", reference=("KR", "KR-A2"), reason="SITUATION_RESOLVED", alert_id="KR-X2"
        )
        nodes.deliver("KR", "US", "JP")
        nodes.publish(
            "KR",
            msg_type="ALERT",
            info={**INFO, "headline": "Germanium export licensing", "expires": start + timedelta(hours=1)},
            alert_id="KR-E1",
        )
        nodes.deliver("KR", "US", "JP")
        nodes.publish(
            "US", msg_type="ERROR", reference=("KR", "KR-E1"), reason="NOT_UNDERSTOOD", alert_id="US-E1"
        )
        nodes.deliver("US", "KR", "JP")
        nodes.publish(
            "US",
            msg_type="ALERT",
            info={**info, "headline": "Rare earth magnet shipments delayed", "category": "LOGISTICS"},
            recipients=["KR"],
            alert_id="US-B1",
        )
        nodes.deliver("US", "KR")
        paths = nodes.export(root, now=exported_at)
    return Scenario(
        root=root,
        trust_path=root / "federation.json",
        trust=nodes.trust(),
        paths=paths,
        bundles={cc: read_bundle(p) for cc, p in paths.items()},
        signers=nodes.signers(),
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
