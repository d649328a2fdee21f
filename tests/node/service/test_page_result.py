"""receive_many says how far it took a page and, when it stopped early, why (issue 11, item 4)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from node.config import NodeConfig
from node.service import NodeService
from tests.support.factories import alert_payload, envelope, make_federation

Fed = dict[str, Path]


@pytest.fixture
def us(tmp_path: Path) -> Iterator[tuple[Fed, NodeService]]:
    """A development federation and the US node's service over it, closed after."""
    fed = make_federation(tmp_path / "fed")
    service = NodeService.open(NodeConfig.load(fed["US"]))
    try:
        yield fed, service
    finally:
        service.close()


def _page(fed: Fed, seqs: list[int]) -> list[bytes]:
    return [envelope(fed["KR"], alert_payload("KR", {"US": seq}, alert_id=f"KR-P-{seq}")) for seq in seqs]


def test_a_whole_page_is_complete_and_a_refusal_names_why_it_stopped(us: tuple[Fed, NodeService]) -> None:
    fed, service = us
    page = _page(fed, [1, 2])
    first = service.receive_many(page, peer="KR", direct=True)
    assert (first.stored, first.complete, first.stopped_by) == (2, True, None)

    again = service.receive_many(page, peer="KR", direct=True)
    assert (again.stored, again.stopped_by) == (0, None)  # already held: taken, nothing new

    rewritten = service.receive_many(_page(fed, [2]), peer="KR", direct=True)
    assert (rewritten.stored, rewritten.stopped_by) == (0, "equivocation")  # same id, other bytes

    gap = service.receive_many(_page(fed, [3, 5, 6]), peer="KR", direct=True)
    assert (gap.stored, gap.stopped_by) == (1, "out_of_sequence")
    assert not gap.complete

    genuine = _page(fed, [4])[0]
    forged = genuine[:-1] + bytes([genuine[-1] ^ 0x01])  # the signature's last byte flipped
    bad = service.receive_many([forged, *_page(fed, [5])], peer="KR", direct=True)
    assert (bad.stored, bad.stopped_by) == (0, "bad_signature")
    assert service.last_seq("KR", "US") == 3


def test_a_page_logs_one_event_naming_what_it_stored_after_its_commit(us: tuple[Fed, NodeService]) -> None:
    """Not an `alert_received` an alert (issue 15: ~15% of the store's thread in a catch-up)."""
    fed, service = us
    with structlog.testing.capture_logs() as logs:
        first = _page(fed, [1, 2, 3])
        service.receive_many(first, peer="KR", direct=True)
        service.receive_many([first[2], *_page(fed, [4, 6])], peer="KR", direct=False)  # 3 held, 6 a gap
        service.receive_many(_page(fed, [5])[:0], peer="KR", direct=True)  # nothing: no event
    received = [e for e in logs if e["event"] in ("alerts_received", "alert_received")]
    assert [
        (e["event"], e["count"], e["first_alert_id"], e["last_alert_id"], e["seqs"]) for e in received
    ] == [
        ("alerts_received", 3, "KR-P-1", "KR-P-3", "1-3"),
        ("alerts_received", 1, "KR-P-4", "KR-P-4", "4-4"),
    ]
    assert received[0]["log_indexes"] == "0-2" and received[1]["log_indexes"] == "3-3"
    assert {(e["node"], e["peer"], e["origin"]) for e in received} == {("US", "KR", "KR")}
    first_refusal = next(i for i, e in enumerate(logs) if e["event"] == "inbound_rejected")
    assert logs.index(received[1]) > first_refusal  # logged after the page's end, with its commit


def test_a_page_hands_its_peer_alerts_to_the_exposure_check_in_one_call(us: tuple[Fed, NodeService]) -> None:
    """One call after the page's commit, not a wake-up of the loop an alert; a Deliver: one of one."""
    fed, service = us
    calls: list[list[tuple[str, str, object]]] = []
    service.on_peer_alerts = calls.append
    first = _page(fed, [1, 2, 3])
    service.receive_many([first[0], first[1], first[2], *_page(fed, [5])], peer="KR", direct=True)
    assert [[(origin, alert_id) for origin, alert_id, _ in call] for call in calls] == [
        [("KR", "KR-P-1"), ("KR", "KR-P-2"), ("KR", "KR-P-3")]  # 5 is a gap: not stored, not checked
    ]
    assert calls[0][0][2] == (["811292", "282590"], ["CN"])  # the scope, from the decoded alert
    service.receive_many(first, peer="KR", direct=True)  # all held already: nothing to check
    assert len(calls) == 1
    service.receive(_page(fed, [4])[0], peer="KR")
    assert [[alert_id for _, alert_id, _ in call] for call in calls[1:]] == [["KR-P-4"]]


def test_a_delivery_stream_turn_hands_over_its_checks_at_once_and_logs_one_event(
    us: tuple[Fed, NodeService],
) -> None:
    """One event a commit: a turn of many as a page, a turn of one (a Deliver) its alert_received."""
    fed, service = us
    calls: list[list[tuple[str, str, object]]] = []
    service.on_peer_alerts = calls.append
    with structlog.testing.capture_logs() as logs:
        turn = service.receive_in_order(_page(fed, [1, 2, 4]), peer="KR")  # 4: a gap ends the turn
        after_first_turn = len(logs)
        alone = service.receive_in_order(_page(fed, [3]), peer="KR")
    assert len(turn.receipts) == 2 and turn.refusal is not None
    assert len(alone.receipts) == 1 and alone.refusal is None
    assert [[alert_id for _, alert_id, _ in call] for call in calls] == [["KR-P-1", "KR-P-2"], ["KR-P-3"]]
    summaries = [e for e in logs if e["event"] == "alerts_received"]
    assert [(e["count"], e["first_alert_id"], e["last_alert_id"], e["seqs"]) for e in summaries] == [
        (2, "KR-P-1", "KR-P-2", "1-2")
    ]
    gap = next(i for i, e in enumerate(logs) if e["event"] == "inbound_rejected")
    assert gap < logs.index(summaries[0]) < after_first_turn  # the turn's own event, after its commit
    assert [e["alert_id"] for e in logs if e["event"] == "alert_received"] == ["KR-P-3"]
