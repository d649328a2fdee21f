"""Key rotation and revocation over the federation channel, with real nodes and no restart.

KR makes new keys (`prepare_rotation`, as `ewx pki rotate` does), its national
CA endorses the update away from the node, and KR announces it: the peers
take it over UpdateTrust while running, accept what the new keys sign, keep
verifying what the old ones signed, and an auditor holding only the original
trust file verifies all three logs, the rotation included.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from grpc import aio

from gateway import rpc
from node.audit import verify_bundles
from node.config import NodeConfig
from node.crypto import PAYLOAD_ALERT
from node.ids import Country
from node.message import encode
from node.service import NodeService, export_bundle, next_key_path, prepare_rotation
from node.trust import CertificateRevocation, KeyRevocation, Trust, endorse_update
from node.wire import ewx_pb2 as pb
from tests.support.factories import alert_info, alert_payload, envelope, peer_channel, running, wait_for


def endorse(config_path: Path, request: bytes) -> bytes:
    """What `ewx pki endorse` does at the national CA, away from the node."""
    ca_dir = config_path.parent / "ca"
    ca_key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_certificate = x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes())
    return endorse_update(request, ca_key=ca_key, ca_certificate=ca_certificate)


def delivered(service: NodeService) -> bool:
    rows = service.store.outbox(None)
    return bool(rows) and all(r.delivered_at for r in rows)


def key_of(service: NodeService, origin: Country, alert_id: str) -> str:
    stored = service.store.alert(origin, alert_id)
    assert stored is not None, f"{service.me} lacks {alert_id}"
    return pb.SignedAlert.FromString(stored.envelope).key_id


def test_rotation_reaches_running_peers_and_the_audit(
    federation: dict[Country, Path], tmp_path: Path
) -> None:
    kr_path = federation["KR"]

    async def scenario() -> None:
        async with running(*federation.values()) as nodes:
            kr, us, jp = (nodes[c].service for c in ("KR", "US", "JP"))
            old = kr.publish(msg_type="ALERT", info=alert_info())
            await wait_for(lambda: delivered(kr))
            old_key = kr.signers["alert"].key_id

            request = prepare_rotation(kr.config, now=kr.clock(), purposes=["alert", "log"])
            result = kr.announce_trust_update(endorse(kr_path, request))
            new_key = result["signing_keys"]["alert"]
            assert new_key != old_key and result["serial"] == 1 and len(result["granted"]) == 2
            assert not next_key_path(kr.config, "alert").exists()  # installed

            await wait_for(lambda: us.trust.serial_of("KR") == 1 and jp.trust.serial_of("KR") == 1)
            new = kr.publish(msg_type="ALERT", info=alert_info())
            await wait_for(lambda: delivered(kr))
            for peer in (us, jp):
                assert key_of(peer, "KR", new.alert.alert_id) == new_key
                assert key_of(peer, "KR", old.alert.alert_id) == old_key
            # Checkpoints under the new log key are still witnessed by both peers.
            size = kr.store.log_size
            kr.issue_checkpoint()
            await wait_for(lambda: min(kr.store.cosigned().get(p, 0) for p in ("US", "JP")) >= size)

        # A restart finds the new keys and the amended trust on its own.
        async with running(*federation.values()) as nodes:
            kr = nodes["KR"].service
            assert kr.signers["alert"].key_id == new_key and kr.trust.serial_of("KR") == 1
            assert nodes["US"].service.trust.serial_of("KR") == 1
            again = kr.publish(msg_type="ALERT", info=alert_info())
            await wait_for(lambda: delivered(kr))
            assert key_of(nodes["JP"].service, "KR", again.alert.alert_id) == new_key

    asyncio.run(scenario())
    bundles = []
    for country, path in federation.items():
        bundles.append(tmp_path / f"{country}.ewxlog")
        export_bundle(NodeConfig.load(path), bundles[-1])
    original_trust = Trust.load(NodeConfig.load(kr_path).trust_file)
    report = verify_bundles(bundles, trust=original_trust)
    errors = [f for f in report.findings if f.severity == "error"]
    assert errors == [], errors
    kinds = [pb.LogEntry.FromString(e).kind for e in _entries(federation["US"])]
    assert pb.TRUST_UPDATE_RECEIVED in kinds


def _entries(config_path: Path) -> list[bytes]:
    service = NodeService.open(NodeConfig.load(config_path))
    try:
        return [entry for _, entry in service.store.log_entries()]
    finally:
        service.close()


async def _deliver_as(target: Path, client: Path, signed: bytes) -> tuple[grpc.StatusCode, str | None]:
    async with peer_channel(target, client) as channel:
        try:
            await channel.unary_unary(rpc.DELIVER)(
                pb.DeliverRequest(envelope=signed).SerializeToString(), timeout=5
            )
        except aio.AioRpcError as exc:
            return exc.code(), dict(exc.trailing_metadata() or ()).get("ewx-reason")
    return grpc.StatusCode.OK, None


def test_a_revoked_key_is_refused_over_the_wire_and_nothing_is_stored(
    federation: dict[Country, Path],
) -> None:
    """Hostile-input matrix row: an alert signed by a key its owner revoked."""
    kr_path = federation["KR"]
    stolen = NodeConfig.load(kr_path).load_signers()["alert"]

    async def scenario() -> None:
        async with running(*federation.values()) as nodes:
            kr, us = nodes["KR"].service, nodes["US"].service
            now = kr.clock()
            revocation = KeyRevocation(stolen.key_id, now - timedelta(minutes=1), "compromised")
            request = prepare_rotation(kr.config, now=now, purposes=["alert"], key_revocations=[revocation])
            kr.announce_trust_update(endorse(kr_path, request))
            await wait_for(lambda: us.trust.serial_of("KR") == 1)

            # Someone holding the old key forges KR's next alert to US.
            payload = alert_payload("KR", {"US": us.store.last_seq("KR", "US") + 1}, sent=datetime.now(UTC))
            forged = encode(
                pb.SignedAlert(
                    alert=payload, key_id=stolen.key_id, signature=stolen.sign(PAYLOAD_ALERT, payload)
                )
            )
            size = us.store.log_size
            with structlog.testing.capture_logs() as logs:
                code, reason = await _deliver_as(federation["US"], kr_path, forged)
            assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "key_revoked")
            events = [e for e in logs if e["event"] == "inbound_rejected"]
            assert events and events[0]["peer"] == "KR" and events[0]["reason"] == "key_revoked"
            assert events[0]["alert_id"] is None or events[0]["alert_id"].startswith("KR-")
            assert us.store.log_size == size and not us.store.evidence()

            # The new key is what KR signs with now, and that goes through.
            fresh = kr.publish(msg_type="ALERT", info=alert_info(), recipients=["US"])
            await wait_for(lambda: us.store.alert("KR", fresh.alert.alert_id) is not None)

    asyncio.run(scenario())


def test_a_peer_may_not_announce_another_members_update(federation: dict[Country, Path]) -> None:
    kr_path = federation["KR"]

    async def scenario() -> None:
        async with running(federation["KR"], federation["US"]) as nodes:
            kr, us = nodes["KR"].service, nodes["US"].service
            update = endorse(kr_path, prepare_rotation(kr.config, now=kr.clock(), purposes=["witness"]))
            # JP's certificate, KR's update: refused, and US keeps its trust.
            with structlog.testing.capture_logs() as logs:
                async with peer_channel(federation["US"], federation["JP"]) as channel:
                    try:
                        await channel.unary_unary(rpc.UPDATE_TRUST)(
                            pb.TrustUpdateRequest(update=update).SerializeToString(), timeout=5
                        )
                        raise AssertionError("JP's relay of KR's update was accepted")
                    except aio.AioRpcError as exc:
                        assert exc.code() == grpc.StatusCode.PERMISSION_DENIED
                        assert dict(exc.trailing_metadata() or ()).get("ewx-reason") == "bad_trust_update"
            assert any(
                e["event"] == "inbound_rejected" and e["peer"] == "JP" and e["alert_id"] == "KR-trust-1"
                for e in logs
            )
            assert us.trust.serial_of("KR") == 0 and us.store.trust_updates() == []

    asyncio.run(scenario())


def test_a_revoked_node_certificate_is_refused_from_its_time(federation: dict[Country, Path]) -> None:
    """Hostile-input matrix row: a peer presenting a node certificate its own country revoked."""
    kr_path = federation["KR"]
    serial = x509.load_pem_x509_certificate(
        NodeConfig.load(kr_path).tls.certificate.read_bytes()
    ).serial_number

    async def scenario() -> None:
        async with running(federation["KR"], federation["US"]) as nodes:
            kr, us = nodes["KR"].service, nodes["US"].service
            revocation = CertificateRevocation(serial, kr.clock() + timedelta(seconds=1), "compromised")
            update = endorse(
                kr_path, prepare_rotation(kr.config, now=kr.clock(), certificate_revocations=[revocation])
            )
            kr.announce_trust_update(update)
            await wait_for(lambda: us.trust.serial_of("KR") == 1)
            await asyncio.sleep(1.1)  # the revocation applies from its time on
            size = us.store.log_size
            payload = alert_payload("KR", {"US": 1}, sent=datetime.now(UTC))
            with structlog.testing.capture_logs() as logs:
                code, reason = await _deliver_as(federation["US"], kr_path, envelope(kr_path, payload))
            assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "certificate_revoked")
            events = [e for e in logs if e["event"] == "inbound_rejected"]
            # KR's own node is still running: its checkpoint and pull loops, on their
            # own connections with the same revoked certificate, may be refused in the
            # same window (a second event, seen once in a full run). Each refusal is
            # one event; every one here must be this certificate's.
            assert events and all(e["reason"] == "certificate_revoked" for e in events)
            assert all(format(serial, "x") in e["error"] for e in events)
            assert us.store.log_size == size
            # JP's certificate is not affected.
            jp_alert = envelope(federation["JP"], alert_payload("JP", {"US": 1}, sent=datetime.now(UTC)))
            assert await _deliver_as(federation["US"], federation["JP"], jp_alert) == (
                grpc.StatusCode.OK,
                None,
            )

    asyncio.run(scenario())


def test_a_rotation_is_relayed_with_the_alerts_its_new_key_signed(
    federation: dict[Country, Path], tmp_path: Path
) -> None:
    """KR rotates while JP is down, then goes down itself: JP gets KR's update and
    the alerts under the new key from US, in that order, and the audit agrees."""
    kr_path = federation["KR"]

    async def scenario() -> None:
        async with running(federation["KR"], federation["US"]) as nodes:
            kr, us = nodes["KR"].service, nodes["US"].service
            kr.announce_trust_update(
                endorse(kr_path, prepare_rotation(kr.config, now=kr.clock(), purposes=["alert"]))
            )
            new_key = kr.signers["alert"].key_id
            ids = [kr.publish(msg_type="ALERT", info=alert_info()).alert.alert_id for _ in range(2)]
            await wait_for(lambda: all(us.store.alert("KR", a) is not None for a in ids))
        async with running(federation["US"], federation["JP"]) as nodes:
            jp = nodes["JP"].service
            await wait_for(lambda: all(jp.store.alert("KR", a) is not None for a in ids), timeout=15)
            assert jp.trust.serial_of("KR") == 1 and key_of(jp, "KR", ids[0]) == new_key
            received = [pb.LogEntry.FromString(e) for _, e in jp.store.log_entries()]
            kinds = [(e.kind, pb.Country.Name(e.peer)) for e in received]
            assert kinds[:3] == [
                (pb.TRUST_UPDATE_RECEIVED, "US"),
                (pb.ALERT_RECEIVED, "US"),
                (pb.ALERT_RECEIVED, "US"),
            ]

    asyncio.run(scenario())
    bundles = []
    for country, path in federation.items():
        bundles.append(tmp_path / f"{country}.ewxlog")
        export_bundle(NodeConfig.load(path), bundles[-1])
    report = verify_bundles(bundles, trust=Trust.load(NodeConfig.load(kr_path).trust_file))
    assert [f for f in report.findings if f.severity == "error"] == []


def test_alerts_waiting_under_a_revoked_key_are_re_signed_not_stuck(
    federation: dict[Country, Path], tmp_path: Path
) -> None:
    """KR's alert waits for JP (down) while KR revokes the key that signed it. JP would
    refuse it for good and KR's sequence to JP would stop there; KR re-signs the same
    signed bytes under its new key instead, and the audit agrees with all three logs."""
    kr_path = federation["KR"]

    async def scenario() -> None:
        async with running(federation["KR"], federation["US"]) as nodes:
            kr, us = nodes["KR"].service, nodes["US"].service
            waiting = kr.publish(msg_type="ALERT", info=alert_info())
            await wait_for(lambda: us.store.alert("KR", waiting.alert.alert_id) is not None)
            old_key = kr.signers["alert"].key_id
            now = kr.clock()
            revocation = KeyRevocation(old_key, now + timedelta(seconds=1), "compromised")
            request = prepare_rotation(kr.config, now=now, purposes=["alert"], key_revocations=[revocation])
            kr.announce_trust_update(endorse(kr_path, request))
            await wait_for(lambda: us.trust.serial_of("KR") == 1)
            await asyncio.sleep(1.1)  # the old key is revoked from here on
        with structlog.testing.capture_logs() as logs:
            async with running(*federation.values()) as nodes:
                kr, jp = nodes["KR"].service, nodes["JP"].service
                await wait_for(lambda: jp.store.alert("KR", waiting.alert.alert_id) is not None, timeout=15)
                await wait_for(lambda: all(r.delivered_at for r in kr.store.outbox("JP")))
                assert key_of(jp, "KR", waiting.alert.alert_id) == kr.signers["alert"].key_id != old_key
                held = jp.store.alert("KR", waiting.alert.alert_id)
                assert held is not None and held.digest == waiting.digest  # the same signed bytes
        assert any(e["event"] == "alert_re_signed" and e["reason"] == "revoked" for e in logs)

    asyncio.run(scenario())
    bundles = []
    for country, path in federation.items():
        bundles.append(tmp_path / f"{country}.ewxlog")
        export_bundle(NodeConfig.load(path), bundles[-1])
    report = verify_bundles(bundles, trust=Trust.load(NodeConfig.load(kr_path).trust_file))
    assert [f for f in report.findings if f.severity == "error"] == []
