"""The watchlist chain in the audit: node/trilateral's fold over the logs' authentic messages (issue 12).

Two checks, both pure functions of the messages the audit found authentic
(`verify_loaded` hands over each log's usable ALERT_SENT and ALERT_RECEIVED
entries, in log order; entries it left out, for a signature that does not
verify, an unknown key, a malformed or misattributed entry, are not here, nor
those signed with a key expired or revoked when they were logged, so a vote
whose signature fails is no signature):

1. The union. Every message of every given log, each once (by digest), the
   logs in federation order and each in its own order, is folded by
   `node.trilateral.fold_watchlist` with the trust file's members; the fold is
   `complete` (its in-flight kinds are errors, not info) only when every
   member's log is given. Each of its findings becomes an audit finding
   `watchlist_<kind>`, with the trilateral finding's severity, at the entry of
   the message it is about: in its origin's log (ALERT_SENT) when that log is
   given, else in the first given log that holds it.

2. Each member's own claims. A member proposes a version on the version in
   force and accepts only a proposal on the version in force (node/trilateral
   `plan_proposal`, `plan_vote`): each proposal and each ACCEPT is the
   sender's claim that the predecessor is in force. A node holds every
   message it acts on in its own log, so for every WATCHLIST_PROPOSAL and
   ACCEPT a log's node sent (ALERT_SENT), the fold of the authentic entries
   of that same log before it must show the predecessor signed by every
   member; if not, `watchlist_unsigned_in_force` (an error: no message in
   flight can mend what the node held when it signed). An ACCEPT of a
   proposal that log does not hold before it is `watchlist_vote_unknown_proposal`
   there (an error, where the union alone would call it info: in flight).

So a version that one log treats as in force without every member's valid
signature is a finding even when the other logs are not given: a vote
entry whose signature was tampered with, or one forged under a member's key
id, counts for nothing, and the node's next proposal or ACCEPT built on that
version is reported where it was logged (tests/goldens, `unsigned_in_force`).

Only ACTUAL messages make the watchlist (as in the node's own ledger):
EXERCISE and TEST proposals and votes count as other messages.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple

from node.audit._text import short_hash
from node.ids import COUNTRIES, Country
from node.message import Alert
from node.trilateral import (
    FINDING_KINDS,
    WATCHLIST_TYPES,
    FindingKind,
    WatchlistLedger,
    WatchlistState,
)

__all__ = [
    "KEY_NOT_VALID_KINDS",
    "UNSIGNED_IN_FORCE",
    "WATCHLIST_KINDS",
    "Logged",
    "WatchlistAuditFinding",
    "audit_kind",
    "fold_logs",
    "is_watchlist",
    "referenced",
    "watchlist_findings",
]

Severity = Literal["error", "info"]

UNSIGNED_IN_FORCE: Final = "watchlist_unsigned_in_force"

KEY_NOT_VALID_KINDS: Final = frozenset({"expired_key", "revoked_key"})
"""Entry findings after which a message, though its signature verifies, signs nothing on the
watchlist: its key was outside its validity, or revoked, when it was logged (a node would
have refused it, inbound check 3). The audit leaves such entries out of both checks."""

_PREFIX: Final = "watchlist_"


def audit_kind(kind: FindingKind) -> str:
    """The audit's name for a trilateral finding kind: `watchlist_<kind>`."""
    return _PREFIX + kind.value


WATCHLIST_KINDS: Final[dict[str, str]] = {
    **{audit_kind(kind): description for kind, description in FINDING_KINDS.items()},
    UNSIGNED_IN_FORCE: "a member proposed or accepted a successor of a watchlist version that its own log, "
    "before that entry, does not show signed by every member with valid signatures",
}
"""The audit's watchlist finding kinds, with their one-line descriptions."""


class Logged(NamedTuple):
    """One authentic alert entry of one log, as the watchlist checks see it."""

    log_index: int
    """The entry's index in its log."""
    sent: bool
    """ALERT_SENT (the node's own message), else ALERT_RECEIVED."""
    origin: Country
    alert_id: str
    msg_type: str
    status: str
    digest: bytes
    body: Alert | None
    """The decoded alert of a watchlist proposal or vote; None for any other message."""


@dataclass(frozen=True, slots=True)
class WatchlistAuditFinding:
    """A watchlist finding placed at one entry of one log."""

    node: Country
    index: int | None
    kind: str
    detail: str
    severity: Severity = "error"


def is_watchlist(msg_type: str) -> bool:
    """True for WATCHLIST_PROPOSAL and WATCHLIST_VOTE, the messages whose decoded alert the checks keep."""
    return msg_type in WATCHLIST_TYPES


def referenced(bodies: Iterable[Alert]) -> set[bytes]:
    """The digests the watchlist messages reference: the other messages the fold must know of
    (a vote on an ALERT is told from a vote on nothing by them)."""
    return {ref.digest for alert in bodies for ref in alert.references}


def _stub(m: Logged) -> Alert:
    # The ledger reads a message that is not a watchlist proposal or vote by its
    # id, type and status only (it remembers it as "another message"); building
    # the whole alert again for that is not worth it.
    fields: dict[str, Any] = {
        "alert_id": m.alert_id,
        "origin": m.origin,
        "msg_type": m.msg_type,
        "status": m.status,
    }
    return Alert.model_construct(**fields)


def _alert(m: Logged) -> Alert:
    return m.body if m.body is not None else _stub(m)


_ORDER: Final = {c: i for i, c in enumerate(COUNTRIES)}


def _in_order(logs: Mapping[Country, Sequence[Logged]]) -> list[tuple[Country, Sequence[Logged]]]:
    return sorted(logs.items(), key=lambda item: _ORDER.get(item[0], len(_ORDER)))


def fold_logs(
    logs: Mapping[Country, Sequence[Logged]], *, members: Collection[Country], complete: bool
) -> WatchlistState:
    """The trilateral fold over the union of the logs' messages (each once, each log in its order)."""
    ledger = WatchlistLedger(members=frozenset(members))
    for _, messages in _in_order(logs):
        for m in messages:
            ledger.add(m.origin, m.digest, _alert(m))
    return ledger.state(complete=complete)


def _where(logs: Mapping[Country, Sequence[Logged]]) -> dict[bytes, tuple[Country, int]]:
    """Each digest's entry: its origin's ALERT_SENT if that log is given, else its first holder's."""
    where: dict[bytes, tuple[Country, int]] = {}
    for node, messages in _in_order(logs):
        for m in messages:
            if m.sent:
                where[m.digest] = (node, m.log_index)
            else:
                where.setdefault(m.digest, (node, m.log_index))
    return where


def watchlist_findings(
    logs: Mapping[Country, Sequence[Logged]], *, members: Collection[Country]
) -> list[WatchlistAuditFinding]:
    """Both checks of the module docstring over the given logs' authentic messages (each log's
    watchlist messages and the messages they reference, in log order)."""
    member_set = frozenset(members)
    complete = member_set <= set(logs)
    state = fold_logs(logs, members=member_set, complete=complete)
    where = _where(logs)
    found: dict[tuple[Country, int | None, str], WatchlistAuditFinding] = {}

    def keep(f: WatchlistAuditFinding) -> None:
        # One finding per entry and kind: a member's own log proves an error
        # that the union, not knowing it is complete, calls info.
        key = (f.node, f.index, f.kind)
        held = found.get(key)
        if held is None or (held.severity == "info" and f.severity == "error"):
            found[key] = f

    for f in state.findings:
        node, index = where.get(f.digest, (f.origin, None))
        keep(
            WatchlistAuditFinding(
                node=node,
                index=index,
                kind=audit_kind(f.kind),
                detail=f"{f.origin} {f.alert_id}: {f.detail}",
                severity=f.severity,
            )
        )
    for node, messages in _in_order(logs):
        if node in member_set:
            for claim in _claims(node, messages, member_set):
                keep(claim)
    return list(found.values())


# ------------------------------------------------------------------ each member's own claims
def _claims(
    node: Country, messages: Sequence[Logged], members: frozenset[Country]
) -> list[WatchlistAuditFinding]:
    """What `node` signed as built on the version in force, against its own log before each message."""
    ledger = WatchlistLedger(members=members)
    out: list[WatchlistAuditFinding] = []
    for m in messages:
        alert = m.body
        if m.sent and alert is not None and alert.status == ledger.status and _claims_in_force(alert):
            found = _check_claim(node, m, alert, ledger.state(), members)
            if found is not None:
                out.append(found)
        ledger.add(m.origin, m.digest, _alert(m))
    return out


def _claims_in_force(alert: Alert) -> bool:
    """A proposal on a predecessor, or an ACCEPT: signed only while a version is in force for the sender."""
    if alert.msg_type == "WATCHLIST_PROPOSAL":
        return bool(alert.references)
    return alert.vote is not None and alert.vote.decision == "ACCEPT" and bool(alert.references)


def _check_claim(
    node: Country, m: Logged, alert: Alert, state: WatchlistState, members: frozenset[Country]
) -> WatchlistAuditFinding | None:
    ref = alert.references[0]
    before = f"{node}'s log before #{m.log_index}"
    if alert.msg_type == "WATCHLIST_PROPOSAL":
        version = alert.watchlist.version if alert.watchlist is not None else "?"
        act = f"{node} {alert.alert_id}: proposes version {version} on"
        predecessor: bytes = ref.digest
        named = f"{ref.origin} {ref.alert_id} ({short_hash(ref.digest)})"
    else:
        record = state.by_digest(ref.digest)
        if record is None:
            return WatchlistAuditFinding(
                node=node,
                index=m.log_index,
                kind=audit_kind(FindingKind.VOTE_UNKNOWN_PROPOSAL),
                detail=f"{node} {alert.alert_id}: accepts {ref.origin} {ref.alert_id} "
                f"({short_hash(ref.digest)}), which {before} does not hold",
            )
        if record.predecessor is None:
            return None
        act = f"{node} {alert.alert_id}: accepts version {record.version} ({ref.origin} {ref.alert_id}), built on"
        predecessor = record.predecessor
        held = state.by_digest(predecessor)
        named = (
            f"{held.origin} {held.alert_id} ({short_hash(predecessor)})"
            if held is not None
            else short_hash(predecessor)
        )
    pred = state.by_digest(predecessor)
    if pred is None:
        detail = f"{act} {named}, which {before} does not hold"
    else:
        missing = [
            c for c in sorted(members, key=lambda c: _ORDER.get(c, len(_ORDER))) if c not in pred.signers
        ]
        if not missing:
            return None
        detail = (
            f"{act} version {pred.version} {named}, which {before} shows signed by "
            f"{', '.join(pred.signers)} only: no valid signature of {', '.join(missing)}"
        )
    return WatchlistAuditFinding(node=node, index=m.log_index, kind=UNSIGNED_IN_FORCE, detail=detail)
