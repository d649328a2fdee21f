"""The watchlist chain: a fold over signed proposals and votes that says which version is in force.

A WATCHLIST_PROPOSAL names its version number and, through its one
reference, the proposal of its predecessor (origin, id, digest); version 1
names none. A WATCHLIST_VOTE references the proposal it answers (origin, id,
digest) and restates the version. A version's signatures are its proposer's
(the proposal itself) and each member's ACCEPT; it is *complete* once every
member of the federation has signed it. The version in force is the end of
the chain of complete versions that starts at version 1, each naming the one
before: two complete versions at one number are a fork, and the chain stops
before them (docs/trilateral.md).

Nothing here depends on the order in which messages of different origins
arrive: every conclusion is drawn from the whole set, so the three nodes,
which log the same messages in different orders, reach the same state. The
only order that counts is each origin's own (its sequence): of two votes by
one member on one proposal, the first counts.

Pure: no store, no clock, no I/O. The fold is rebuilt from the messages in a
few milliseconds for hundreds of versions, so callers keep the messages and
ask again rather than patching a state.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import ValidationError

from node import limits
from node.errors import RefusedOperation, UsageError
from node.ids import COUNTRIES, Country
from node.message import Alert, AlertRef, MsgType, WatchlistChange, WatchlistVote, WatchPair

Severity = Literal["error", "info"]
Message = tuple[Country, bytes, Alert]
"""(origin, digest of the signed alert bytes, the alert), as logged."""

PairKey = tuple[str, str]
"""(hs_code, country): what identifies a pair on the watchlist."""


class VersionState(StrEnum):
    """Where one proposed version stands."""

    PENDING = "pending"
    """Not (yet) signed by every member, nor rejected."""
    IN_FORCE = "in_force"
    """The current watchlist."""
    SUPERSEDED = "superseded"
    """Was in force; a later version on the chain replaced it."""
    REJECTED = "rejected"
    """A member rejected it: it can never be in force (votes are final)."""
    LAPSED = "lapsed"
    """Another version at its number, or a later one, came into force first."""
    FORKED = "forked"
    """Complete, but so is another version at its number (or it descends from such a one)."""
    INVALID = "invalid"
    """Breaks a rule of the chain (see its findings); it can never be in force."""


class FindingKind(StrEnum):
    """Every kind of watchlist finding; FINDING_KINDS describes each."""

    PROPOSAL_BY_NON_MEMBER = "proposal_by_non_member"
    VOTE_BY_NON_MEMBER = "vote_by_non_member"
    NOT_ADDRESSED_TO_ALL = "not_addressed_to_all"
    UNKNOWN_PREDECESSOR = "unknown_predecessor"
    BAD_PREDECESSOR = "bad_predecessor"
    BAD_VERSION = "bad_version"
    EDITION_CHANGE = "edition_change"
    REMOVES_ABSENT = "removes_absent"
    ADDS_PRESENT = "adds_present"
    TOO_MANY_PAIRS = "too_many_pairs"
    VOTE_UNKNOWN_PROPOSAL = "vote_unknown_proposal"
    VOTE_OTHER_VERSION = "vote_other_version"
    VOTE_NOT_ON_PROPOSAL = "vote_not_on_proposal"
    VOTE_BY_PROPOSER = "vote_by_proposer"
    VOTE_REPEATED = "vote_repeated"
    PREDECESSOR_NOT_IN_FORCE = "predecessor_not_in_force"
    FORK = "fork"


FINDING_KINDS: Final[dict[FindingKind, str]] = {
    FindingKind.PROPOSAL_BY_NON_MEMBER: "a watchlist proposal signed by a country that is not a member",
    FindingKind.VOTE_BY_NON_MEMBER: "a watchlist vote signed by a country that is not a member",
    FindingKind.NOT_ADDRESSED_TO_ALL: "a proposal or vote not addressed to every other member",
    FindingKind.UNKNOWN_PREDECESSOR: "a proposal naming a predecessor no message holds",
    FindingKind.BAD_PREDECESSOR: "a proposal whose predecessor reference matches no proposal, or an invalid one",
    FindingKind.BAD_VERSION: "a proposal whose version is not its predecessor's plus one",
    FindingKind.EDITION_CHANGE: "a proposal whose HS edition differs from its predecessor's",
    FindingKind.REMOVES_ABSENT: "a proposal removing a pair its predecessor does not hold",
    FindingKind.ADDS_PRESENT: "a proposal adding a pair its predecessor already holds",
    FindingKind.TOO_MANY_PAIRS: f"a proposal that would hold more than {limits.MAX_WATCHLIST_PAIRS} pairs",
    FindingKind.VOTE_UNKNOWN_PROPOSAL: "a vote on a proposal no message holds",
    FindingKind.VOTE_OTHER_VERSION: "a vote whose digest or version is not that of the proposal it names",
    FindingKind.VOTE_NOT_ON_PROPOSAL: "a vote referencing a message that is not a watchlist proposal",
    FindingKind.VOTE_BY_PROPOSER: "a vote by the proposer on its own proposal",
    FindingKind.VOTE_REPEATED: "a second vote by one member on one proposal (the first counts)",
    FindingKind.PREDECESSOR_NOT_IN_FORCE: "a version signed by every member while its predecessor is not in force",
    FindingKind.FORK: "two versions at one number both signed by every member",
}

WATCHLIST_TYPES: Final = (MsgType.WATCHLIST_PROPOSAL, MsgType.WATCHLIST_VOTE)
"""The message types the watchlist is made of (a ledger is fed these)."""

IN_FLIGHT: Final = frozenset(
    {FindingKind.UNKNOWN_PREDECESSOR, FindingKind.VOTE_UNKNOWN_PROPOSAL, FindingKind.PREDECESSOR_NOT_IN_FORCE}
)
"""Kinds that one node's messages may show only because a message is still on its way (a proposal
relayed late, a vote not yet delivered): severity `info` unless the fold is told it has everything."""


@dataclass(frozen=True, slots=True)
class WatchlistFinding:
    """One finding about one signed message: its signer, id and digest, what is wrong."""

    kind: FindingKind
    origin: Country
    alert_id: str
    digest: bytes
    detail: str
    severity: Severity = "error"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: the digest in hex."""
        return {
            "kind": self.kind.value,
            "origin": self.origin,
            "alert_id": self.alert_id,
            "digest": self.digest.hex(),
            "severity": self.severity,
            "detail": self.detail,
        }


def _short(digest: bytes) -> str:
    return digest.hex()[:16]


def covers(pair_code: str, code: str) -> bool:
    """True iff HS codes `pair_code` and `code` overlap: equal, or one is the other's 4-digit heading."""
    return pair_code == code or code.startswith(pair_code) or pair_code.startswith(code)


@dataclass(frozen=True, slots=True)
class Watchlist:
    """One version of the watchlist: its pairs, sorted by (hs_code, country). Version 0: none yet."""

    version: int = 0
    digest: bytes | None = None
    """The digest of the proposal that made this version (None: version 0)."""
    hs_edition: str | None = None
    pairs: tuple[WatchPair, ...] = ()
    in_force_at: datetime | None = None
    """The sent time of the last signature that completed it."""

    def watched(self, hs_code: str, country: str) -> WatchPair | None:
        """The pair that watches `hs_code` from `country` (a 4-digit pair watches its 6-digit codes), or None."""
        return next((p for p in self.pairs if p.country == country and covers(p.hs_code, hs_code)), None)

    def keys(self) -> frozenset[PairKey]:
        """The pairs' (hs_code, country) keys."""
        return frozenset(p.key for p in self.pairs)

    def to_json(self) -> dict[str, Any]:
        """As `ewx watchlist show --json` would print it."""
        return {
            "version": self.version,
            "digest": None if self.digest is None else self.digest.hex(),
            "hs_edition": self.hs_edition,
            "in_force_at": None if self.in_force_at is None else self.in_force_at.isoformat(),
            "pairs": [p.model_dump() for p in self.pairs],
        }


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """One proposed version and what became of it."""

    version: int
    digest: bytes
    origin: Country
    alert_id: str
    sent: datetime
    predecessor: bytes | None
    """The digest the proposal names as its predecessor (None for version 1)."""
    hs_edition: str
    add: tuple[WatchPair, ...]
    remove: tuple[WatchPair, ...]
    signers: tuple[Country, ...]
    """Who signed it: the proposer and every member whose (first) vote accepted it."""
    rejections: tuple[tuple[Country, str], ...]
    """(member, reject reason) of every member whose (first) vote rejected it."""
    state: VersionState
    pairs: tuple[WatchPair, ...] | None
    """The watchlist it makes, None if its chain cannot be resolved (an unknown or invalid link)."""
    in_force_at: datetime | None = None
    """When it came into force (on the chain only)."""

    def voted(self) -> frozenset[Country]:
        """The members whose vote counted, either way, and the proposer."""
        return frozenset(self.signers) | {member for member, _ in self.rejections}

    def to_json(self) -> dict[str, Any]:
        """As `ewx watchlist history --json` would print it."""
        return {
            "version": self.version,
            "digest": self.digest.hex(),
            "origin": self.origin,
            "alert_id": self.alert_id,
            "sent": self.sent.isoformat(),
            "predecessor": None if self.predecessor is None else self.predecessor.hex(),
            "hs_edition": self.hs_edition,
            "add": [p.model_dump() for p in self.add],
            "remove": [p.model_dump() for p in self.remove],
            "signers": list(self.signers),
            "rejections": [{"member": m, "reason": r} for m, r in self.rejections],
            "state": self.state.value,
            "in_force_at": None if self.in_force_at is None else self.in_force_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class WatchlistState:
    """What the messages say: the version in force, every version, and every finding."""

    members: tuple[Country, ...]
    current: Watchlist
    versions: tuple[VersionRecord, ...]
    """Every proposal of the folded status, by version, then sent time, origin and id."""
    findings: tuple[WatchlistFinding, ...]

    @property
    def forked(self) -> bool:
        """True iff two versions at one number are both complete (the chain stops before them)."""
        return any(f.kind is FindingKind.FORK for f in self.findings)

    @property
    def errors(self) -> tuple[WatchlistFinding, ...]:
        """The findings of severity `error`."""
        return tuple(f for f in self.findings if f.severity == "error")

    def pending(self) -> tuple[VersionRecord, ...]:
        """The versions still waiting for votes."""
        return tuple(v for v in self.versions if v.state is VersionState.PENDING)

    def find(self, origin: Country, alert_id: str) -> VersionRecord | None:
        """The version proposed as `alert_id` by `origin`, or None."""
        return next((v for v in self.versions if v.origin == origin and v.alert_id == alert_id), None)

    def by_digest(self, digest: bytes) -> VersionRecord | None:
        """The version whose proposal has this digest, or None."""
        return next((v for v in self.versions if v.digest == digest), None)

    def to_json(self) -> dict[str, Any]:
        """The whole state, JSON-ready."""
        return {
            "members": list(self.members),
            "current": self.current.to_json(),
            "forked": self.forked,
            "versions": [v.to_json() for v in self.versions],
            "findings": [f.to_json() for f in self.findings],
        }


# ------------------------------------------------------------------ the fold
@dataclass(slots=True)
class _Proposal:
    origin: Country
    digest: bytes
    alert: Alert
    change: WatchlistChange
    position: int

    @property
    def ref(self) -> AlertRef | None:
        return self.alert.references[0] if self.alert.references else None


@dataclass(slots=True)
class _Vote:
    origin: Country
    digest: bytes
    alert: Alert
    vote: WatchlistVote
    ref: AlertRef
    position: int


@dataclass(slots=True)
class _Other:
    """Any other message: enough to tell a vote on it from a vote on nothing."""

    origin: Country
    alert_id: str
    msg_type: str
    status: str


_ORDER: Final = {c: i for i, c in enumerate(COUNTRIES)}


def _members_sorted(members: Iterable[Country]) -> tuple[Country, ...]:
    return tuple(sorted(set(members), key=lambda c: _ORDER.get(c, len(_ORDER))))


@dataclass
class WatchlistLedger:
    """The watchlist messages one node holds, in log order, and the state they make.

    `add` every logged message (other types are remembered by digest only, so a
    vote on one of them is told from a vote on nothing); `state()` folds them.
    `check` says, before a message is stored, what it would break that no later
    message can mend (the inbound refusal of hostile input, issue 12 item 5).
    Only messages of `status` take part (an EXERCISE proposal never changes the
    ACTUAL watchlist); the others count as "other messages".
    """

    members: frozenset[Country]
    status: str = "ACTUAL"
    _proposals: dict[bytes, _Proposal] = field(default_factory=dict, repr=False)
    _votes: dict[bytes, _Vote] = field(default_factory=dict, repr=False)
    _others: dict[bytes, _Other] = field(default_factory=dict, repr=False)
    _ids: dict[tuple[Country, str], list[bytes]] = field(default_factory=dict, repr=False)
    """(origin, alert id) -> the digests of the proposals with that id (two: equivocation)."""
    _position: int = field(default=0, repr=False)

    def add(self, origin: Country, digest: bytes, alert: Alert) -> None:
        """Take one logged message; the same digest twice is taken once."""
        if digest in self._proposals or digest in self._votes or digest in self._others:
            return
        self._position += 1
        if (
            alert.status == self.status
            and alert.msg_type == "WATCHLIST_PROPOSAL"
            and alert.watchlist is not None
        ):
            self._proposals[digest] = _Proposal(origin, digest, alert, alert.watchlist, self._position)
            self._ids.setdefault((origin, alert.alert_id), []).append(digest)
        elif (
            alert.status == self.status
            and alert.msg_type == "WATCHLIST_VOTE"
            and alert.vote is not None
            and alert.references
        ):
            self._votes[digest] = _Vote(
                origin, digest, alert, alert.vote, alert.references[0], self._position
            )
        else:
            self._others[digest] = _Other(origin, alert.alert_id, alert.msg_type, alert.status)

    def extend(self, messages: Iterable[Message]) -> None:
        """Take messages in log order."""
        for origin, digest, alert in messages:
            self.add(origin, digest, alert)

    # -------------------------------------------------------------- before storing
    def check(self, origin: Country, digest: bytes, alert: Alert) -> list[WatchlistFinding]:
        """The definite findings `alert` would add: none that a message still in flight could mend.

        A vote on a proposal this node does not hold yet, or a proposal naming
        a predecessor it does not hold, is not refused: it may have overtaken
        the message it names (different origins, different links). An empty
        list for any message that is not a watchlist message of this status.
        """
        if alert.status != self.status or alert.msg_type not in ("WATCHLIST_PROPOSAL", "WATCHLIST_VOTE"):
            return []
        if digest in self._proposals or digest in self._votes:
            return []  # a duplicate: stored once already
        trial = WatchlistLedger(
            members=self.members,
            status=self.status,
            _proposals=dict(self._proposals),
            _votes=dict(self._votes),
            _others=self._others,  # read only: the trial adds a watchlist message, never another
            _ids={k: list(v) for k, v in self._ids.items()},
            _position=self._position,
        )
        trial.add(origin, digest, alert)
        return [
            f for f in trial.state(complete=False).findings if f.digest == digest and f.kind not in IN_FLIGHT
        ]

    # -------------------------------------------------------------- the fold
    def state(self, *, complete: bool = False) -> WatchlistState:
        """Fold every message taken so far.

        `complete`: the messages are all there are (an audit over every
        member's log), so a finding of the IN_FLIGHT kinds is an error, not info.
        """
        return _Fold(self, complete=complete).run()


def fold_watchlist(
    messages: Iterable[Message],
    *,
    members: Collection[Country],
    status: str = "ACTUAL",
    complete: bool = False,
) -> WatchlistState:
    """The watchlist state that `messages` ((origin, digest, alert), in log order) make.

    `members`: the federation's members (the trust file's); a version is in
    force only once every one of them has signed it.
    """
    ledger = WatchlistLedger(members=frozenset(members), status=status)
    ledger.extend(messages)
    return ledger.state(complete=complete)


class _Fold:
    """One evaluation of a ledger: the steps of docs/trilateral.md, "The fold", in order."""

    def __init__(self, ledger: WatchlistLedger, *, complete: bool) -> None:
        self.ledger = ledger
        self.members = ledger.members
        self.complete = complete
        self.findings: list[WatchlistFinding] = []
        self.valid: dict[bytes, bool] = {}
        self.predecessor: dict[bytes, _Proposal | None] = {}
        self.pairs: dict[bytes, dict[PairKey, WatchPair] | None] = {}
        self.accepts: dict[bytes, dict[Country, _Vote]] = {}
        self.rejects: dict[bytes, dict[Country, _Vote]] = {}

    def finding(self, kind: FindingKind, origin: Country, alert_id: str, digest: bytes, detail: str) -> None:
        severity: Severity = "info" if kind in IN_FLIGHT and not self.complete else "error"
        self.findings.append(WatchlistFinding(kind, origin, alert_id, digest, detail, severity))

    def _flag(self, p: _Proposal, kind: FindingKind, detail: str) -> None:
        self.finding(kind, p.origin, p.alert.alert_id, p.digest, detail)

    def _addressed_to_all(self, origin: Country, alert: Alert) -> bool:
        return self.members - {origin} <= set(alert.recipients)

    def run(self) -> WatchlistState:
        proposals = sorted(self.ledger._proposals.values(), key=lambda p: (p.change.version, p.position))
        for p in proposals:  # by version: a predecessor is settled before its successors
            self._proposal(p)
        for v in sorted(self.ledger._votes.values(), key=lambda v: v.position):
            self._vote(v)
        complete = {p.digest for p in proposals if self._complete(p)}
        chain, forks = self._chain(proposals, complete)
        states = self._states(proposals, chain, forks)
        self._built_on_nothing(proposals, complete, chain, states)
        head = chain[-1] if chain else None
        versions = tuple(
            self._record(p, states[p.digest])
            for p in sorted(proposals, key=lambda p: (p.change.version, *_arrival_free(p)))
        )
        current = Watchlist()
        if head is not None:
            record = next(v for v in versions if v.digest == head.digest)
            current = Watchlist(
                version=record.version,
                digest=record.digest,
                hs_edition=record.hs_edition,
                pairs=record.pairs or (),
                in_force_at=record.in_force_at,
            )
        findings = sorted(
            self.findings,
            key=lambda f: (f.severity != "error", _ORDER.get(f.origin, 9), f.alert_id, f.kind, f.detail),
        )
        return WatchlistState(
            members=_members_sorted(self.members),
            current=current,
            versions=versions,
            findings=tuple(dict.fromkeys(findings)),
        )

    # -------------------------------------------------------------- 1. each proposal
    def _proposal(self, p: _Proposal) -> None:
        """Settle `valid` (no definite defect, nor in its chain) and `pairs` (None: not resolvable yet)."""
        ok = True
        if p.origin not in self.members:
            self._flag(p, FindingKind.PROPOSAL_BY_NON_MEMBER, f"{p.origin} is not a member")
            ok = False
        if not self._addressed_to_all(p.origin, p.alert):
            missing = ", ".join(_members_sorted(self.members - {p.origin} - set(p.alert.recipients)))
            self._flag(
                p,
                FindingKind.NOT_ADDRESSED_TO_ALL,
                f"version {p.change.version} is not addressed to {missing}",
            )
            ok = False
        before: dict[PairKey, WatchPair] | None = {}
        pred: _Proposal | None = None
        ref = p.ref
        if ref is not None:
            pred, sound = self._predecessor(p, ref)
            ok = ok and sound
            before = None
            if pred is not None and p.change.version != pred.change.version + 1:
                self._flag(
                    p,
                    FindingKind.BAD_VERSION,
                    f"version {p.change.version} names version {pred.change.version} as its predecessor",
                )
                ok = False
            elif pred is not None:  # a lower version: settled already
                if not self.valid[pred.digest]:
                    self._flag(
                        p, FindingKind.BAD_PREDECESSOR, f"its predecessor {_short(pred.digest)} is invalid"
                    )
                    ok = False
                if p.change.hs_edition != pred.change.hs_edition:
                    self._flag(
                        p,
                        FindingKind.EDITION_CHANGE,
                        f"version {p.change.version} is in {p.change.hs_edition}, "
                        f"its predecessor in {pred.change.hs_edition}",
                    )
                    ok = False
                before = self.pairs[pred.digest]
        self.predecessor[p.digest] = pred
        after = None
        if before is not None:
            after = self._apply(p, before)
            ok = ok and after is not None
        self.pairs[p.digest] = after
        self.valid[p.digest] = ok

    def _predecessor(self, p: _Proposal, ref: AlertRef) -> tuple[_Proposal | None, bool]:
        """The predecessor the reference names, and whether the reference is sound as far as known."""
        ledger = self.ledger
        pred = ledger._proposals.get(ref.digest)
        if pred is not None:
            if (pred.origin, pred.alert.alert_id) != (ref.origin, ref.alert_id):
                self._flag(
                    p,
                    FindingKind.BAD_PREDECESSOR,
                    f"names {ref.origin} {ref.alert_id}, but digest {_short(ref.digest)} is "
                    f"{pred.origin} {pred.alert.alert_id}",
                )
                return None, False
            return pred, True
        held = ledger._ids.get((ref.origin, ref.alert_id))
        if held:
            self._flag(
                p,
                FindingKind.BAD_PREDECESSOR,
                f"names {ref.origin} {ref.alert_id} with digest {_short(ref.digest)}, "
                f"but that proposal's digest is {_short(held[0])}",
            )
            return None, False
        other = ledger._others.get(ref.digest)
        if other is not None:
            self._flag(
                p,
                FindingKind.BAD_PREDECESSOR,
                f"names {ref.origin} {ref.alert_id}, a {other.status} {other.msg_type}, not a watchlist proposal",
            )
            return None, False
        self._flag(
            p,
            FindingKind.UNKNOWN_PREDECESSOR,
            f"version {p.change.version} names {ref.origin} {ref.alert_id} ({_short(ref.digest)}), not held",
        )
        return None, True

    def _apply(self, p: _Proposal, before: dict[PairKey, WatchPair]) -> dict[PairKey, WatchPair] | None:
        after = dict(before)
        ok = True
        for pair in p.change.remove:
            if after.pop(pair.key, None) is None:
                self._flag(
                    p, FindingKind.REMOVES_ABSENT, f"removes {':'.join(pair.key)}, which is not listed"
                )
                ok = False
        for pair in p.change.add:
            if pair.key in before:
                self._flag(p, FindingKind.ADDS_PRESENT, f"adds {':'.join(pair.key)}, which is listed already")
                ok = False
            after[pair.key] = pair
        if len(after) > limits.MAX_WATCHLIST_PAIRS:
            self._flag(
                p,
                FindingKind.TOO_MANY_PAIRS,
                f"version {p.change.version} would hold {len(after)} pairs, at most {limits.MAX_WATCHLIST_PAIRS}",
            )
            ok = False
        return after if ok else None

    # -------------------------------------------------------------- 2. each vote
    def _vote(self, v: _Vote) -> None:
        ledger, ref, alert = self.ledger, v.ref, v.alert

        def flag(kind: FindingKind, detail: str) -> None:
            self.finding(kind, v.origin, alert.alert_id, v.digest, detail)

        if v.origin not in self.members:
            flag(FindingKind.VOTE_BY_NON_MEMBER, f"{v.origin} is not a member")
            return
        if not self._addressed_to_all(v.origin, alert):
            missing = ", ".join(_members_sorted(self.members - {v.origin} - set(alert.recipients)))
            flag(
                FindingKind.NOT_ADDRESSED_TO_ALL,
                f"the vote on {ref.origin} {ref.alert_id} is not addressed to {missing}",
            )
            return
        target = ledger._proposals.get(ref.digest)
        if target is None:
            held = ledger._ids.get((ref.origin, ref.alert_id))
            other = ledger._others.get(ref.digest)
            if held:
                flag(
                    FindingKind.VOTE_OTHER_VERSION,
                    f"names {ref.origin} {ref.alert_id} with digest {_short(ref.digest)}, "
                    f"but that proposal's digest is {_short(held[0])}",
                )
            elif other is not None:
                flag(
                    FindingKind.VOTE_NOT_ON_PROPOSAL,
                    f"references {ref.origin} {ref.alert_id}, a {other.status} {other.msg_type}",
                )
            else:
                flag(
                    FindingKind.VOTE_UNKNOWN_PROPOSAL,
                    f"votes on {ref.origin} {ref.alert_id} ({_short(ref.digest)}), not held",
                )
            return
        if (target.origin, target.alert.alert_id) != (ref.origin, ref.alert_id):
            flag(
                FindingKind.VOTE_OTHER_VERSION,
                f"names {ref.origin} {ref.alert_id}, but digest {_short(ref.digest)} is "
                f"{target.origin} {target.alert.alert_id}",
            )
            return
        if v.vote.version != target.change.version:
            flag(
                FindingKind.VOTE_OTHER_VERSION,
                f"votes on version {v.vote.version}, but {ref.alert_id} proposes version {target.change.version}",
            )
            return
        if v.origin == target.origin:
            flag(FindingKind.VOTE_BY_PROPOSER, f"{v.origin} votes on its own proposal {ref.alert_id}")
            return
        accepts = self.accepts.setdefault(target.digest, {})
        rejects = self.rejects.setdefault(target.digest, {})
        first = accepts.get(v.origin) or rejects.get(v.origin)
        if first is not None:
            same = first.vote.decision == v.vote.decision
            flag(
                FindingKind.VOTE_REPEATED,
                f"{v.origin} voted {first.vote.decision} on {ref.alert_id} as {first.alert.alert_id}; "
                f"this {v.vote.decision} {'repeats' if same else 'contradicts'} it and does not count",
            )
            return
        (accepts if v.vote.decision == "ACCEPT" else rejects)[v.origin] = v

    # -------------------------------------------------------------- 3. the chain
    def _signers(self, p: _Proposal) -> frozenset[Country]:
        return frozenset({p.origin, *self.accepts.get(p.digest, {})})

    def _complete(self, p: _Proposal) -> bool:
        return self.valid[p.digest] and self.pairs[p.digest] is not None and self.members <= self._signers(p)

    def _chain(
        self, proposals: list[_Proposal], complete: set[bytes]
    ) -> tuple[list[_Proposal], dict[int, list[_Proposal]]]:
        by_number: dict[int, list[_Proposal]] = {}
        for p in proposals:
            if p.digest in complete:
                by_number.setdefault(p.change.version, []).append(p)
        forks = {n: ps for n, ps in by_number.items() if len(ps) > 1}
        for number, rivals in sorted(forks.items()):
            group = sorted(rivals, key=_arrival_free)
            signed_twice = [
                m for m in _members_sorted(self.members) if sum(m in self._signers(p) for p in group) > 1
            ]
            later = group[-1]
            self._flag(
                later,
                FindingKind.FORK,
                f"{len(group)} versions {number} are signed by every member: "
                + ", ".join(f"{p.origin} {p.alert.alert_id} ({_short(p.digest)})" for p in group)
                + f"; signed by more than one: {', '.join(signed_twice)}",
            )
        chain: list[_Proposal] = []
        while True:
            head = chain[-1].digest if chain else None
            candidates = [p for p in proposals if p.digest in complete and _named(p) == head]
            if len(candidates) != 1 or candidates[0].change.version in forks:
                return chain, forks
            chain.append(candidates[0])

    def _states(
        self, proposals: list[_Proposal], chain: list[_Proposal], forks: dict[int, list[_Proposal]]
    ) -> dict[bytes, VersionState]:
        on_chain = {p.digest for p in chain}
        forked = {p.digest for group in forks.values() for p in group}
        top = chain[-1].change.version if chain else 0
        states: dict[bytes, VersionState] = {}
        for p in proposals:  # by version: a predecessor's state is known first
            pred = self.predecessor[p.digest]
            if not self.valid[p.digest]:
                state = VersionState.INVALID
            elif p.digest in on_chain:
                state = VersionState.IN_FORCE if p is chain[-1] else VersionState.SUPERSEDED
            elif p.digest in forked or (pred is not None and states.get(pred.digest) is VersionState.FORKED):
                state = VersionState.FORKED
            elif self.rejects.get(p.digest):
                state = VersionState.REJECTED
            elif p.change.version <= top:
                state = VersionState.LAPSED
            else:
                state = VersionState.PENDING
            states[p.digest] = state
        return states

    def _built_on_nothing(
        self,
        proposals: list[_Proposal],
        complete: set[bytes],
        chain: list[_Proposal],
        states: dict[bytes, VersionState],
    ) -> None:
        """A complete version whose predecessor is not in force: its signers treated one as in force that is not."""
        on_chain = {p.digest for p in chain}
        for p in proposals:
            pred = self.predecessor[p.digest]
            if p.digest not in complete or p.digest in on_chain or pred is None or pred.digest in on_chain:
                continue
            if states[p.digest] is VersionState.FORKED:
                continue
            waiting = states[pred.digest] is VersionState.PENDING
            detail = (
                f"version {p.change.version} is signed by every member, but its predecessor "
                f"{pred.origin} {pred.alert.alert_id} is {states[pred.digest].value}"
            )
            if waiting:
                self._flag(p, FindingKind.PREDECESSOR_NOT_IN_FORCE, detail)
            else:  # nothing can mend it: an error however complete the messages are
                self.findings.append(
                    WatchlistFinding(
                        FindingKind.PREDECESSOR_NOT_IN_FORCE, p.origin, p.alert.alert_id, p.digest, detail
                    )
                )

    def _record(self, p: _Proposal, state: VersionState) -> VersionRecord:
        accepts = self.accepts.get(p.digest, {})
        rejects = self.rejects.get(p.digest, {})
        pairs = self.pairs[p.digest]
        in_force_at = None
        if state in (VersionState.IN_FORCE, VersionState.SUPERSEDED):
            in_force_at = max([p.alert.sent, *(v.alert.sent for v in accepts.values())])
        return VersionRecord(
            version=p.change.version,
            digest=p.digest,
            origin=p.origin,
            alert_id=p.alert.alert_id,
            sent=p.alert.sent,
            predecessor=None if p.ref is None else p.ref.digest,
            hs_edition=p.change.hs_edition,
            add=tuple(p.change.add),
            remove=tuple(p.change.remove),
            signers=_members_sorted(self._signers(p)),
            rejections=tuple((m, rejects[m].vote.reject_reason or "") for m in _members_sorted(rejects)),
            state=state,
            pairs=None if pairs is None else tuple(pairs[k] for k in sorted(pairs)),
            in_force_at=in_force_at,
        )


def _arrival_free(p: _Proposal) -> tuple[datetime, int, str]:
    """An order of proposals that no node's order of arrival changes: sent time, origin, id."""
    return (p.alert.sent, _ORDER.get(p.origin, len(_ORDER)), p.alert.alert_id)


def _named(p: _Proposal) -> bytes | None:
    """The digest `p` names as its predecessor (None: version 1)."""
    return None if p.ref is None else p.ref.digest


# ------------------------------------------------------------------ what a member may send next
@dataclass(frozen=True, slots=True)
class ProposalPlan:
    """The body and the reference of the next WATCHLIST_PROPOSAL."""

    change: WatchlistChange
    predecessor: AlertRef | None
    """The proposal of the version in force (None when proposing version 1)."""


@dataclass(frozen=True, slots=True)
class VotePlan:
    """The body and the reference of a WATCHLIST_VOTE."""

    vote: WatchlistVote
    reference: AlertRef


def _pairs_from(values: Iterable[WatchPair | dict[str, Any]]) -> list[dict[str, Any]]:
    out = [v.model_dump() if isinstance(v, WatchPair) else dict(v) for v in values]
    return sorted(out, key=lambda d: (str(d.get("hs_code")), str(d.get("country"))))


def plan_proposal(
    state: WatchlistState,
    *,
    add: Iterable[WatchPair | dict[str, Any]] = (),
    remove: Iterable[WatchPair | dict[str, Any]] = (),
    hs_edition: str | None = None,
) -> ProposalPlan:
    """The next version's change of the version in force, refused if it does not fit it.

    `add` and `remove` take pairs in any order (they are sorted here); a
    removed pair's reason must be a removing one. `hs_edition` is needed for
    version 1 and must be the watchlist's after it. RefusedOperation if the
    watchlist is forked, a removed pair is not listed or an added one is;
    UsageError if the change breaks a schema rule.
    """
    if state.forked:
        raise RefusedOperation(
            "the watchlist is forked (two versions at one number are both signed by every member): "
            "no version can follow until the members settle it"
        )
    current = state.current
    edition = hs_edition or current.hs_edition
    if current.hs_edition is not None and edition != current.hs_edition:
        raise RefusedOperation(
            f"the watchlist is in {current.hs_edition}; a change cannot move it to {edition}"
        )
    if edition is None:
        raise UsageError("the first watchlist version needs its HS edition")
    try:
        change = WatchlistChange.model_validate(
            {
                "version": current.version + 1,
                "hs_edition": edition,
                "add": _pairs_from(add),
                "remove": _pairs_from(remove),
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "change"
        raise UsageError(f"{where}: {first['msg']}") from None
    listed = current.keys()
    absent = [":".join(p.key) for p in change.remove if p.key not in listed]
    if absent:
        raise RefusedOperation(f"not on watchlist version {current.version}: {', '.join(absent)}")
    present = [":".join(p.key) for p in change.add if p.key in listed]
    if present:
        raise RefusedOperation(f"already on watchlist version {current.version}: {', '.join(present)}")
    if len(listed) - len(change.remove) + len(change.add) > limits.MAX_WATCHLIST_PAIRS:
        raise RefusedOperation(f"a watchlist holds at most {limits.MAX_WATCHLIST_PAIRS} pairs")
    predecessor = None
    if current.digest is not None:
        record = state.by_digest(current.digest)
        if record is None:  # the state's own head is among its versions: a bug if ever seen
            raise RuntimeError("the version in force is missing from the history")
        predecessor = AlertRef(origin=record.origin, alert_id=record.alert_id, digest=record.digest)
    return ProposalPlan(change=change, predecessor=predecessor)


def plan_vote(
    state: WatchlistState,
    *,
    me: Country,
    origin: Country,
    alert_id: str,
    decision: str,
    reject_reason: str | None = None,
) -> VotePlan:
    """`me`'s vote on `origin`'s proposal `alert_id`, refused where an honest member would not send it.

    An ACCEPT is refused unless the proposal's predecessor is the version in
    force (or it is version 1 and none is), and while `me` has signed another
    version with the same predecessor that no member rejected: so an honest
    member never helps a fork. A vote is refused on its own proposal, on one it
    voted on already, and on one that is no longer pending.
    """
    if me == origin:
        raise RefusedOperation(f"{alert_id} is {me}'s own proposal: the proposal is its signature")
    record = state.find(origin, alert_id)
    if record is None:
        raise RefusedOperation(f"no watchlist proposal {origin} {alert_id} is held")
    if me in record.voted():
        raise RefusedOperation(f"{me} has voted on {alert_id} already (votes are final)")
    if record.state is not VersionState.PENDING:
        raise RefusedOperation(f"{origin} {alert_id} (version {record.version}) is {record.state.value}")
    if decision == "ACCEPT":
        if record.predecessor != state.current.digest:
            raise RefusedOperation(
                f"{alert_id} follows a version that is not in force (version {state.current.version} is): "
                "reject it as STALE_PREDECESSOR"
            )
        rival = next(
            (
                v
                for v in state.versions
                if v.digest != record.digest
                and v.predecessor == record.predecessor
                and me in v.signers
                and v.state is VersionState.PENDING
            ),
            None,
        )
        if rival is not None:
            raise RefusedOperation(
                f"{me} signed {rival.origin} {rival.alert_id}, another version {rival.version}: "
                "reject this one as COMPETING_VERSION"
            )
    try:
        vote = WatchlistVote(version=record.version, decision=decision, reject_reason=reject_reason)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "vote"
        raise UsageError(f"{where}: {first['msg']}") from None
    return VotePlan(vote=vote, reference=AlertRef(origin=origin, alert_id=alert_id, digest=record.digest))
