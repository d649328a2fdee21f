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
