"""node/logs.py: one JSON object a line, in ASCII whatever a peer's text holds."""

from __future__ import annotations

import io
import json

import structlog
from hypothesis import given
from hypothesis import strategies as st

from node.logs import configure


def _lines(write: object) -> list[str]:
    out, saved = io.StringIO(), structlog.get_config()
    configure(level="info", stream=out)
    try:
        write(structlog.get_logger("ewx.test"))  # type: ignore[operator]
    finally:
        structlog.configure(**saved)
    return out.getvalue().splitlines()


def test_events_at_or_above_the_level_are_one_json_object_a_line() -> None:
    def write(log: structlog.typing.FilteringBoundLogger) -> None:
        log.info("alert_received", node="JP", peer="KR", alert_id="KR-1", seq=1)
        log.debug("not_written")
        log.warning("gossip_unverifiable", node="JP", peer="US")

    events = [json.loads(line) for line in _lines(write)]
    assert [e["event"] for e in events] == ["alert_received", "gossip_unverifiable"]
    assert events[0] | {"timestamp": None} == {
        "event": "alert_received",
        "node": "JP",
        "peer": "KR",
        "alert_id": "KR-1",
        "seq": 1,
        "level": "info",
        "timestamp": None,
    }
    assert events[1]["level"] == "warning"


@given(st.text(max_size=40))
def test_a_peers_text_reaches_the_log_escaped_as_ascii(text: str) -> None:
    """A bidi override, a terminal escape or a newline in a refusal's detail must not reach
    the operator's terminal raw, nor split the line."""
    lines = _lines(lambda log: log.warning("inbound_rejected", detail=text, bytes_seen=text.encode()))
    assert len(lines) == 1 and lines[0].isascii()
    assert json.loads(lines[0])["detail"] == text
