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

and, with `trilateral=True`, then (ids chosen by the nodes, in Scenario.ids):

    v1      KR proposes watchlist version 1 (WATCHLIST_V1); US and JP accept
            (JP's ACCEPT relayed to US by KR)             -> superseded
    v2      JP proposes version 2 on it, adding 250410:CN; KR and US accept
                                                          -> in force
    v3      US proposes version 3, removing 282560:CN; KR rejects it
            (INSUFFICIENT_EVIDENCE), JP does not vote     -> rejected
    report  US reports a policy move (POLICY_MOVE: CN export licensing, in force)
    rumour  JP reports a rumoured export ban on 250410 (PRESS)
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


WATCHLIST_V1: list[dict[str, str]] = [
    {"hs_code": "282560", "country": "CN", "reason": "POLICY_RISK"},
    {"hs_code": "811292", "country": "CN", "reason": "SUPPLY_CONCENTRATION"},
]
"""A first watchlist version: germanium oxides and gallium, from China."""

POLICY_MOVE: dict[str, Any] = {
    "country": "CN",
    "measure": "EXPORT_LICENSING",
    "hs_codes": ["282560", "811292"],
    "hs_edition": "HS2022",
    "stage": "IN_FORCE",
    "announced": "2023-07-03",
    "effective": "2023-08-01",
    "source": "OFFICIAL_GAZETTE",
}
"""China's export licensing of gallium and germanium, as a mission reports it."""

RUMOUR: dict[str, Any] = {
    "country": "CN",
    "measure": "EXPORT_BAN",
    "hs_codes": ["250410"],
    "hs_edition": "HS2022",
    "stage": "RUMOURED",
    "announced": "2023-09-20",
    "source": "PRESS",
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

    def propose(self, cc: Country, **fields: Any) -> str:
        """cc proposes the next watchlist version (NodeService.propose_watchlist); its alert id."""
        return self.svc[cc].propose_watchlist(**fields).alert.alert_id

    def vote(self, cc: Country, origin: Country, alert_id: str, decision: str, **fields: Any) -> str:
        """cc votes on `origin`'s proposal `alert_id` (NodeService.vote_watchlist); the vote's alert id."""
        published = self.svc[cc].vote_watchlist(origin=origin, alert_id=alert_id, decision=decision, **fields)
        return published.alert.alert_id

    def report(self, cc: Country, move: dict[str, Any], **fields: Any) -> str:
        """cc reports a policy move (NodeService.report_policy); the report's alert id."""
        return self.svc[cc].report_policy(move, **fields).alert.alert_id

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
    ids: dict[str, str] = dataclasses.field(default_factory=dict)
    """The ids the nodes chose for the trilateral messages (v1, v2, v3, their votes, report, rumour)."""


def build_scenario(root: Path, *, trilateral: bool = False) -> Scenario:
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
        ids = _trilateral(nodes) if trilateral else {}
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
        ids=ids,
    )


def _trilateral(nodes: ThreeNodes) -> dict[str, str]:
    """The watchlist and policy part of the scenario: three versions, two reports."""
    ids = {"v1": nodes.propose("KR", add=WATCHLIST_V1, hs_edition="HS2022")}
    nodes.deliver("KR", "US", "JP")
    ids["v1_us"] = nodes.vote("US", "KR", ids["v1"], "ACCEPT")
    nodes.deliver("US", "KR", "JP")
    ids["v1_jp"] = nodes.vote("JP", "KR", ids["v1"], "ACCEPT")
    nodes.deliver("JP", "KR")
    nodes.deliver("JP", "US", via="KR")
    ids["v2"] = nodes.propose("JP", add=[{"hs_code": "250410", "country": "CN", "reason": "STRATEGIC_ITEM"}])
    nodes.deliver("JP", "KR", "US")
    ids["v2_kr"] = nodes.vote("KR", "JP", ids["v2"], "ACCEPT")
    nodes.deliver("KR", "US", "JP")
    ids["v2_us"] = nodes.vote("US", "JP", ids["v2"], "ACCEPT")
    nodes.deliver("US", "KR", "JP")
    ids["v3"] = nodes.propose(
        "US", remove=[{"hs_code": "282560", "country": "CN", "reason": "RISK_SUBSIDED"}]
    )
    nodes.deliver("US", "KR", "JP")
    ids["v3_kr"] = nodes.vote("KR", "US", ids["v3"], "REJECT", reject_reason="INSUFFICIENT_EVIDENCE")
    nodes.deliver("KR", "US", "JP")
    ids["report"] = nodes.report("US", POLICY_MOVE)
    nodes.deliver("US", "KR", "JP")
    ids["rumour"] = nodes.report("JP", RUMOUR)
    nodes.deliver("JP", "KR", "US")
    return ids


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
