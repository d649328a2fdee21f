"""Link state: health, and the pause of pushes while a peer pulls pages."""

from __future__ import annotations

from datetime import UTC, datetime

from node.service import LinkState


def test_pulling_window_opens_and_closes() -> None:
    link = LinkState()
    assert not link.is_pulling(100.0)
    link.note_pulling(100.0, 1.0)
    assert link.is_pulling(100.5)
    assert not link.is_pulling(101.0)


def test_health_records_the_last_outcome() -> None:
    link = LinkState()
    assert link.reachable is None
    at = datetime(2026, 1, 1, tzinfo=UTC)
    link.failed(at, "UNAVAILABLE: connection refused")
    assert link.reachable is False and link.last_error == "UNAVAILABLE: connection refused"
    link.succeeded(at)
    assert link.reachable is True and link.last_error is None and link.last_ok == at


def test_down_since_is_the_first_failure_after_a_success() -> None:
    link = LinkState()
    first, later, back = (datetime(2026, 1, 1, h, tzinfo=UTC) for h in (10, 11, 12))
    link.failed(first, "UNAVAILABLE: x")
    link.failed(later, "UNAVAILABLE: y")
    assert link.down_since == first  # still down since the first
    link.succeeded(back)
    assert link.down_since is None
    link.failed(later, "UNAVAILABLE: z")
    assert link.down_since == later


def test_link_errors_in_plain_words() -> None:
    from node.service._links import plain_error

    refused = (
        "UNAVAILABLE: failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:7402: "
        "Failed to connect to remote host: Connection refused"
    )
    tls = (
        "UNAVAILABLE: failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:7402: "
        "Ssl handshake failed: SSL_ERROR_SSL: error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED"
    )
    assert plain_error(refused) == "connection refused"
    assert plain_error(tls) == "TLS certificate refused"
    assert plain_error("DEADLINE_EXCEEDED: Deadline Exceeded") == "no answer in time"
    assert plain_error("UNAVAILABLE: Socket closed") == "connection closed"
    # The peer answered with a coded reason: that is the problem, whatever the details say.
    assert (
        plain_error("FAILED_PRECONDITION (trust_update_stale): certificate serial 3")
        == "refused: trust_update_stale"
    )
    assert plain_error("UNAVAILABLE: something new") == "unreachable"
    assert plain_error("PERMISSION_DENIED: no") == "not let in (certificate or identity refused)"
    assert plain_error("INTERNAL: a strange thing") == "a strange thing"
    assert plain_error(None) is None and plain_error("") is None


def test_a_catch_up_in_progress_is_kept_both_ways() -> None:
    link = LinkState()
    link.caught_up_to(1, 1000)
    link.caught_up_to(1001, 2000)  # the next page: the first seq of this catch-up stays
    assert link.catching_up == (1, 2000)
    link.note_pulling(100.0, 1.0, to_seq=3000)
    link.note_pulling(100.5, 1.0, to_seq=2000)  # a page from an earlier request: never backwards
    assert link.pulled_to == 3000 and link.is_pulling(101.0)
