"""The audit of the watchlist chain (issue 12, item 4): node/audit/_watchlist.py through verify_loaded.

One real exchange for the module (tests/support/audit_factories.build_scenario
with its trilateral part: three versions, one superseded, one in force, one
rejected, and two policy reports), damaged copies of its logs, a short
exchange in which a vote overtakes its proposal, and the golden watchlist
sets read one log at a time. The golden sets with all three logs are
tests/node/audit/test_goldens.py's.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from node.audit import KINDS, Bundle, Finding, read_bundle, verify_loaded
from node.audit._watchlist import UNSIGNED_IN_FORCE, WATCHLIST_KINDS, audit_kind
from node.ids import COUNTRIES, Country
from node.message import encode
from node.pki import init_federation
from node.trilateral import FINDING_KINDS, FindingKind
from node.trust import Trust
from node.wire import ewx_pb2 as pb
from tests.support.audit_factories import (
    WATCHLIST_V1,
    Scenario,
    ThreeNodes,
    TickClock,
    build_scenario,
    rewrite,
)

ROOT = Path(__file__).resolve().parents[3]
GOLDENS = ROOT / "tests" / "goldens"


@pytest.fixture(scope="module")
def scn(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return build_scenario(tmp_path_factory.mktemp("watchlist") / "fed", trilateral=True)


def audit(*bundles: Bundle, trust: Trust) -> list[Finding]:
    return verify_loaded(list(bundles), trust=trust, workers=1).findings


def where(findings: list[Finding]) -> list[tuple[Country, int | None, str, str]]:
    return [(f.node, f.index, f.kind, f.severity) for f in findings]


def index_of(bundle: Bundle, alert_id: str) -> int:
    for index, data in enumerate(bundle.entries):
        entry = pb.LogEntry.FromString(data)
        if entry.kind != pb.RECEIPT_RECEIVED and pb.Alert.FromString(entry.alert.alert).alert_id == alert_id:
            return index
    raise LookupError(alert_id)


def flip_signature(data: bytes) -> bytes:
    """The entry with one bit of its alert's Ed25519 signature flipped."""
    entry = pb.LogEntry.FromString(data)
    signature = bytearray(entry.alert.signature)
    signature[7] ^= 0x10
    entry.alert.signature = bytes(signature)
    return encode(entry)


# ------------------------------------------------------------------ the kinds
def test_every_watchlist_finding_kind_is_an_audit_kind() -> None:
    assert {audit_kind(k) for k in FindingKind} | {UNSIGNED_IN_FORCE} == set(WATCHLIST_KINDS)
    for kind in FindingKind:
        assert KINDS[audit_kind(kind)] == FINDING_KINDS[kind]
    assert UNSIGNED_IN_FORCE in KINDS


def test_docs_list_every_finding_kind() -> None:
    text = (ROOT / "docs" / "audit.md").read_text()
    listed = set(re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.MULTILINE))
    assert listed == set(KINDS), (sorted(set(KINDS) - listed), sorted(listed - set(KINDS)))


# ------------------------------------------------------------------ honest logs
def test_an_agreed_watchlist_audits_clean_together_and_one_log_at_a_time(scn: Scenario) -> None:
    assert audit(*scn.bundles.values(), trust=scn.trust) == []
    for cc in COUNTRIES:
        assert audit(scn.bundles[cc], trust=scn.trust) == [], cc


def test_a_vote_that_overtook_its_proposal_is_in_flight_alone_and_nothing_together(tmp_path: Path) -> None:
    root = tmp_path / "fed"
    init_federation(root)
    with ThreeNodes(root, clock=TickClock(datetime.now(UTC).replace(microsecond=0))) as nodes:
        proposal = nodes.propose("KR", add=WATCHLIST_V1, hs_edition="HS2022")
        nodes.deliver("KR", "US")  # JP does not have it yet
        vote = nodes.vote("US", "KR", proposal, "ACCEPT")
        nodes.deliver("US", "KR", "JP")
        paths = nodes.export(tmp_path)
        trust = nodes.trust()
    bundles = {cc: read_bundle(p) for cc, p in paths.items()}
    jp = bundles["JP"]
    alone = audit(jp, trust=trust)
    assert where(alone) == [("JP", index_of(jp, vote), "watchlist_vote_unknown_proposal", "info")]
    assert f"US {vote}: votes on KR {proposal}" in alone[0].detail
    # KR's log holds the proposal: nothing is wrong, KR's envelope to JP is in flight.
    together = audit(*bundles.values(), trust=trust)
    assert [f.kind for f in together] == ["undelivered"]
    assert all(f.severity == "info" for f in together)


# ------------------------------------------------------------------ damaged logs
@pytest.mark.parametrize(
    ("holder", "claim"),
    [
        ("JP", "v2"),  # JP's proposal of version 2 on version 1
        ("KR", "v2_kr"),  # KR's ACCEPT of version 2, built on version 1
    ],
)
def test_a_vote_whose_signature_fails_signs_nothing(
    scn: Scenario, tmp_path: Path, holder: Country, claim: str
) -> None:
    """US's ACCEPT of version 1, damaged in one member's log, leaves version 1 short of US's
    signature there: that member's next proposal or ACCEPT on version 1 is a finding."""
    bundle = scn.bundles[holder]
    damaged_at = index_of(bundle, scn.ids["v1_us"])
    entries = list(bundle.entries)
    entries[damaged_at] = flip_signature(entries[damaged_at])
    damaged = read_bundle(rewrite(scn, tmp_path / f"{holder}.ewxlog", holder, entries))
    claimed_at = index_of(bundle, scn.ids[claim])
    alone = audit(damaged, trust=scn.trust)
    assert (holder, damaged_at, "bad_alert_signature", "error") in where(alone)
    (unsigned,) = [f for f in alone if f.kind == UNSIGNED_IN_FORCE]
    assert (unsigned.node, unsigned.index, unsigned.severity) == (holder, claimed_at, "error")
    assert "no valid signature of US" in unsigned.detail
    assert scn.ids["v1"] in unsigned.detail
    # Besides, the gap the left-out vote leaves in US's stream to the holder, and the fold's
    # view of that log alone: version 2, signed by all, on a version 1 still waiting for US's
    # signature (which might be in flight: info).
    assert {f.kind for f in alone} == {
        "bad_alert_signature",
        "sequence_gap",
        UNSIGNED_IN_FORCE,
        "watchlist_predecessor_not_in_force",
    }
    (waiting,) = [f for f in alone if f.kind == "watchlist_predecessor_not_in_force"]
    assert (waiting.severity, waiting.index) == ("info", index_of(bundle, scn.ids["v2"]))
    # Together: the other logs hold US's valid ACCEPT, so version 1 is signed by all three;
    # what the holder signed on it is still not backed by its own log.
    together = audit(*[damaged if cc == holder else scn.bundles[cc] for cc in COUNTRIES], trust=scn.trust)
    assert (holder, claimed_at, UNSIGNED_IN_FORCE, "error") in where(together)
    assert ("US", index_of(scn.bundles["US"], scn.ids["v1_us"]), "sent_not_received", "error") in where(
        together
    )
    assert not [f for f in together if f.kind.startswith("watchlist_") and f.kind != UNSIGNED_IN_FORCE]


def test_an_unusable_proposal_is_no_version(scn: Scenario, tmp_path: Path) -> None:
    """KR's proposal of version 1, damaged in US's log: US's ACCEPT of it votes on nothing US held."""
    bundle = scn.bundles["US"]
    damaged_at = index_of(bundle, scn.ids["v1"])
    entries = list(bundle.entries)
    entries[damaged_at] = flip_signature(entries[damaged_at])
    damaged = read_bundle(rewrite(scn, tmp_path / "US.ewxlog", "US", entries))
    found = where(audit(damaged, trust=scn.trust))
    assert ("US", damaged_at, "bad_alert_signature", "error") in found
    # Alone, US's own ACCEPT of a proposal its log does not hold: an error, not in flight.
    assert ("US", index_of(bundle, scn.ids["v1_us"]), "watchlist_vote_unknown_proposal", "error") in found


# ------------------------------------------------------------------ the golden sets, one log
def _golden(name: str, cc: Country) -> Bundle:
    return read_bundle(GOLDENS / name / f"{cc}.ewxlog")


GOLDEN_TRUST = Trust.load(GOLDENS / "federation.json")
EXPECTED = json.loads((GOLDENS / "expected.json").read_text())


@pytest.mark.parametrize(
    "name", ["watchlist_fork", "watchlist_vote_unknown_proposal", "watchlist_unsigned_in_force"]
)
def test_jp_s_log_alone_proves_its_watchlist_defect(name: str) -> None:
    """Each defect is in JP's own log: JP's log alone shows it as an error too."""
    kind = name if name != "watchlist_unsigned_in_force" else UNSIGNED_IN_FORCE
    wanted = [(n, i, k) for n, i, k in EXPECTED[name] if k == kind]
    found = audit(_golden(name, "JP"), trust=GOLDEN_TRUST)
    assert [(f.node, f.index, f.kind) for f in found if f.kind == kind and f.severity == "error"] == wanted
    for cc in ("KR", "US"):  # the other logs are the intact ones
        assert audit(_golden(name, cc), trust=GOLDEN_TRUST) == []


def test_a_finding_names_the_message_and_the_json_carries_it() -> None:
    report = verify_loaded([_golden("watchlist_fork", cc) for cc in COUNTRIES], trust=GOLDEN_TRUST, workers=1)
    (fork,) = [f for f in report.to_json()["findings"] if f["kind"] == "watchlist_fork"]
    assert fork["node"] == "JP" and fork["severity"] == "error"
    assert fork["detail"].startswith("JP JP-W1B: 2 versions 1 are signed by every member")
    assert "signed by more than one: KR, US, JP" in fork["detail"]
    assert "JP #" in report.to_text()


def test_a_vote_under_a_key_outside_its_validity_signs_nothing(scn: Scenario) -> None:
    """US's alert key, valid only before the exchange: everything US signed is expired_key, and
    none of it signs the watchlist, so JP's version 2 on version 1 lacks US's signature."""
    doc = json.loads(scn.trust.to_json())
    for key in doc["members"]["US"]["keys"]:
        if key["purpose"] == "alert":
            key["not_before"], key["not_after"] = "2020-01-01T00:00:00Z", "2020-06-01T00:00:00Z"
    trust = Trust.parse(json.dumps(doc).encode())
    jp = scn.bundles["JP"]
    found = audit(jp, trust=trust)
    assert ("JP", index_of(jp, scn.ids["v1_us"]), "expired_key", "error") in where(found)
    (unsigned,) = [f for f in found if f.kind == UNSIGNED_IN_FORCE]
    assert (unsigned.index, "no valid signature of US" in unsigned.detail) == (
        index_of(jp, scn.ids["v2"]),
        True,
    )


def test_the_pool_folds_what_the_process_folds() -> None:
    """Watchlist messages cross the process pool whole (pass 2 decodes them there)."""
    bundles = [_golden("watchlist_unsigned_in_force", cc) for cc in COUNTRIES]
    alone = verify_loaded(bundles, trust=GOLDEN_TRUST, workers=1)
    pooled = verify_loaded(bundles, trust=GOLDEN_TRUST, workers=2, min_parallel=1)
    assert pooled.findings == alone.findings
    assert UNSIGNED_IN_FORCE in {f.kind for f in pooled.findings}
