"""Trust updates (node/trust/_updates.py): key rotation and revocation, vouched by the member alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.config import NodeConfig
from node.crypto import PAYLOAD_TRUST_UPDATE, Signer, key_id_for, pae
from node.errors import ConfigError, KeyNotValid, KeyRevoked, TrustUpdateOutOfOrder, TrustUpdateRejected
from node.ids import Country
from node.pki import init_federation
from node.trust import (
    CertificateRevocation,
    Grant,
    KeyRevocation,
    Trust,
    build_update,
    endorse_update,
    peek,
    replay,
    sign_update,
    verify_update,
)
from node.wire import ewx_pb2 as pb

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=1)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rotation") / "fed"
    init_federation(path, now=NOW)
    return path


@pytest.fixture(scope="module")
def trust(root: Path) -> Trust:
    return Trust.load(root / "federation.json")


def ca_of(root: Path, country: Country) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = serialization.load_pem_private_key((root / country / "ca" / "ca.key").read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key, x509.load_pem_x509_certificate((root / country / "ca" / "ca.pem").read_bytes())


def signer_of(root: Path, country: Country) -> Signer:
    return NodeConfig.load(root / country / "node.toml").load_signers()["alert"]


def endorsed(root: Path, update: bytes, country: Country = "KR", *, signer: Signer | None = None) -> bytes:
    ca_key, ca_certificate = ca_of(root, country)
    return endorse_update(
        sign_update(update, signer or signer_of(root, country)), ca_key=ca_key, ca_certificate=ca_certificate
    )


def rotation(trust: Trust, *, member: Country = "KR", issued_at: datetime = NOW, **changes: object) -> bytes:
    new_key = Ed25519PrivateKey.generate()
    grants = changes.pop("grants", [Grant("alert", new_key.public_key(), NOW, NOW + timedelta(days=365))])
    return build_update(trust=trust, member=member, issued_at=issued_at, grants=grants, **changes)  # type: ignore[arg-type]


# ------------------------------------------------------------ the happy path
def test_an_endorsed_rotation_grants_the_new_key_and_keeps_the_old(root: Path, trust: Trust) -> None:
    new_key = Ed25519PrivateKey.generate()
    grant = Grant("alert", new_key.public_key(), NOW, NOW + timedelta(days=365))
    envelope = endorsed(root, build_update(trust=trust, member="KR", issued_at=NOW, grants=[grant]))
    verified = verify_update(envelope, trust=trust, at=NOW, peer="KR")
    new_id = key_id_for("KR", "alert", new_key.public_key())
    assert verified.member == "KR" and verified.serial == 1 and verified.grants == (new_id,)
    amended = verified.trust
    assert amended.serial_of("KR") == 1 and amended.serial_of("US") == 0
    assert amended.resolve_key(new_id, purpose="alert", at=LATER).owner == "KR"
    old_id = signer_of(root, "KR").key_id
    assert amended.resolve_key(old_id, purpose="alert", at=LATER).key_id == old_id
    # The original is untouched: trust is a value.
    assert trust.key(new_id) is None and trust.serial_of("KR") == 0
    assert peek(envelope) == ("KR", 1)


def test_a_revocation_applies_from_its_time_and_survives_the_file_round_trip(
    root: Path, trust: Trust
) -> None:
    old_id = signer_of(root, "US").key_id
    update = build_update(
        trust=trust,
        member="US",
        issued_at=NOW,
        key_revocations=[KeyRevocation(old_id, LATER, "compromised")],
        certificate_revocations=[CertificateRevocation(0xABCDEF, LATER, "superseded")],
    )
    amended = verify_update(endorsed(root, update, "US"), trust=trust, at=NOW).trust
    assert amended.resolve_key(old_id, purpose="alert", at=LATER - timedelta(seconds=1))
    with pytest.raises(KeyRevoked, match="revoked"):
        amended.resolve_key(old_id, purpose="alert", at=LATER)
    assert isinstance(KeyRevoked("x"), KeyNotValid)  # the same inbound step, a finer reason
    assert amended.certificate_revocation("US", 0xABCDEF, at=NOW) is None
    revoked = amended.certificate_revocation("US", 0xABCDEF, at=LATER)
    assert revoked is not None and revoked.reason == "superseded"
    assert amended.certificate_revocation("KR", 0xABCDEF, at=LATER) is None
    reread = Trust.parse(amended.to_json())
    with pytest.raises(KeyRevoked):
        reread.resolve_key(old_id, purpose="alert", at=LATER)
    assert reread.certificate_revocation("US", 0xABCDEF, at=LATER) is not None


def test_a_revocation_can_be_brought_forward_but_never_taken_back(root: Path, trust: Trust) -> None:
    key_id = signer_of(root, "KR").key_id
    first = verify_update(
        endorsed(
            root,
            build_update(
                trust=trust,
                member="KR",
                issued_at=NOW,
                key_revocations=[KeyRevocation(key_id, NOW + timedelta(days=2), "superseded")],
            ),
        ),
        trust=trust,
        at=NOW,
    ).trust
    later = build_update(
        trust=first,
        member="KR",
        issued_at=NOW,
        key_revocations=[KeyRevocation(key_id, NOW + timedelta(days=30), "superseded")],
    )
    kept = verify_update(endorsed(root, later), trust=first, at=NOW).trust
    assert kept.key(key_id).revoked_from == NOW + timedelta(days=2)  # type: ignore[union-attr]
    earlier = build_update(
        trust=first, member="KR", issued_at=NOW, key_revocations=[KeyRevocation(key_id, NOW, "compromised")]
    )
    moved = verify_update(endorsed(root, earlier), trust=first, at=NOW).trust
    entry = moved.key(key_id)
    assert entry is not None and entry.revoked_from == NOW and entry.revocation_reason == "compromised"


def test_a_chain_replays_to_the_same_trust(root: Path, trust: Trust) -> None:
    first = endorsed(root, rotation(trust))
    after_first = verify_update(first, trust=trust, at=NOW).trust
    second = endorsed(root, rotation(after_first, issued_at=LATER))
    after_second = verify_update(second, trust=after_first, at=LATER).trust
    replayed, refused = replay(trust, [first, second])
    assert refused == []
    assert replayed.to_json() == after_second.to_json() and replayed.serial_of("KR") == 2


# ------------------------------------------------------------ refusals
def test_the_national_ca_must_endorse(root: Path, trust: Trust) -> None:
    node_only = sign_update(rotation(trust), signer_of(root, "KR"))
    with pytest.raises(TrustUpdateRejected, match="national CA"):
        verify_update(node_only, trust=trust, at=NOW)
    # Another country's CA signature does not count (endorse_update refuses to make one).
    us_key, _ = ca_of(root, "US")
    forged = pb.SignedTrustUpdate.FromString(node_only)
    forged.ca_signature = us_key.sign(pae(PAYLOAD_TRUST_UPDATE, forged.update), ec.ECDSA(hashes.SHA256()))
    with pytest.raises(TrustUpdateRejected, match="national CA"):
        verify_update(forged.SerializeToString(), trust=trust, at=NOW)
    _, us_certificate = ca_of(root, "US")
    with pytest.raises(ConfigError, match="only for its own country"):
        endorse_update(node_only, ca_key=us_key, ca_certificate=us_certificate)
    _, kr_certificate = ca_of(root, "KR")
    with pytest.raises(ConfigError, match="does not belong"):
        endorse_update(node_only, ca_key=us_key, ca_certificate=kr_certificate)


def test_the_member_must_sign_with_its_own_current_alert_key(root: Path, trust: Trust) -> None:
    # The US node's key cannot sign KR's update, even with KR's CA endorsing it.
    with pytest.raises(TrustUpdateRejected, match="by US's national CA"):
        verify_update(endorsed(root, rotation(trust), signer=signer_of(root, "US")), trust=trust, at=NOW)
    # A log key is not an alert key.
    log_signer = NodeConfig.load(root / "KR" / "node.toml").load_signers()["log"]
    with pytest.raises(TrustUpdateRejected, match="not valid for alert"):
        verify_update(endorsed(root, rotation(trust), signer=log_signer), trust=trust, at=NOW)
    # A key revoked by an earlier update cannot sign the next one.
    kr_key = signer_of(root, "KR").key_id
    revoked = verify_update(
        endorsed(
            root,
            build_update(
                trust=trust,
                member="KR",
                issued_at=NOW,
                key_revocations=[KeyRevocation(kr_key, NOW, "compromised")],
            ),
        ),
        trust=trust,
        at=NOW,
    ).trust
    with pytest.raises(TrustUpdateRejected, match="revoked"):
        verify_update(endorsed(root, rotation(revoked)), trust=revoked, at=NOW)


def test_a_tampered_body_fails_both_signatures(root: Path, trust: Trust) -> None:
    envelope = pb.SignedTrustUpdate.FromString(endorsed(root, rotation(trust)))
    body = bytearray(envelope.update)
    body[-1] ^= 1
    envelope.update = bytes(body)
    with pytest.raises(TrustUpdateRejected, match="does not verify"):
        verify_update(envelope.SerializeToString(), trust=trust, at=NOW)


def test_only_the_member_itself_may_announce_directly(root: Path, trust: Trust) -> None:
    envelope = endorsed(root, rotation(trust))
    with pytest.raises(TrustUpdateRejected, match="only KR may"):
        verify_update(envelope, trust=trust, at=NOW, peer="JP")


def test_a_skipped_serial_names_the_one_to_resume_from(root: Path, trust: Trust) -> None:
    after_first = verify_update(endorsed(root, rotation(trust)), trust=trust, at=NOW).trust
    second = endorsed(root, rotation(after_first))
    with pytest.raises(TrustUpdateOutOfOrder) as refused:
        verify_update(second, trust=trust, at=NOW)
    assert refused.value.expected == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"issued_at": NOW + timedelta(hours=1)}, "beyond the clock skew"),
        ({"grants": []}, "changes nothing"),
        (
            {"key_revocations": [KeyRevocation("US-alert-0000000000000000", NOW, "compromised")]},
            "not one of its keys",
        ),
    ],
    ids=["issued-in-the-future", "empty", "revokes-another-members-key"],
)
def test_content_rules(root: Path, trust: Trust, change: dict[str, object], message: str) -> None:
    with pytest.raises(TrustUpdateRejected, match=message):
        verify_update(endorsed(root, rotation(trust, **change)), trust=trust, at=NOW)


def test_a_grant_cannot_reuse_a_key_or_lie_about_its_id(root: Path, trust: Trust) -> None:
    existing = NodeConfig.load(root / "KR" / "node.toml").load_signers()["witness"].private_key.public_key()
    reuse = rotation(trust, grants=[Grant("alert", existing, NOW, LATER)])
    with pytest.raises(TrustUpdateRejected, match="reuses the public key"):
        verify_update(endorsed(root, reuse), trust=trust, at=NOW)
    update = pb.TrustUpdate.FromString(rotation(trust))
    update.grants[0].key_id = "KR-alert-0000000000000000"
    with pytest.raises(TrustUpdateRejected, match="does not match"):
        verify_update(endorsed(root, update.SerializeToString(deterministic=True)), trust=trust, at=NOW)
    backwards = rotation(
        trust, grants=[Grant("alert", Ed25519PrivateKey.generate().public_key(), LATER, NOW)]
    )
    with pytest.raises(TrustUpdateRejected, match="not before"):
        verify_update(endorsed(root, backwards), trust=trust, at=NOW)


def test_a_replayed_chain_stops_at_the_first_bad_link(root: Path, trust: Trust) -> None:
    first = endorsed(root, rotation(trust))
    second = endorsed(root, rotation(verify_update(first, trust=trust, at=NOW).trust))
    replayed, refused = replay(trust, [sign_update(rotation(trust), signer_of(root, "KR")), second])
    assert replayed.serial_of("KR") == 0 and len(refused) == 2
    assert "national CA" in str(refused[0][1]) and "earlier trust update of KR" in str(refused[1][1])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=600))
def test_garbage_is_refused_with_the_documented_error_only(trust: Trust, data: bytes) -> None:
    with pytest.raises(TrustUpdateRejected):
        verify_update(data, trust=trust, at=NOW)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_any_flipped_byte_is_refused(root: Path, trust: Trust, position: int, flip: int) -> None:
    envelope = bytearray(endorsed_once(root, trust))
    envelope[position % len(envelope)] ^= flip
    with pytest.raises(TrustUpdateRejected):
        verify_update(bytes(envelope), trust=trust, at=NOW)


_ENDORSED: dict[str, bytes] = {}


def endorsed_once(root: Path, trust: Trust) -> bytes:
    """One endorsed update for the property test (ECDSA signing per example would dominate)."""
    if "kr" not in _ENDORSED:
        _ENDORSED["kr"] = endorsed(root, rotation(trust))
    return _ENDORSED["kr"]


def test_an_oversized_update_is_refused_before_parsing(trust: Trust) -> None:
    with pytest.raises(TrustUpdateRejected, match="at most"):
        verify_update(b"\x0a" * 9000, trust=trust, at=NOW)


def test_an_update_without_issued_at_is_refused(root: Path, trust: Trust) -> None:
    update = pb.TrustUpdate.FromString(rotation(trust))
    update.ClearField("issued_at")
    with pytest.raises(TrustUpdateRejected, match="issued_at: required"):
        verify_update(endorsed(root, update.SerializeToString(deterministic=True)), trust=trust, at=NOW)
