"""The situation board: what a duty officer sees of the federation from one node (issue 13, item 3).

`build_board` assembles it from what the node already holds, all pure:
every open alert (from all three origins) with its folded state and its
acknowledgement deadlines, this node's own exposure to each peer alert (the
early-warning engine computed it at home; it is in no message), and the
watchlist in force with the latest policy move reported on each pair. Its
JSON (`Board.to_json`) is what the operator socket answers; `render_text`
and `render_html` draw that JSON, so `ewx board`, `--json` and `--html` show
one thing three ways.

The terminal table is plain text, not rich: the board is read on a duty
officer's terminal, in a pipe to a pager or a log, and in a test, and plain
lines read the same in all of them, with no dependency and no terminal
probing; `--watch` redraws it with two ANSI control sequences.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from node.clock import iso
from node.ids import COUNTRIES, Country
from node.message import WatchPair
from node.situation.deadlines import AckDue
from node.situation.state import AlertState
from node.trilateral import covers

__all__ = ["BoardAlert", "PolicyNote", "build_board", "render_html", "render_text"]

_SEVERITY_RANK: Final = {"EXTREME": 0, "SEVERE": 1, "MODERATE": 2, "MINOR": 3}
_ORDER: Final = {c: i for i, c in enumerate(COUNTRIES)}
TEXT_WIDTH: Final = 80
"""The terminal table fits an 80-column terminal."""


@dataclass(frozen=True, slots=True)
class BoardAlert:
    """One open alert on the board."""

    state: AlertState
    dues: tuple[AckDue, ...]
    received: bool
    """A peer's alert (else this node's own)."""
    exposure: str | None = None
    """This node's own exposure to a peer alert, one line of bands (node.ews.bands.exposure_summary)."""
    earlier: tuple[AlertState, ...] = ()
    """The versions this one supersedes, newest first: their consultations and responses are
    about the same situation and stay on the board."""

    @property
    def chain(self) -> tuple[AlertState, ...]:
        """This version, then the ones it supersedes."""
        return (self.state, *self.earlier)


@dataclass(frozen=True, slots=True)
class PolicyNote:
    """A policy move a mission reported, as the board shows it beside a watched pair."""

    origin: Country
    alert_id: str
    country: str
    hs_codes: tuple[str, ...]
    measure: str
    stage: str
    announced: str
    withdrawn: bool = False


def _span(delta: timedelta) -> str:
    """`2d03h`, `1h05m`, `12m`, `40s`: a duration, short (a negative one as 0s)."""
    seconds = max(0, int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def _age(now: datetime, then: datetime | None) -> str:
    """How long ago `then` was, as _span writes it; `?` when not known."""
    return "?" if then is None else _span(now - then)


def _latest_move(pair: WatchPair, notes: Sequence[PolicyNote]) -> PolicyNote | None:
    matching = [
        n
        for n in notes
        if not n.withdrawn
        and n.country == pair.country
        and any(covers(pair.hs_code, code) for code in n.hs_codes)
    ]
    return max(matching, key=lambda n: (n.announced, _ORDER.get(n.origin, 9), n.alert_id), default=None)


def build_board(
    *,
    node: Country,
    now: datetime,
    alerts: Sequence[BoardAlert],
    more: bool,
    watchlist: Mapping[str, Any],
    pairs: Sequence[WatchPair],
    reports: Sequence[PolicyNote],
) -> dict[str, Any]:
    """The board as JSON-ready data (what `ewx board --json` prints).

    `alerts` are the open alerts (`more`: there were more than the node folds,
    limits.SITUATION_ALERTS_MAX); `watchlist` is the version in force as
    Watchlist.to_json gives it and `pairs` its pairs; `reports` every policy
    report the node holds.
    """
    ranked = sorted(
        alerts,
        key=lambda a: (
            _SEVERITY_RANK.get(a.state.severity or "", 9),
            -(a.state.sent.timestamp() if a.state.sent else 0),
            a.state.alert_id,
        ),
    )
    rows = [_alert_json(a, now, node) for a in ranked]
    groups: dict[tuple[str, str], list[str]] = {}
    for a in ranked:
        sources = a.state.source_countries or ("ZZ",)
        for item in a.state.items or ("?",):
            for country in sources:
                groups.setdefault((item, country), []).append(f"{a.state.origin}/{a.state.alert_id}")
    overdue = [d.to_json() for a in ranked for d in a.dues if d.status == "overdue"]
    consultations = [
        {"about": f"{v.origin}/{v.alert_id}", **c.to_json()}
        for a in ranked
        for v in a.chain
        for c in v.consults
    ]
    responses = [
        {"about": f"{v.origin}/{v.alert_id}", **r.to_json()}
        for a in ranked
        for v in a.chain
        for r in v.responses
    ]
    watch = []
    for pair in pairs:
        latest = _latest_move(pair, reports)
        watch.append(
            {
                "hs_code": pair.hs_code,
                "country": pair.country,
                "reason": pair.reason,
                "latest_move": None
                if latest is None
                else {
                    "origin": latest.origin,
                    "alert_id": latest.alert_id,
                    "measure": latest.measure,
                    "stage": latest.stage,
                    "announced": latest.announced,
                },
            }
        )
    by_origin = {c: sum(1 for a in ranked if a.state.origin == c) for c in COUNTRIES}
    return {
        "node": node,
        "time": iso(now),
        "open": len(ranked),
        "more": more,
        "open_by_origin": by_origin,
        "alerts": rows,
        "groups": [
            {"hs_code": item, "country": country, "alerts": keys}
            for (item, country), keys in sorted(groups.items())
        ],
        "overdue": overdue,
        "consultations": consultations,
        "responses": responses,
        "watchlist": {**dict(watchlist), "pairs": watch},
    }


def _alert_json(a: BoardAlert, now: datetime, me: Country) -> dict[str, Any]:
    s = a.state
    peers: dict[str, Any] = {}
    dues = {d.recipient: d for d in a.dues}
    for recipient in s.recipients:
        delivery = s.deliveries[recipient]
        ack = s.acks.get(recipient)
        due = dues.get(recipient)
        peers[recipient] = {
            # Only the origin (by receipts) and the recipient itself can know; elsewhere: null.
            "delivered": delivery.delivered if me in (s.origin, recipient) else None,
            "acknowledged": None if ack is None else ack.reason,
            "ack_status": None if due is None else due.status,
            "due": None if due is None else iso(due.due),
            "error": None if recipient not in s.errors else s.errors[recipient].reason,
            "responded": recipient in s.responded_by,
            "consulted": recipient in s.consulted_by,
        }
    return {
        "origin": s.origin,
        "alert_id": s.alert_id,
        "msg_type": s.msg_type,
        "direction": "received" if a.received else "sent",
        "status": s.status,
        "severity": s.severity,
        "category": s.category,
        "headline": s.headline,
        "items": list(s.items),
        "source_countries": list(s.source_countries),
        "sent": None if s.sent is None else iso(s.sent),
        "age": _age(now, s.sent),
        "expires": None if s.expires is None else iso(s.expires),
        "supersedes": s.supersedes,
        "recipients": peers,
        "consultation_open": s.state == "active" and any(v.consults for v in a.chain),
        "earlier_versions": [v.alert_id for v in a.earlier],
        "acks_after_cancel": [x.by for x in s.acks_after_cancel],
        "local_exposure": a.exposure,
    }


# ------------------------------------------------------------------ text
def _peer_cell(me: str, recipient: str, p: Mapping[str, Any], now: datetime) -> str:
    who = f"{recipient}{'*' if recipient == me else ''}"
    if p["error"]:
        return f"{who} error {p['error']}"
    status = p["ack_status"]
    if p["acknowledged"]:
        late = " LATE" if status == "late" else ""
        return f"{who} ack{late}"
    if status == "overdue" and p["due"]:
        return f"{who} ACK OVERDUE {_age(now, datetime.fromisoformat(p['due']))}"
    if status == "waiting" and p["due"]:
        return f"{who} ack due in {_span(datetime.fromisoformat(p['due']) - now)}"
    if p["delivered"] is None:
        return f"{who} no ack seen"  # delivered or not, only that recipient and the origin can tell
    return f"{who} {'delivered' if p['delivered'] else 'not delivered'}"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def render_text(board: Mapping[str, Any]) -> str:
    """The board as plain lines that fit an 80-column terminal."""
    now = datetime.fromisoformat(board["time"])
    me = board["node"]
    by_origin = ", ".join(f"{c} {n}" for c, n in board["open_by_origin"].items())
    lines = [
        f"EWX situation at {me}, {board['time']}",
        f"open alerts {board['open']} ({by_origin}); overdue acks {len(board['overdue'])}; "
        f"consultations {len(board['consultations'])}",
    ]
    if board["more"]:
        lines.append(f"(the {board['open']} newest open alerts are shown; more are open: ewx alert list)")
    alerts = {f"{a['origin']}/{a['alert_id']}": a for a in board["alerts"]}
    for group in board["groups"]:
        lines.append("")
        lines.append(f"{group['hs_code']} from {group['country']}")
        for key in group["alerts"]:
            a = alerts[key]
            lines.append(
                _clip(
                    f"  {a['severity'] or '?':<8} {key:<18} {a['age']:>6}  {a['headline'] or ''}", TEXT_WIDTH
                )
            )
            cells = [_peer_cell(me, r, p, now) for r, p in a["recipients"].items()]
            extra = []
            if a["consultation_open"]:
                extra.append("consultation open")
            if a["acks_after_cancel"]:
                extra.append(f"ack after cancel: {','.join(a['acks_after_cancel'])}")
            lines.append(_clip("    " + "; ".join(cells + extra), TEXT_WIDTH))
            if a["local_exposure"]:
                lines.append(_clip(f"    our exposure: {a['local_exposure']}", TEXT_WIDTH))
    if not board["alerts"]:
        lines += ["", "no open alerts"]
    if board["overdue"]:
        lines += ["", "Overdue acknowledgements"]
        for d in board["overdue"]:
            due = datetime.fromisoformat(d["due"])
            lines.append(
                _clip(
                    f"  {d['recipient']:<3} {d['severity']:<8} due {d['due'][11:16]}Z, overdue "
                    f"{_age(now, due):<6} {d['origin']}/{d['alert_id']}",
                    TEXT_WIDTH,
                )
            )
    if board["consultations"] or board["responses"]:
        lines += ["", "Consultations and responses"]
        for c in board["consultations"]:
            lines.append(
                _clip(f"  {c['by']:<3} asked to consult on {c['about']} ({c['alert_id']})", TEXT_WIDTH)
            )
        for r in board["responses"]:
            lines.append(_clip(f"  {r['by']:<3} responded to {r['about']} ({r['alert_id']})", TEXT_WIDTH))
    w = board["watchlist"]
    lines += [
        "",
        f"Watchlist version {w['version']}"
        + (f", in force since {w['in_force_at'][:10]}" if w.get("in_force_at") else ""),
    ]
    for p in w["pairs"]:
        move = p["latest_move"]
        latest = (
            f"{move['measure']} {move['stage']} {move['announced']} ({move['origin']})"
            if move
            else "no reported move"
        )
        lines.append(_clip(f"  {p['hs_code']:<6} {p['country']:<3} {p['reason']:<20} {latest}", TEXT_WIDTH))
    if not w["pairs"]:
        lines.append("  no watchlist in force")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ HTML
_CSS: Final = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em; color: #111827; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid #e5e7eb; vertical-align: top; }
th { background: #f3f4f6; }
.EXTREME { color: #991b1b; font-weight: 700; } .SEVERE { color: #c2410c; font-weight: 600; }
.MODERATE { color: #a16207; } .MINOR { color: #4b5563; }
.overdue { color: #b91c1c; font-weight: 600; } .ok { color: #15803d; }
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def render_html(board: Mapping[str, Any]) -> str:
    """The board as one self-contained page: inline CSS, no script, nothing fetched."""
    now = datetime.fromisoformat(board["time"])
    me = board["node"]
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>EWX situation at {_e(me)}</title><style>{_CSS}</style></head><body>",
        f"<h1>EWX situation at {_e(me)}, {_e(board['time'])}</h1>",
        f"<p>{board['open']} open alerts; {len(board['overdue'])} overdue acknowledgements; "
        f"{len(board['consultations'])} consultation requests.</p>",
        "<h2>Open alerts</h2><table><thead><tr><th>item / source</th><th>severity</th><th>alert</th>"
        "<th>age</th><th>headline</th><th>recipients</th><th>our exposure</th></tr></thead><tbody>",
    ]
    alerts = {f"{a['origin']}/{a['alert_id']}": a for a in board["alerts"]}
    for group in board["groups"]:
        for key in group["alerts"]:
            a = alerts[key]
            cells = []
            for r, p in a["recipients"].items():
                cell = _peer_cell(me, r, p, now)
                css = (
                    "overdue" if "OVERDUE" in cell or "LATE" in cell else ("ok" if p["acknowledged"] else "")
                )
                cells.append(f'<span class="{css}">{_e(cell)}</span>')
            if a["consultation_open"]:
                cells.append("consultation open")
            out.append(
                f"<tr><td>{_e(group['hs_code'])} / {_e(group['country'])}</td>"
                f'<td class="{_e(a["severity"])}">{_e(a["severity"])}</td><td>{_e(key)}</td>'
                f"<td>{_e(a['age'])}</td><td>{_e(a['headline'])}</td><td>{'<br>'.join(cells)}</td>"
                f"<td>{_e(a['local_exposure'] or '')}</td></tr>"
            )
    out.append("</tbody></table>")
    if board["overdue"]:
        out.append(
            "<h2>Overdue acknowledgements</h2><table><thead><tr><th>peer</th><th>alert</th>"
            "<th>severity</th><th>due</th></tr></thead><tbody>"
        )
        for d in board["overdue"]:
            out.append(
                f'<tr class="overdue"><td>{_e(d["recipient"])}</td><td>{_e(d["origin"])}/{_e(d["alert_id"])}</td>'
                f"<td>{_e(d['severity'])}</td><td>{_e(d['due'])}</td></tr>"
            )
        out.append("</tbody></table>")
    if board["consultations"] or board["responses"]:
        out.append("<h2>Consultations and responses</h2><ul>")
        for c in board["consultations"]:
            out.append(f"<li>{_e(c['by'])} asked to consult on {_e(c['about'])} ({_e(c['alert_id'])})</li>")
        for r in board["responses"]:
            out.append(f"<li>{_e(r['by'])} responded to {_e(r['about'])} ({_e(r['alert_id'])})</li>")
        out.append("</ul>")
    w = board["watchlist"]
    out.append(
        f"<h2>Watchlist version {_e(w['version'])}</h2><table><thead><tr><th>HS</th><th>country</th>"
        "<th>reason</th><th>latest reported move</th></tr></thead><tbody>"
    )
    for p in w["pairs"]:
        move = p["latest_move"]
        latest = (
            f"{move['measure']} {move['stage']} {move['announced']} ({move['origin']} report)"
            if move
            else "-"
        )
        out.append(
            f"<tr><td>{_e(p['hs_code'])}</td><td>{_e(p['country'])}</td><td>{_e(p['reason'])}</td>"
            f"<td>{_e(latest)}</td></tr>"
        )
    out.append("</tbody></table></body></html>")
    return "\n".join(out) + "\n"
