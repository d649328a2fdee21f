"""The audit's compact records (node/audit/_verify.py): versions numbered once, claims of
sequence positions, and the stream check's fast path, against plain reference versions.

The audit of a million entries holds its alerts as numbers in arrays, not objects;
these properties pin that the arrays answer what the dicts and sets they replaced
answered, for any input, hostile orders included.
"""

from __future__ import annotations

import bisect
import hashlib

from hypothesis import given
from hypothesis import strategies as st

from node.audit._verify import _AlertFacts, _check_stream, _Claims, _Findings, _Versions
from node.ids import COUNTRIES, Country, Digest

SEQS = st.integers(min_value=1, max_value=40)


@given(st.lists(st.tuples(st.booleans(), SEQS), max_size=80))
def test_claims_answer_what_a_dict_with_setdefault_answers(steps: list[tuple[bool, int]]) -> None:
    claims, reference = _Claims(), dict[int, int]()
    for holder, (claim, seq) in enumerate(steps):
        if claim:
            claims.claim(seq, holder)
            reference.setdefault(seq, holder)
        assert claims.holder(seq) == reference.get(seq)
    for seq in range(42):
        assert claims.holder(seq) == reference.get(seq)


def test_claims_stay_in_arrays_while_they_rise() -> None:
    claims = _Claims()
    for seq in range(1, 1001):
        claims.claim(seq, seq * 10)
    claims.claim(500, 1)  # held already: the first claim stays, still no dict
    assert claims._by_seq is None
    assert claims.holder(500) == 5000
    claims.claim(2000, 7)
    claims.claim(1500, 8)  # lower than the last, new: from here a dict
    assert claims._by_seq is not None
    assert (claims.holder(1500), claims.holder(2000), claims.holder(1)) == (8, 7, 10)


def _reference_stream(items: list[tuple[int, int]]) -> list[tuple[int | None, str, str]]:
    """The stream check as it was, over (index, seq) pairs and sets."""
    found = _Findings()
    present = sorted({seq for _, seq in items})
    taken: set[int] = set()
    highest = 0
    for index, seq in items:
        if seq in taken:
            continue
        if seq > highest + 1:
            between = bisect.bisect_left(present, seq) - bisect.bisect_right(present, highest)
            missing = seq - highest - 1 - between
            if missing > 0:
                found.add(
                    "KR",
                    index,
                    "sequence_gap",
                    f"s seq {seq} follows {highest}: {missing} sequence number{'s' if missing != 1 else ''} missing",
                )
        elif seq < highest:
            found.add("KR", index, "sequence_reorder", f"s seq {seq} logged after seq {highest}")
        taken.add(seq)
        highest = max(highest, seq)
    return [(f.index, f.kind, f.detail) for f in found.items]


@given(
    st.one_of(
        st.lists(SEQS, max_size=60),
        st.lists(SEQS, max_size=60, unique=True).map(sorted),  # rising: the fast path
    )
)
def test_the_stream_check_reports_what_the_plain_check_did(seqs: list[int]) -> None:
    found = _Findings()
    _check_stream("KR", "s", list(range(len(seqs))), seqs, found)
    assert [(f.index, f.kind, f.detail) for f in found.items] == _reference_stream(list(enumerate(seqs)))


def _facts(
    origin: Country, alert_id: str, content: int, deliveries: tuple[tuple[Country, int], ...]
) -> _AlertFacts:
    return _AlertFacts(
        origin=origin,
        alert_id=alert_id,
        recipients=tuple(r for r, _ in deliveries),
        seqs=tuple(s for _, s in deliveries),
        # As a real digest: of everything the alert says.
        digest=Digest(hashlib.sha256(repr((origin, alert_id, content, deliveries)).encode()).digest()),
        msg_type="ALERT",
        status="ACTUAL",
        body=None,
    )


@st.composite
def alert_facts(draw: st.DrawFn) -> _AlertFacts:
    origin = draw(st.sampled_from(COUNTRIES))
    others = [c for c in COUNTRIES if c != origin]
    recipients = draw(st.lists(st.sampled_from(others), min_size=1, max_size=2, unique=True))
    deliveries = tuple((r, draw(SEQS)) for r in recipients)
    return _facts(origin, f"{origin}-{draw(st.integers(0, 5))}", draw(st.integers(0, 2)), deliveries)


@given(st.lists(alert_facts(), max_size=40))
def test_versions_number_each_origin_id_and_digest_once_and_give_back_its_facts(
    items: list[_AlertFacts],
) -> None:
    versions = _Versions()
    numbers: dict[tuple[Country, str, bytes], int] = {}
    for facts in items:
        number = versions.add(facts)
        key = (facts.origin, facts.alert_id, facts.digest)
        assert numbers.setdefault(key, number) == number
        assert versions.origin(number) == facts.origin
        assert versions.alert_id(number) == facts.alert_id
        assert versions.digest(number) == facts.digest
        assert versions.recipients_of(number) == facts.recipients
        assert tuple(versions.deliveries(number)) == tuple(zip(facts.recipients, facts.seqs, strict=True))
        for recipient, seq in zip(facts.recipients, facts.seqs, strict=True):
            assert versions.seq_for(number, recipient) == seq
        assert versions.seq_for(number, facts.origin) is None
        id_number = versions.id_number(facts.origin, facts.alert_id)
        assert versions.find(id_number, facts.digest) == number
    assert len(versions) == len(numbers)
    by_id: dict[tuple[Country, str], list[int]] = {}
    for (origin, alert_id, _), number in sorted(numbers.items(), key=lambda kv: kv[1]):
        by_id.setdefault((origin, alert_id), []).append(number)
    for (origin, alert_id), expected in by_id.items():
        id_number = versions.id_number(origin, alert_id)
        assert versions.versions_of(id_number) == expected
    assert versions.contested_ids() == sorted(
        versions.id_number(o, a) for (o, a), vs in by_id.items() if len(vs) > 1
    )
