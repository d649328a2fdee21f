"""Issue 10 (hardening): the node's core refuses what a careless or hostile operator gives it.

Each test names the issue's item it covers. These run the real service over a
real store in a temporary folder, and the real CLI parser; the tests that need
running nodes are in tests/federation/test_hardening_cli.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.config import NodeConfig
from node.errors import RefusedOperation, UsageError
from node.ids import Country
from node.service import NodeService
from tests.support.factories import alert_info, alert_payload, envelope, make_federation


@pytest.fixture
def fed(tmp_path: Path) -> dict[Country, Path]:
    """A fresh development federation: its node.toml paths."""
    return make_federation(tmp_path / "fed")


@pytest.fixture
def kr(fed: dict[Country, Path]) -> Iterator[NodeService]:
    """KR's service over its own store."""
    service = NodeService.open(NodeConfig.load(fed["KR"]))
    try:
        yield service
    finally:
        service.close()


def _parse(*argv: str) -> object:
    from gateway.cli import build_parser

    return build_parser().parse_args(list(argv))


RAISE = ("alert", "raise", "--hs", "811292", "--category", "OTHER", "--severity", "MINOR")
RAISE += ("--source-country", "CN", "--headline", "gallium")


# ---------------------------------------------------------------- item 3: an empty recipient list
@pytest.mark.parametrize("to", ["", ",", " , ", ",,"])
def test_an_empty_to_is_a_usage_error_at_the_cli(to: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        _parse(*RAISE, "--to", to)
    assert done.value.code == 2
    assert "names no recipient" in capsys.readouterr().err


def test_to_names_the_peers_given_and_only_those() -> None:
    assert _parse(*RAISE, "--to", "us").to == ["US"]  # type: ignore[attr-defined]
    assert _parse(*RAISE, "--to", "US, JP").to == ["US", "JP"]  # type: ignore[attr-defined]
    assert _parse(*RAISE).to is None  # type: ignore[attr-defined]  # left out: both peers


@pytest.mark.parametrize("empty", [[], ()])
def test_the_service_refuses_an_empty_recipient_list(kr: NodeService, empty: list[str]) -> None:
    with pytest.raises(UsageError, match="recipient list is empty"):
        kr.publish(msg_type="ALERT", info=alert_info(), recipients=empty)  # type: ignore[arg-type]
    assert kr.store.log_size == 0 and kr.store.count("outbox") == 0
    # None, and only None, means both peers
    both = kr.publish(msg_type="ALERT", info=alert_info(), recipients=None)
    assert both.alert.recipients == ("US", "JP")
    one = kr.publish(msg_type="ALERT", info=alert_info(), recipients=["JP"])
    assert one.alert.recipients == ("JP",)


# ---------------------------------------------------------------- item 12: ASCII digits only
FULL_WIDTH, ARABIC_INDIC = "８１１２９２", "٨١١٢٩٢"  # both 811292 to int() and to a regex's \d
FOREIGN_DIGITS = pytest.mark.parametrize("digits", [FULL_WIDTH, ARABIC_INDIC], ids=["full-width", "arabic-indic"])


@FOREIGN_DIGITS
def test_an_hs_code_in_other_scripts_digits_is_refused_by_the_model(digits: str) -> None:
    from pydantic import ValidationError

    from node.message import Item

    assert int(digits) == 811292  # what Python alone would accept
    with pytest.raises(ValidationError, match="4 or 6 digits"):
        Item(hs_code=digits, hs_edition="HS2022")
    with pytest.raises(ValidationError, match="4 or 6 digits"):
        Item(hs_code=digits[:4], hs_edition="HS2022")
    assert Item(hs_code="811292", hs_edition="HS2022").hs_code == "811292"


@FOREIGN_DIGITS
def test_the_service_refuses_an_hs_code_in_other_scripts_digits(kr: NodeService, digits: str) -> None:
    info = alert_info(items=[{"hs_code": digits, "hs_edition": "HS2022"}])
    with pytest.raises(UsageError, match="4 or 6 digits"):
        kr.publish(msg_type="ALERT", info=info)
    assert kr.store.log_size == 0


@FOREIGN_DIGITS
@pytest.mark.parametrize(
    "argv",
    [
        (*RAISE, "--duration-days", "{}"),
        (*RAISE, "--expires", "+{}d"),
        (*RAISE, "--effective", "+{}h"),
        ("pki", "init", "--out", "x", "--base-port", "{}"),
        ("pki", "ca", "--country", "KR", "--out", "x", "--years", "{}"),
        ("audit", "check-proof", "p", "--trust", "t", "--min-cosigners", "{}"),
        ("pki", "sign", "--ca-cert", "c", "--ca-key", "k", "--csr", "r", "--out", "o", "--days", "{}"),
    ],
    ids=["duration", "expires", "effective", "base-port", "years", "min-cosigners", "sign-days"],
)
def test_every_number_flag_takes_ascii_digits_only(argv: tuple[str, ...], digits: str) -> None:
    with pytest.raises(SystemExit) as done:
        _parse(*(a.format(digits[:2]) for a in argv))
    assert done.value.code == 2
    _parse(*(a.format("12") for a in argv))  # the same flag in ASCII digits is taken


@FOREIGN_DIGITS
def test_rotation_flags_take_ascii_digits_only(digits: str) -> None:
    import argparse

    from node.cli._rotation import _days, _serial

    for parse, value in ((_days, digits[:2]), (_serial, digits), (_serial, "0x" + digits)):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(value)
    assert _days("12") == 12 and _serial("0x1f") == 31 and _serial("1F:2A") == 0x1F2A


@FOREIGN_DIGITS
def test_worker_counts_from_the_environment_take_ascii_digits_only(
    digits: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from node.audit import _verify as audit
    from node.crypto import _sigpool as sigpool

    monkeypatch.setenv(audit.WORKERS_ENV, digits[:1])
    with pytest.raises(UsageError, match="not a positive number"):
        audit._default_workers()
    monkeypatch.setenv(audit.WORKERS_ENV, "3")
    assert audit._default_workers() == 3
    monkeypatch.setenv(sigpool.INBOUND_WORKERS_ENV, digits[:1])
    assert sigpool._InboundPool().workers() == sigpool.available_cpus() - 1  # ignored, as any non-number
    monkeypatch.setenv(sigpool.INBOUND_WORKERS_ENV, "0")
    assert sigpool._InboundPool().workers() == 0


# ---------------------------------------------------------------- item 16: the lifecycle
def _raise(service: NodeService) -> str:
    return service.publish(msg_type="ALERT", info=alert_info()).alert.alert_id


def _update(service: NodeService, alert_id: str) -> str:
    published = service.publish(
        msg_type="UPDATE", reference=(service.me, alert_id), info=alert_info(severity="EXTREME")
    )
    return published.alert.alert_id


def _cancel(service: NodeService, alert_id: str) -> str:
    published = service.publish(
        msg_type="CANCEL", reference=(service.me, alert_id), reason="SITUATION_RESOLVED"
    )
    return published.alert.alert_id


def test_a_cancelled_alert_takes_no_second_cancel_and_no_update(kr: NodeService) -> None:
    first = _raise(kr)
    update = _update(kr, first)
    cancel = _cancel(kr, update)
    size = kr.store.log_size
    rule = "a cancelled alert takes no further UPDATE or CANCEL"
    # whichever message of its history the new one names
    for target in (first, update):
        with pytest.raises(RefusedOperation, match=f"{first} was cancelled by {cancel}: {rule}"):
            _cancel(kr, target)
        with pytest.raises(RefusedOperation, match=rule):
            _update(kr, target)
    with pytest.raises(RefusedOperation, match=f"only follow an ALERT or an UPDATE, and {cancel} is a CANCEL"):
        _cancel(kr, cancel)
    assert kr.store.log_size == size
    # another alert's history is its own
    other = _raise(kr)
    _cancel(kr, _update(kr, _update(kr, other)))


def test_a_node_acknowledges_a_peers_alert_once(fed: dict[Country, Path], kr: NodeService) -> None:
    kr.receive(envelope(fed["US"], alert_payload("US", {"KR": 1}, alert_id="US-1")), peer="US")
    kr.receive(envelope(fed["US"], alert_payload("US", {"KR": 2}, alert_id="US-2")), peer="US")
    ack = kr.publish(msg_type="ACK", reference=("US", "US-1"), reason="RECEIVED").alert.alert_id
    size = kr.store.log_size
    with pytest.raises(RefusedOperation, match=f"KR already acknowledged US/US-1 with {ack}: .* once"):
        kr.publish(msg_type="ACK", reference=("US", "US-1"), reason="ACTION_TAKEN")
    assert kr.store.log_size == size
    kr.publish(msg_type="ACK", reference=("US", "US-2"), reason="RECEIVED")  # another alert: fine
    kr.publish(msg_type="RESPONSE", reference=("US", "US-1"), response={
        "measures": ["STOCKPILE_RELEASE"], "assistance": "OFFERED"
    })  # fmt: skip


def test_a_peers_message_against_the_lifecycle_is_still_stored(
    fed: dict[Country, Path], kr: NodeService
) -> None:
    """The rules bind this node's own publishing; refusing a validly signed peer alert would stall its sequence."""
    from node.crypto import digest
    from node.message import alert_from_bytes

    first = alert_payload("US", {"KR": 1}, alert_id="US-1")
    ref = {"origin": "US", "alert_id": "US-1", "digest": digest(first)}
    kr.receive(envelope(fed["US"], first), peer="US")
    for seq in (2, 3):
        cancel = alert_payload(
            "US", {"KR": seq}, alert_id=f"US-{seq}", msg_type="CANCEL", references=[ref],
            reason="ISSUED_IN_ERROR",
        )  # fmt: skip
        assert alert_from_bytes(cancel).msg_type == "CANCEL"
        kr.receive(envelope(fed["US"], cancel), peer="US")
    assert kr.store.last_seq("US", "KR") == 3


# ---------------------------------------------------------------- item 5: --id and automatic ids
def test_an_operator_chosen_id_does_not_block_the_automatic_ids(kr: NodeService) -> None:
    first = _raise(kr)
    prefix, number = first.rsplit("-", 1)
    taken = [f"{prefix}-{int(number) + n:06d}" for n in (1, 2)]  # the next two automatic ids
    for alert_id in taken:
        kr.publish(msg_type="ALERT", info=alert_info(), alert_id=alert_id)
    following = [_raise(kr) for _ in range(3)]  # each skips what the operator took
    assert following == [f"{prefix}-{int(number) + n:06d}" for n in (3, 4, 5)]
    # reusing an id is refused, and the message names that id, the operator's
    with pytest.raises(RefusedOperation, match=f"alert id {taken[0]}, chosen by the operator, is already used"):
        kr.publish(msg_type="ALERT", info=alert_info(), alert_id=taken[0])
    assert _raise(kr) == f"{prefix}-{int(number) + 6:06d}"  # and the refusal blocked nothing


# ---------------------------------------------------------------- item 4: one atomic, careful writer
def _write(path: Path, data: bytes, *, force: bool = False) -> None:
    from node.files import atomic_output

    with atomic_output(path, force=force) as stream:
        stream.write(data)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_the_atomic_writer_never_follows_or_replaces_what_is_at_the_target(tmp_path: Path) -> None:
    import os

    from node.files import atomic_output

    out, victim = tmp_path / "KR.ewxlog", tmp_path / "victim"
    victim.write_bytes(b"precious")
    (tmp_path / "KR.ewxlog.part").symlink_to(victim)  # the old fixed temporary name, planted
    with atomic_output(out) as stream:
        stream.write(b"bundle")
    assert out.read_bytes() == b"bundle" and victim.read_bytes() == b"precious"
    assert oct(out.stat().st_mode & 0o777) == oct(0o644)
    with pytest.raises(RefusedOperation, match="already exists; give --force"):
        _write(out, b"other")
    assert out.read_bytes() == b"bundle"
    with atomic_output(out, force=True) as stream:
        stream.write(b"newer")
    assert out.read_bytes() == b"newer"
    # a file that appears while the export runs is not replaced either
    late = tmp_path / "late"
    with pytest.raises(RefusedOperation, match="already exists"), atomic_output(late) as stream:
        stream.write(b"export")
        late.write_bytes(b"someone else's")
    assert late.read_bytes() == b"someone else's"
    # non-regular targets, followed or not, are refused with or without --force
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "to-dev").symlink_to("/dev/full")
    for target, kind in (("fifo", "not a regular file"), ("to-dev", "not a regular file"), (".", "a folder")):
        for force in (False, True):
            with pytest.raises(UsageError, match=kind):
                _write(tmp_path / target, b"x", force=force)
    assert _leftovers(tmp_path) == ["KR.ewxlog.part"]  # only the planted link


def test_the_atomic_writer_leaves_nothing_behind_on_failure(tmp_path: Path) -> None:
    from node.files import atomic_output

    out = tmp_path / "out"
    with pytest.raises(ZeroDivisionError), atomic_output(out) as stream:
        stream.write(b"half")
        _ = 1 / 0
    assert not out.exists() and _leftovers(tmp_path) == []
    with pytest.raises(UsageError, match=f"cannot write {tmp_path}/missing/out"):
        _write(tmp_path / "missing" / "out", b"x")


# ---------------------------------------------------------------- item 14: a full disk reads as such
def _fill(service: NodeService) -> None:
    """The store's file may grow no further: SQLite's own SQLITE_FULL, as on a full disk."""
    pages = service.store._conn.execute("PRAGMA page_count").fetchone()[0]
    service.store._conn.execute(f"PRAGMA max_page_count = {pages}")


def test_a_full_store_reads_as_full_and_keeps_nothing(kr: NodeService) -> None:
    from node.errors import StoreFull

    _raise(kr)
    size, root = kr.store.log_size, kr.store.log_root()
    _fill(kr)
    with pytest.raises(StoreFull, match="store is full"):
        for _ in range(50):  # until the free pages of the file are used up
            kr.publish(msg_type="ALERT", info=alert_info())
    from node.store import Store

    reopened = Store(kr.store.path)  # the in-memory tree matches what was committed
    committed = kr.store.log_size
    assert (reopened.log_size, reopened.log_root()) == (committed, kr.store.log_root())
    reopened.close()
    assert committed >= size and kr.store.count("alerts") == committed
    kr.store._conn.execute("PRAGMA max_page_count = 1073741823")
    _raise(kr)  # once there is room again, the node goes on
    assert kr.store.log_size == committed + 1 and root != kr.store.log_root()
