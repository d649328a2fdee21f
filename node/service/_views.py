"""NodeService's part for the operator's views: alerts, one alert, status."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from node import limits
from node.clock import iso
from node.errors import RefusedOperation
from node.ews.bands import exposure_summary
from node.ids import Country
from node.message import Alert, Info, alert_from_bytes, pb
from node.service._context import ServiceContext
from node.service._links import plain_error
from node.service._results import (
    AlertDetail,
    DeliveryState,
    Followup,
    ListedAlert,
    NodeStatus,
    PeerStatus,
)
from node.situation.board import BoardAlert, PolicyNote, build_board
from node.situation.cap import cap_filename, to_cap
from node.situation.deadlines import AckDue, ack_dues
from node.situation.entries import AlertEntry, ReceiptEntry, read_entry
from node.situation.settings import deadlines_from_minutes
from node.situation.state import INFO_TYPES, AlertState, fold
from node.store import AlertFilter, ListingKeys, Reads, StoredAlert
from node.trilateral import Watchlist

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(when: datetime) -> int:
    """`when` as whole microseconds since the epoch (exact: no float), as the listing columns hold times."""
    return (when - _EPOCH) // timedelta(microseconds=1)


def scope_of(info: Info | pb.Info) -> tuple[list[str], list[str]]:
    """What a peer alert's exposure is checked over (node/ews/exposure.py Scope): its info
    block's HS codes and source countries, from the decoded model (as received) or the
    protobuf (as stored); the model keeps both as they are on the wire."""
    return [item.hs_code for item in info.items], list(info.source_countries)


def listing_keys(alert: Alert) -> ListingKeys:
    """What the store's listing filters on, from a signed alert's content."""
    reference = alert.references[0] if alert.references else None
    return ListingKeys(
        sent_us=micros(alert.sent),
        expires_us=micros(alert.info.expires) if alert.info is not None else None,
        reference=(reference.origin, reference.alert_id) if reference is not None else None,
    )


def listing_keys_of(envelope: bytes) -> ListingKeys:
    """listing_keys of a stored SignedAlert's bytes."""
    return listing_keys(alert_from_bytes(pb.SignedAlert.FromString(envelope).alert))


@dataclass(frozen=True, slots=True)
class AlertPage:
    """One page of `ewx alert list`; `next` is the cursor of the page after it, if `more`."""

    alerts: tuple[ListedAlert, ...]
    more: bool
    next: str | None

    def to_json(self) -> dict[str, Any]:
        """The operator socket's reply."""
        return {"alerts": [a.to_json() for a in self.alerts], "more": self.more, "next": self.next}


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    """The in-memory half of `ewx status`, taken on the store's thread (Views.status_snapshot)."""

    now: datetime
    links: dict[Country, tuple[bool | None, datetime | None, str | None, datetime | None]]
    certificate_not_after: datetime
    signing_keys: dict[str, Any]
    log_size: int
    log_root: str
    trust_updates: dict[Country, int]
    catch_up: dict[Country, tuple[tuple[int, int] | None, int | None]] = field(default_factory=dict)
    """Per peer: (this node's pull from it: first and latest seq, the peer's pull from us: up to seq)."""


@dataclass(frozen=True, slots=True)
class BoardSnapshot:
    """The store-thread half of `ewx board`: the time, the watchlist in force, the policy reports."""

    now: datetime
    watchlist: Watchlist
    reports: tuple[PolicyNote, ...]


def _our_log(cosigned: tuple[int, str] | None) -> dict[str, Any] | None:
    """The newest checkpoint of this node's log a peer cosigned: its size and when the cosignature came."""
    return None if cosigned is None else {"size": cosigned[0], "at": cosigned[1]}


def _their_log(state: tuple[str, int, bytes, str] | None) -> dict[str, Any] | None:
    """The newest checkpoint of a peer's log this node cosigned: its size and root."""
    return None if state is None else {"size": state[1], "root": state[2].hex()}


def _catch_up(state: tuple[tuple[int, int] | None, int | None] | None, sent: int) -> dict[str, Any] | None:
    """`ewx status`'s catch-up in progress with one peer, either way; None when there is none."""
    if state is None or state == (None, None):
        return None
    ours, theirs = state
    return {
        "from_peer": None if ours is None else {"first_seq": ours[0], "at_seq": ours[1]},
        "peer_from_us": None if theirs is None else {"at_seq": theirs, "of": sent},
    }


class Views:
    """What `ewx alert list`, `alert show` and `status` show."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def alert_page(self, query: AlertFilter) -> AlertPage:
        """One page of own and received alerts with their delivery and acknowledgement state.

        Reads through a connection of its own (Store.reader), so the operator
        runs it in a worker thread and the event loop goes on answering peers
        (issue 10, item 7). Every query it makes is by an index, and a page
        costs the same wherever it is in the log.
        """
        now = self.ctx.clock()
        with self.ctx.store.reader() as reads:
            rows, more = reads.alert_page(query, now_us=micros(now))
            alerts = tuple(self._listed(reads, row, now) for row in rows)
        cursor = str(rows[-1].log_index) if more and rows else None
        return AlertPage(alerts=alerts, more=more, next=cursor)

    def list_alerts(self, query: AlertFilter | None = None) -> list[ListedAlert]:
        """Every alert `query` selects, page by page (for callers inside the node and tests)."""
        query = query or AlertFilter(limit=limits.OPERATOR_PAGE_MAX)
        listed: list[ListedAlert] = []
        while True:
            page = self.alert_page(query)
            listed.extend(page.alerts)
            if page.next is None:
                return listed
            query = replace(query, after=int(page.next))

    def folded(self, reads: Reads, row: StoredAlert, now: datetime) -> AlertState:
        """The state of a stored ALERT or UPDATE: node.situation.fold over the entries of this
        node's log that name it (its own, its follow-ups', its receipts), as `ewx audit
        replay` folds the exported log."""
        alert = self.ctx.decode(row)
        own = row.via is None
        receipts_for = tuple((d.recipient, d.seq) for d in alert.deliveries) if own else ()
        read = [
            read_entry(self.ctx.me, index, data)
            for index, data in reads.entries_naming(row.origin, row.alert_id, receipts_for=receipts_for)
        ]
        alerts = [e for e in read if isinstance(e, AlertEntry)]
        if not any(e.index == row.log_index for e in alerts):
            # Its entry is not in this log (a store restored or re-joined without it): the
            # stored copy of the signed alert is the same bytes, so fold that instead.
            logged = datetime.fromisoformat(row.received_at) if row.received_at else alert.sent
            alerts.append(
                AlertEntry(
                    node=self.ctx.me,
                    index=row.log_index,
                    logged_at=logged,
                    sent=own,
                    peer=row.via,
                    alert=alert,
                    digest=bytes(row.digest),
                )
            )
            alerts.sort(key=lambda e: e.index)
        receipts = [e for e in read if isinstance(e, ReceiptEntry)]
        states: dict[tuple[Country, str], AlertState] = fold(alerts, receipts, as_of=now)
        return states.get((row.origin, row.alert_id)) or AlertState(origin=row.origin, alert_id=row.alert_id)

    def ack_dues(self, state: AlertState, now: datetime) -> list[AckDue]:
        """Each recipient's acknowledgement of `state` against this node's configured deadlines."""
        return ack_dues(state, deadlines_from_minutes(self.ctx.config.ack_deadline_minutes), now=now)

    def _listed(self, reads: Reads, row: StoredAlert, now: datetime) -> ListedAlert:
        alert = self.ctx.decode(row)
        follow = tuple(
            Followup(
                origin=later.origin, alert_id=later.alert_id, msg_type=decoded.msg_type, reason=decoded.reason
            )
            for later, decoded in ((r, self.ctx.decode(r)) for r in reads.followups(row.origin, row.alert_id))
        )
        dues: tuple[AckDue, ...] = ()
        flags: tuple[str, ...] = ()
        consultation_open = False
        if alert.msg_type in INFO_TYPES:
            folded = self.folded(reads, row, now)
            state = folded.state
            dues = tuple(self.ack_dues(folded, now))
            flags = tuple(f"ack_after_cancel:{a.by}" for a in folded.acks_after_cancel)
            consultation_open = folded.consultation_open
        else:
            # Not an alert of its own: the store's listing rule (node/store/_store.py, _STATE_SQL).
            state = "cancelled" if any(f.msg_type == "CANCEL" for f in follow) else "active"
        exposure = None
        if row.via is not None and alert.info is not None:
            kept = reads.exposure(row.origin, row.alert_id)
            exposure = exposure_summary(json.loads(kept) if kept else None)
        info = alert.info
        return ListedAlert(
            alert_id=row.alert_id,
            origin=row.origin,
            msg_type=alert.msg_type,
            status=alert.status,
            sent=iso(alert.sent),
            via=row.via,
            received_at=row.received_at,
            log_index=row.log_index,
            digest=row.digest.hex(),
            state=state,
            references=tuple((r.origin, r.alert_id) for r in alert.references),
            responses=follow,
            deliveries={
                d.recipient: self._delivery(reads, row, d.recipient, d.seq)
                if row.via is None
                else DeliveryState(d.seq)
                for d in alert.deliveries
            },
            category=None if info is None else info.category,
            severity=None if info is None else info.severity,
            headline=None if info is None else info.headline,
            expires=None if info is None else iso(info.expires),
            items=() if info is None else tuple(i.hs_code for i in info.items),
            reason=alert.reason,
            local_exposure=exposure,
            acks=dues,
            flags=flags,
            consultation_open=consultation_open,
        )

    @staticmethod
    def _delivery(reads: Reads, row: StoredAlert, recipient: Country, seq: int) -> DeliveryState:
        ob = reads.outbox_row(recipient, seq)
        if ob is None or ob.alert_id != row.alert_id:
            return DeliveryState(seq)
        return DeliveryState(
            seq=ob.seq,
            delivered_at=ob.delivered_at,
            attempts=ob.attempts,
            last_error=ob.last_error,
            outbox=True,
        )

    def open_situation(
        self, reads: Reads, now: datetime, *, deadlines_only: bool = False
    ) -> tuple[list[BoardAlert], bool]:
        """The newest open ALERTs and UPDATEs (at most SITUATION_ALERTS_MAX), each folded with its
        deadlines and (unless `deadlines_only`) this node's exposure and its earlier versions;
        and whether more are open."""
        rows, more = reads.open_alerts(now_us=micros(now), limit=limits.SITUATION_ALERTS_MAX)
        out: list[BoardAlert] = []
        for row in rows:
            state = self.folded(reads, row, now)
            if state.state != "active":
                continue  # the listing columns found it open; the fold of its entries has the last word
            if deadlines_only:
                out.append(
                    BoardAlert(
                        state=state, dues=tuple(self.ack_dues(state, now)), received=row.via is not None
                    )
                )
                continue
            exposure = None
            if row.via is not None:
                kept = reads.exposure(row.origin, row.alert_id)
                exposure = exposure_summary(json.loads(kept) if kept else None)
            out.append(
                BoardAlert(
                    state=state,
                    dues=tuple(self.ack_dues(state, now)),
                    received=row.via is not None,
                    exposure=exposure,
                    earlier=self._earlier_versions(reads, state, now),
                )
            )
        return out, more

    def _earlier_versions(self, reads: Reads, state: AlertState, now: datetime) -> tuple[AlertState, ...]:
        """The versions an UPDATE supersedes, newest first (at most limits.MAX_VERSIONS_SHOWN)."""
        earlier: list[AlertState] = []
        seen = {state.alert_id}
        ref = state.supersedes
        while ref is not None and ref not in seen and len(earlier) < limits.MAX_VERSIONS_SHOWN:
            seen.add(ref)
            row = reads.alert(state.origin, ref)
            if row is None:
                break
            version = self.folded(reads, row, now)
            earlier.append(version)
            ref = version.supersedes
        return tuple(earlier)

    def board_snapshot(self, reports: list[dict[str, Any]]) -> BoardSnapshot:
        """What the board shows from the trilateral layer, taken on the store's thread; `reports`
        are the policy reports as Trilateral.policy_reports gives them."""
        notes = tuple(
            PolicyNote(
                origin=r["origin"],
                alert_id=r["alert_id"],
                country=r["country"],
                hs_codes=tuple(r["hs_codes"]),
                measure=r["measure"],
                stage=r["stage"],
                announced=r["announced"],
                withdrawn=r["withdrawn_by"] is not None,
            )
            for r in reports
        )
        return BoardSnapshot(
            now=self.ctx.clock(), watchlist=self.ctx.watchlist.state().current, reports=notes
        )

    def board_from(self, snap: BoardSnapshot) -> dict[str, Any]:
        """`ewx board`: the situation as this node sees it (node.situation.board), as JSON."""
        with self.ctx.store.reader() as reads:
            alerts, more = self.open_situation(reads, snap.now)
        return build_board(
            node=self.ctx.me,
            now=snap.now,
            alerts=alerts,
            more=more,
            watchlist=snap.watchlist.to_json(),
            pairs=snap.watchlist.pairs,
            reports=snap.reports,
        )

    def overdue_acks(self, reads: Reads, now: datetime) -> list[AckDue]:
        """Every acknowledgement overdue now among the open alerts the board folds."""
        alerts, _ = self.open_situation(reads, now, deadlines_only=True)
        return [d for a in alerts for d in a.dues if d.status == "overdue"]

    def newly_overdue(
        self, since: datetime, now: datetime, *, logged_from: int | None = None
    ) -> list[AckDue]:
        """The acknowledgements whose deadline fell in (since, now] and that are overdue at `now`,
        and those of alerts logged at `logged_from` or after that were overdue on arrival.

        Found by the signed sent time (alerts_by_sent): only alerts sent within
        the longest deadline of `since` can have a deadline after it. An alert
        that reached this node after its deadline (held up on the way) has its
        deadline before `since`: it is found by its place in the log instead.
        """
        deadlines = deadlines_from_minutes(self.ctx.config.ack_deadline_minutes)
        if not deadlines:
            return []
        longest, shortest = max(deadlines.values()), min(deadlines.values())
        found: list[AckDue] = []
        with self.ctx.store.reader() as reads:
            # Fell due in the window; or, logged since the last watch, due before it.
            # The two are disjoint by `due`, so nothing is returned twice.
            looked_at = [(reads.alerts_sent_between(micros(since - longest), micros(now - shortest)), False)]
            if logged_from is not None:
                looked_at.append((reads.alerts_logged_from(logged_from), True))
            for rows, arrived_late in looked_at:
                for row in rows:
                    found.extend(
                        d
                        for d in ack_dues(self.folded(reads, row, now), deadlines, now=now)
                        if d.status == "overdue" and (d.due <= since if arrived_late else since < d.due <= now)
                    )
        return found

    def watch_deadlines(self) -> list[AckDue]:
        """The acknowledgements that became overdue since the last watch, each returned once ever.

        The time watched up to, and the log's size then, are kept in the
        store, so a restart neither repeats what was logged nor skips what
        fell due while the node was down, or what arrived already overdue.
        The first watch of a store starts from now.
        """
        now = self.ctx.clock()
        kept = self.ctx.store.deadlines_watched()
        since = now if kept is None else datetime.fromisoformat(kept)
        if since >= now and kept is not None:
            return []  # the clock stepped back (or stood still): what is up to `since` was logged
        logged_from = None if kept is None else self.ctx.store.deadlines_watched_log_size()
        found = self.newly_overdue(since, now, logged_from=logged_from) if since < now else []
        with self.ctx.store.transaction() as tx:
            tx.set_deadlines_watched(iso(now))
        return found

    def cap_document(self, origin: Country, alert_id: str) -> tuple[str, bytes]:
        """A stored message as a CAP 1.2 document (node.situation.cap): its feed file name, its bytes.

        RefusedOperation for an unknown alert or a type CAP has no form for.
        """
        stored = self.ctx.store.alert(origin, alert_id)
        if stored is None:
            raise RefusedOperation(f"no alert {alert_id} from {origin} is known to {self.ctx.me}")
        alert = self.ctx.decode(stored)
        referenced: dict[tuple[str, str], datetime] = {}
        for ref in alert.references:
            target = self.ctx.store.alert(ref.origin, ref.alert_id)
            if target is not None:
                referenced[(ref.origin, ref.alert_id)] = self.ctx.decode(target).sent
        return cap_filename(alert), to_cap(alert, referenced=referenced)

    def evidence(self) -> dict[str, Any]:
        """The newest kept evidence (at most MAX_EVIDENCE_LISTED rows) and how much is kept in all."""
        with self.ctx.store.reader() as reads:
            rows, total = reads.evidence_page(limits.MAX_EVIDENCE_LISTED)
        return {"evidence": rows, "total": total, "more": total > len(rows)}

    def show(self, origin: Country, alert_id: str) -> AlertDetail:
        """One stored alert in full."""
        stored = self.ctx.store.alert(origin, alert_id)
        if stored is None:
            raise RefusedOperation(f"no alert {alert_id} from {origin} is known to {self.ctx.me}")
        alert = self.ctx.decode(stored)
        exposure = None
        if stored.via is not None and alert.info is not None:
            kept = self.ctx.store.exposure(origin, alert_id)
            # This node's own data, shown here only: it is in no message and no log entry.
            exposure = json.loads(kept) if kept else None
        return AlertDetail(
            alert=alert,
            digest=stored.digest.hex(),
            log_index=stored.log_index,
            received=stored.via is not None,
            local_exposure=exposure,
        )

    def alert_scope(self, origin: str, alert_id: str) -> tuple[list[str], list[str]] | None:
        """A stored alert's HS codes and source countries, None if it has no info block."""
        stored = self.ctx.store.alert(origin, alert_id)  # type: ignore[arg-type]
        if stored is None:
            return None
        # Read from the protobuf, not decoded and validated again: the envelope was when it
        # was stored, and the model keeps codes and countries as they are on the wire. A
        # pydantic decode here was 7% of a receiving node's CPU in a stream of deliveries.
        alert = pb.Alert.FromString(pb.SignedAlert.FromString(stored.envelope).alert)
        if not alert.HasField("info"):
            return None
        return scope_of(alert.info)

    def alert_scopes(
        self, alerts: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[list[str], list[str]]]:
        """`alert_scope` of each (origin, alert id), in one turn of the store's thread; those
        with no info block (or not stored) are left out."""
        found = {}
        for origin, alert_id in alerts:
            scope = self.alert_scope(origin, alert_id)
            if scope is not None:
                found[(origin, alert_id)] = scope
        return found

    def record_exposures(self, exposures: Sequence[tuple[str, str, str]]) -> None:
        """Keep the local exposures computed for peer alerts, (origin, alert id, JSON text) each."""
        self.ctx.store.set_exposures(exposures, iso(self.ctx.clock()))  # type: ignore[arg-type]

    def _signing_key_status(self, now: datetime) -> dict[str, Any]:
        """Per purpose: the key this node signs with, until when, and whether to rotate it soon."""
        keys: dict[str, Any] = {}
        for purpose, signer in self.ctx.signers.items():
            entry = self.ctx.trust.key(signer.key_id)
            if entry is None:
                continue
            ends = min(entry.not_after, entry.revoked_from or entry.not_after)
            days_left = (ends - now).total_seconds() / 86400
            keys[purpose] = {
                "key_id": signer.key_id,
                "valid_until": iso(ends),
                "days_left": round(days_left, 1),
                "usable": entry.valid_at(now),
                "expiring_soon": days_left < limits.CERTIFICATE_WARNING_DAYS,
            }
        return keys

    def status_snapshot(self) -> StatusSnapshot:
        """What status shows from memory (links, keys, the log's head), taken on the store's thread.

        These change as the store's thread commits; the rest of status is read
        from the store and may run in a worker thread (status_from).
        """
        now = self.ctx.clock()
        certificate = (
            self.ctx.certificate_in_use()
            if self.ctx.certificate_in_use
            else self.ctx.config.tls_certificate()
        )
        return StatusSnapshot(
            now=now,
            links={
                peer: (link.reachable, link.last_ok, link.last_error, link.down_since)
                for peer, link in ((p, self.ctx.links[p]) for p in self.ctx.peers)
            },
            certificate_not_after=certificate.not_valid_after_utc,
            signing_keys=self._signing_key_status(now),
            log_size=self.ctx.store.log_size,
            log_root=self.ctx.store.log_root().hex(),
            trust_updates={member: self.ctx.trust.serial_of(member) for member in self.ctx.trust.countries},
            catch_up={
                peer: (link.catching_up, link.pulled_to if link.is_pulling(time.monotonic()) else None)
                for peer, link in ((p, self.ctx.links[p]) for p in self.ctx.peers)
            },
        )

    def status(self) -> NodeStatus:
        """Per peer: reachability, sequences, backlog; and the log's size and root."""
        return self.status_from(self.status_snapshot(), self.ctx.store)

    def status_from(self, snap: StatusSnapshot, reads: Reads | None = None) -> NodeStatus:
        """status() from a snapshot, reading the store through `reads` (default: a reader of its own)."""
        if reads is None:
            with self.ctx.store.reader() as own:
                return self.status_from(snap, own)
        now = snap.now
        peers: dict[Country, PeerStatus] = {}
        cosigned = reads.cosigned()
        cosigned_at = reads.cosigned_at()
        overdue = self.overdue_acks(reads, now)
        for peer, (reachable, last_ok, last_error, down_since) in snap.links.items():
            backlog = reads.backlog(peer)
            oldest = None
            if backlog.oldest is not None:
                oldest = (now - datetime.fromisoformat(backlog.oldest.created_at)).total_seconds()
            peers[peer] = PeerStatus(
                reachable=reachable,
                last_ok=iso(last_ok) if last_ok else None,
                last_error=last_error or (backlog.oldest.last_error if backlog.oldest else None),
                last_seq_sent=reads.last_seq(self.ctx.me, peer),
                last_seq_delivered=backlog.last_delivered,
                last_seq_received=reads.last_seq(peer, self.ctx.me),
                backlog=backlog.waiting,
                oldest_undelivered_seconds=oldest,
                last_checkpoint_cosigned=cosigned.get(peer),
                overdue_acks=tuple(f"{d.origin}/{d.alert_id}" for d in overdue if d.recipient == peer),
                down_since=iso(down_since) if down_since and reachable is False else None,
                problem=plain_error(last_error or (backlog.oldest.last_error if backlog.oldest else None)),
                our_log_cosigned=_our_log(cosigned_at.get(peer)),
                their_log_cosigned=_their_log(reads.witness_state(peer)),
                catch_up=_catch_up(snap.catch_up.get(peer), reads.last_seq(self.ctx.me, peer)),
            )
        days_left = (snap.certificate_not_after - now).total_seconds() / 86400
        return NodeStatus(
            node=self.ctx.me,
            time=iso(now),
            certificate_not_after=iso(snap.certificate_not_after),
            certificate_days_left=round(days_left, 1),
            certificate_expiring_soon=days_left < limits.CERTIFICATE_WARNING_DAYS,
            signing_keys=snap.signing_keys,
            log_size=snap.log_size,
            log_root=snap.log_root,
            published_size=min((cosigned.get(p, 0) for p in self.ctx.peers), default=0),
            checkpoint_at=reads.newest_checkpoint_signed_at(),
            evidence=reads.count("evidence"),
            history_missing=reads.history_missing(),
            history_unchecked_since=reads.history_unchecked(),
            trust_updates=snap.trust_updates,
            overdue_acks=tuple(f"{d.origin}/{d.alert_id}" for d in overdue if d.recipient == self.ctx.me),
            peers=peers,
        )
