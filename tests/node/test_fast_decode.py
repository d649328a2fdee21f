"""The inbound fast paths accept and refuse exactly what the reference paths do.

Catch-up speed (bench/catchup.py) comes from cheaper conversions in
node/message/_convert.py and signatures
verified ahead in worker processes (node/crypto/_sigpool.py, NodeService.receive_many).
Each is compared here with the straightforward version it replaces: the same
alerts accepted with equal values, the same ones refused with the same error.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from structlog.testing import capture_logs

from node.checks import Verdict, VerifiedAlert, signature_check, verify_alert
from node.config import NodeConfig
from node.crypto import PAYLOAD_ALERT, ChunkedRunner, SignatureCheck, Signer, pool_context, verify_signatures
from node.crypto import _sigpool as sigpool
from node.errors import BadSignature, InboundRejected
from node.ids import COUNTRIES, Country
from node.message import (
    Alert,
    DecodeFailure,
    alert_from_bytes,
    alert_to_bytes,
    encode,
    from_timestamp,
    parse_canonical,
    timestamp,
)
from node.message._convert import _country, _info_fields, _name, _validate
from node.service import NodeService
from node.wire import ewx_pb2 as pb
from tests.support.factories import SigningFederation, alert_info, alert_payload, signing_federation

SOME = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SENT = datetime.now(UTC).replace(microsecond=250000)
"""One instant for every sample (hypothesis needs the same input for the same draws), within
the validity of the keys the fixture federation makes."""


# ------------------------------------------------------------------ references
def reference_timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


def reference_from_timestamp(ts: Timestamp, *, field: str) -> datetime:
    if ts.nanos % 1000:
        raise DecodeFailure(f"{field}: sub-microsecond timestamps are not used")
    try:
        return ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise DecodeFailure(f"{field}: timestamp out of range") from None


def reference_alert_from_bytes(data: bytes) -> Alert:
    """alert_from_bytes with protobuf's own conversions (Timestamp.ToDatetime, Enum.Name)."""
    msg = parse_canonical(pb.Alert, data, what="alert")

    def name(wrapper: Any, value: int) -> str:
        try:
            return str(wrapper.Name(value))
        except ValueError:
            return f"<{value}>"

    fields: dict[str, Any] = {
        "schema_version": msg.schema_version,
        "alert_id": msg.alert_id,
        "origin": _country(msg.origin, field="origin"),
        "sent": reference_from_timestamp(msg.sent, field="sent"),
        "status": name(pb.Status, msg.status),
        "msg_type": name(pb.MsgType, msg.msg_type),
        "deliveries": [
            {"recipient": _country(d.recipient, field="deliveries.recipient"), "seq": d.seq}
            for d in msg.deliveries
        ],
        "references": [
            {
                "origin": _country(r.origin, field="references.origin"),
                "alert_id": r.alert_id,
                "digest": r.digest,
            }
            for r in msg.references
        ],
    }
    if msg.reason:
        fields["reason"] = name(pb.ReasonCode, msg.reason)
    if msg.HasField("info"):
        info = msg.info
        fields["info"] = {
            "category": name(pb.Category, info.category),
            "urgency": name(pb.Urgency, info.urgency),
            "severity": name(pb.Severity, info.severity),
            "certainty": name(pb.Certainty, info.certainty),
            "headline": info.headline,
            "items": [
                {"hs_code": i.hs_code, "hs_edition": name(pb.HsEdition, i.hs_edition)} for i in info.items
            ],
            "source_countries": list(info.source_countries),
            "affected_countries": list(info.affected_countries),
            "supply_impact": name(pb.ImpactBand, info.supply_impact),
            "expected_duration_days": info.expected_duration_days,
        }
        if not info.HasField("expires"):
            raise DecodeFailure("info.expires is required")
        fields["info"]["expires"] = reference_from_timestamp(info.expires, field="info.expires")
        if info.HasField("effective"):
            fields["info"]["effective"] = reference_from_timestamp(info.effective, field="info.effective")
    if msg.HasField("response"):
        r = msg.response
        fields["response"] = {
            "measures": [name(pb.Measure, m) for m in r.measures],
            "assistance": name(pb.Assistance, r.assistance),
            "assistance_measures": [name(pb.Measure, m) for m in r.assistance_measures],
            "expected_duration_days": r.expected_duration_days,
        }
    if msg.HasField("consult"):
        c = msg.consult
        fields["consult"] = {
            "impact": name(pb.ImpactBand, c.impact),
            "cause": name(pb.Category, c.cause),
            "expected_duration_days": c.expected_duration_days,
            "sectors": [name(pb.Sector, s) for s in c.sectors],
            "measures_taken": [name(pb.Measure, m) for m in c.measures_taken],
            "assistance_wanted": [name(pb.Measure, m) for m in c.assistance_wanted],
        }
    return _validate(Alert, fields)


def outcome(decode: Callable[[bytes], Alert], data: bytes) -> Alert | str:
    try:
        return decode(data)
    except DecodeFailure as exc:
        return f"refused: {exc}"


# ------------------------------------------------------------------ headline
HEADLINE_PIECES = [
    "Export licensing for gallium",
    " ",
    ".",
    ":",
    "://",
    "/",
    "www",
    "example",
    ".com",
    ".kr",
    ".COM",
    "@",
    "+1",
    "(02)",
    " 555-1234",
    "010-1234-5678",
    "<b>",
    "{",
    "\\",
    "\t",
    "\n",
    "\x00",
    "\u200b",
    "\u00a0",
    "ſ",
    "K",
    "3.5%",
    "No. 2",
    "e.g.",
    "Ü",
    "漢字",
    "١٢٣",
]


@st.composite
def headlines(draw: st.DrawFn) -> str:
    pieces = draw(st.lists(st.sampled_from(HEADLINE_PIECES) | st.text(max_size=6), max_size=12))
    return "".join(pieces)


# ------------------------------------------------------------------ timestamps
offsets = st.builds(timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)))


@SOME
@given(moment=st.datetimes(timezones=offsets))
def test_timestamp_is_what_protobuf_computes(moment: datetime) -> None:
    try:
        expected = reference_timestamp(moment)
    except (ValueError, OverflowError) as exc:
        with pytest.raises(type(exc)):
            timestamp(moment)
        return
    assert (timestamp(moment).seconds, timestamp(moment).nanos) == (expected.seconds, expected.nanos)
    assert from_timestamp(timestamp(moment), field="t") == moment


@SOME
@given(
    seconds=st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.integers(min_value=-62135596800 - 2, max_value=-62135596800 + 2)
    | st.integers(min_value=253402300799 - 2, max_value=253402300799 + 2),
    nanos=st.integers(min_value=-(2**31), max_value=2**31 - 1)
    | st.integers(min_value=0, max_value=999_999).map(lambda us: us * 1000),
)
def test_from_timestamp_accepts_and_refuses_as_protobuf_does(seconds: int, nanos: int) -> None:
    ts = Timestamp(seconds=seconds, nanos=nanos)
    try:
        expected: datetime | str = reference_from_timestamp(ts, field="sent")
    except DecodeFailure as exc:
        expected = str(exc)
    try:
        got: datetime | str = from_timestamp(ts, field="sent")
    except DecodeFailure as exc:
        got = str(exc)
    assert got == expected


# ------------------------------------------------------------------ whole alerts
def _info(draw: st.DrawFn) -> dict[str, Any]:
    return alert_info(
        category=draw(st.sampled_from(["EXPORT_CONTROL", "LOGISTICS", "OTHER"])),
        severity=draw(st.sampled_from(["MINOR", "SEVERE", "EXTREME"])),
        headline=draw(headlines().filter(lambda h: bool(h.strip())) | st.just("Port closure at the strait")),
        items=[
            {"hs_code": code, "hs_edition": "HS2022"}
            for code in draw(
                st.lists(
                    st.sampled_from(["8112", "811292", "282590", "2805"]), min_size=1, max_size=3, unique=True
                )
            )
        ],
        source_countries=draw(st.lists(st.sampled_from(["CN", "ZZ", "AU"]), max_size=3, unique=True)),
        effective=draw(st.none() | st.just(SENT + timedelta(hours=1))),
        expires=SENT + timedelta(days=draw(st.integers(min_value=1, max_value=365)), microseconds=17),
    )


@st.composite
def alert_bytes(draw: st.DrawFn) -> bytes:
    """Canonical bytes of an alert of any type, valid unless the headline is not."""
    msg_type = draw(st.sampled_from(["ALERT", "UPDATE", "CANCEL", "ACK", "RESPONSE", "CONSULT"]))
    origin: Country = "US" if msg_type == "ACK" else "KR"
    extra: dict[str, Any] = {}
    ref = [{"origin": "KR", "alert_id": "KR-1", "digest": bytes(32)}]
    if msg_type == "UPDATE":
        extra = {"references": ref, "info": _info(draw)}
    elif msg_type == "CANCEL":
        extra = {"references": ref, "reason": "SITUATION_RESOLVED"}
    elif msg_type == "ACK":
        extra = {"references": ref, "reason": "RECEIVED"}
    elif msg_type == "RESPONSE":
        extra = {"references": ref, "response": {"measures": ["STOCKPILE_RELEASE"], "assistance": "NONE"}}
    elif msg_type == "CONSULT":
        extra = {
            "references": ref,
            "consult": {"impact": "ABOVE_60", "cause": "LOGISTICS", "sectors": ["SEMICONDUCTORS"]},
        }
    deliveries = {
        peer: draw(st.integers(min_value=1, max_value=2**40)) for peer in COUNTRIES if peer != origin
    }
    if msg_type == "ALERT":
        try:
            return alert_payload(origin, deliveries, sent=SENT, alert_id="KR-42", info=_info(draw))
        except ValidationError:
            assume(False)
    fields = {
        "schema_version": 1,
        "alert_id": f"{origin}-42",
        "origin": origin,
        "sent": SENT,
        "status": "EXERCISE",
        "msg_type": msg_type,
        "deliveries": [{"recipient": r, "seq": s} for r, s in deliveries.items()],
        **extra,
    }
    try:
        return alert_to_bytes(Alert.model_validate(fields))
    except ValidationError:
        assume(False)
        raise


def pb_mutations(data: bytes) -> st.SearchStrategy[bytes]:
    """Field-level damage a fast decoder could get wrong: times, enum numbers, texts."""

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        msg = pb.Alert.FromString(data)
        kind = draw(st.sampled_from(["sent", "expires", "effective", "enum", "headline", "country", "hs"]))
        seconds = st.integers(min_value=-(2**40), max_value=2**40) | st.sampled_from(
            [-62135596801, -62135596800, 253402300799, 253402300800]
        )
        nanos = st.sampled_from([0, 1, 999, 1000, 999_999_000, 999_999_999, 1_000_000_000, -1000])
        if kind == "sent":
            msg.sent.seconds, msg.sent.nanos = draw(seconds), draw(nanos)
        elif kind in ("expires", "effective") and msg.HasField("info"):
            target = getattr(msg.info, kind)
            target.seconds, target.nanos = draw(seconds), draw(nanos)
        elif kind == "enum":
            number = draw(st.integers(min_value=0, max_value=40))
            field = draw(st.sampled_from(["status", "msg_type", "reason"]))
            setattr(msg, field, number)
        elif kind == "headline" and msg.HasField("info"):
            msg.info.headline = draw(headlines())
        elif kind == "country":
            msg.origin = draw(st.integers(min_value=0, max_value=5))
        elif kind == "hs" and msg.HasField("info") and msg.info.items:
            msg.info.items[0].hs_code = draw(st.sampled_from(["", "12", "1234", "12345", "12345678", "١٢٣٤"]))
        return encode(msg)

    return mutate()


def byte_mutations(data: bytes) -> st.SearchStrategy[bytes]:
    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        out = bytearray(data)
        for _ in range(draw(st.integers(min_value=1, max_value=3))):
            at = draw(st.integers(min_value=0, max_value=max(0, len(out) - 1)))
            kind = draw(st.sampled_from(["flip", "insert", "delete"]))
            if kind == "flip" and out:
                out[at] ^= draw(st.integers(min_value=1, max_value=255))
            elif kind == "insert":
                out[at:at] = draw(st.binary(min_size=1, max_size=4))
            elif out:
                del out[at : at + draw(st.integers(min_value=1, max_value=4))]
        return bytes(out)

    return mutate()


@SOME
@given(data=alert_bytes())
def test_generated_alerts_decode_as_the_reference_decodes(data: bytes) -> None:
    assert outcome(alert_from_bytes, data) == outcome(reference_alert_from_bytes, data)


@SOME
@given(data=st.data())
def test_mutated_alerts_decode_or_fail_as_the_reference_does(data: st.DataObject) -> None:
    valid = data.draw(alert_bytes())
    damaged = data.draw(st.one_of(pb_mutations(valid), pb_mutations(valid), byte_mutations(valid)))
    assert outcome(alert_from_bytes, damaged) == outcome(reference_alert_from_bytes, damaged)


def test_the_enum_and_info_helpers_match_protobuf() -> None:
    """The two helpers the reference re-implements, on every number they can meet."""
    for wrapper in (pb.Status, pb.MsgType, pb.Category, pb.Measure, pb.ReasonCode):
        for number in range(-1, 64):
            expected = wrapper.Name(number) if number in wrapper.values() else f"<{number}>"
            assert _name(wrapper, number) == expected
    info = pb.Alert.FromString(alert_payload("KR", {"US": 1}, sent=SENT, alert_id="KR-7")).info
    assert _info_fields(info)["expires"] == reference_from_timestamp(info.expires, field="info.expires")


# ------------------------------------------------------------------ signatures verified ahead
Fed = SigningFederation


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Fed:
    return signing_federation(tmp_path_factory.mktemp("fastpaths") / "fed")


def _signed(signer: Signer, payload: bytes, *, key_id: str | None = None) -> bytes:
    return encode(
        pb.SignedAlert(
            alert=payload, key_id=key_id or signer.key_id, signature=signer.sign(PAYLOAD_ALERT, payload)
        )
    )


def _verified(fed: Fed, envelope: bytes, *, known: Verdict | None = None) -> VerifiedAlert | str:
    try:
        return verify_alert(envelope, trust=fed.trust, me="JP", peer="KR", direct=True, now=SENT, known=known)
    except InboundRejected as exc:
        return f"{exc.reason}: {exc}"


@SOME
@given(data=st.data())
def test_verdicts_from_the_pool_change_no_outcome(fed: Fed, data: st.DataObject) -> None:
    """verify_alert with an honest verdict from ahead gives what it gives on its own."""
    payload = data.draw(alert_bytes())
    envelope = _signed(fed.signers["KR"]["alert"], payload)
    envelope = data.draw(
        st.just(envelope)
        | byte_mutations(envelope)
        | pb_mutations(payload).map(lambda damaged: _signed(fed.signers["KR"]["alert"], damaged))
    )
    check = signature_check(envelope, trust=fed.trust)
    known = None if check is None else Verdict(check, verify_signatures([check])[0])
    assert _verified(fed, envelope, known=known) == _verified(fed, envelope)


def test_a_verdict_for_other_bytes_is_not_used(fed: Fed) -> None:
    signer = fed.signers["KR"]["alert"]
    good = _signed(signer, alert_payload("KR", {"JP": 1}, sent=SENT, alert_id="KR-1"))
    other = alert_payload("KR", {"JP": 1}, sent=SENT, alert_id="KR-2")
    forged = encode(
        pb.SignedAlert(alert=other, key_id=signer.key_id, signature=pb.SignedAlert.FromString(good).signature)
    )
    good_check = signature_check(good, trust=fed.trust)
    assert good_check is not None
    with pytest.raises(BadSignature):
        verify_alert(
            forged,
            trust=fed.trust,
            me="JP",
            peer="KR",
            direct=True,
            now=SENT,
            known=Verdict(good_check, True),
        )
    # Nor a verdict for the same bytes under another key (here US's, which did not sign them).
    us_key = fed.trust.keys_of("US", "alert")[0].public_key
    with pytest.raises(BadSignature):
        verify_alert(
            forged,
            trust=fed.trust,
            me="JP",
            peer="KR",
            direct=True,
            now=SENT,
            known=Verdict(SignatureCheck(us_key, PAYLOAD_ALERT, other, good_check.signature), True),
        )


PAGE = sigpool.INBOUND_MIN_PARALLEL + 50
"""Big enough that receive_many verifies in the pool."""


@pytest.fixture(scope="module")
def page(fed: Fed) -> list[bytes]:
    signer = fed.signers["KR"]["alert"]
    return [
        _signed(signer, alert_payload("KR", {"JP": seq}, sent=SENT, alert_id=f"KR-{seq}"))
        for seq in range(1, PAGE + 1)
    ]


@pytest.fixture
def fresh_pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[sigpool._InboundPool]:
    """A pool of this test's own, so a broken or disabled one does not outlive it."""
    pool = sigpool._InboundPool()
    monkeypatch.setattr(sigpool, "_INBOUND", pool)
    yield pool
    if pool._pool is not None:
        pool._pool.shutdown(wait=True, cancel_futures=True)


def _receive(
    fed: Fed, tmp: Path, name: str, envelopes: list[bytes], *, in_process: bool
) -> tuple[int, bytes, int]:
    config = NodeConfig.load(fed.config("JP")).model_copy(update={"data_dir": tmp / name})
    service = NodeService.open(config, clock=lambda: SENT + timedelta(seconds=1))
    try:
        if in_process:
            stored = sum(
                service.receive_many(envelopes[i : i + 50], peer="KR", direct=True).stored
                for i in range(0, len(envelopes), 50)
            )
        else:
            stored = service.receive_many(envelopes, peer="KR", direct=True).stored
        return stored, service.store.log_root(), service.store.last_seq("KR", "JP")
    finally:
        service.close()


def _bad_signature(envelope: bytes) -> bytes:
    signed = pb.SignedAlert.FromString(envelope)
    signed.signature = bytes([signed.signature[0] ^ 1]) + signed.signature[1:]
    return encode(signed)


@pytest.mark.parametrize(
    "damage",
    ["none", "bad_signature", "unknown_key", "wrong_signer", "not_canonical"],
)
def test_a_page_verified_in_the_pool_stores_what_one_verified_here_stores(
    fed: Fed,
    page: list[bytes],
    tmp_path: Path,
    fresh_pool: sigpool._InboundPool,
    damage: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One worker whatever this machine has: on one CPU the pool would otherwise
    # stay off and the comparison would be of the in-process path with itself.
    monkeypatch.setattr(fresh_pool, "workers", lambda: 1)
    envelopes = list(page)
    at = PAGE - 20  # late in the page: the pool has verified past it
    if damage == "bad_signature":
        envelopes[at] = _bad_signature(envelopes[at])
    elif damage == "unknown_key":
        envelopes[at] = _signed(
            fed.signers["KR"]["alert"],
            pb.SignedAlert.FromString(envelopes[at]).alert,
            key_id="KR-alert-0000000000000000",
        )
    elif damage == "wrong_signer":
        envelopes[at] = _signed(fed.signers["US"]["alert"], pb.SignedAlert.FromString(envelopes[at]).alert)
    elif damage == "not_canonical":
        envelopes[at] = _signed(
            fed.signers["KR"]["alert"], pb.SignedAlert.FromString(envelopes[at]).alert + b"\x00"
        )
    here = _receive(fed, tmp_path, "here", envelopes, in_process=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with capture_logs() as events:
            pooled = _receive(fed, tmp_path, "pooled", envelopes, in_process=False)
    assert "verify_pool_failed" not in [e["event"] for e in events]
    assert fresh_pool.workers() >= 1
    assert fresh_pool._pool is not None, "the page was not verified in the pool"
    assert pooled == here
    assert here[0] == (PAGE if damage == "none" else at)


def test_a_broken_pool_falls_back_to_this_process(
    fed: Fed,
    page: list[bytes],
    tmp_path: Path,
    fresh_pool: sigpool._InboundPool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fresh_pool, "workers", lambda: 1)
    executor = fresh_pool.get()
    assert isinstance(executor, ProcessPoolExecutor)
    executor.submit(os.getpid).result()  # the worker is up
    for process in list(executor._processes.values()):
        os.kill(process.pid, signal.SIGKILL)
        process.join()
    envelopes = list(page)
    envelopes[PAGE - 5] = _bad_signature(envelopes[PAGE - 5])
    with capture_logs() as events:
        pooled = _receive(fed, tmp_path, "pooled", envelopes, in_process=False)
    assert [e["event"] for e in events if e["log_level"] == "warning"][:1] == ["verify_pool_failed"]
    assert pooled == _receive(fed, tmp_path, "here", envelopes, in_process=True)
    assert pooled[0] == PAGE - 5
    assert fresh_pool.get() is None  # and it waits a while before it starts another


def test_the_runner_returns_outcomes_in_order_when_it_runs_chunks_itself(fed: Fed, page: list[bytes]) -> None:
    checks = [c for c in (signature_check(e, trust=fed.trust) for e in page) if c is not None]
    checks[7] = checks[7]._replace(signature=bytes(64))
    checks[-1] = checks[-1]._replace(payload=checks[-1].payload + b"!")
    expected = verify_signatures(checks)
    assert expected.count(False) == 2
    with ProcessPoolExecutor(max_workers=1, mp_context=pool_context("node.crypto._sigpool")) as executor:
        runner: ChunkedRunner[SignatureCheck, bool] = ChunkedRunner(
            verify_signatures,
            start=lambda: executor,
            min_parallel=1,
            chunk=4,
            in_flight=len(checks),
            on_broken=lambda exc: pytest.fail(f"the pool broke: {exc}"),
            owned=False,
            steal=True,
        )
        for check in checks:
            runner.add(check)
        assert [runner.outcomes(i + 1)[i] for i in range(len(checks))] == expected


_NODE_WITH_A_POOL = """
import os, time
from node.crypto import _sigpool as sigpool
os.environ[sigpool.INBOUND_WORKERS_ENV] = "1"
print(sigpool._INBOUND.get().submit(os.getpid).result(), flush=True)
time.sleep(120)
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_the_verifying_processes_end_with_a_node_killed_with_sigkill() -> None:
    node = subprocess.Popen([sys.executable, "-c", _NODE_WITH_A_POOL], stdout=subprocess.PIPE)
    try:
        assert node.stdout is not None
        worker = int(node.stdout.readline())
    finally:
        node.kill()
        node.wait()
    deadline = time.monotonic() + 10
    while not _gone(worker):
        assert time.monotonic() < deadline, f"verifying process {worker} outlived its node"
        time.sleep(0.05)


def test_a_pool_that_cannot_take_work_is_a_broken_pool_and_the_chunks_run_here(
    fed: Fed, page: list[bytes]
) -> None:
    """A pool whose submit raises what is not BrokenProcessPool (a worker that could not be
    spawned raises RuntimeError; here a pool already shut down, which raises it too) is
    taken as broken: reported once, and every outcome computed in this process."""
    checks = [c for c in (signature_check(e, trust=fed.trust) for e in page) if c is not None]
    executor = ProcessPoolExecutor(max_workers=1, mp_context=pool_context("node.crypto._sigpool"))
    executor.shutdown()
    broken: list[BaseException] = []
    runner: ChunkedRunner[SignatureCheck, bool] = ChunkedRunner(
        verify_signatures,
        start=lambda: executor,
        min_parallel=1,
        chunk=4,
        in_flight=2,
        on_broken=broken.append,
    )
    for check in checks:
        runner.add(check)
    assert runner.outcomes() == verify_signatures(checks)
    assert len(broken) == 1 and isinstance(broken[0].__cause__, RuntimeError)
