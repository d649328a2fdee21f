"""The bundled scenarios (node/ews/data/): each detection fires in the first month the data shows
its shock, with the right severity and evidence, and not before; the quiet case stays quiet."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from node.ews.ingest import ingest_file
from node.ews.rules import Detection
from node.ews.scan import compute
from node.ews.store import EwsStore
from node.ews.thresholds import Thresholds

DATA = resources.files("node.ews") / "data"

# (codes, the month the policy move was announced, the first month the data shows the shock)
UREA_2021 = (("310210",), "2021-10", "2021-11")
GALLIUM_GERMANIUM_2023 = (("811292", "282560"), "2023-07", "2023-08")
GRAPHITE_2023 = (("250410", "380110"), "2023-10", "2023-12")


def _load(country: str, folder: Path) -> EwsStore:
    store = EwsStore.open(folder)
    with resources.as_file(DATA / country) as source:
        for path in sorted(Path(source).glob("*.csv")):
            ingest_file(store, path)
    return store


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, EwsStore]:
    loaded = {cc: _load(cc, tmp_path_factory.mktemp(cc)) for cc in ("KR", "US", "JP")}
    yield loaded
    for store in loaded.values():
        store.close()


@pytest.fixture(scope="module")
def kr(stores: dict[str, EwsStore]) -> list[Detection]:
    return compute(stores["KR"], Thresholds())


def _on(detections: list[Detection], code: str) -> list[Detection]:
    return sorted((d for d in detections if d.hs_code == code), key=lambda d: d.period)


@pytest.mark.parametrize("scenario", [UREA_2021, GALLIUM_GERMANIUM_2023, GRAPHITE_2023], ids=["urea", "gallium", "graphite"])
def test_korea_is_warned_at_the_policy_move_and_at_the_shock_and_not_before(kr: list[Detection], scenario: tuple) -> None:
    codes, announced, shock = scenario
    for code in codes:
        found = _on(kr, code)
        assert found, f"nothing fired on {code}"
        first = found[0]
        assert first.period == announced, [(d.period, d.severity) for d in found]
        assert "policy" in first.evidence["triggers"] and first.partner == "CN"
        assert first.category == "EXPORT_CONTROL"
        critical = first.evidence["exposure"]["base_cr1"] >= Thresholds().cr1_critical
        assert first.severity == ("SEVERE" if critical else "MODERATE")
        extreme = next(d for d in found if d.severity == "EXTREME")
        assert extreme.period == shock
        assert extreme.evidence["triggers"] == ["policy", "volume_drop"]
        assert extreme.evidence["values"]["z_partner"] <= -Thresholds().volume_z
        assert extreme.evidence["policy_event"]["country"] == "CN"
        assert all(d.period <= shock for d in found[:2])


def test_korea_urea_in_2024_stays_quiet_as_imports_diversify(kr: list[Detection], stores: dict[str, EwsStore]) -> None:
    assert [d for d in _on(kr, "310210") if d.period >= "2023-01"] == []
    shares = stores["KR"].rows(
        "SELECT max(value) / sum(value) AS cr1 FROM (SELECT partner, sum(value) AS value FROM flows "
        "WHERE hs_code = '310210' AND period >= '2024-01' GROUP BY partner)"
    )
    assert shares[0]["cr1"] < Thresholds().cr1


def test_background_codes_stay_quiet(kr: list[Detection], stores: dict[str, EwsStore]) -> None:
    scenario_codes = {c for s in (UREA_2021, GALLIUM_GERMANIUM_2023, GRAPHITE_2023) for c in s[0]}
    for country, store in stores.items():
        found = kr if country == "KR" else compute(store, Thresholds())
        noisy = [d.detection_id for d in found if d.hs_code not in scenario_codes and not d.hs_code.startswith("2504")]
        assert noisy == [], country


def test_each_node_reads_its_own_data_the_us_from_a_un_comtrade_export(stores: dict[str, EwsStore]) -> None:
    layouts = {r["layout"] for r in stores["US"].rows("SELECT layout FROM batches WHERE kind = 'flows'")}
    assert layouts == {"comtrade"}
    for store in stores.values():
        assert store.count("flows") > 1000 and store.count("events") >= 2


def test_stricter_thresholds_silence_what_default_ones_find(stores: dict[str, EwsStore]) -> None:
    strict = Thresholds(cr1=0.99, hhi=0.99, cr1_critical=0.99)
    assert compute(stores["KR"], strict) == []
    no_policy = compute(stores["KR"], Thresholds(policy_days=0))
    assert all("policy" not in d.evidence["triggers"] for d in no_policy)
    assert {d.period for d in _on(no_policy, "811292")} == {"2023-08"}
