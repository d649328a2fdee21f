"""A peer's node id, from its verified TLS certificate and nothing else.

SPEC section 2: each country is its own root of trust and the peer's node id
comes from its verified certificate, never from message content. TLS has
already checked that the chain ends at one of the CAs this node trusts; this
module then binds the certificate to exactly one federation member, so that a
certificate issued by the JP CA that claims to be US is refused even though
the JP CA is trusted for JP.

A node certificate names its node in exactly one URI SAN, `urn:ewx:node:<CC>`,
and carries the DNS SAN `<cc>.node.ewx`, which clients use as the TLS target
name override (the certificate is not bound to a host address).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from node.clock import iso
from node.errors import CertificateRevoked, ConfigError, UnauthenticatedPeer, UsageError
from node.ids import COUNTRIES, Country, as_country
from node.trust._trust import Trust

NODE_URI_PREFIX: Final = "urn:ewx:node:"
"""URI SAN prefix that carries a node's identity."""

NODE_DNS_SUFFIX: Final = ".node.ewx"
"""DNS SAN suffix of node certificates (`kr.node.ewx`)."""

_EWX_URN_PREFIX: Final = "urn:ewx:"
_MAX_NAME_IN_MESSAGE: Final = 160
_USAGE_NAMES: Final = {
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
}


def node_uri(country: Country) -> str:
    """The URI SAN that names `country`'s node, e.g. `urn:ewx:node:KR`."""
    return f"{NODE_URI_PREFIX}{country}"


def node_dns_name(country: Country) -> str:
    """The DNS SAN of `country`'s node, e.g. `kr.node.ewx`; the TLS target name."""
    return f"{country.lower()}{NODE_DNS_SUFFIX}"


def log_origin(country: Country) -> str:
    """The origin line of a node's checkpoints, and its log key's note name.

    Fixed per country rather than configured, so that witnesses and auditors
    know which log a checkpoint claims to be without trusting the checkpoint.
    """
    return f"ewx.{country.lower()}.node/log"


def witness_name(country: Country) -> str:
    """The note name of a node's witness key in its cosignatures."""
    return f"ewx.{country.lower()}.node/witness"


def _short(text: str) -> str:
    """Bound names echoed into messages: they come from a peer's certificate."""
    if len(text) <= _MAX_NAME_IN_MESSAGE:
        return text
    return text[:_MAX_NAME_IN_MESSAGE] + "..."


def _claimed_country(certificate: x509.Certificate) -> Country:
    """The country named by the certificate's single EWX URI SAN."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise UnauthenticatedPeer("peer certificate has no subjectAltName extension") from None
    # Case-insensitive match on "urn:ewx:" so that a second identity spelled
    # in another case cannot hide beside the canonical one (URN schemes and
    # namespace ids compare case-insensitively).
    claims = [
        uri
        for uri in names.get_values_for_type(x509.UniformResourceIdentifier)
        if uri.lower().startswith(_EWX_URN_PREFIX)
    ]
    if len(claims) != 1:
        raise UnauthenticatedPeer(
            f"peer certificate must carry exactly one {NODE_URI_PREFIX}<CC> URI SAN, found {len(claims)}"
        )
    (claim,) = claims
    if not claim.startswith(NODE_URI_PREFIX):
        raise UnauthenticatedPeer(f"peer certificate URI SAN {_short(claim)!r} is not a node identity")
    code = claim.removeprefix(NODE_URI_PREFIX)
    try:
        return as_country(code)
    except ValueError:
        raise UnauthenticatedPeer(
            f"peer certificate names unknown node {_short(code)!r}: expected one of {', '.join(COUNTRIES)}"
        ) from None


def _issuing_ca(certificate: x509.Certificate, *, country: Country, trust: Trust) -> x509.Certificate:
    """Step (4): the certificate is issued directly by `country`'s own CA.

    Not merely by some CA this node trusts: that is what stops the JP CA from
    vouching for "US".
    """
    try:
        ca = trust.ca_certificate(country)
    except ConfigError:
        raise UnauthenticatedPeer(
            f"peer certificate names {country}, which has no CA in federation {trust.federation}"
        ) from None
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        raise UnauthenticatedPeer(
            f"peer certificate claiming {country} is not issued by the {country} national CA "
            f"(issuer: {_short(certificate.issuer.rfc4514_string())})"
        ) from None
    return ca


def _check_validity(
    certificate: x509.Certificate, *, ca: x509.Certificate, country: Country, at: datetime
) -> None:
    """Step (5): the certificate and its CA are both valid at `at`."""
    if not certificate.not_valid_before_utc <= at <= certificate.not_valid_after_utc:
        raise UnauthenticatedPeer(
            f"peer certificate of {country} is not valid at {at.isoformat()} "
            f"(valid {certificate.not_valid_before_utc.isoformat()} to "
            f"{certificate.not_valid_after_utc.isoformat()})"
        )
    if not ca.not_valid_before_utc <= at <= ca.not_valid_after_utc:
        raise UnauthenticatedPeer(f"the {country} national CA certificate is not valid at {at.isoformat()}")


def _check_leaf_usage(
    certificate: x509.Certificate, *, country: Country, usage: x509.ObjectIdentifier
) -> None:
    """Step (6): a leaf certificate whose extended key usage allows `usage`."""
    extensions = certificate.extensions
    try:
        is_ca = extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False  # RFC 5280: absent BasicConstraints means not a CA.
    if is_ca:
        raise UnauthenticatedPeer(f"peer certificate of {country} is a CA certificate")
    try:
        usages = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise UnauthenticatedPeer(f"peer certificate of {country} has no extended key usage") from None
    if usage not in usages:
        raise UnauthenticatedPeer(
            f"peer certificate of {country} lacks the {_USAGE_NAMES.get(usage, usage.dotted_string)} "
            "extended key usage"
        )


def node_id_from_certificate(
    cert_pem: bytes,
    *,
    trust: Trust,
    allowed: Collection[Country],
    at: datetime,
    usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.CLIENT_AUTH,
) -> Country:
    """The federation member a peer certificate authenticates, or UnauthenticatedPeer.

    Checks, in order: (1) `cert_pem` is exactly one PEM certificate; (2) it
    names one node in a `urn:ewx:node:<CC>` URI SAN; (3) CC is in `allowed`
    (an empty collection denies everyone); (4) CC is a member of `trust` and
    the certificate is directly issued by CC's national CA; (5) the
    certificate and that CA are within their validity at `at`; (6) it is not
    a CA and its extended key usage includes `usage` (clientAuth by default,
    for the server side; a client checking a server passes serverAuth); (7)
    CC's trust updates have not revoked it at `at` (CertificateRevoked).
    Raises ValueError if `at` is naive (a caller's bug, not the peer's).
    """
    if at.utcoffset() is None:
        raise ValueError("node_id_from_certificate needs an aware datetime (UTC)")

    # (1) One certificate: gRPC's auth context gives the peer's leaf alone.
    try:
        certificates = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise UnauthenticatedPeer("peer certificate is not a PEM certificate") from None
    if len(certificates) != 1:
        raise UnauthenticatedPeer(f"expected exactly one peer certificate, got {len(certificates)}")
    (certificate,) = certificates

    try:
        # (2) The claimed identity: only a claim until (4) succeeds.
        country = _claimed_country(certificate)
        # (3) Authorization before any further work.
        if country not in allowed:
            raise UnauthenticatedPeer(f"peer certificate names {country}, which is not an allowed peer here")
        ca = _issuing_ca(certificate, country=country, trust=trust)
        _check_validity(certificate, ca=ca, country=country, at=at)
        _check_leaf_usage(certificate, country=country, usage=usage)
    except ValueError:
        # cryptography parses extensions lazily: a malformed one surfaces here.
        raise UnauthenticatedPeer("peer certificate has malformed extensions") from None
    # (7) Not revoked by its own member's trust update.
    revoked = trust.certificate_revocation(country, certificate.serial_number, at=at)
    if revoked is not None:
        raise CertificateRevoked(
            f"{country}'s certificate {revoked.serial} was revoked ({revoked.reason}) from "
            f"{iso(revoked.revoked_from)}"
        )
    return country


def ca_country(ca_certificate: x509.Certificate) -> Country:
    """The country whose national CA `ca_certificate` is, from its subject's C attribute.

    Raises UsageError if it is not a CA certificate or does not name exactly
    one federation country.
    """
    subject = ca_certificate.subject.rfc4514_string()
    try:
        constraints = ca_certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        ca_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound as exc:
        raise UsageError(f"certificate {subject!r} is not a national CA certificate: {exc}") from None
    except ValueError:
        raise UsageError(f"certificate {subject!r} has malformed extensions") from None
    if not constraints.ca:
        raise UsageError(f"certificate {subject!r} is not a CA certificate (BasicConstraints ca=false)")
    codes = [str(a.value) for a in ca_certificate.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)]
    if len(codes) != 1:
        raise UsageError(
            f"CA certificate {subject!r} must name exactly one country (C=...) in its subject, "
            f"found {len(codes)}"
        )
    try:
        return as_country(codes[0])
    except ValueError:
        raise UsageError(
            f"CA certificate {subject!r} names country {codes[0]!r}, which is not a federation member "
            f"({', '.join(COUNTRIES)})"
        ) from None
