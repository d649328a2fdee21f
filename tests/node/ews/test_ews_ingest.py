"""Ingest: every row validated, all or nothing, idempotent, corrections recorded; any bytes refused cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.errors import UsageError
from node.ews.codes import Kind
from node.ews.ingest import FileRefused, IngestRefused, ingest_file, ingest_records
from node.ews.scan import scan
from node.ews.store import EwsStore
from node.ews.thresholds import Thresholds
from tests.support.ews_factories import (
    EVENT_HEADER,
    FLOW_HEADER,
    flow_rows,
    gallium_event,
    open_store,
    write_csv,
)


@pytest.fixture
def store(tmp_path: Path) -> EwsStore:
    s = open_store(tmp_path / "data")
    yield s
    s.close()


def test_good_flows_are_stored_whole(store: EwsStore, tmp_path: Path) -> None:
    rows = flow_rows(first="2023-01", last="2023-12")
    report = ingest_file(store, write_csv(tmp_path / "flows.csv", FLOW_HEADER, rows))
    assert (report.kind, report.rows_read, report.added) == (Kind.FLOWS, len(rows), len(rows))
    assert store.count("flows") == len(rows)
    assert report.data_version == store.data_version() == report.batch


def _work_left(store: EwsStore) -> set[str]:
    rows = store.db.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'temp'"
    ).fetchall()
    return {name for (name,) in rows}


def test_an_ingest_or_a_scan_leaves_no_copy_of_the_rows_behind(store: EwsStore, tmp_path: Path) -> None:
    # A copy left in a temporary table holds memory the next statement needs
    # (7.2 million flows: some 300 MB, pushing the scan into spilling to disk).
    ingest_file(store, write_csv(tmp_path / "flows.csv", FLOW_HEADER, flow_rows(first="2023-01", last="2023-12")))
    assert _work_left(store) == set()
    with pytest.raises(IngestRefused):
        ingest_file(store, write_csv(tmp_path / "bad.csv", FLOW_HEADER, ["2023-13,811292,CN,1,1,kg"]))
    assert _work_left(store) == set()
    scan(store, Thresholds())
    assert _work_left(store) == {"_ews_indicators", "_ews_fired"}


@pytest.mark.parametrize(
    ("row", "column", "reason"),
    [
        ("2023-13,811292,CN,1,1,kg", "period", "is not a month"),
        ("2023-01,81129,CN,1,1,kg", "hs_code", "6-digit HS code"),
        ("2023-01,８１１２９２,CN,1,1,kg", "hs_code", "6-digit HS code"),  # full-width digits
        ("2023-01,811292,XX,1,1,kg", "partner", "ISO 3166-1"),
        ("2023-01,811292,CN,-5,1,kg", "import_value_usd", "non-negative decimal"),
        ("2023-01,811292,CN,1e3,1,kg", "import_value_usd", "non-negative decimal"),
        ("2023-01,811292,CN,1,٣,kg", "quantity", "non-negative decimal"),  # Arabic-Indic digit
        ("2023-01,811292,CN,1,1,barrels", "unit", "quantity unit"),
        ("2023-01,811292,CN,,1,kg", "import_value_usd", "missing value"),
        ("2023-01,811292,CN,1", "quantity", "fewer fields"),
    ],
)
def test_a_bad_row_refuses_the_file_naming_row_column_and_reason(
    store: EwsStore, tmp_path: Path, row: str, column: str, reason: str
) -> None:
    path = write_csv(tmp_path / "flows.csv", FLOW_HEADER, ["2023-02,811292,CN,10,2,kg", row])
    with pytest.raises(IngestRefused) as caught:
        ingest_file(store, path)
    message = str(caught.value)
    assert f"flows.csv: row 2, column {column}: " in message
    assert reason in message
    assert "row 1" not in message
    assert store.count("flows") == 0 and store.count("batches") == 0


def test_skip_bad_stores_the_rest_and_reports_each_skipped_row(store: EwsStore, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "flows.csv",
        FLOW_HEADER,
        ["2023-01,811292,CN,10,2,kg", "2023-02,811292,ZZZ,10,2,kg", "bad", "2023-03,811292,CN,10,2,kg"],
    )
    report = ingest_file(store, path, skip_bad=True)
    assert report.added == 2 and report.skipped_rows == 2
    assert [(p.row, p.column) for p in report.skipped] == [(2, "partner"), (3, "hs_code")]
    assert sorted(r["period"] for r in store.rows("SELECT period FROM flows")) == ["2023-01", "2023-03"]


def test_a_repeated_key_in_one_file_is_refused(store: EwsStore, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "f.csv", FLOW_HEADER, ["2023-01,811292,CN,10,2,kg", "2023-01,811292,CN,11,2,kg"]
    )
    with pytest.raises(IngestRefused, match=r"row 2, column period: repeats row 1"):
        ingest_file(store, path)


def test_reingest_is_idempotent_and_a_correction_replaces_with_a_record(
    store: EwsStore, tmp_path: Path
) -> None:
    rows = flow_rows(first="2023-01", last="2023-06")
    path = write_csv(tmp_path / "flows.csv", FLOW_HEADER, rows)
    first = ingest_file(store, path)
    again = ingest_file(store, path)
    assert (again.added, again.replaced, again.unchanged) == (0, 0, len(rows))
    assert again.data_version == first.data_version  # nothing changed
    corrected = [*rows[:-1], rows[-1].rsplit(",", 3)[0] + ",999999,5.0,kg"]
    fixed = ingest_file(store, write_csv(tmp_path / "fixed.csv", FLOW_HEADER, corrected))
    assert (fixed.added, fixed.replaced, fixed.unchanged) == (0, 1, len(rows) - 1)
    assert fixed.data_version == fixed.batch > first.data_version
    (record,) = store.rows("SELECT * FROM replacements")
    assert json.loads(record["new"])["value"] == 999999
    assert json.loads(record["old"])["value"] != 999999
    assert store.count("flows") == len(rows)


def test_tonnes_are_kept_as_kilograms_and_units_do_not_mix(store: EwsStore, tmp_path: Path) -> None:
    ingest_file(store, write_csv(tmp_path / "a.csv", FLOW_HEADER, ["2023-01,811292,CN,10,2,t"]))
    assert store.rows("SELECT quantity, unit FROM flows") == [{"quantity": 2000.0, "unit": "kg"}]
    with pytest.raises(IngestRefused, match=r"HS 811292 is kept in kg; this row gives u"):
        ingest_file(store, write_csv(tmp_path / "b.csv", FLOW_HEADER, ["2023-02,811292,CN,10,2,u"]))


def test_a_missing_required_column_is_named(store: EwsStore, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "f.csv", "period,hs_code,partner,quantity", ["2023-01,811292,CN,2"])
    with pytest.raises(FileRefused, match=r"needs the column\(s\) import_value_usd or import_value or value"):
        ingest_file(store, path)


def test_other_columns_are_ignored(store: EwsStore, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "f.csv", FLOW_HEADER + ",note", ["2023-01,811292,CN,10,2,kg,anything at all"])
    assert ingest_file(store, path).added == 1


def test_un_comtrade_layout_reads_imports_and_ignores_world_and_exports(
    store: EwsStore, tmp_path: Path
) -> None:
    header = (
        "typeCode,freqCode,refPeriodId,refYear,refMonth,period,reporterCode,reporterISO,reporterDesc,flowCode,"
        "flowDesc,partnerCode,partnerISO,partnerDesc,classificationCode,cmdCode,cmdDesc,customsCode,motCode,"
        "qtyUnitCode,qtyUnitAbbr,qty,netWgt,grossWgt,cifvalue,fobvalue,primaryValue,isReported,isAggregate"
    )
    rows = [
        "C,M,20230801,2023,8,202308,842,USA,USA,M,Import,156,CHN,China,H6,811292,Gallium,C00,0,8,kg,120,120,,5000,,5000,True,False",
        "C,M,20230801,2023,8,202308,842,USA,USA,M,Import,392,JPN,Japan,H6,811292,Gallium,C00,0,8,kg,30,30,,1500,,1500,True,False",
        "C,M,20230801,2023,8,202308,842,USA,USA,M,Import,0,W00,World,H6,811292,Gallium,C00,0,8,kg,150,150,,6500,,6500,True,True",
        "C,M,20230801,2023,8,202308,842,USA,USA,X,Export,156,CHN,China,H6,811292,Gallium,C00,0,8,kg,1,1,,10,,10,True,False",
    ]
    report = ingest_file(store, write_csv(tmp_path / "comtrade.csv", header, rows))
    assert (report.layout, report.added, report.ignored) == ("comtrade", 2, 2)
    stored = store.rows("SELECT period, partner, value, quantity FROM flows ORDER BY partner")
    assert stored == [
        {"period": "2023-08", "partner": "CN", "value": 5000.0, "quantity": 120.0},
        {"period": "2023-08", "partner": "JP", "value": 1500.0, "quantity": 30.0},
    ]
    bad = rows[0].replace(",CHN,", ",QQQ,")
    with pytest.raises(IngestRefused, match=r"row 1, column partnerISO: 'QQQ' is not an ISO 3166-1"):
        ingest_file(store, write_csv(tmp_path / "bad.csv", header, [bad]))


def test_json_lines_events_and_a_four_digit_heading(store: EwsStore, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        json.dumps(
            {
                "country": "CN",
                "hs_codes": "2504;3801",
                "measure": "EXPORT_LICENSING",
                "announced": "2023-10-20",
                "effective": "2023-12-01",
                "stage": "IN_FORCE",
            }
        )
        + "\n"
    )
    assert ingest_file(store, path).added == 1
    assert store.rows("SELECT hs_codes, stage FROM events") == [
        {"hs_codes": "2504;3801", "stage": "IN_FORCE"}
    ]
    path.write_text('{"country": "CN", "hs_codes": 2504}\n[1, 2]\n')
    with pytest.raises(FileRefused, match=r"row 2: not a JSON object"):
        ingest_file(store, path)


def test_an_event_effective_before_its_announcement_is_refused(store: EwsStore) -> None:
    record = {
        "country": "CN",
        "hs_codes": "811292",
        "measure": "EXPORT_BAN",
        "announced": "2023-07-03",
        "effective": "2023-07-01",
        "stage": "ANNOUNCED",
    }
    with pytest.raises(IngestRefused, match=r"column effective: 2023-07-01 is before the announcement date"):
        ingest_records(store, Kind.EVENTS, [record], source="event add")


def test_an_event_with_a_new_stage_replaces_the_old(store: EwsStore, tmp_path: Path) -> None:
    ingest_file(
        store, write_csv(tmp_path / "e.csv", EVENT_HEADER, [gallium_event().replace("IN_FORCE", "ANNOUNCED")])
    )
    report = ingest_file(store, write_csv(tmp_path / "e2.csv", EVENT_HEADER, [gallium_event()]))
    assert report.replaced == 1
    assert store.rows("SELECT stage FROM events") == [{"stage": "IN_FORCE"}]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"\xff\xfeperiod\n", "not UTF-8"),
        (b"period,period\n", "every column once"),
        (b"a,b\n1,2\n", "cannot tell which kind"),
    ],
)
def test_unreadable_files_are_refused_with_a_reason(
    store: EwsStore, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    with pytest.raises(FileRefused, match=message):
        ingest_file(store, path)


def test_a_device_or_folder_is_not_read(store: EwsStore, tmp_path: Path) -> None:
    with pytest.raises(FileRefused, match="not a regular file"):
        ingest_file(store, Path("/dev/zero"))
    with pytest.raises(FileRefused, match="not a regular file"):
        ingest_file(store, tmp_path)


_cells = st.one_of(
    st.sampled_from(["2023-01", "811292", "CN", "10", "2.5", "kg", "", "８", "1e3", "-1", '"', "ZZ", "t"]),
    st.text(max_size=6),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        st.binary(max_size=300),
        st.lists(st.lists(_cells, min_size=0, max_size=8), max_size=6).map(
            lambda rows: (FLOW_HEADER + "\n" + "\n".join(",".join(r) for r in rows)).encode(
                "utf-8", "surrogatepass"
            )
        ),
    )
)
def test_any_bytes_are_refused_cleanly_or_stored_whole(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    folder = tmp_path_factory.mktemp("prop")
    path = folder / "input.csv"
    path.write_bytes(data)
    with EwsStore.open(folder) as store:
        try:
            report = ingest_file(store, path)
        except UsageError as exc:
            assert str(exc)  # a reason, never a traceback
            assert store.count("flows") + store.count("batches") == 0
            return
        stored = sum(store.count(k.value) for k in Kind)
        assert stored == report.added == report.rows_read - report.ignored
        assert store.count("batches") == 1
