"""The audit's process pool (node/audit/_verify.py pass 2) reports exactly what the serial audit does.

Three logs from the audit bench's generator (bench/audit.py: a clean
federation from a fixed seed, signed in-process here), damaged where it
exercises the pool: bad signatures on one copy of an alert and on both
recipients' copies (one identical check, verified once), a bad receipt
signature, signed bytes that verify but do not decode, an unknown key, a
malformed entry, an entry logged twice. Checkpoints are re-signed with each
node's real log key, so only the entry damage shows.
"""

from __future__ import annotations

import warnings
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from bench.audit import generate
from node.audit import Bundle, Report, read_bundle, verify_loaded
from node.audit import _verify as audit
from node.config import NodeConfig
from node.crypto import (
    PAYLOAD_ALERT,
    Checkpoint,
    KeyPurpose,
    Signer,
    leaf_hash,
    root_from_leaf_hashes,
    sign_checkpoint,
)
from node.errors import UsageError
from node.ids import COUNTRIES, Country
from node.message import encode
from node.trust import Trust
from node.wire import ewx_pb2 as pb


@dataclass
class Damaged:
    trust: Trust
    bundles: list[Bundle]


def _flip(signature: bytes) -> bytes:
    return bytes([signature[0] ^ 1]) + signature[1:]


def _resign(bundle: Bundle, entries: list[bytes], signers: dict[KeyPurpose, Signer]) -> Bundle:
    cp = Checkpoint(
        origin=bundle.log_origin,
        size=len(entries),
        root_hash=root_from_leaf_hashes([leaf_hash(e) for e in entries]),
    )
    checkpoint = sign_checkpoint(cp, name=bundle.log_origin, private_key=signers["log"].private_key)
    return replace(bundle, entries=entries, checkpoint=checkpoint, declared_size=len(entries))


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> Damaged:
    out = tmp_path_factory.mktemp("parallel")
    gen = generate(out, entries=1200, seed=7, workers=1)
    signers = {cc: NodeConfig.load(out / "fed" / cc / "node.toml").load_signers() for cc in COUNTRIES}
    bundles = {b.node: b for b in (read_bundle(Path(p)) for p in gen.bundles)}
    logs: dict[Country, list[bytes]] = {cc: list(b.entries) for cc, b in bundles.items()}
    parsed = {cc: [pb.LogEntry.FromString(e) for e in logs[cc]] for cc in COUNTRIES}

    def received_in_both() -> list[tuple[int, int, bytes]]:
        """(US index, JP index, payload) of KR alerts both peers logged."""
        us = {e.alert.alert: i for i, e in enumerate(parsed["US"]) if e.kind == pb.ALERT_RECEIVED}
        return [
            (us[e.alert.alert], i, e.alert.alert)
            for i, e in enumerate(parsed["JP"])
            if e.kind == pb.ALERT_RECEIVED
            and e.alert.alert in us
            and pb.Alert.FromString(e.alert.alert).origin == pb.KR
        ]

    def set_entry(cc: Country, index: int, entry: pb.LogEntry) -> None:
        logs[cc][index] = encode(entry)

    both = received_in_both()
    # 1. KR's own copy of one alert has a bad signature; the recipients' copies are fine.
    sent = next(i for i, e in enumerate(parsed["KR"]) if e.kind == pb.ALERT_SENT and i > 100)
    entry = pb.LogEntry()
    entry.CopyFrom(parsed["KR"][sent])
    entry.alert.signature = _flip(entry.alert.signature)
    set_entry("KR", sent, entry)
    # 2. One bad signature on both recipients' copies of another: one shared failed check.
    us_index, jp_index, _ = both[40]
    for cc, index in (("US", us_index), ("JP", jp_index)):
        entry = pb.LogEntry()
        entry.CopyFrom(parsed[cc][index])
        entry.alert.signature = _flip(entry.alert.signature)
        set_entry(cc, index, entry)
    # 3. Altered signed bytes under the original signature, in JP only.
    _, jp_index, payload = both[60]
    entry = pb.LogEntry()
    entry.CopyFrom(parsed["JP"][jp_index])
    entry.alert.alert = payload.replace(b"KR-", b"KS-", 1)
    set_entry("JP", jp_index, entry)
    # 4. A receipt with a bad signature.
    receipt = [i for i, e in enumerate(parsed["KR"]) if e.kind == pb.RECEIPT_RECEIVED][70]
    entry = pb.LogEntry()
    entry.CopyFrom(parsed["KR"][receipt])
    entry.receipt.signature = _flip(entry.receipt.signature)
    set_entry("KR", receipt, entry)
    # 5. Bytes that US's alert key really signed but that are no alert, in US's log.
    junk = b"\x08\x01\x12\x03not an alert"
    us_sent = [i for i, e in enumerate(parsed["US"]) if e.kind == pb.ALERT_SENT][30]
    entry = pb.LogEntry()
    entry.CopyFrom(parsed["US"][us_sent])
    signer = signers["US"]["alert"]
    entry.alert.CopyFrom(
        pb.SignedAlert(alert=junk, key_id=signer.key_id, signature=signer.sign(PAYLOAD_ALERT, junk))
    )
    set_entry("US", us_sent, entry)
    # 6. An unknown key id, 7. a malformed entry, 8. an entry logged twice.
    entry = pb.LogEntry()
    entry.CopyFrom(parsed["JP"][200])
    (entry.receipt if entry.kind == pb.RECEIPT_RECEIVED else entry.alert).key_id = "JP-alert-0000000000000000"
    set_entry("JP", 200, entry)
    logs["US"][250] = logs["US"][250] + b"\x00"
    logs["KR"].insert(300, logs["KR"][299])

    return Damaged(
        trust=Trust.load(gen.trust),
        bundles=[_resign(bundles[cc], logs[cc], signers[cc]) for cc in COUNTRIES],
    )


class _RecordingPool(audit.ProcessPoolExecutor):
    """The real pool, counted."""

    started = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        type(self).started += 1
        super().__init__(*args, **kwargs)


def _kinds(report: Report) -> set[str]:
    return {f.kind for f in report.errors}


def test_pool_reports_what_the_serial_audit_reports(
    damaged: Damaged, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = verify_loaded(damaged.bundles, trust=damaged.trust, workers=1)
    assert {
        "bad_alert_signature",
        "bad_receipt_signature",
        "malformed_entry",
        "unknown_key",
        "duplicate",
    } <= _kinds(serial)

    monkeypatch.setattr(audit, "ProcessPoolExecutor", _RecordingPool)
    monkeypatch.setattr(_RecordingPool, "started", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the pool must not fall back
        parallel = verify_loaded(damaged.bundles, trust=damaged.trust, workers=2, min_parallel=0)
    assert _RecordingPool.started == 1
    assert parallel.findings == serial.findings
    assert parallel.to_json() == serial.to_json()


def test_default_threshold_keeps_small_audits_in_process(
    damaged: Damaged, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_pool(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a pool was started for a small audit")

    monkeypatch.setattr(audit, "ProcessPoolExecutor", no_pool)
    serial = verify_loaded(damaged.bundles, trust=damaged.trust, workers=1)
    assert verify_loaded(damaged.bundles, trust=damaged.trust, workers=2).findings == serial.findings


class _BreakingPool:
    """Stands in for the pool: runs the first chunk, loses the second, then is gone."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.submitted = 0

    def submit(self, fn: Any, chunk: Any) -> Future[Any]:
        self.submitted += 1
        if self.submitted > 2:
            raise BrokenProcessPool("the pool is gone")
        future: Future[Any] = Future()
        if self.submitted == 1:
            future.set_result(fn(chunk))
        else:
            future.set_exception(BrokenProcessPool("a worker was killed"))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        pass


def test_a_broken_pool_falls_back_to_the_same_report(
    damaged: Damaged, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = verify_loaded(damaged.bundles, trust=damaged.trust, workers=1)
    monkeypatch.setattr(audit, "ProcessPoolExecutor", _BreakingPool)
    with pytest.warns(RuntimeWarning, match="verifying in this process"):
        report = verify_loaded(damaged.bundles, trust=damaged.trust, workers=2, min_parallel=0)
    assert report.findings == serial.findings


def test_workers_from_the_environment(damaged: Damaged, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(audit.WORKERS_ENV, "none")
    with pytest.raises(UsageError, match=audit.WORKERS_ENV):
        verify_loaded(damaged.bundles, trust=damaged.trust)
    monkeypatch.setenv(audit.WORKERS_ENV, "1")
    monkeypatch.setattr(audit, "ProcessPoolExecutor", _BreakingPool)  # must not be used
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        verify_loaded(damaged.bundles, trust=damaged.trust, min_parallel=0)
