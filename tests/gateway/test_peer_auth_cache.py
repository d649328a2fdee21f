"""FederationServicer.peer_of checks every call, though it verifies a certificate's CA signature once.

The server remembers client certificates that passed node_id_from_certificate
(gateway/server.py, _KnownPeer). These tests hold it to giving the same
answer as the full check on every call: the time-dependent checks (validity,
revocation) are made again each time, and a new trust or a changed set of
allowed peers sends the certificate through the full check again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

import gateway.server as server
from gateway.server import FederationServicer
from node.errors import CertificateRevoked, UnauthenticatedPeer
from node.ids import Country
from node.pki import NODE_CERT_VALIDITY, init_federation
from node.trust import Trust, node_id_from_certificate

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


@dataclass
class _Config:
    peer_rate_per_second: float = 1000.0
    peer_burst: int = 1000
    peer_max_concurrent_calls: int = 10
    peer_max_concurrent_streams: int = 2


@dataclass
class _Service:
    """What peer_of reads of a NodeService: trust, peers and the clock."""

    trust: Trust
    peers: tuple[Country, ...] = ("KR", "JP")
    now: datetime = NOW + timedelta(days=1)
    config: _Config = field(default_factory=_Config)

    def clock(self) -> datetime:
        return self.now


class _Context:
    def __init__(self, pem: bytes) -> None:
        self._pem = pem

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"x509_pem_cert": [self._pem]}


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("peer-auth") / "fed"
    init_federation(root, now=NOW)
    return root


@pytest.fixture
def full_checks(monkeypatch: pytest.MonkeyPatch) -> list[Country]:
    """Countries returned by the real full check, one per time it ran."""
    seen: list[Country] = []
    real = node_id_from_certificate

    def counting(*args: Any, **kwargs: Any) -> Country:
        country = real(*args, **kwargs)
        seen.append(country)
        return country

    monkeypatch.setattr(server, "node_id_from_certificate", counting)
    return seen


def _servicer(fed: Path) -> tuple[FederationServicer, _Service]:
    service = _Service(trust=Trust.load(fed / "federation.json"))
    return FederationServicer(service), service  # type: ignore[arg-type]


def _kr(fed: Path) -> _Context:
    return _Context((fed / "KR" / "tls" / "node.pem").read_bytes())


def test_the_same_certificate_is_fully_checked_once(fed: Path, full_checks: list[Country]) -> None:
    servicer, _ = _servicer(fed)
    assert [servicer.peer_of(_kr(fed)) for _ in range(3)] == ["KR", "KR", "KR"]  # type: ignore[arg-type]
    assert full_checks == ["KR"]


def test_an_expired_certificate_is_refused_though_remembered(fed: Path, full_checks: list[Country]) -> None:
    servicer, service = _servicer(fed)
    assert servicer.peer_of(_kr(fed)) == "KR"  # type: ignore[arg-type]
    service.now = NOW + NODE_CERT_VALIDITY + timedelta(seconds=1)
    with pytest.raises(UnauthenticatedPeer, match="not valid at"):
        servicer.peer_of(_kr(fed))  # type: ignore[arg-type]


def test_a_revocation_in_a_new_trust_is_applied_at_once(fed: Path, full_checks: list[Country]) -> None:
    servicer, service = _servicer(fed)
    assert servicer.peer_of(_kr(fed)) == "KR"  # type: ignore[arg-type]
    serial = x509.load_pem_x509_certificate(_kr(fed)._pem).serial_number
    service.trust = service.trust.amended(
        "KR", serial=1, certificate_revocations=[(serial, NOW, "compromised")]
    )
    with pytest.raises(CertificateRevoked):
        servicer.peer_of(_kr(fed))  # type: ignore[arg-type]


def test_a_revocation_taking_effect_later_is_applied_when_it_does(
    fed: Path, full_checks: list[Country]
) -> None:
    servicer, service = _servicer(fed)
    serial = x509.load_pem_x509_certificate(_kr(fed)._pem).serial_number
    service.trust = service.trust.amended(
        "KR", serial=1, certificate_revocations=[(serial, service.now + timedelta(hours=1), "superseded")]
    )
    assert servicer.peer_of(_kr(fed)) == "KR"  # type: ignore[arg-type]
    service.now += timedelta(hours=1)
    with pytest.raises(CertificateRevoked, match="was revoked"):
        servicer.peer_of(_kr(fed))  # type: ignore[arg-type]


def test_a_peer_no_longer_allowed_is_refused(fed: Path, full_checks: list[Country]) -> None:
    servicer, service = _servicer(fed)
    assert servicer.peer_of(_kr(fed)) == "KR"  # type: ignore[arg-type]
    service.peers = ("JP",)
    with pytest.raises(UnauthenticatedPeer, match="not an allowed peer"):
        servicer.peer_of(_kr(fed))  # type: ignore[arg-type]
