"""The situation board (node/situation/board.py): build_board's JSON and the text and HTML drawn from it.

Pure: every input is an AlertState, AckDue, BoardAlert or PolicyNote built
here, so each test says exactly which fold result it draws.
"""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from node import limits
from node.ids import Country
from node.message import WatchPair
from node.situation.board import BoardAlert, PolicyNote, build_board, render_html, render_text
from node.situation.deadlines import AckDue
from node.situation.state import AlertState, Answer, Delivery
from node.trilateral import Watchlist

NOW = datetime(2024, 3, 5, 12, 0, 0, tzinfo=UTC)
EXPOSURE = "own share from CN ABOVE_60, HHI HIGH, trend RISING"


# ------------------------------------------------------------------ builders
def state(
    alert_id: str = "KR-1",
    *,
    origin: Country = "KR",
    severity: str | None = "SEVERE",
    sent: datetime | None = None,
    items: tuple[str, ...] = ("811292",),
    sources: tuple[str, ...] = ("CN",),
    headline: str = "Export licensing for gallium",
    recipients: tuple[Country, ...] | None = None,
    **fields: Any,
) -> AlertState:
    peers = recipients if recipients is not None else tuple(c for c in ("KR", "US", "JP") if c != origin)
    return AlertState(
        origin=origin,
        alert_id=alert_id,
        msg_type="ALERT",
        sent=sent or NOW - timedelta(minutes=30),
        status="ACTUAL",
        severity=severity,
        category="EXPORT_CONTROL",
        headline=headline,
        expires=NOW + timedelta(days=30),
        items=items,
        source_countries=sources,
        deliveries={r: Delivery(recipient=r, seq=i + 1, receipt_index=10 + i) for i, r in enumerate(peers)},
        **fields,
    )


def answer(by: Country, alert_id: str, msg_type: str, sent: datetime, reason: str | None = None) -> Answer:
    return Answer(by=by, alert_id=alert_id, msg_type=msg_type, sent=sent, reason=reason)


def due(
    s: AlertState, recipient: Country, status: str, *, due_at: datetime, ack: Answer | None = None
) -> AckDue:
    return AckDue(
        origin=s.origin,
        alert_id=s.alert_id,
        recipient=recipient,
        severity=s.severity or "",
        due=due_at,
        status=status,
        ack=ack,
    )


def board(
    alerts: list[BoardAlert],
    *,
    node: Country = "KR",
    more: bool = False,
    watchlist: Watchlist | None = None,
    reports: tuple[PolicyNote, ...] = (),
) -> dict[str, Any]:
    wl = watchlist or Watchlist()
    return build_board(
        node=node,
        now=NOW,
        alerts=alerts,
        more=more,
        watchlist=wl.to_json(),
        pairs=wl.pairs,
        reports=reports,
    )


def note(origin: Country, alert_id: str, announced: str, **fields: Any) -> PolicyNote:
    base: dict[str, Any] = {
        "country": "CN",
        "hs_codes": ("811292",),
        "measure": "EXPORT_LICENSING",
        "stage": "IN_FORCE",
        "announced": announced,
    }
    base.update(fields)
    return PolicyNote(origin=origin, alert_id=alert_id, **base)


def pair(hs_code: str, country: str = "CN", reason: str = "SUPPLY_CONCENTRATION") -> WatchPair:
    return WatchPair(hs_code=hs_code, country=country, reason=reason)


def lines_after(text: str, heading: str) -> list[str]:
    """The lines of the section `heading` of a text board, up to the blank line ending it."""
    lines = text.splitlines()
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if not lines[i]), len(lines))
    return lines[start:end]


# ------------------------------------------------------------------ grouping and order
def test_alerts_are_grouped_by_hs_code_and_source_country() -> None:
    two_items = state("KR-1", items=("811292", "282590"), sources=("CN",), severity="SEVERE")
    two_sources = state("US-7", origin="US", items=("811292",), sources=("CN", "RU"), severity="EXTREME")
    unknown_source = state("JP-3", origin="JP", items=("250410",), sources=(), severity="MINOR")
    b = board(
        [BoardAlert(s, (), received=s.origin != "KR") for s in (two_items, two_sources, unknown_source)]
    )

    assert b["groups"] == [
        {
            "hs_code": "250410",
            "country": "ZZ",
            "alerts": ["JP/JP-3"],
        },  # no source given: ZZ, as in the schema
        {"hs_code": "282590", "country": "CN", "alerts": ["KR/KR-1"]},
        {"hs_code": "811292", "country": "CN", "alerts": ["US/US-7", "KR/KR-1"]},  # EXTREME first
        {"hs_code": "811292", "country": "RU", "alerts": ["US/US-7"]},
    ]
    assert [(a["origin"], a["alert_id"]) for a in b["alerts"]] == [
        ("US", "US-7"),
        ("KR", "KR-1"),
        ("JP", "JP-3"),
    ]
    assert b["open"] == 3 and b["open_by_origin"] == {"KR": 1, "US": 1, "JP": 1}

    text = render_text(b)
    lines = text.splitlines()
    for heading in ("250410 from ZZ", "282590 from CN", "811292 from CN", "811292 from RU"):
        assert heading in lines
    cn = lines.index("811292 from CN")
    assert "US/US-7" in lines[cn + 1] and "EXTREME" in lines[cn + 1]
    assert "KR/KR-1" in lines[cn + 3] and "SEVERE" in lines[cn + 3]  # after US-7's peer line
    assert sum("KR/KR-1" in line for line in lines) == 2  # once in each of its two groups
    assert lines[1].startswith("open alerts 3 (KR 1, US 1, JP 1); overdue acks 0; consultations 0")


def test_severity_orders_the_board_then_the_newest_first() -> None:
    alerts = [
        state("KR-minor", severity="MINOR", sent=NOW - timedelta(minutes=1)),
        state("KR-old-severe", severity="SEVERE", sent=NOW - timedelta(hours=5)),
        state("KR-unknown", severity=None, sent=NOW - timedelta(seconds=5)),
        state("KR-extreme", severity="EXTREME", sent=NOW - timedelta(days=2, hours=3)),
        state("KR-new-severe", severity="SEVERE", sent=NOW - timedelta(hours=1, minutes=5)),
        state("KR-moderate", severity="MODERATE", sent=NOW - timedelta(seconds=40)),
    ]
    b = board([BoardAlert(s, (), received=False) for s in alerts])
    assert [a["alert_id"] for a in b["alerts"]] == [
        "KR-extreme",
        "KR-new-severe",
        "KR-old-severe",
        "KR-moderate",
        "KR-minor",
        "KR-unknown",
    ]
    assert b["groups"][0]["alerts"] == [f"KR/{a['alert_id']}" for a in b["alerts"]]
    ages = {a["alert_id"]: a["age"] for a in b["alerts"]}
    assert ages == {
        "KR-extreme": "2d03h",
        "KR-new-severe": "1h05m",
        "KR-old-severe": "5h00m",
        "KR-moderate": "40s",
        "KR-minor": "1m",
        "KR-unknown": "5s",
    }
    assert all(a["direction"] == "sent" for a in b["alerts"])


# ------------------------------------------------------------------ acknowledgements
def test_overdue_acknowledgements_are_listed_and_each_peer_cell_says_where_it_stands() -> None:
    deadline = NOW - timedelta(minutes=15)
    overdue = state("KR-1", severity="EXTREME", sent=deadline - timedelta(minutes=15))
    us_ack = answer("US", "US-9", "ACK", deadline - timedelta(minutes=10), "RECEIVED")
    overdue.acks["US"] = us_ack
    late = state("KR-2", severity="EXTREME", sent=deadline - timedelta(minutes=15), items=("282590",))
    late_ack = answer("JP", "JP-4", "ACK", deadline + timedelta(minutes=2), "UNDER_REVIEW")
    late.acks["JP"] = late_ack
    late.deliveries["US"] = Delivery(recipient="US", seq=2)  # no receipt: not delivered
    waiting = state("US-5", origin="US", severity="SEVERE", items=("250410",), recipients=("KR", "JP"))
    alerts = [
        BoardAlert(
            overdue,
            (
                due(overdue, "US", "on_time", due_at=deadline, ack=us_ack),
                due(overdue, "JP", "overdue", due_at=deadline),
            ),
            received=False,
        ),
        BoardAlert(
            late,
            (
                due(late, "US", "missed", due_at=deadline),
                due(late, "JP", "late", due_at=deadline, ack=late_ack),
            ),
            received=False,
        ),
        BoardAlert(
            waiting,
            (
                due(waiting, "KR", "waiting", due_at=NOW + timedelta(minutes=3)),
                due(waiting, "JP", "overdue", due_at=NOW - timedelta(hours=1, minutes=5)),
            ),
            received=True,
        ),
    ]
    b = board(alerts)

    assert [(d["recipient"], d["origin"], d["alert_id"]) for d in b["overdue"]] == [
        ("JP", "KR", "KR-1"),
        ("JP", "US", "US-5"),
    ]  # overdue only: not on_time, late, missed or waiting
    assert all(d["status"] == "overdue" for d in b["overdue"])
    peers = {a["alert_id"]: a["recipients"] for a in b["alerts"]}
    assert (
        peers["KR-1"]["US"]["acknowledged"] == "RECEIVED" and peers["KR-1"]["US"]["ack_status"] == "on_time"
    )
    assert peers["KR-1"]["JP"]["acknowledged"] is None and peers["KR-1"]["JP"]["ack_status"] == "overdue"
    assert peers["KR-2"]["US"]["delivered"] is False and peers["KR-2"]["JP"]["delivered"] is True

    text = render_text(b)
    assert "    US ack; JP ACK OVERDUE 15m" in text.splitlines()
    assert "    US not delivered; JP ack LATE" in text.splitlines()
    assert "    KR* ack due in 3m; JP ACK OVERDUE 1h05m" in text.splitlines()  # KR is this node: starred
    assert "overdue acks 2" in text.splitlines()[1]
    assert lines_after(text, "Overdue acknowledgements") == [
        "  JP  EXTREME  due 11:45Z, overdue 15m    KR/KR-1",
        "  JP  SEVERE   due 10:55Z, overdue 1h05m  US/US-5",
    ]

    page = render_html(b)
    assert "<h2>Overdue acknowledgements</h2>" in page
    assert '<span class="overdue">JP ACK OVERDUE 15m</span>' in page
    assert '<span class="overdue">JP ack LATE</span>' in page
    assert '<span class="ok">US ack</span>' in page


def test_an_error_is_shown_instead_of_the_acknowledgement() -> None:
    s = state("KR-1")
    s.errors["JP"] = answer("JP", "JP-E1", "ERROR", NOW - timedelta(minutes=5), "NOT_UNDERSTOOD")
    b = board([BoardAlert(s, (due(s, "JP", "overdue", due_at=NOW - timedelta(minutes=1)),), received=False)])
    assert b["alerts"][0]["recipients"]["JP"]["error"] == "NOT_UNDERSTOOD"
    assert "    US delivered; JP error NOT_UNDERSTOOD" in render_text(b).splitlines()


def test_consultations_and_responses_are_listed_with_the_alert_they_are_about() -> None:
    s = state("KR-1", severity="EXTREME")
    s.consults.append(answer("JP", "JP-C1", "CONSULT", NOW - timedelta(minutes=9)))
    s.responses.append(answer("US", "US-R1", "RESPONSE", NOW - timedelta(minutes=8)))
    s.responses.append(answer("JP", "JP-R2", "RESPONSE", NOW - timedelta(minutes=7)))
    b = board([BoardAlert(s, (), received=False)])

    assert b["consultations"] == [
        {
            "about": "KR/KR-1",
            "by": "JP",
            "alert_id": "JP-C1",
            "msg_type": "CONSULT",
            "sent": "2024-03-05T11:51:00Z",
            "reason": None,
        },
    ]
    assert [(r["about"], r["by"], r["alert_id"]) for r in b["responses"]] == [
        ("KR/KR-1", "US", "US-R1"),
        ("KR/KR-1", "JP", "JP-R2"),
    ]
    assert b["alerts"][0]["consultation_open"] is True
    text = render_text(b)
    assert "consultation open" in text.splitlines()[text.splitlines().index("811292 from CN") + 2]
    assert "consultations 1" in text.splitlines()[1]
    assert lines_after(text, "Consultations and responses") == [
        "  JP  asked to consult on KR/KR-1 (JP-C1)",
        "  US  responded to KR/KR-1 (US-R1)",
        "  JP  responded to KR/KR-1 (JP-R2)",
    ]
    page = render_html(b)
    assert "<li>JP asked to consult on KR/KR-1 (JP-C1)</li>" in page
    assert "<li>US responded to KR/KR-1 (US-R1)</li>" in page


def test_consultations_and_responses_on_earlier_versions_stay_with_the_update() -> None:
    first = state("KR-1", severity="SEVERE")
    first.consults.append(answer("JP", "JP-C1", "CONSULT", NOW - timedelta(minutes=20)))
    first.responses.append(answer("US", "US-R1", "RESPONSE", NOW - timedelta(minutes=19)))
    first.updates.append(answer("KR", "KR-2", "UPDATE", NOW - timedelta(minutes=10)))
    update = state("KR-2", severity="EXTREME", supersedes="KR-1")
    b = board([BoardAlert(update, (), received=False, earlier=(first,))])
    assert [(c["about"], c["alert_id"]) for c in b["consultations"]] == [("KR/KR-1", "JP-C1")]
    assert [(r["about"], r["alert_id"]) for r in b["responses"]] == [("KR/KR-1", "US-R1")]
    (row,) = b["alerts"]
    assert row["consultation_open"] is True and row["earlier_versions"] == ["KR-1"]
    assert "  JP  asked to consult on KR/KR-1 (JP-C1)" in render_text(b).splitlines()
    # Cancelled, the update (and with it the chain) is closed: no consultation is open.
    update.cancel = answer("KR", "KR-X2", "CANCEL", NOW - timedelta(minutes=1), "SITUATION_RESOLVED")
    assert (
        board([BoardAlert(update, (), received=False, earlier=(first,))])["alerts"][0]["consultation_open"]
        is False
    )


def test_a_delivery_this_node_cannot_see_is_not_known_here() -> None:
    s = state("KR-1", recipients=("US", "JP"))
    s.deliveries["US"].receipt_index = None
    at_jp = board([BoardAlert(s, (), received=True)], node="JP")["alerts"][0]["recipients"]
    assert at_jp["US"]["delivered"] is None and at_jp["JP"]["delivered"] is True  # JP sees only its own
    at_kr = board([BoardAlert(s, (), received=False)], node="KR")["alerts"][0]["recipients"]
    assert at_kr["US"]["delivered"] is False  # the origin knows: no receipt
    text = render_text(board([BoardAlert(s, (), received=True)], node="JP"))
    assert "US no ack seen" in text and "not delivered" not in text


def test_an_acknowledgement_signed_after_the_cancel_is_shown() -> None:
    s = state("KR-1")
    cancelled = NOW - timedelta(minutes=10)
    s.cancel = answer("KR", "KR-X1", "CANCEL", cancelled, "SITUATION_RESOLVED")
    s.acks["US"] = answer("US", "US-A1", "ACK", cancelled - timedelta(minutes=1), "RECEIVED")  # before: fine
    s.acks["JP"] = answer("JP", "JP-A1", "ACK", cancelled + timedelta(minutes=1), "RECEIVED")
    b = board([BoardAlert(s, (), received=False)])
    assert b["alerts"][0]["acks_after_cancel"] == ["JP"]
    assert "    US ack; JP ack; ack after cancel: JP" in render_text(b).splitlines()


def test_this_nodes_own_exposure_is_shown_with_a_peer_alert() -> None:
    theirs = state("US-1", origin="US", recipients=("KR", "JP"))
    ours = state("KR-1", items=("282590",))
    b = board(
        [BoardAlert(theirs, (), received=True, exposure=EXPOSURE), BoardAlert(ours, (), received=False)]
    )
    rows = {a["alert_id"]: a for a in b["alerts"]}
    assert rows["US-1"]["local_exposure"] == EXPOSURE and rows["US-1"]["direction"] == "received"
    assert rows["KR-1"]["local_exposure"] is None
    text = render_text(b)
    assert text.count("our exposure:") == 1
    lines = text.splitlines()
    at = lines.index("811292 from CN")
    assert "US/US-1" in lines[at + 1] and lines[at + 3] == f"    our exposure: {EXPOSURE}"
    assert f"<td>{EXPOSURE}</td>" in render_html(b)


# ------------------------------------------------------------------ watchlist
def test_each_watched_pair_shows_its_latest_move_by_announced_date_and_not_a_withdrawn_one() -> None:
    watchlist = Watchlist(
        version=3,
        digest=bytes(32),
        hs_edition="HS2022",
        pairs=(pair("250410", reason="STRATEGIC_ITEM"), pair("282560", reason="POLICY_RISK"), pair("8112")),
        in_force_at=datetime(2024, 2, 1, 8, 0, tzinfo=UTC),
    )
    reports = (
        note("US", "US-P1", "2023-07-03", stage="IN_FORCE"),
        note("JP", "JP-P2", "2023-09-01", measure="EXPORT_QUOTA", stage="ANNOUNCED"),  # the latest standing
        note("KR", "KR-P3", "2023-10-01", measure="EXPORT_BAN", withdrawn=True),  # later, but withdrawn
        note("KR", "KR-P4", "2024-01-01", country="RU"),  # another country
        note("US", "US-P5", "2024-01-02", hs_codes=("282560",), stage="RUMOURED", measure="EXPORT_BAN"),
        note("JP", "JP-P6", "2023-12-31", hs_codes=("2825",)),  # a heading covering 282560, but older
    )
    b = board([], watchlist=watchlist, reports=reports)
    w = b["watchlist"]
    assert w["version"] == 3 and w["in_force_at"] == "2024-02-01T08:00:00+00:00"
    moves = {p["hs_code"]: p["latest_move"] for p in w["pairs"]}
    assert moves["250410"] is None
    assert moves["8112"] == {
        "origin": "JP",
        "alert_id": "JP-P2",
        "measure": "EXPORT_QUOTA",
        "stage": "ANNOUNCED",
        "announced": "2023-09-01",
    }  # the heading 8112 covers the reported 811292
    assert moves["282560"] is not None and moves["282560"]["alert_id"] == "US-P5"

    text = render_text(b)
    assert "no open alerts" in text.splitlines()
    assert lines_after(text, "Watchlist version 3, in force since 2024-02-01") == [
        "  250410 CN  STRATEGIC_ITEM       no reported move",
        "  282560 CN  POLICY_RISK          EXPORT_BAN RUMOURED 2024-01-02 (US)",
        "  8112   CN  SUPPLY_CONCENTRATION EXPORT_QUOTA ANNOUNCED 2023-09-01 (JP)",
    ]
    assert "EXPORT_QUOTA ANNOUNCED 2023-09-01 (JP report)" in render_html(b)

    # with the JP report withdrawn too, the older US one stands
    withdrawn = tuple(
        PolicyNote(**{**_fields(r), "withdrawn": r.alert_id in ("JP-P2", "KR-P3")}) for r in reports
    )
    again = board([], watchlist=watchlist, reports=withdrawn)
    moves = {p["hs_code"]: p["latest_move"] for p in again["watchlist"]["pairs"]}
    assert moves["8112"] is not None and moves["8112"]["alert_id"] == "US-P1"


def _fields(n: PolicyNote) -> dict[str, Any]:
    return {name: getattr(n, name) for name in PolicyNote.__dataclass_fields__}


def test_an_empty_board_says_so() -> None:
    b = board([])
    assert b["open"] == 0 and b["overdue"] == [] and b["groups"] == []
    text = render_text(b)
    assert text.splitlines()[:2] == [
        "EWX situation at KR, 2024-03-05T12:00:00Z",
        "open alerts 0 (KR 0, US 0, JP 0); overdue acks 0; consultations 0",
    ]
    assert "no open alerts" in text and "Watchlist version 0" in text and "  no watchlist in force" in text
    assert "Overdue acknowledgements" not in text and "Consultations and responses" not in text
    assert text.endswith("\n")


def test_more_open_alerts_than_shown_is_said() -> None:
    b = board([BoardAlert(state("KR-1"), (), received=False)], more=True)
    assert b["more"] is True
    assert "(the 1 newest open alerts are shown; more are open: ewx alert list)" in render_text(b)


# ------------------------------------------------------------------ width, HTML, JSON
_ID = st.from_regex(re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*"), fullmatch=True).filter(
    lambda s: len(s) <= limits.MAX_ALERT_ID_CHARS
)
_LONG_ID = st.integers(min_value=1, max_value=limits.MAX_ALERT_ID_CHARS).flatmap(
    lambda n: st.text(alphabet="Aa9._-", min_size=n - 1, max_size=n - 1).map(lambda rest: "K" + rest)
)
_IDS = st.one_of(_ID, _LONG_ID)
_LONGEST = "K" * limits.MAX_ALERT_ID_CHARS
_HEADLINE = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=limits.MAX_HEADLINE_CHARS
)


def _wide_board(
    alert_ids: list[str], headlines: list[str], answer_id: str, *, with_lists: bool
) -> dict[str, Any]:
    alerts = []
    for i, (alert_id, headline) in enumerate(zip(alert_ids, headlines, strict=False)):
        origin: Country = ("KR", "US", "JP")[i % 3]
        s = state(
            alert_id,
            origin=origin,
            severity=("EXTREME", "SEVERE", "MODERATE", "MINOR")[i % 4],
            sent=NOW - timedelta(days=400, seconds=i),
            headline=headline,
            items=("811292", "2825"),
            sources=("CN", "ZZ"),
        )
        peers = s.recipients
        s.errors[peers[0]] = answer(peers[0], answer_id, "ERROR", NOW, "POLICY_REFUSED")
        s.cancel = answer(origin, answer_id, "CANCEL", NOW - timedelta(days=1), "ISSUED_IN_ERROR")
        s.acks[peers[1]] = answer(peers[1], answer_id, "ACK", NOW, "ACTION_TAKEN")
        dues: tuple[AckDue, ...] = (due(s, peers[1], "late", due_at=NOW - timedelta(days=300)),)
        if with_lists:
            s.consults.append(answer(peers[1], answer_id, "CONSULT", NOW))
            s.responses.append(answer(peers[0], answer_id, "RESPONSE", NOW))
            dues += (due(s, peers[0], "overdue", due_at=NOW - timedelta(days=399, hours=23)),)
        alerts.append(BoardAlert(s, dues, received=origin != "KR", exposure=EXPOSURE * 3))
    watchlist = Watchlist(
        version=1234567,
        pairs=(pair("811292", reason="SUPPLY_DIVERSIFIED"), pair("2825", country="RU")),
        in_force_at=NOW,
    )
    reports = (
        note("US", answer_id, "2024-01-01", measure="IMPORT_RESTRICTION", stage="ANNOUNCED"),
        note("JP", answer_id, "2024-01-01", hs_codes=("2825",), country="RU", measure="OTHER_MEASURE"),
    )
    return board(alerts, more=True, watchlist=watchlist, reports=reports)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    alert_ids=st.lists(_IDS, min_size=1, max_size=4, unique=True),
    headlines=st.lists(_HEADLINE, min_size=4, max_size=4),
    answer_id=_IDS,
)
def test_every_text_line_fits_80_columns(alert_ids: list[str], headlines: list[str], answer_id: str) -> None:
    """Alerts, peer cells, exposure and watchlist lines with the longest ids and headlines the schema allows."""
    b = _wide_board(alert_ids, headlines, answer_id, with_lists=False)
    lines = render_text(b).splitlines()
    too_wide = [line for line in lines if len(line) > 80]
    assert too_wide == []
    for a in b["alerts"]:  # a clipped line still starts with what identifies the alert
        assert any(line.startswith(f"  {a['severity']:<8} {a['origin']}/") for line in lines)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    alert_ids=st.lists(_IDS, min_size=1, max_size=4, unique=True),
    headlines=st.lists(_HEADLINE, min_size=4, max_size=4),
    answer_id=_IDS,
)
@example(alert_ids=[_LONGEST], headlines=["x"] * 4, answer_id=_LONGEST)  # the longest ids, always tried
def test_every_text_line_fits_80_columns_with_overdue_consultations_and_responses(
    alert_ids: list[str], headlines: list[str], answer_id: str
) -> None:
    b = _wide_board(alert_ids, headlines, answer_id, with_lists=True)
    assert b["overdue"] and b["consultations"] and b["responses"]
    too_wide = [line for line in render_text(b).splitlines() if len(line) > 80]
    assert too_wide == []


def test_html_escapes_the_headline_and_fetches_nothing() -> None:
    hostile = '<script>alert("x")</script> & <img src=http://evil.example/x.png>'
    s = state("KR-1", headline=hostile, severity="EXTREME")
    s.consults.append(answer("JP", "JP-C1", "CONSULT", NOW))
    theirs = state("US-1", origin="US", recipients=("KR", "JP"), headline="<b>bold</b>")
    b = board(
        [
            BoardAlert(s, (due(s, "JP", "overdue", due_at=NOW - timedelta(minutes=3)),), received=False),
            BoardAlert(theirs, (), received=True, exposure="<i>x</i>"),
        ],
        watchlist=Watchlist(version=1, pairs=(pair("811292"),)),
        reports=(note("US", "US-P1", "2024-01-01"),),
    )
    page = render_html(b)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img src=http://evil" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "&lt;i&gt;x&lt;/i&gt;" in page
    lowered = page.lower()
    assert "<script" not in lowered and "<img" not in lowered and "<b>" not in lowered
    # self-contained: nothing to fetch, no link out, no script
    assert re.search(r"<[^>]*\b(src|href)\s*=", page) is None
    assert "url(" not in lowered and "@import" not in lowered and "<link" not in lowered
    assert re.search(r"<[^>]*\bon[a-z]+\s*=", page) is None  # no event handlers either
    assert '<meta charset="utf-8">' in page and "<style>" in page
    assert "KR/KR-1" in page and "US/US-1" in page and "consultation open" in page


@settings(max_examples=40, deadline=None)
@given(headline=_HEADLINE)
def test_no_headline_changes_the_pages_markup(headline: str) -> None:
    """Whatever a headline holds, the page has the same tags as with a bland one: it is text, never markup."""

    def page(text: str) -> str:
        return render_html(board([BoardAlert(state("KR-1", headline=text), (), received=False)]))

    drawn = page(headline)
    assert re.findall(r"<[^>]*>", drawn) == re.findall(r"<[^>]*>", page("bland"))
    assert f"<td>{html.escape(headline, quote=True)}</td>" in drawn


def test_the_json_round_trips_and_the_renderers_draw_only_from_it() -> None:
    s = state("KR-1", severity="EXTREME", items=("811292", "282590"))
    s.acks["US"] = answer("US", "US-A1", "ACK", NOW - timedelta(minutes=29), "RECEIVED")
    s.consults.append(answer("JP", "JP-C1", "CONSULT", NOW))
    s.responses.append(answer("US", "US-R1", "RESPONSE", NOW))
    theirs = state("JP-1", origin="JP", recipients=("KR", "US"))
    b = board(
        [
            BoardAlert(
                s,
                (
                    due(s, "US", "on_time", due_at=NOW - timedelta(minutes=15), ack=s.acks["US"]),
                    due(s, "JP", "overdue", due_at=NOW - timedelta(minutes=15)),
                ),
                received=False,
            ),
            BoardAlert(
                theirs,
                (due(theirs, "KR", "waiting", due_at=NOW + timedelta(minutes=30)),),
                received=True,
                exposure=EXPOSURE,
            ),
        ],
        watchlist=Watchlist(version=2, digest=b"\x01" * 32, pairs=(pair("811292"),), in_force_at=NOW),
        reports=(note("US", "US-P1", "2024-01-01"),),
    )
    text = json.dumps(b, allow_nan=False)
    again = json.loads(text)
    assert again == b
    assert render_text(again) == render_text(b) and render_html(again) == render_html(b)
    assert again["node"] == "KR" and again["time"] == "2024-03-05T12:00:00Z"
    assert again["overdue"][0]["recipient"] == "JP" and again["overdue"][0]["due"] == "2024-03-05T11:45:00Z"
    assert again["watchlist"]["digest"] == "01" * 32
    kr = again["alerts"][0]
    assert kr["recipients"]["US"] == {
        "delivered": True,
        "acknowledged": "RECEIVED",
        "ack_status": "on_time",
        "due": "2024-03-05T11:45:00Z",
        "error": None,
        "responded": True,
        "consulted": False,
    }
    assert kr["recipients"]["JP"]["consulted"] is True and kr["recipients"]["JP"]["responded"] is False
    assert kr["items"] == ["811292", "282590"] and kr["source_countries"] == ["CN"]
