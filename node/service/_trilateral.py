"""The node service's part for the trilateral layer: the joint watchlist and policy-move reports.

The rules are node/trilateral's (pure): what the next proposal or vote may
be, and the state a node's proposals and votes make. This part feeds that
fold from the store (the ledger in the context, kept after every commit),
publishes what the operator asks through the one publish path (so a
proposal, a vote or a report is signed, logged, sequenced, delivered,
receipted, witnessed and audited like an alert), and reads the reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from node.errors import UsageError
from node.ids import Country
from node.message import MsgType, WatchPair
from node.service._context import ServiceContext
from node.service._publishing import Published, Publishing
from node.trilateral import PolicyEvent, WatchlistState, plan_proposal, plan_vote, policy_event


class Trilateral:
    """Watchlist proposals and votes, policy-move reports."""

    def __init__(self, ctx: ServiceContext, publishing: Publishing) -> None:
        self.ctx = ctx
        self.publishing = publishing

    def watchlist_state(self) -> WatchlistState:
        """The watchlist as this node's messages make it: versions, the one in force, findings."""
        return self.ctx.watchlist.state()

    def propose_watchlist(
        self,
        *,
        add: Sequence[WatchPair | dict[str, Any]] = (),
        remove: Sequence[WatchPair | dict[str, Any]] = (),
        hs_edition: str | None = None,
        idempotency_key: str | None = None,
    ) -> Published:
        """Propose the next watchlist version: the one in force with `add` and `remove` applied.

        RefusedOperation where it does not fit the version in force (node/trilateral plan_proposal).
        """
        plan = plan_proposal(self.watchlist_state(), add=add, remove=remove, hs_edition=hs_edition)
        reference = None if plan.predecessor is None else (plan.predecessor.origin, plan.predecessor.alert_id)
        return self.publishing.publish(
            msg_type=MsgType.WATCHLIST_PROPOSAL,
            reference=reference,
            watchlist=plan.change.model_dump(mode="json"),
            idempotency_key=idempotency_key,
        )

    def vote_watchlist(
        self,
        *,
        origin: Country,
        alert_id: str,
        decision: str,
        reject_reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> Published:
        """Accept or reject `origin`'s proposal `alert_id`; refused where an honest member would not vote so."""
        if decision not in ("ACCEPT", "REJECT"):
            raise UsageError(f"a vote is ACCEPT or REJECT, not {decision!r}")
        plan = plan_vote(
            self.watchlist_state(),
            me=self.ctx.me,
            origin=origin,
            alert_id=alert_id,
            decision=decision,
            reject_reason=reject_reason,
        )
        return self.publishing.publish(
            msg_type=MsgType.WATCHLIST_VOTE,
            reference=(plan.reference.origin, plan.reference.alert_id),
            vote=plan.vote.model_dump(mode="json"),
            idempotency_key=idempotency_key,
        )

    def report_policy(
        self,
        policy: dict[str, Any],
        *,
        status: str = "ACTUAL",
        recipients: Sequence[Country] | None = None,
        idempotency_key: str | None = None,
    ) -> Published:
        """Report a host country's policy move (coded fields only) to the peers."""
        return self.publishing.publish(
            msg_type=MsgType.POLICY_REPORT,
            status=status,
            recipients=recipients,
            policy=policy,
            idempotency_key=idempotency_key,
        )

    def policy_reports(self) -> list[dict[str, Any]]:
        """Every policy report this node holds, own and received, in log order, as JSON."""
        out: list[dict[str, Any]] = []
        for stored in self.ctx.store.alerts_by_type((MsgType.POLICY_REPORT,)):
            alert = self.ctx.decode(stored)
            if alert.policy is None:  # the schema requires the body; never expected
                continue
            out.append(
                {
                    "withdrawn_by": self._withdrawal(stored.origin, stored.alert_id),
                    "origin": stored.origin,
                    "alert_id": stored.alert_id,
                    "status": alert.status,
                    "sent": alert.sent.isoformat(),
                    "direction": "sent" if stored.via is None else "received",
                    "digest": stored.digest.hex(),
                    **alert.policy.model_dump(mode="json"),
                }
            )
        return out

    def _withdrawal(self, origin: Country, alert_id: str) -> str | None:
        """The id of the CANCEL with which `origin` withdrew its report `alert_id`, if it did."""
        for later in self.ctx.store.followups(origin, alert_id):
            if later.origin == origin and later.msg_type == MsgType.CANCEL:
                return later.alert_id
        return None

    def policy_events(self) -> list[PolicyEvent]:
        """The reports as the early-warning engine's policy events: ACTUAL announcements not withdrawn, in log order."""
        events = []
        for stored in self.ctx.store.alerts_by_type((MsgType.POLICY_REPORT,)):
            if self._withdrawal(stored.origin, stored.alert_id) is not None:
                continue
            event = policy_event(stored.origin, stored.digest, self.ctx.decode(stored))
            if event is not None:
                events.append(event)
        return events
