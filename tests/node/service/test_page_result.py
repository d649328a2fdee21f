"""receive_many says how far it took a page and, when it stopped early, why (issue 11, item 4)."""

from __future__ import annotations

from pathlib import Path

from node.config import NodeConfig
from node.service import NodeService
from tests.support.factories import alert_payload, envelope, make_federation


def _page(fed: dict[str, Path], seqs: list[int]) -> list[bytes]:
    return [envelope(fed["KR"], alert_payload("KR", {"US": seq}, alert_id=f"KR-P-{seq}")) for seq in seqs]


def test_a_whole_page_is_complete_and_a_refusal_names_why_it_stopped(tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed")
    service = NodeService.open(NodeConfig.load(fed["US"]))
    try:
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
    finally:
        service.close()
