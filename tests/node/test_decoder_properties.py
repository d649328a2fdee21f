"""Every decoder that takes outside bytes raises only its documented errors (issue 5, item 6).

Property tests over what a peer, a file or a local caller can hand the node,
beside those that live with their module (tests/node/crypto/test_note.py,
checks/test_witness.py parse_request, trust/test_trust.py, message/test_models.py
for the alert and receipt decoders, test_file_decoders.py for bundles and
outbox files):

| decoder | input from | documented errors |
|---|---|---|
| node.checks.verify_alert | a peer (Deliver, CatchUp), an outbox file | InboundRejected |
| node.checks.verify_receipt | a peer (Deliver's answer) | InboundRejected |
| node.checks.open_log_checkpoint | a peer's gossiped checkpoint | none: None if unverifiable |
| node.checks.add_cosignature, verify_witness_cosignature | a peer's cosignature (AddCheckpoint's answer) | NoteError |
| node.checks.witness | a peer's add-checkpoint request | WitnessRejected |
| node.trust.peek, verify_update | a peer's trust update (UpdateTrust) | TrustUpdateRejected |
| node.trust.node_id_from_certificate | a peer's TLS client certificate | UnauthenticatedPeer |
| node.audit.read_bundle | an exported bundle (mutated real ones here) | BundleError |
| node.message.read_transfer | an imported outbox file (mutated real ones here) | TransferError |
| node.config.NodeConfig.load | node.toml | ConfigError |
| node.audit.parse_proof, check_proof | a proof file | ProofError |
| node.operator.OperatorServer (one JSON line) | the operator socket | none: a reply, `internal` only as a bare correlation id |

Example counts are kept small: the whole module runs in a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node import limits
from node.audit import _bundle as bundle
from node.audit import check_proof, parse_proof, prove
from node.checks import (
    WitnessRejected,
    WitnessState,
    add_cosignature,
    build_request,
    open_log_checkpoint,
    verify_alert,
    verify_receipt,
    verify_witness_cosignature,
    witness,
)
from node.config import NodeConfig
from node.crypto import (
    PAYLOAD_ALERT,
    PAYLOAD_RECEIPT,
    Checkpoint,
    Signer,
    consistency_proof,
    leaf_hash,
    root_from_leaf_hashes,
    sign_checkpoint,
)
from node.errors import (
    ConfigError,
    InboundRejected,
    NoteError,
    ProofError,
    TrustUpdateRejected,
    UnauthenticatedPeer,
)
from node.ids import Country
from node.message import Receipt, encode, receipt_to_bytes
from node.message import _transfer as transfer
from node.operator import OperatorServer
from node.service import NodeService
from node.trust import (
    Grant,
    Trust,
    build_update,
    endorse_update,
    log_origin,
    node_id_from_certificate,
    peek,
    sign_update,
    verify_update,
)
from node.wire import ewx_pb2 as pb
from tests.support.factories import SigningFederation, alert_info, alert_payload, signing_federation

GOLDENS = Path(__file__).resolve().parents[1] / "goldens"
FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


Fed = SigningFederation


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Fed:
    return signing_federation(tmp_path_factory.mktemp("decoders") / "fed")


NOW = datetime.now(UTC).replace(microsecond=0)
"""One instant for every valid sample: hypothesis needs the same input for the same draws."""


def _alert(deliveries: dict[Country, int]) -> bytes:
    return alert_payload("KR", deliveries, sent=NOW, alert_id="KR-SAMPLE-1")


def mutations(data: bytes) -> st.SearchStrategy[bytes]:
    """`data` with a few bytes flipped, inserted, deleted, or cut short: close to valid, so deep."""

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        out = bytearray(data)
        for _ in range(draw(st.integers(min_value=1, max_value=4))):
            kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
            at = draw(st.integers(min_value=0, max_value=max(0, len(out) - 1)))
            if kind == "flip" and out:
                out[at] ^= draw(st.integers(min_value=1, max_value=255))
            elif kind == "insert":
                out[at:at] = draw(st.binary(min_size=1, max_size=8))
            elif kind == "delete" and out:
                del out[at : at + draw(st.integers(min_value=1, max_value=8))]
            elif kind == "truncate":
                del out[at:]
        return bytes(out)

    return mutate()


def text_mutations(text: str) -> st.SearchStrategy[str]:
    return mutations(text.encode()).map(lambda b: b.decode("utf-8", errors="replace"))


def _signed_alert(signer: Signer, payload: bytes) -> bytes:
    return encode(
        pb.SignedAlert(alert=payload, key_id=signer.key_id, signature=signer.sign(PAYLOAD_ALERT, payload))
    )


def test_the_samples_mutated_here_are_valid(fed: Fed, golden_proof: tuple[str, Trust]) -> None:
    """Mutations start from valid input, so they reach the checks behind the parsers."""
    now = datetime.now(UTC)
    envelope = _signed_alert(fed.signers["KR"]["alert"], _alert({"US": 1, "JP": 1}))
    assert verify_alert(envelope, trust=fed.trust, me="US", peer="KR", direct=True, now=now).alert.alert_id
    body = _receipt(fed)
    signer = fed.signers["US"]["alert"]
    signed = pb.SignedReceipt(
        receipt=body, key_id=signer.key_id, signature=signer.sign(PAYLOAD_RECEIPT, body)
    )
    assert verify_receipt(encode(signed), trust=fed.trust, receiver="US", origin="KR", now=now)
    assert open_log_checkpoint(_kr_note(fed), node="KR", trust=fed.trust) is not None
    pem = (fed.root / "KR" / "tls" / "node.pem").read_bytes()
    assert node_id_from_certificate(pem, trust=fed.trust, allowed=("KR", "JP"), at=now) == "KR"
    assert bundle.read_bundle(GOLDENS / "intact" / "KR.ewxlog").entries
    text, trust = golden_proof
    assert check_proof(text, trust=trust).alert_id


# ---------------------------------------------------------------- envelopes and receipts
def _verify(fed: Fed, envelope: bytes, *, direct: bool = True) -> None:
    with contextlib.suppress(InboundRejected):
        verify_alert(envelope, trust=fed.trust, me="US", peer="KR", direct=direct, now=datetime.now(UTC))


@FEW
@given(data=st.binary(max_size=600), direct=st.booleans())
def test_arbitrary_envelopes_raise_only_inbound_rejections(fed: Fed, data: bytes, direct: bool) -> None:
    _verify(fed, data, direct=direct)


@FEW
@given(data=st.data())
def test_validly_signed_mutated_alerts_raise_only_inbound_rejections(fed: Fed, data: st.DataObject) -> None:
    # re-signed after the mutation, so every one passes the signature and meets the schema
    payload = data.draw(mutations(_alert({"US": 1, "JP": 1})))
    _verify(fed, _signed_alert(fed.signers["KR"]["alert"], payload))


@FEW
@given(data=st.data())
def test_mutated_envelopes_raise_only_inbound_rejections(fed: Fed, data: st.DataObject) -> None:
    envelope = _signed_alert(fed.signers["KR"]["alert"], _alert({"US": 1}))
    _verify(fed, data.draw(mutations(envelope)))


def _receipt(fed: Fed) -> bytes:
    return receipt_to_bytes(
        Receipt(
            schema_version=limits.SCHEMA_VERSION,
            receiver="US",
            origin="KR",
            alert_id="KR-1",
            seq=1,
            alert_digest=bytes(32),
            log_index=0,
            received_at=NOW,
        )
    )


def _verify_receipt(fed: Fed, envelope: bytes) -> None:
    with contextlib.suppress(InboundRejected):
        verify_receipt(envelope, trust=fed.trust, receiver="US", origin="KR", now=datetime.now(UTC))


@FEW
@given(data=st.binary(max_size=300))
def test_arbitrary_receipts_raise_only_inbound_rejections(fed: Fed, data: bytes) -> None:
    _verify_receipt(fed, data)


@FEW
@given(data=st.data())
def test_validly_signed_mutated_receipts_raise_only_inbound_rejections(fed: Fed, data: st.DataObject) -> None:
    signer = fed.signers["US"]["alert"]
    body = data.draw(mutations(_receipt(fed)))
    signed = pb.SignedReceipt(
        receipt=body, key_id=signer.key_id, signature=signer.sign(PAYLOAD_RECEIPT, body)
    )
    _verify_receipt(fed, encode(signed))


# ---------------------------------------------------------------- checkpoints, cosignatures, witness requests
def _kr_note(fed: Fed, size: int = 3) -> str:
    hashes = [leaf_hash(bytes([i])) for i in range(size)]
    checkpoint = Checkpoint(origin=log_origin("KR"), size=size, root_hash=root_from_leaf_hashes(hashes))
    return sign_checkpoint(
        checkpoint, name=checkpoint.origin, private_key=fed.signers["KR"]["log"].private_key
    )


@FEW
@given(data=st.data())
def test_gossiped_checkpoints_never_raise(fed: Fed, data: st.DataObject) -> None:
    text = data.draw(st.one_of(st.text(max_size=300), text_mutations(_kr_note(fed))))
    opened = open_log_checkpoint(text, node="KR", trust=fed.trust)
    assert opened is None or opened[0].origin == log_origin("KR")


@FEW
@given(data=st.data())
def test_cosignature_lines_raise_only_note_errors(fed: Fed, data: st.DataObject) -> None:
    note = _kr_note(fed)
    good = witness(
        build_request(old_size=0, proof=[], signed_checkpoint=note),
        me="US",
        log_node="KR",
        state=None,
        trust=fed.trust,
        signer=fed.signers["US"]["witness"],
        now=int(NOW.timestamp()),
    )
    line = data.draw(st.one_of(st.text(max_size=200), text_mutations(good.cosignature)))
    with contextlib.suppress(NoteError):
        verify_witness_cosignature(line, witness_node="US", trust=fed.trust, checkpoint=good.checkpoint)
        add_cosignature(note, line)


@FEW
@given(data=st.data(), with_state=st.booleans())
def test_witness_requests_raise_only_witness_rejections(
    fed: Fed, data: st.DataObject, with_state: bool
) -> None:
    hashes = [leaf_hash(bytes([i])) for i in range(5)]
    checkpoint = Checkpoint(origin=log_origin("KR"), size=5, root_hash=root_from_leaf_hashes(hashes))
    note = sign_checkpoint(
        checkpoint, name=checkpoint.origin, private_key=fed.signers["KR"]["log"].private_key
    )
    honest = build_request(old_size=2, proof=consistency_proof(2, hashes), signed_checkpoint=note)
    state = WitnessState(origin=log_origin("KR"), size=2, root_hash=root_from_leaf_hashes(hashes[:2]))
    body = data.draw(st.one_of(st.text(max_size=300), text_mutations(honest)))
    with contextlib.suppress(WitnessRejected):
        witness(
            body,
            me="US",
            log_node="KR",
            state=state if with_state else None,
            trust=fed.trust,
            signer=fed.signers["US"]["witness"],
            now=int(datetime.now(UTC).timestamp()),
        )


# ---------------------------------------------------------------- trust updates
@pytest.fixture(scope="module")
def kr_update(fed: Fed) -> bytes:
    """A valid trust update of KR's, endorsed by its CA (made once: ECDSA signatures vary)."""
    ca_dir = fed.root / "KR" / "ca"
    ca_key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    now = NOW
    new_key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))  # a new key, never listed before
    update = build_update(
        trust=fed.trust,
        member="KR",
        issued_at=now,
        grants=[
            Grant(
                purpose="witness",
                public_key=new_key.public_key(),
                not_before=now,
                not_after=now + timedelta(days=9),
            )
        ],
    )
    return endorse_update(
        sign_update(update, fed.signers["KR"]["alert"]),
        ca_key=ca_key,
        ca_certificate=x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes()),
    )


@FEW
@given(data=st.data())
def test_trust_updates_raise_only_trust_update_rejections(
    fed: Fed, kr_update: bytes, data: st.DataObject
) -> None:
    assert verify_update(kr_update, trust=fed.trust, at=NOW, peer="KR").serial == 1  # the sample is valid
    envelope = data.draw(st.one_of(st.binary(max_size=400), mutations(kr_update)))
    for check in (
        lambda: peek(envelope),
        lambda: verify_update(envelope, trust=fed.trust, at=datetime.now(UTC), peer="KR"),
    ):
        with contextlib.suppress(TrustUpdateRejected):
            check()


# ---------------------------------------------------------------- peer certificates
@FEW
@given(data=st.data())
def test_peer_certificates_raise_only_unauthenticated_peer(fed: Fed, data: st.DataObject) -> None:
    pem = (fed.root / "KR" / "tls" / "node.pem").read_bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    mutated_der = data.draw(mutations(der))
    candidate = data.draw(
        st.one_of(
            st.binary(max_size=300),
            text_mutations(pem.decode()).map(str.encode),
            st.just(_pem(mutated_der)),
        )
    )
    with contextlib.suppress(UnauthenticatedPeer):
        node_id_from_certificate(candidate, trust=fed.trust, allowed=("KR", "JP"), at=datetime.now(UTC))


def _pem(der: bytes) -> bytes:
    import base64

    body = base64.encodebytes(der).decode().replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return ("-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n").encode()


# ---------------------------------------------------------------- exported bundles and outbox files
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_real_bundles_raise_only_bundle_errors(tmp_path: Path, data: st.DataObject) -> None:
    path = tmp_path / "mutated.ewxlog"
    path.write_bytes(data.draw(mutations((GOLDENS / "intact" / "KR.ewxlog").read_bytes())))
    with contextlib.suppress(bundle.BundleError):
        bundle.read_bundle(path)


@pytest.fixture(scope="module")
def outbox_file(fed: Fed, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real outbox file of two of KR's alerts for US (made once: it records its export time)."""
    path = tmp_path_factory.mktemp("outbox") / "kr-to-us.ewxoutbox"
    envelopes = [_signed_alert(fed.signers["KR"]["alert"], _alert({"US": i})) for i in (1, 2)]
    transfer.write_transfer(path, origin="KR", recipient="US", envelopes=envelopes)
    assert len(transfer.read_transfer(path).envelopes) == 2  # the sample is valid
    return path.read_bytes()


@FEW
@given(data=st.data())
def test_mutated_real_outbox_files_raise_only_transfer_errors(
    outbox_file: bytes, tmp_path: Path, data: st.DataObject
) -> None:
    path = tmp_path / "mutated.ewxoutbox"
    path.write_bytes(data.draw(mutations(outbox_file)))
    with contextlib.suppress(transfer.TransferError):
        transfer.read_transfer(path)


# ---------------------------------------------------------------- configuration files
TOML_SCALARS = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
TOML_VALUES = st.recursive(
    TOML_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def _load(path: Path) -> None:
    with contextlib.suppress(ConfigError):
        NodeConfig.load(path)


@FEW
@given(data=st.binary(max_size=400))
def test_arbitrary_config_bytes_raise_only_config_errors(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "node.toml"
    path.write_bytes(data)
    _load(path)


@FEW
@given(document=st.dictionaries(st.text(max_size=12), TOML_VALUES, max_size=6))
def test_arbitrary_config_documents_raise_only_config_errors(
    tmp_path: Path, document: dict[str, Any]
) -> None:
    path = tmp_path / "node.toml"
    path.write_text(tomli_w.dumps(document))
    _load(path)


CONFIG_KEYS = [
    "node_id",
    "listen",
    "data_dir",
    "trust_file",
    "tls",
    "keys",
    "peers",
    "operator_socket",
    "checkpoint_interval_seconds",
    "max_clock_skew_seconds",
    "outbox_retry_max_seconds",
    "peer_rate_per_second",
    "peer_burst",
    "peer_max_concurrent_calls",
    "peer_max_concurrent_streams",
    "stream_max_seconds",
    "stream_stall_seconds",
    "catchup_page_served",
    "catchup_page_requested",
    "rpc_deadline_seconds",
]


@FEW
@given(key=st.sampled_from(CONFIG_KEYS), value=TOML_VALUES)
def test_a_config_with_one_value_replaced_raises_only_config_errors(
    fed: Fed, tmp_path: Path, key: str, value: Any
) -> None:
    document = tomllib.loads(fed.config("KR").read_text())
    document[key] = value
    path = tmp_path / "node.toml"
    path.write_text(tomli_w.dumps(document))
    _load(path)


# Limits in node.toml (node/config.py): each operational limit has bounds checked at load,
# and the federation limits are not settings at all.
OPERATIONAL_LIMITS: list[tuple[str, object, object, object]] = [
    # key, a value at a bound, just outside below, just outside above
    ("peer_max_concurrent_streams", 1, 0, 1001),
    ("stream_max_seconds", limits.MIN_DURATION_SECONDS, 0.0, limits.MAX_STREAM_SECONDS + 1),
    ("stream_stall_seconds", limits.MAX_STREAM_SECONDS, 0.05, limits.MAX_STREAM_SECONDS + 1),
    ("catchup_page_served", limits.MAX_CATCHUP_PAGE, 0, limits.MAX_CATCHUP_PAGE + 1),
    ("catchup_page_requested", 1, 0, limits.MAX_CATCHUP_PAGE + 1),
    ("rpc_deadline_seconds", limits.MAX_RPC_DEADLINE_SECONDS, 0.0, limits.MAX_RPC_DEADLINE_SECONDS + 1),
    ("peer_max_concurrent_calls", 10_000, 0, 10_001),
    ("max_clock_skew_seconds", 0, -1, 86401),
]


def _with(fed: Fed, tmp_path: Path, **values: object) -> Path:
    document = tomllib.loads(fed.config("KR").read_text())
    document.update(values)
    path = tmp_path / "node.toml"
    path.write_text(tomli_w.dumps(document))
    return path


def test_operational_limits_default_to_node_limits(fed: Fed) -> None:
    config = NodeConfig.load(fed.config("KR"))
    assert config.peer_max_concurrent_streams == limits.PEER_MAX_CONCURRENT_STREAMS
    assert config.stream_max_seconds == limits.STREAM_MAX_SECONDS
    assert config.stream_stall_seconds == limits.STREAM_STALL_SECONDS
    assert config.catchup_page_served == config.catchup_page_requested == limits.MAX_CATCHUP_PAGE
    assert config.rpc_deadline_seconds == limits.RPC_DEADLINE_SECONDS


@pytest.mark.parametrize(
    ("key", "bound", "below", "above"), OPERATIONAL_LIMITS, ids=[r[0] for r in OPERATIONAL_LIMITS]
)
def test_operational_limits_are_bounded_at_load(
    fed: Fed, tmp_path: Path, key: str, bound: object, below: object, above: object
) -> None:
    assert getattr(NodeConfig.load(_with(fed, tmp_path, **{key: bound})), key) == bound
    for value in (below, above, "10", True):
        with pytest.raises(ConfigError, match=rf"{key}:"):
            NodeConfig.load(_with(fed, tmp_path, **{key: value}))


@pytest.mark.parametrize(("key", "fixed"), sorted(limits.FEDERATION_LIMITS.items()))
def test_federation_limits_are_not_settings(fed: Fed, tmp_path: Path, key: str, fixed: int) -> None:
    for value in (fixed * 2, fixed // 2, fixed):  # neither larger, nor smaller, nor even the same
        with pytest.raises(ConfigError, match=rf"{key}: a federation limit, fixed at {fixed} for every node"):
            NodeConfig.load(_with(fed, tmp_path, **{key: value}))


def test_an_envelope_larger_than_the_spec_cannot_be_configured(fed: Fed, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_envelope_bytes: a federation limit, fixed at 8192"):
        NodeConfig.load(_with(fed, tmp_path, max_envelope_bytes=16 * 1024))


def test_more_streams_than_calls_is_refused(fed: Fed, tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match="peer_max_concurrent_streams: 8 is more than peer_max_concurrent_calls"
    ):
        NodeConfig.load(_with(fed, tmp_path, peer_max_concurrent_calls=4, peer_max_concurrent_streams=8))
    # lowering the call cap alone is fine: the default stream cap yields to it
    assert NodeConfig.load(_with(fed, tmp_path, peer_max_concurrent_calls=2)).peer_max_concurrent_calls == 2
    lowered = NodeConfig.load(_with(fed, tmp_path, peer_max_concurrent_calls=2))
    assert lowered.peer_max_concurrent_streams == 2  # it yields: never more streams than calls


# ---------------------------------------------------------------- proof files
@pytest.fixture(scope="module")
def golden_proof() -> tuple[str, Trust]:
    kr = bundle.read_bundle(GOLDENS / "intact" / "KR.ewxlog")
    first = pb.Alert.FromString(pb.LogEntry.FromString(kr.entries[0]).alert.alert).alert_id
    return prove(kr, first), Trust.load(GOLDENS / "federation.json")


@FEW
@given(data=st.data())
def test_proof_files_raise_only_proof_errors(golden_proof: tuple[str, Trust], data: st.DataObject) -> None:
    text, trust = golden_proof
    candidate = data.draw(st.one_of(st.text(max_size=400), text_mutations(text)))
    for check in (lambda: parse_proof(candidate), lambda: check_proof(candidate, trust=trust)):
        with contextlib.suppress(ProofError):
            check()


# ---------------------------------------------------------------- the operator socket
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12)),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)
OPERATIONS = st.sampled_from(["ping", "publish", "list", "status", "evidence", "show", "import", "nope"])
PUBLISH_ARGS = st.fixed_dictionaries(
    {"msg_type": st.sampled_from(["ALERT", "UPDATE", "ACK", "x"])},
    optional={
        "status": st.sampled_from(["EXERCISE", "ACTUAL", "x"]),
        "info": st.one_of(
            st.just(json.loads(json.dumps(alert_info(), default=str))),
            st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=3),
        ),
        "reason": st.one_of(st.text(max_size=8), st.none()),
        "alert_id": st.text(max_size=12),
        "reference": st.fixed_dictionaries(
            {"origin": st.sampled_from(["KR", "US", "XX"]), "alert_id": st.text(max_size=8)}
        ),
    },
)
CORRELATION_ONLY = re.compile(r"internal error, correlation id [0-9a-f]{32}")


@pytest.fixture(scope="module")
def operator(fed: Fed, tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("operator")
    shutil.copytree(fed.root, root / "fed")
    service = NodeService.open(NodeConfig.load(root / "fed" / "US" / "node.toml"))
    yield OperatorServer(service)
    service.close()


def _answer(operator: OperatorServer, line: bytes) -> dict[str, Any]:
    reply = asyncio.run(operator._dispatch(line))  # the decoder behind the socket, one line at a time
    json.dumps(reply, default=str)  # what the socket writes back
    assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool)
    if not reply["ok"]:
        assert reply["error"]["kind"] in ("usage", "refused", "internal")
        if reply["error"]["kind"] == "internal":  # never an exception's text
            assert CORRELATION_ONLY.fullmatch(reply["error"]["message"]), reply
    return reply


@FEW
@given(
    line=st.one_of(
        st.binary(max_size=200),
        JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        st.builds(lambda op, args: json.dumps({"op": op, "args": args}).encode(), OPERATIONS, JSON_VALUES),
        PUBLISH_ARGS.map(lambda args: json.dumps({"op": "publish", "args": args}).encode()),
    )
)
def test_operator_requests_always_get_a_reply(operator: OperatorServer, line: bytes) -> None:
    _answer(operator, line)


KNOWN_INTERNAL: list[dict[str, Any]] = [
    {"op": "publish", "args": {"msg_type": "ALERT", "recipients": 5}},
    {"op": "publish", "args": {"msg_type": "ALERT", "recipients": [[1]]}},
    {"op": "publish", "args": {"msg_type": "ALERT", "reference": {"origin": [1], "alert_id": "x"}}},
    {"op": "publish", "args": {"alert_id": "x"}},
]


@pytest.mark.parametrize("request_", KNOWN_INTERNAL, ids=[json.dumps(r["args"]) for r in KNOWN_INTERNAL])
def test_ill_typed_publish_arguments_are_usage_errors(
    operator: OperatorServer, request_: dict[str, Any]
) -> None:
    reply = _answer(operator, json.dumps(request_).encode())
    assert reply["error"]["kind"] == "usage", reply
