"""node/trilateral: the watchlist fold, its checks and plans, and policy reports as policy events (issue 12)."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import node.trilateral
from node import limits
from node.errors import RefusedOperation, UsageError
from node.ews import codes
from node.ids import COUNTRIES, Country
from node.message import Alert, WatchPair, alert_to_bytes, enum_names
from node.trilateral import (
    EWS_MEASURE,
    EWS_STAGE,
    FindingKind,
    Message,
    VersionState,
    Watchlist,
    WatchlistLedger,
    fold_watchlist,
    plan_proposal,
    plan_vote,
    policy_event,
    stepped,
    watched_pairs,
    watchlist_severity,
)
from node.wire import ewx_pb2 as pb

MEMBERS: frozenset[Country] = frozenset(COUNTRIES)
T0 = datetime(2023, 8, 1, tzinfo=UTC)


def pair(text: str, reason: str = "SUPPLY_CONCENTRATION") -> dict[str, Any]:
    hs, cc = text.split(":")
    return {"hs_code": hs, "country": cc, "reason": reason}


@dataclass
class Fed:
    """Builds signed-looking messages (digest = SHA-256 of the canonical bytes) in a federation."""

    members: tuple[Country, ...] = COUNTRIES
    status: str = "ACTUAL"
    seqs: dict[tuple[Country, Country], int] = field(default_factory=dict)
    count: itertools.count[int] = field(default_factory=itertools.count)

    def _envelope(self, origin: Country, kind: str, recipients: Sequence[Country] | None) -> dict[str, Any]:
        n = next(self.count)
        to = [c for c in self.members if c != origin] if recipients is None else list(recipients)
        deliveries = []
        for r in to:
            self.seqs[(origin, r)] = self.seqs.get((origin, r), 0) + 1
            deliveries.append({"recipient": r, "seq": self.seqs[(origin, r)]})
        return {
            "schema_version": limits.SCHEMA_VERSION,
            "alert_id": f"{origin}-{kind}-{n:04d}",
            "origin": origin,
            "sent": T0 + timedelta(minutes=n),
            "status": self.status,
            "deliveries": deliveries,
        }

    @staticmethod
    def message(fields: dict[str, Any]) -> Message:
        alert = Alert.model_validate(fields)
        return (alert.origin, hashlib.sha256(alert_to_bytes(alert)).digest(), alert)

    def propose(
        self,
        origin: Country,
        *,
        after: Message | None = None,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        version: int | None = None,
        edition: str = "HS2022",
        recipients: Sequence[Country] | None = None,
        reference: dict[str, Any] | None = None,
    ) -> Message:
        before = 0 if after is None or after[2].watchlist is None else after[2].watchlist.version
        fields = self._envelope(origin, "WP", recipients)
        fields["msg_type"] = "WATCHLIST_PROPOSAL"
        fields["watchlist"] = {
            "version": before + 1 if version is None else version,
            "hs_edition": edition,
            "add": sorted((pair(p) for p in add), key=lambda d: (d["hs_code"], d["country"])),
            "remove": sorted(
                (pair(p, "RISK_SUBSIDED") for p in remove), key=lambda d: (d["hs_code"], d["country"])
            ),
        }
        if reference is not None:
            fields["references"] = [reference]
        elif after is not None:
            fields["references"] = [{"origin": after[0], "alert_id": after[2].alert_id, "digest": after[1]}]
        return self.message(fields)

    def vote(
        self,
        origin: Country,
        on: Message,
        decision: str = "ACCEPT",
        *,
        reason: str | None = None,
        version: int | None = None,
        digest: bytes | None = None,
        recipients: Sequence[Country] | None = None,
    ) -> Message:
        fields = self._envelope(origin, "WV", recipients)
        fields["msg_type"] = "WATCHLIST_VOTE"
        target_version = on[2].watchlist.version if on[2].watchlist is not None else 1
        fields["vote"] = {
            "version": target_version if version is None else version,
            "decision": decision,
            "reject_reason": reason or ("OUT_OF_SCOPE" if decision == "REJECT" else None),
        }
        fields["references"] = [{"origin": on[0], "alert_id": on[2].alert_id, "digest": digest or on[1]}]
        return self.message(fields)

    def accepted(self, proposal: Message) -> list[Message]:
        """The proposal and every other member's ACCEPT."""
        return [proposal, *(self.vote(m, proposal) for m in self.members if m != proposal[0])]

    def report(self, origin: Country = "KR", **move: Any) -> Message:
        fields = self._envelope(origin, "PR", None)
        body: dict[str, Any] = {
            "country": "CN",
            "measure": "EXPORT_LICENSING",
            "hs_codes": ["282560", "811292"],
            "hs_edition": "HS2022",
            "stage": "IN_FORCE",
            "announced": date(2023, 7, 3),
            "effective": date(2023, 8, 1),
            "source": "OFFICIAL_GAZETTE",
        }
        body.update(move)
        return self.message({**fields, "msg_type": "POLICY_REPORT", "policy": body})


def kinds(messages: list[Message], **kwargs: Any) -> list[str]:
    return [
        f.kind.value
        for f in fold_watchlist(messages, members=kwargs.pop("members", MEMBERS), **kwargs).findings
    ]


# ------------------------------------------------------------------ the chain
def test_a_version_is_in_force_once_every_member_signed_it() -> None:
    fed = Fed()
    p1 = fed.propose("KR", add=["811292:CN", "282560:CN"])
    us, jp = fed.vote("US", p1), fed.vote("JP", p1)
    assert fold_watchlist([p1, us], members=MEMBERS).current.version == 0
    state = fold_watchlist([p1, us, jp], members=MEMBERS)
    assert state.findings == ()
    assert state.current.version == 1
    assert state.current.digest == p1[1]
    assert [p.key for p in state.current.pairs] == [("282560", "CN"), ("811292", "CN")]
    assert state.current.in_force_at == jp[2].sent
    (record,) = state.versions
    assert record.state is VersionState.IN_FORCE
    assert record.signers == ("KR", "US", "JP")


def test_versions_chain_and_the_history_keeps_each() -> None:
    fed = Fed()
    p1 = fed.propose("KR", add=["811292:CN", "282560:CN"])
    p2 = fed.propose("US", after=p1, add=["2504:CN"], remove=["282560:CN"])
    p3 = fed.propose("JP", after=p2, add=["8505:CN"])
    state = fold_watchlist([*fed.accepted(p1), *fed.accepted(p2), *fed.accepted(p3)], members=MEMBERS)
    assert state.findings == ()
    assert state.current.version == 3
    assert sorted(state.current.keys()) == [("2504", "CN"), ("811292", "CN"), ("8505", "CN")]
    assert [(v.version, v.state) for v in state.versions] == [
        (1, VersionState.SUPERSEDED),
        (2, VersionState.SUPERSEDED),
        (3, VersionState.IN_FORCE),
    ]


def test_one_rejection_keeps_a_version_out_for_good() -> None:
    fed = Fed()
    p1 = fed.propose("KR", add=["811292:CN"])
    state = fold_watchlist(
        [p1, fed.vote("US", p1, "REJECT", reason="INSUFFICIENT_EVIDENCE"), fed.vote("JP", p1)],
        members=MEMBERS,
    )
    assert state.current.version == 0
    (record,) = state.versions
    assert record.state is VersionState.REJECTED
    assert record.rejections == (("US", "INSUFFICIENT_EVIDENCE"),)


def test_a_change_that_does_not_fit_its_predecessor_is_invalid_even_when_signed() -> None:
    fed = Fed()
    p1 = fed.propose("KR", add=["811292:CN"])
    bad = fed.propose("US", after=p1, add=["811292:CN"], remove=["282560:CN"])
    state = fold_watchlist([*fed.accepted(p1), *fed.accepted(bad)], members=MEMBERS)
    assert state.current.version == 1
    assert {f.kind for f in state.findings} == {FindingKind.ADDS_PRESENT, FindingKind.REMOVES_ABSENT}
    assert state.versions[1].state is VersionState.INVALID


def test_a_fork_is_found_and_the_chain_stops_before_it() -> None:
    fed = Fed()
    p1 = fed.propose("KR", add=["811292:CN"])
    a = fed.propose("US", after=p1, add=["2504:CN"])
    b = fed.propose("JP", after=p1, add=["8505:CN"])
    state = fold_watchlist([*fed.accepted(p1), *fed.accepted(a), *fed.accepted(b)], members=MEMBERS)
    assert state.forked
    assert state.current.version == 1
    (fork,) = [f for f in state.findings if f.kind is FindingKind.FORK]
    assert "signed by more than one: KR, US, JP" in fork.detail
    assert {v.state for v in state.versions if v.version == 2} == {VersionState.FORKED}
    with pytest.raises(RefusedOperation, match="forked"):
        plan_proposal(state, add=[pair("2844:CN")])


def test_a_fork_beyond_a_fork_is_a_fork_too() -> None:
    """Two complete versions at one number whatever their predecessors: no member signs both honestly."""
    fed = Fed()
    p1 = fed.propose("KR", add=["811292:CN"])
    p2 = fed.propose("US", after=p1, add=["2504:CN"])
    side = fed.propose("JP", after=p1, add=["8505:CN"])  # pending: only JP signed it
    p3 = fed.propose("KR", after=p2, add=["2844:CN"])
    p3x = fed.propose("US", after=side, add=["2844:CN"])
    state = fold_watchlist(
        [*fed.accepted(p1), *fed.accepted(p2), side, *fed.accepted(p3), *fed.accepted(p3x)], members=MEMBERS
    )
    assert state.forked
    assert state.current.version == 2
    kinds_found = {f.kind for f in state.findings}
    assert FindingKind.FORK in kinds_found


def test_the_loser_of_a_race_lapses() -> None:
    fed = Fed()
    p1 = fed.propose("KR", add=["811292:CN"])
    a = fed.propose("US", after=p1, add=["2504:CN"])
    b = fed.propose("JP", after=p1, add=["8505:CN"])
    state = fold_watchlist(
        [*fed.accepted(p1), *fed.accepted(a), b, fed.vote("KR", b, "REJECT", reason="COMPETING_VERSION")],
        members=MEMBERS,
    )
    assert state.current.digest == a[1]
    assert state.findings == ()
    assert state.by_digest(b[1]).state is VersionState.REJECTED  # type: ignore[union-attr]
    state = fold_watchlist([*fed.accepted(p1), *fed.accepted(a), b], members=MEMBERS)
    assert state.by_digest(b[1]).state is VersionState.LAPSED  # type: ignore[union-attr]


def test_a_proposal_misnumbered_or_in_another_edition_is_invalid() -> None:
    fed = Fed()
    p1 = fed.propose("KR", add=["811292:CN"])
    skip = fed.propose("US", after=p1, add=["2504:CN"], version=3)
    edition = fed.propose("JP", after=p1, add=["8505:CN"], edition="HS2027")
    state = fold_watchlist([*fed.accepted(p1), *fed.accepted(skip), *fed.accepted(edition)], members=MEMBERS)
    assert {f.kind for f in state.findings} == {FindingKind.BAD_VERSION, FindingKind.EDITION_CHANGE}
    assert state.current.version == 1


def test_a_reference_that_does_not_match_the_proposal_held_is_a_bad_predecessor() -> None:
    fed = Fed()
    p1 = fed.propose("KR", add=["811292:CN"])
    wrong = fed.propose(
        "US",
        add=["2504:CN"],
        version=2,
        reference={"origin": "KR", "alert_id": p1[2].alert_id, "digest": bytes(32)},
    )
    alert = fed.report()
    on_report = fed.propose(
        "JP",
        add=["2504:CN"],
        version=2,
        reference={"origin": "KR", "alert_id": alert[2].alert_id, "digest": alert[1]},
    )
    found = fold_watchlist([*fed.accepted(p1), wrong, alert, on_report], members=MEMBERS).findings
    assert [f.kind for f in found] == [FindingKind.BAD_PREDECESSOR, FindingKind.BAD_PREDECESSOR]
    assert "a ACTUAL POLICY_REPORT" in found[1].detail


def test_a_successor_of_an_invalid_version_is_invalid() -> None:
    fed = Fed()
    p1 = fed.propose("KR", add=["811292:CN"])
    bad = fed.propose("US", after=p1, add=["811292:CN"])
    after_bad = fed.propose("JP", after=bad, add=["2504:CN"])
    state = fold_watchlist([*fed.accepted(p1), *fed.accepted(bad), *fed.accepted(after_bad)], members=MEMBERS)
    assert state.by_digest(after_bad[1]).state is VersionState.INVALID  # type: ignore[union-attr]
    assert FindingKind.BAD_PREDECESSOR in {f.kind for f in state.findings}


def test_a_complete_version_on_a_rejected_predecessor_is_an_error() -> None:
    """The audit's "in force without three signatures": its signers built on a version that is not in force."""
    fed = Fed()
    p1 = fed.propose("KR", add=["811292:CN"])
    p2 = fed.propose("US", after=p1, add=["2504:CN"])
    state = fold_watchlist(
        [p1, fed.vote("US", p1), fed.vote("JP", p1, "REJECT"), *fed.accepted(p2)], members=MEMBERS
    )
    (finding,) = state.findings
    assert finding.kind is FindingKind.PREDECESSOR_NOT_IN_FORCE
    assert finding.severity == "error"
    assert state.current.version == 0


def test_a_predecessor_still_waiting_for_a_vote_is_info_in_one_log_and_an_error_in_all() -> None:
    fed = Fed()
    p1 = fed.propose("KR", add=["811292:CN"])
    p2 = fed.propose("US", after=p1, add=["2504:CN"])
    messages = [p1, fed.vote("US", p1), *fed.accepted(p2)]  # JP's vote on version 1 not (yet) here
    (finding,) = fold_watchlist(messages, members=MEMBERS).findings
    assert (finding.kind, finding.severity) == (FindingKind.PREDECESSOR_NOT_IN_FORCE, "info")
    (finding,) = fold_watchlist(messages, members=MEMBERS, complete=True).findings
    assert finding.severity == "error"


# ------------------------------------------------------------------ votes
def test_a_vote_on_an_unknown_proposal() -> None:
    fed = Fed()
    p1 = fed.propose("KR", add=["811292:CN"])
    vote = fed.vote("US", p1)
    (one_log,) = fold_watchlist([vote], members=MEMBERS).findings
    assert (one_log.kind, one_log.severity) == (FindingKind.VOTE_UNKNOWN_PROPOSAL, "info")
    (all_logs,) = fold_watchlist([vote], members=MEMBERS, complete=True).findings
    assert all_logs.severity == "error"
    assert fold_watchlist([vote, p1], members=MEMBERS).findings == ()  # the proposal came later


def test_a_vote_replayed_for_another_version_does_not_count() -> None:
    fed = Fed()
    p1 = fed.propose("KR", add=["811292:CN"])
    other_digest = fed.vote("US", p1, digest=hashlib.sha256(b"another version").digest())
    other_number = fed.vote("JP", p1, version=2)
    state = fold_watchlist([p1, other_digest, other_number, fed.vote("US", p1)], members=MEMBERS)
    assert [f.kind for f in state.findings] == [
        FindingKind.VOTE_OTHER_VERSION,
        FindingKind.VOTE_OTHER_VERSION,
    ]
    assert state.current.version == 0
    assert state.versions[0].signers == ("KR", "US")


def test_a_vote_on_something_else() -> None:
    fed = Fed()
    report = fed.report()
    assert kinds([report, fed.vote("US", report)]) == ["vote_not_on_proposal"]


def test_a_vote_by_the_proposer_does_not_count() -> None:
    """The schema refuses it (a vote references another origin); the fold still says so if handed one."""
    fed = Fed()
    p1 = fed.propose("KR", add=["811292:CN"])
    honest = fed.vote("US", p1)[2]
    deliveries = [
        d.model_copy(update={"recipient": "US"}) if d.recipient == "KR" else d for d in honest.deliveries
    ]
    forged = honest.model_copy(update={"origin": "KR", "alert_id": "KR-WV-9999", "deliveries": deliveries})
    messages = [p1, ("KR", hashlib.sha256(b"forged").digest(), forged), fed.vote("US", p1)]
    state = fold_watchlist(messages, members=MEMBERS)
    assert [f.kind for f in state.findings] == [FindingKind.VOTE_BY_PROPOSER]


def test_the_first_vote_of_a_member_counts() -> None:
    fed = Fed()
    p1 = fed.propose("KR", add=["811292:CN"])
    state = fold_watchlist(
        [p1, fed.vote("US", p1, "REJECT"), fed.vote("US", p1), fed.vote("JP", p1)], members=MEMBERS
    )
    (finding,) = state.findings
    assert finding.kind is FindingKind.VOTE_REPEATED
    assert "contradicts" in finding.detail
    assert state.versions[0].state is VersionState.REJECTED


def test_non_members_neither_propose_nor_vote() -> None:
    fed = Fed(members=("KR", "US", "JP"))
    two: frozenset[Country] = frozenset({"KR", "US"})
    p1 = fed.propose("KR", add=["811292:CN"])
    jp = fed.propose("JP", add=["2504:CN"])
    state = fold_watchlist([p1, fed.vote("JP", p1), jp, fed.vote("US", jp), fed.vote("US", p1)], members=two)
    assert [f.kind for f in state.findings] == [
        FindingKind.PROPOSAL_BY_NON_MEMBER,
        FindingKind.VOTE_BY_NON_MEMBER,
    ]
    assert state.current.digest == p1[1]  # KR and US are all the members
    assert state.versions[0].signers == ("KR", "US")


def test_a_message_not_addressed_to_every_member_does_not_count() -> None:
    fed = Fed()
    p1 = fed.propose("KR", add=["811292:CN"], recipients=["US"])
    assert kinds([*fed.accepted(p1)]) == ["not_addressed_to_all"]
    p1 = fed.propose("KR", add=["811292:CN"])
    found = kinds([p1, fed.vote("US", p1, recipients=["KR"]), fed.vote("JP", p1)])
    assert found == ["not_addressed_to_all"]


def test_exercise_messages_make_their_own_watchlist() -> None:
    exercise = Fed(status="EXERCISE")
    p1 = exercise.propose("KR", add=["811292:CN"])
    messages = exercise.accepted(p1)
    assert fold_watchlist(messages, members=MEMBERS).current.version == 0
    assert fold_watchlist(messages, members=MEMBERS, status="EXERCISE").current.version == 1


def test_an_unknown_predecessor_leaves_the_version_pending() -> None:
    fed = Fed()
    p1 = fed.propose("KR", add=["811292:CN"])
    p2 = fed.propose("US", after=p1, add=["2504:CN"])
    state = fold_watchlist(fed.accepted(p2), members=MEMBERS)
    assert [(f.kind, f.severity) for f in state.findings] == [(FindingKind.UNKNOWN_PREDECESSOR, "info")]
    assert state.versions[0].state is VersionState.PENDING
    assert state.versions[0].pairs is None


def test_the_same_message_twice_is_taken_once() -> None:
    fed = Fed()
    p1 = fed.propose("KR", add=["811292:CN"])
    us = fed.vote("US", p1)
    state = fold_watchlist([p1, us, us, p1, fed.vote("JP", p1)], members=MEMBERS)
    assert state.findings == ()
    assert state.current.version == 1


# ------------------------------------------------------------------ before storing (issue 12, item 5)
def test_check_refuses_what_nothing_can_mend_and_lets_the_early_arrivals_in() -> None:
    fed = Fed()
    ledger = WatchlistLedger(members=frozenset({"KR", "US"}))
    p1 = fed.propose("KR", add=["811292:CN"])
    assert ledger.check(*fed.vote("US", p1)) == []  # the proposal may still be on its way
    ledger.add(*p1)
    replay = fed.vote("US", p1, digest=bytes(32))
    assert [f.kind for f in ledger.check(*replay)] == [FindingKind.VOTE_OTHER_VERSION]
    assert [f.kind for f in ledger.check(*fed.propose("JP", add=["2504:CN"]))] == [
        FindingKind.PROPOSAL_BY_NON_MEMBER
    ]
    absent = fed.propose("US", after=p1, remove=["2504:CN"])
    assert [f.kind for f in ledger.check(*absent)] == [FindingKind.REMOVES_ABSENT]
    assert ledger.check(*fed.report()) == []
    assert ledger.check(*p1) == []  # a duplicate is no new finding
    good = fed.vote("US", p1)
    assert ledger.check(*good) == []
    ledger.add(*good)
    assert [f.kind for f in ledger.check(*fed.vote("US", p1))] == [FindingKind.VOTE_REPEATED]
    assert ledger.state().current.version == 1


# ------------------------------------------------------------------ plans
def test_plans_follow_the_state() -> None:
    fed = Fed()
    empty = fold_watchlist([], members=MEMBERS)
    with pytest.raises(UsageError, match="HS edition"):
        plan_proposal(empty, add=[pair("811292:CN")])
    plan = plan_proposal(empty, add=[pair("811292:CN"), pair("282560:CN")], hs_edition="HS2022")
    assert plan.predecessor is None
    assert [p.key for p in plan.change.add] == [("282560", "CN"), ("811292", "CN")]  # sorted for the caller
    with pytest.raises(UsageError, match="national 8-digit"):
        plan_proposal(empty, add=[pair("81129200:CN")], hs_edition="HS2022")

    p1 = fed.propose("KR", add=["811292:CN"])
    state = fold_watchlist([p1], members=MEMBERS)
    with pytest.raises(RefusedOperation, match="own proposal"):
        plan_vote(state, me="KR", origin="KR", alert_id=p1[2].alert_id, decision="ACCEPT")
    with pytest.raises(RefusedOperation, match="no watchlist proposal"):
        plan_vote(state, me="US", origin="KR", alert_id="KR-nothing", decision="ACCEPT")
    with pytest.raises(UsageError, match="reject_reason"):
        plan_vote(state, me="US", origin="KR", alert_id=p1[2].alert_id, decision="REJECT")
    vote = plan_vote(state, me="US", origin="KR", alert_id=p1[2].alert_id, decision="ACCEPT")
    assert (vote.vote.version, vote.reference.digest) == (1, p1[1])

    state = fold_watchlist(fed.accepted(p1), members=MEMBERS)
    with pytest.raises(RefusedOperation, match="voted on"):
        plan_vote(state, me="US", origin="KR", alert_id=p1[2].alert_id, decision="ACCEPT")
    with pytest.raises(RefusedOperation, match="already on watchlist"):
        plan_proposal(state, add=[pair("811292:CN")])
    with pytest.raises(RefusedOperation, match="not on watchlist"):
        plan_proposal(state, remove=[pair("2504:CN", "RISK_SUBSIDED")])
    with pytest.raises(RefusedOperation, match="cannot move it"):
        plan_proposal(state, add=[pair("2504:CN")], hs_edition="HS2027")
    plan = plan_proposal(state, add=[pair("2504:CN")], remove=[pair("811292:CN", "SUPPLY_DIVERSIFIED")])
    assert plan.change.version == 2
    assert plan.predecessor is not None and plan.predecessor.digest == p1[1]


def test_an_honest_member_does_not_sign_two_rivals_nor_a_stale_one() -> None:
    fed = Fed()
    p1 = fed.propose("KR", add=["811292:CN"])
    a = fed.propose("US", after=p1, add=["2504:CN"])
    b = fed.propose("JP", after=p1, add=["8505:CN"])
    state = fold_watchlist([*fed.accepted(p1), a, b], members=MEMBERS)
    plan_vote(state, me="KR", origin="US", alert_id=a[2].alert_id, decision="ACCEPT")  # KR may take either
    with pytest.raises(RefusedOperation, match="COMPETING_VERSION"):
        plan_vote(state, me="JP", origin="US", alert_id=a[2].alert_id, decision="ACCEPT")  # JP signed b
    plan_vote(
        state,
        me="JP",
        origin="US",
        alert_id=a[2].alert_id,
        decision="REJECT",
        reject_reason="COMPETING_VERSION",
    )
    early = fed.propose("US", after=a, add=["2844:CN"])
    state = fold_watchlist([*fed.accepted(p1), a, early], members=MEMBERS)
    with pytest.raises(RefusedOperation, match="STALE_PREDECESSOR"):
        plan_vote(state, me="KR", origin="US", alert_id=early[2].alert_id, decision="ACCEPT")


# ------------------------------------------------------------------ properties
def _interleave(draw: st.DrawFn, streams: list[list[Message]]) -> list[Message]:
    """Any merge of `streams` that keeps each stream's order (each origin's sequence)."""
    queues = [list(s) for s in streams if s]
    out: list[Message] = []
    while queues:
        i = draw(st.integers(0, len(queues) - 1))
        out.append(queues[i].pop(0))
        if not queues[i]:
            queues.pop(i)
    return out


@st.composite
def interleavings(draw: st.DrawFn, streams: list[list[Message]]) -> list[Message]:
    return _interleave(draw, streams)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Message], list[Message]]:
    """A history of proposals (some rivals) and votes (some rejections), and one interleaving of it."""
    fed = Fed()
    log: list[Message] = []
    head: Message | None = None
    for number in range(draw(st.integers(1, 4))):
        rivals = []
        for _ in range(draw(st.integers(1, 2))):
            who = draw(st.sampled_from(COUNTRIES))
            code = f"{2500 + number * 10 + len(rivals):04d}:CN"
            rivals.append(fed.propose(who, after=head, add=[code]))
        log.extend(rivals)
        for rival in rivals:
            for member in COUNTRIES:
                decision = draw(st.sampled_from([None, "ACCEPT", "ACCEPT", "ACCEPT", "REJECT"]))
                if member != rival[0] and decision is not None:
                    log.append(fed.vote(member, rival, decision))
        head = draw(st.sampled_from(rivals))
    by_origin = [[m for m in log if m[0] == c] for c in COUNTRIES]
    return log, _interleave(draw, by_origin)


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_every_order_preserving_interleaving_gives_the_same_state(
    scenario: tuple[list[Message], list[Message]],
) -> None:
    log, shuffled = scenario
    assert (
        fold_watchlist(shuffled, members=MEMBERS).to_json() == fold_watchlist(log, members=MEMBERS).to_json()
    )


@settings(max_examples=150, deadline=None)
@given(
    proposer=st.sampled_from(COUNTRIES),
    answers=st.dictionaries(st.sampled_from(COUNTRIES), st.sampled_from(["ACCEPT", "REJECT"])),
    data=st.data(),
)
def test_a_version_is_in_force_iff_every_member_signed_it(
    proposer: Country, answers: dict[Country, str], data: st.DataObject
) -> None:
    fed = Fed()
    p1 = fed.propose(proposer, add=["811292:CN"])
    votes = [fed.vote(m, p1, d) for m, d in answers.items() if m != proposer]
    messages = data.draw(st.permutations([p1, *votes]))
    signed = {proposer} | {m for m, d in answers.items() if d == "ACCEPT" and m != proposer}
    state = fold_watchlist(messages, members=MEMBERS)
    assert (state.current.version == 1) == (signed == MEMBERS)
    assert set(state.versions[0].signers) == signed


@settings(max_examples=150, deadline=None)
@given(
    first=st.sampled_from(COUNTRIES),
    a_by=st.sampled_from(COUNTRIES),
    b_by=st.sampled_from(COUNTRIES),
    data=st.data(),
)
def test_two_complete_rivals_are_always_a_fork(
    first: Country, a_by: Country, b_by: Country, data: st.DataObject
) -> None:
    fed = Fed()
    p1 = fed.propose(first, add=["811292:CN"])
    a = fed.propose(a_by, after=p1, add=["2504:CN"])
    b = fed.propose(b_by, after=p1, add=["8505:CN"])
    log = [*fed.accepted(p1), *fed.accepted(a), *fed.accepted(b)]
    merged = data.draw(interleavings([[m for m in log if m[0] == c] for c in COUNTRIES]))
    state = fold_watchlist(merged, members=MEMBERS)
    assert state.forked
    assert state.current.version == 1
    assert sum(f.kind is FindingKind.FORK for f in state.findings) == 1


# ------------------------------------------------------------------ policy reports
def test_a_report_becomes_a_policy_event_marked_with_its_origin() -> None:
    fed = Fed()
    origin, digest, alert = fed.report("US", measure="OTHER_MEASURE", stage="ANNOUNCED", effective=None)
    event = policy_event(origin, digest, alert)
    assert event is not None
    assert event.record() == {
        "country": "CN",
        "hs_codes": "282560;811292",
        "measure": "OTHER",
        "announced": "2023-07-03",
        "effective": "2023-07-03",
        "stage": "ANNOUNCED",
        "origin": "US",
        "report": f"US/{alert.alert_id}",
    }
    assert event.source.startswith(f"policy report US {alert.alert_id} {digest.hex()[:16]}")


def test_what_is_not_an_announced_report_makes_no_event() -> None:
    fed = Fed()
    assert policy_event(*fed.report(stage="RUMOURED", effective=None, source="PRESS")) is None
    assert policy_event(*Fed(status="EXERCISE").report()) is None
    assert policy_event(*fed.propose("KR", add=["811292:CN"])) is None


def test_a_report_enters_the_early_warning_store() -> None:
    from node.ews.ingest import ingest_records
    from node.ews.store import EwsStore

    fed = Fed()
    event = policy_event(*fed.report("JP"))
    assert event is not None
    with EwsStore.in_memory() as store:
        report = ingest_records(store, codes.Kind.EVENTS, [event.record()], source=event.source)
        assert report.added == 1
        (row,) = store.rows(
            "SELECT country, hs_codes, measure, stage, CAST(effective AS VARCHAR) AS e FROM events"
        )
        assert row == {
            "country": "CN",
            "hs_codes": "282560;811292",
            "measure": "EXPORT_LICENSING",
            "stage": "IN_FORCE",
            "e": "2023-08-01",
        }
        (batch,) = store.rows("SELECT source FROM batches")
        assert batch["source"] == event.source


def test_the_two_vocabularies_agree() -> None:
    """node/ews cannot read the proto (it sits above the message layer): this holds them together."""
    assert set(EWS_MEASURE) == set(enum_names(pb.PolicyMeasure))
    assert set(EWS_MEASURE.values()) == {m.value for m in codes.Measure}
    assert set(EWS_STAGE) == set(enum_names(pb.PolicyStage))
    assert {s for s in EWS_STAGE.values() if s is not None} == {s.value for s in codes.Stage}
    assert limits.MAX_POLICY_CODES == codes.MAX_HS_CODES_PER_EVENT
    assert (limits.MIN_POLICY_YEAR, limits.MAX_POLICY_YEAR) == (codes.MIN_YEAR, codes.MAX_YEAR)


# ------------------------------------------------------------------ the severity step
def _watchlist(*pairs: str) -> Watchlist:
    return Watchlist(
        version=1,
        pairs=tuple(sorted((WatchPair.model_validate(pair(p)) for p in pairs), key=lambda p: p.key)),
    )


def test_a_report_on_a_watchlist_pair_raises_the_severity_one_step() -> None:
    watch = _watchlist("811292:CN", "2504:CN")
    assert watchlist_severity("MODERATE", hs_code="811292", country="CN", watchlist=watch) == "SEVERE"
    assert (
        watchlist_severity("MODERATE", hs_code="250410", country="CN", watchlist=watch) == "SEVERE"
    )  # heading
    assert watchlist_severity("MODERATE", hs_code="811292", country="RU", watchlist=watch) == "MODERATE"
    assert watchlist_severity("MODERATE", hs_code="282560", country="CN", watchlist=watch) == "MODERATE"
    assert watchlist_severity("EXTREME", hs_code="811292", country="CN", watchlist=watch) == "EXTREME"
    assert watchlist_severity("MINOR", hs_code="811292", country="CN", watchlist=watch, steps=2) == "SEVERE"
    assert watchlist_severity("MINOR", hs_code="811292", country="CN", watchlist=watch, steps=0) == "MINOR"
    assert watchlist_severity("SEVERE", hs_code="811292", country="CN", watchlist=Watchlist()) == "SEVERE"


def test_the_step_refuses_what_is_no_severity_or_too_many_steps() -> None:
    with pytest.raises(ValueError, match="not a severity"):
        stepped("HIGH", 1)
    with pytest.raises(ValueError, match="steps"):
        stepped("MINOR", limits.MAX_WATCHLIST_SEVERITY_STEPS + 1)
    with pytest.raises(ValueError, match="steps"):
        stepped("MINOR", -1)


def test_the_pairs_a_report_is_on() -> None:
    fed = Fed()
    watch = _watchlist("811292:CN", "2504:CN", "282560:RU")
    report = fed.report(hs_codes=["2504", "282560", "811292"])[2].policy
    assert report is not None
    assert [p.key for p in watched_pairs(watch, report)] == [("2504", "CN"), ("811292", "CN")]
    heading = fed.report(hs_codes=["8112"])[2].policy
    assert heading is not None
    assert [p.key for p in watched_pairs(watch, heading)] == [("811292", "CN")]


def test_the_exported_names() -> None:
    assert sorted(node.trilateral.__all__) == sorted(
        name for name in dir(node.trilateral) if not name.startswith("_") and name not in ("annotations",)
    )
