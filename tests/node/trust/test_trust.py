"""The federation trust file (node/trust/_trust.py): round trip, every defect, key lookup."""

from __future__ import annotations

import base64
import contextlib
import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.crypto import PAYLOAD_RECEIPT, key_id_for, verify_signature
from node.errors import ConfigError, KeyNotValid, UnknownKey
from node.ids import COUNTRIES
from node.pki import init_federation, load_ed25519_private_key
from node.trust import MAX_TRUST_FILE_BYTES, Trust

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
Document = dict[str, Any]


@pytest.fixture(scope="module")
def trust_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return init_federation(tmp_path_factory.mktemp("trust") / "fed", now=NOW)


@pytest.fixture(scope="module")
def trust(trust_path: Path) -> Trust:
    return Trust.load(trust_path)


@pytest.fixture(scope="module")
def document(trust_path: Path) -> Document:
    loaded: Document = json.loads(trust_path.read_bytes())
    return loaded


# ------------------------------------------------------------- round trip
def test_file_is_canonical_and_round_trips(trust_path: Path, trust: Trust) -> None:
    data = trust_path.read_bytes()
    assert trust.to_json() == data
    assert data.endswith(b"}\n")
    assert Trust.parse(data) == trust
    assert Trust.parse(trust.to_json()).to_json() == data


def test_file_format_matches_the_documented_shape(document: Document) -> None:
    assert document["format"] == "ewx-federation/1"
    assert document["federation"] == "ewx-dev"
    assert sorted(document["members"]) == sorted(COUNTRIES)
    key = document["members"]["KR"]["keys"][0]
    assert sorted(key) == ["key_id", "not_after", "not_before", "public_key", "purpose"]
    assert key["not_before"] == "2026-11-25T11:00:00Z"
    assert key["not_after"] == "2028-11-25T12:00:00Z"
    assert len(base64.b64decode(key["public_key"], validate=True)) == 32
    assert document["members"]["KR"]["ca_certificate"].startswith("-----BEGIN CERTIFICATE-----")


def test_save_is_atomic_and_loads_back(tmp_path: Path, trust: Trust) -> None:
    target = tmp_path / "federation.json"
    target.write_bytes(b"old")
    trust.save(target)
    assert Trust.load(target) == trust
    assert [p.name for p in tmp_path.iterdir()] == ["federation.json"]


def test_owner_comes_from_the_member_the_key_is_listed_under(trust: Trust) -> None:
    for country in trust.countries:
        for entry in trust.members[country].keys:
            assert entry.owner == country
            assert entry.key_id.startswith(f"{country}-{entry.purpose}-")


# ------------------------------------------------------------ malformed
def _ca_without_key_usage() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rogue CA")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _kr_key(doc: Document, index: int = 0) -> Document:
    key: Document = doc["members"]["KR"]["keys"][index]
    return key


def _node_cert_as_ca(doc: Document, trust_path: Path) -> None:
    doc["members"]["KR"]["ca_certificate"] = (trust_path.parent / "KR" / "tls" / "node.pem").read_text()


def _reuse_public_key_for_another_purpose(doc: Document) -> None:
    alert = _kr_key(doc, 0)
    raw = base64.b64decode(alert["public_key"])
    public = Ed25519PublicKey.from_public_bytes(raw)
    doc["members"]["KR"]["keys"][1] = {**alert, "purpose": "log", "key_id": key_id_for("KR", "log", public)}


def _key_from_another_member(doc: Document) -> None:
    doc["members"]["US"]["keys"].append(copy.deepcopy(_kr_key(doc)))


Mutation = Callable[[Document, Path], None]

MALFORMED: dict[str, tuple[Mutation, str]] = {
    "wrong_format": (lambda d, _: d.update(format="ewx-federation/2"), "format"),
    "unknown_top_level_key": (lambda d, _: d.update(comment="x"), "comment: unknown key"),
    "missing_members": (lambda d, _: d.pop("members"), "members: required key is missing"),
    "empty_members": (lambda d, _: d.update(members={}), "members"),
    "members_not_an_object": (lambda d, _: d.update(members=[]), "members"),
    "unknown_country": (lambda d, _: d["members"].update(CN=d["members"].pop("KR")), "unknown country 'CN'"),
    "bad_federation_name": (lambda d, _: d.update(federation="ewx dev"), "federation"),
    "ca_not_pem": (
        lambda d, _: d["members"]["KR"].update(ca_certificate="hello"),
        "members.KR.ca_certificate: not a PEM certificate",
    ),
    "ca_is_not_a_ca": (
        _node_cert_as_ca,
        "members.KR.ca_certificate: not a CA certificate",
    ),
    "ca_without_key_usage": (
        lambda d, _: d["members"]["KR"].update(ca_certificate=_ca_without_key_usage()),
        "no KeyUsage",
    ),
    "ca_two_certificates": (
        lambda d, _: d["members"]["KR"].update(
            ca_certificate=d["members"]["KR"]["ca_certificate"] + d["members"]["US"]["ca_certificate"]
        ),
        "exactly one certificate, found 2",
    ),
    "ca_shared_by_two_members": (
        lambda d, _: d["members"]["US"].update(ca_certificate=d["members"]["KR"]["ca_certificate"]),
        "share a CA key",
    ),
    "ca_not_a_string": (lambda d, _: d["members"]["KR"].update(ca_certificate=7), "ca_certificate"),
    "member_unknown_field": (lambda d, _: d["members"]["KR"].update(name="Korea"), "unknown key"),
    "keys_not_a_list": (lambda d, _: d["members"]["KR"].update(keys="none"), "members.KR.keys"),
    "public_key_not_base64": (lambda d, _: _kr_key(d).update(public_key="!!!"), "not standard base64"),
    "public_key_wrong_length": (
        lambda d, _: _kr_key(d).update(public_key=base64.b64encode(bytes(31)).decode()),
        "32 bytes, got 31",
    ),
    "key_id_mismatch": (
        lambda d, _: _kr_key(d).update(key_id=_kr_key(d)["key_id"][:-1] + "x"),
        "does not match its key",
    ),
    "key_listed_under_another_member": (
        lambda d, _: _key_from_another_member(d),
        "belongs to KR but is listed under US",
    ),
    "duplicate_key_id": (
        lambda d, _: d["members"]["KR"]["keys"].append(copy.deepcopy(_kr_key(d))),
        "duplicate key id",
    ),
    "public_key_reused_for_another_purpose": (
        lambda d, _: _reuse_public_key_for_another_purpose(d),
        "reuses the public key",
    ),
    "unknown_purpose": (lambda d, _: _kr_key(d).update(purpose="signing"), "purpose"),
    "key_unknown_field": (lambda d, _: _kr_key(d).update(comment="x"), "comment: unknown key"),
    "key_missing_field": (lambda d, _: _kr_key(d).pop("not_after"), "not_after: required key is missing"),
    "naive_timestamp": (lambda d, _: _kr_key(d).update(not_before="2026-11-25T00:00:00"), "no timezone"),
    "non_utc_timestamp": (
        lambda d, _: _kr_key(d).update(not_before="2026-11-25T09:00:00+09:00"),
        "not in UTC",
    ),
    "numeric_timestamp": (lambda d, _: _kr_key(d).update(not_before=1_700_000_000), "RFC 3339"),
    "garbage_timestamp": (lambda d, _: _kr_key(d).update(not_after="soon"), "not an RFC 3339 timestamp"),
    "validity_reversed": (
        lambda d, _: _kr_key(d).update(not_before="2030-01-01T00:00:00Z", not_after="2029-01-01T00:00:00Z"),
        "is not before not_after",
    ),
}


@pytest.mark.parametrize("defect", sorted(MALFORMED))
def test_malformed_trust_file_is_refused_naming_file_and_defect(
    tmp_path: Path, trust_path: Path, document: Document, defect: str
) -> None:
    mutate, message = MALFORMED[defect]
    doc = copy.deepcopy(document)
    mutate(doc, trust_path)
    path = tmp_path / f"{defect}.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError) as caught:
        Trust.load(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("defect", "data", "message"),
    [
        ("not_json", b"{", "Invalid JSON"),
        ("not_utf8", b"\xff\xfe", "Invalid JSON"),
        ("json_array", b"[]", "should be an object"),
        ("empty", b"", "Invalid JSON"),
        ("too_large", b" " * (MAX_TRUST_FILE_BYTES + 1), "larger than"),
    ],
)
def test_undecodable_trust_data_is_refused(defect: str, data: bytes, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        Trust.parse(data, source=f"{defect}.json")
    assert str(caught.value).startswith(f"{defect}.json: ")


def test_unreadable_trust_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(ConfigError, match=rf"trust file {path}: cannot read it"):
        Trust.load(path)
    with pytest.raises(ConfigError, match="cannot read it"):
        Trust.load(tmp_path)  # a directory


# ----------------------------------------------------------- key lookup
def test_resolve_key_valid(trust: Trust) -> None:
    (entry,) = trust.keys_of("US", "alert")
    assert trust.resolve_key(entry.key_id, purpose="alert", at=NOW) is entry
    assert trust.resolve_key(entry.key_id, purpose="alert", at=entry.not_before) is entry
    assert trust.resolve_key(entry.key_id, purpose="alert", at=entry.not_after) is entry
    assert trust.key(entry.key_id) is entry


def test_resolve_key_wrong_purpose(trust: Trust) -> None:
    (entry,) = trust.keys_of("US", "log")
    with pytest.raises(KeyNotValid, match=rf"{entry.key_id} is a log key, not valid for alert"):
        trust.resolve_key(entry.key_id, purpose="alert", at=NOW)


def test_resolve_key_expired(trust: Trust) -> None:
    (entry,) = trust.keys_of("JP", "witness")
    with pytest.raises(KeyNotValid, match="expired at 2028-11-25T12:00:00Z"):
        trust.resolve_key(entry.key_id, purpose="witness", at=entry.not_after + timedelta(seconds=1))


def test_resolve_key_not_yet_valid(trust: Trust) -> None:
    (entry,) = trust.keys_of("KR", "alert")
    with pytest.raises(KeyNotValid, match="not valid before 2026-11-25T11:00:00Z"):
        trust.resolve_key(entry.key_id, purpose="alert", at=entry.not_before - timedelta(seconds=1))


def test_resolve_key_unknown(trust: Trust) -> None:
    assert trust.key("KR-alert-0000000000000000") is None
    with pytest.raises(UnknownKey, match="KR-alert-0000000000000000"):
        trust.resolve_key("KR-alert-0000000000000000", purpose="alert", at=NOW)
    assert UnknownKey.reason == "unknown_key"


def test_resolve_key_needs_an_aware_time(trust: Trust) -> None:
    (entry,) = trust.keys_of("KR", "alert")
    with pytest.raises(ValueError, match="aware"):
        trust.resolve_key(entry.key_id, purpose="alert", at=NOW.replace(tzinfo=None))


def test_public_key_is_parsed_once_and_verifies(trust_path: Path, trust: Trust) -> None:
    (entry,) = trust.keys_of("KR", "alert")
    assert trust.public_key(entry) is trust.public_key(entry)
    private_key = load_ed25519_private_key(trust_path.parent / "KR" / "keys" / "alert.key")
    signature = private_key.sign(b"x")  # raw, to check the key itself
    trust.public_key(entry).verify(signature, b"x")
    assert not verify_signature(trust.public_key(entry), PAYLOAD_RECEIPT, b"x", signature)


def test_ca_certificate_and_bundle(trust_path: Path, trust: Trust) -> None:
    kr = (trust_path.parent / "KR" / "ca" / "ca.pem").read_bytes()
    jp = (trust_path.parent / "JP" / "ca" / "ca.pem").read_bytes()
    assert trust.ca_certificate("KR").public_bytes(serialization.Encoding.PEM) == kr
    assert trust.ca_bundle_pem(["KR", "JP"]) == kr + jp
    assert trust.ca_bundle_pem(["JP", "JP"]) == jp
    assert x509.load_pem_x509_certificates(trust.ca_bundle_pem(["US", "JP"]))[1].subject == (
        trust.ca_certificate("JP").subject
    )
    with pytest.raises(ValueError, match="empty CA bundle"):
        trust.ca_bundle_pem([])


def test_non_member_lookups(tmp_path: Path) -> None:
    two = Trust.load(init_federation(tmp_path, countries=("KR", "US"), now=NOW))
    assert two.countries == ("KR", "US")
    assert two.keys_of("JP", "alert") == ()
    with pytest.raises(ConfigError, match="JP is not a member"):
        two.ca_certificate("JP")


# ------------------------------------------------------------- fuzzing
@given(st.binary(max_size=4096))
def test_parse_arbitrary_bytes_raises_only_config_error(data: bytes) -> None:
    with contextlib.suppress(ConfigError):
        Trust.parse(data)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


@given(_JSON)
def test_parse_arbitrary_json_raises_only_config_error(value: object) -> None:
    with contextlib.suppress(ConfigError):
        Trust.parse(json.dumps(value).encode())


_PATHS = [
    ("format",),
    ("federation",),
    ("members",),
    ("members", "KR"),
    ("members", "KR", "ca_certificate"),
    ("members", "KR", "keys"),
    ("members", "KR", "keys", 0),
    ("members", "KR", "keys", 0, "key_id"),
    ("members", "KR", "keys", 0, "purpose"),
    ("members", "KR", "keys", 0, "public_key"),
    ("members", "KR", "keys", 0, "not_before"),
    ("members", "KR", "keys", 0, "not_after"),
]


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=150)
@given(path=st.sampled_from(_PATHS), value=_JSON)
def test_parse_with_one_field_replaced_raises_only_config_error(
    document: Document, path: tuple[str | int, ...], value: object
) -> None:
    doc = copy.deepcopy(document)
    parent: Any = doc
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
    with contextlib.suppress(ConfigError):
        Trust.parse(json.dumps(doc).encode())
