"""The audit rebuilds the trust from the trust updates in the logs (node/audit/_verify.py).

Three NodeServices over real stores exchange by hand
(tests/support/audit_factories.ThreeNodes): KR rotates its alert key mid-way; the
auditor holds only the original trust file. Then the logs are tampered with,
or KR revokes a key from a time in the past, and the audit must say so.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from node.audit import Bundle, Report, read_bundle, render_html, replay, verify_loaded
from node.config import NodeConfig
from node.errors import RefusedOperation
from node.ids import Country
from node.message import encode
from node.pki import init_federation
from node.service import NodeService, prepare_rotation
from node.trust import KeyRevocation, Trust, endorse_update
from node.wire import ewx_pb2 as pb
from tests.support.audit_factories import INFO, ThreeNodes, TickClock


def endorse(root: Path, country: Country, request: bytes) -> bytes:
    key = serialization.load_pem_private_key((root / country / "ca" / "ca.key").read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    certificate = x509.load_pem_x509_certificate((root / country / "ca" / "ca.pem").read_bytes())
    return endorse_update(request, ca_key=key, ca_certificate=certificate)


def exchange(root: Path, *, revoke_old_from: datetime | None = None) -> tuple[dict[Country, Bundle], Trust]:
    """KR-A1 under KR's first alert key, a rotation, KR-A2 under the new one; exported."""
    init_federation(root)
    start = datetime.now(UTC).replace(microsecond=0)
    clock = TickClock(start)
    with ThreeNodes(root, clock=clock) as nodes:
        info = {**INFO, "expires": start + timedelta(days=30)}
        nodes.publish("KR", msg_type="ALERT", info=info, alert_id="KR-A1")
        nodes.deliver("KR", "US", "JP")
        old_key = nodes.svc["KR"].signers["alert"].key_id
        revocations = (
            [] if revoke_old_from is None else [KeyRevocation(old_key, revoke_old_from, "compromised")]
        )
        request = prepare_rotation(
            nodes.configs["KR"], now=clock(), purposes=["alert"], key_revocations=revocations
        )
        update = endorse(root, "KR", request)
        nodes.svc["KR"].announce_trust_update(update)
        for peer in ("US", "JP"):
            assert nodes.svc[peer].accept_trust_update("KR", update) == 1
            assert nodes.svc[peer].accept_trust_update("KR", update) == 1  # the same again: nothing new
        nodes.publish("KR", msg_type="UPDATE", reference=("KR", "KR-A1"), info=info, alert_id="KR-A2")
        nodes.deliver("KR", "US", "JP")
        paths = nodes.export(root, now=start + timedelta(days=1))
    return {cc: read_bundle(p) for cc, p in paths.items()}, nodes.trust()


def kinds(report: Report) -> list[tuple[Country, int | None, str]]:
    return [(f.node, f.index, f.kind) for f in report.findings if f.severity == "error"]


def trust_update_indexes(bundle: Bundle) -> list[int]:
    trust_kinds = (pb.TRUST_UPDATE_SENT, pb.TRUST_UPDATE_RECEIVED)
    return [i for i, e in enumerate(bundle.entries) if pb.LogEntry.FromString(e).kind in trust_kinds]


def test_a_rotation_in_the_logs_audits_clean_against_the_original_trust_file(tmp_path: Path) -> None:
    bundles, trust = exchange(tmp_path)
    assert [len(trust_update_indexes(b)) for b in bundles.values()] == [1, 1, 1]
    report = verify_loaded(list(bundles.values()), trust=trust, workers=1)
    assert kinds(report) == []
    # Without the updates the new key is unknown: the logs are what make it known.
    stripped = {
        cc: dataclasses.replace(
            b, entries=[e for i, e in enumerate(b.entries) if i not in trust_update_indexes(b)]
        )
        for cc, b in bundles.items()
    }
    unknown = [
        k
        for k in kinds(verify_loaded(list(stripped.values()), trust=trust, workers=1))
        if k[2] == "unknown_key"
    ]
    assert {node for node, _, _ in unknown} == {"KR", "US", "JP"}


def test_an_update_without_the_cas_signature_is_reported_and_not_applied(tmp_path: Path) -> None:
    bundles, trust = exchange(tmp_path)
    forged: dict[Country, Bundle] = {}
    for cc, bundle in bundles.items():
        entries = list(bundle.entries)
        for i in trust_update_indexes(bundle):
            entry = pb.LogEntry.FromString(entries[i])
            signed = pb.SignedTrustUpdate.FromString(entry.trust_update)
            signed.ca_signature = b""
            entry.trust_update = encode(signed)
            entries[i] = encode(entry)
        forged[cc] = dataclasses.replace(bundle, entries=entries)
    found = kinds(verify_loaded(list(forged.values()), trust=trust, workers=1))
    bad = [k for k in found if k[2] == "bad_trust_update"]
    assert bad == [("KR", trust_update_indexes(bundles["KR"])[0], "bad_trust_update")]
    # ... so KR-A2, signed by the key it would have granted, is by an unknown key everywhere.
    assert {node for node, _, kind in found if kind == "unknown_key"} == {"KR", "US", "JP"}


def test_a_key_revoked_from_the_past_flags_what_it_signed_since(tmp_path: Path) -> None:
    before_everything = datetime.now(UTC) - timedelta(hours=1)
    bundles, trust = exchange(tmp_path, revoke_old_from=before_everything)
    found = kinds(verify_loaded(list(bundles.values()), trust=trust, workers=1))
    revoked = {(node, index) for node, index, kind in found if kind == "revoked_key"}
    # KR-A1 as sent at KR and received at US and JP, and the receipts US and JP
    # signed are by their own keys, so not flagged.
    assert {node for node, _ in revoked} == {"KR", "US", "JP"}
    assert all(kind != "bad_trust_update" for _, _, kind in found)


def test_a_node_refuses_to_sign_with_a_key_its_own_update_revoked(tmp_path: Path) -> None:
    init_federation(tmp_path)
    config = NodeConfig.load(tmp_path / "KR" / "node.toml")
    service = NodeService.open(config)
    try:
        key = service.signers["alert"].key_id
        request = prepare_rotation(
            config, now=service.clock(), key_revocations=[KeyRevocation(key, service.clock(), "compromised")]
        )
        result = service.announce_trust_update(endorse(tmp_path, "KR", request))
        assert result["unusable_signing_keys"] == ["alert"]
        keys = service.status().signing_keys
        assert keys["alert"]["usable"] is False and keys["alert"]["days_left"] <= 0
        assert keys["log"]["usable"] is True and keys["log"]["expiring_soon"] is False
        with pytest.raises(RefusedOperation, match="cannot sign alerts now"):
            service.publish(msg_type="ALERT", info={**INFO, "expires": datetime.now(UTC) + timedelta(days=3)})
        assert service.store.outbox(None) == []
    finally:
        service.close()


def test_the_replay_lists_the_rotation_where_each_log_recorded_it(tmp_path: Path) -> None:
    bundles, trust = exchange(tmp_path)
    history = replay(list(bundles.values()), trust=trust)
    assert history.left_out == []  # trust updates are not "unusable" entries
    seen = [(t.node, t.sent, t.member, t.serial) for t in history.trust_updates]
    assert seen == [("KR", True, "KR", 1), ("US", False, "KR", 1), ("JP", False, "KR", 1)]
    granted = history.trust_updates[0].granted
    assert len(granted) == 1 and granted[0].startswith("KR-alert-")
    assert "KR update 1 sent: granted KR-alert-" in history.to_text()
    assert history.to_json()["trust_updates"][1]["node"] == "US"
    assert "Trust updates" in render_html(history)


def test_across_logs_a_received_update_must_have_been_sent(tmp_path: Path) -> None:
    bundles, trust = exchange(tmp_path)

    def without_updates(cc: Country) -> Bundle:
        b = bundles[cc]
        drop = set(trust_update_indexes(b))
        return dataclasses.replace(b, entries=[e for i, e in enumerate(b.entries) if i not in drop])

    # KR's log lost its own update: US and JP hold it as received.
    report = verify_loaded([without_updates("KR"), bundles["US"], bundles["JP"]], trust=trust, workers=1)
    flagged = {(f.node, f.index) for f in report.findings if f.kind == "received_not_sent"}
    assert flagged == {
        ("US", trust_update_indexes(bundles["US"])[0]),
        ("JP", trust_update_indexes(bundles["JP"])[0]),
    }
    # US's log lacks it: only information at KR (updates have no receipt; it may be in flight).
    report = verify_loaded([bundles["KR"], without_updates("US"), bundles["JP"]], trust=trust, workers=1)
    undelivered = [f for f in report.findings if f.kind == "undelivered" and "trust update" in f.detail]
    assert [(f.node, f.severity) for f in undelivered] == [("KR", "info")] and "US's log" in undelivered[
        0
    ].detail
