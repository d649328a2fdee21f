"""The trilateral agreements as pure logic: the watchlist chain and the missions' policy-move reports.

Owns what issue 12 adds on top of the message types WATCHLIST_PROPOSAL,
WATCHLIST_VOTE and POLICY_REPORT (their schema is node/message's):
- `_watchlist`: the fold over logged proposals and votes that yields every
  version, the one in force, the history and the findings (forks, votes on
  unknown or other versions, votes by the proposer or a non-member, changes
  that do not fit their predecessor), the check of one message before it is
  stored, and what a member may propose or vote next;
- `_policy`: a report as a row of the receiver's own policy events (marked
  with its origin) and the severity step of a detection on a watchlist pair.

No store, no clock, no I/O: the service, the audit and the CLI feed it
messages and read its results (docs/trilateral.md).

May import: node's shared modules (errors, ids, limits, ...) and node.message (with node/wire).
"""

from node.trilateral._policy import (
    EWS_MEASURE,
    EWS_STAGE,
    SEVERITIES,
    PolicyEvent,
    event_of,
    policy_event,
    stepped,
    watched_pairs,
    watchlist_severity,
)
from node.trilateral._watchlist import (
    FINDING_KINDS,
    IN_FLIGHT,
    WATCHLIST_TYPES,
    FindingKind,
    Message,
    ProposalPlan,
    VersionRecord,
    VersionState,
    VotePlan,
    Watchlist,
    WatchlistFinding,
    WatchlistLedger,
    WatchlistState,
    covers,
    fold_watchlist,
    plan_proposal,
    plan_vote,
)

__all__ = [
    "EWS_MEASURE",
    "EWS_STAGE",
    "FINDING_KINDS",
    "IN_FLIGHT",
    "SEVERITIES",
    "WATCHLIST_TYPES",
    "FindingKind",
    "Message",
    "PolicyEvent",
    "ProposalPlan",
    "VersionRecord",
    "VersionState",
    "VotePlan",
    "Watchlist",
    "WatchlistFinding",
    "WatchlistLedger",
    "WatchlistState",
    "covers",
    "event_of",
    "fold_watchlist",
    "plan_proposal",
    "plan_vote",
    "policy_event",
    "stepped",
    "watched_pairs",
    "watchlist_severity",
]
