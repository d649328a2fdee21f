"""Issue 10 (hardening): the node's core refuses what a careless or hostile operator gives it.

Each test names the issue's item it covers. These run the real service over a
real store in a temporary folder, and the real CLI parser; the tests that need
running nodes are in tests/integration/test_hardening_cli.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.config import NodeConfig
from node.errors import UsageError
from node.service import NodeService
from tests.factories import alert_info, make_federation


@pytest.fixture
def kr(tmp_path: Path) -> Iterator[NodeService]:
    """KR's service over its own store, in a fresh federation."""
    fed = make_federation(tmp_path / "fed")
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

    from node.models import Item

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

    from node.cli_rotation import _days, _serial

    for parse, value in ((_days, digits[:2]), (_serial, digits), (_serial, "0x" + digits)):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(value)
    assert _days("12") == 12 and _serial("0x1f") == 31 and _serial("1F:2A") == 0x1F2A


@FOREIGN_DIGITS
def test_worker_counts_from_the_environment_take_ascii_digits_only(
    digits: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from node import audit, sigpool

    monkeypatch.setenv(audit.WORKERS_ENV, digits[:1])
    with pytest.raises(UsageError, match="not a positive number"):
        audit._default_workers()
    monkeypatch.setenv(audit.WORKERS_ENV, "3")
    assert audit._default_workers() == 3
    monkeypatch.setenv(sigpool.INBOUND_WORKERS_ENV, digits[:1])
    assert sigpool._InboundPool().workers() == sigpool.available_cpus() - 1  # ignored, as any non-number
    monkeypatch.setenv(sigpool.INBOUND_WORKERS_ENV, "0")
    assert sigpool._InboundPool().workers() == 0
