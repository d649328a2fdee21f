"""An analyst's day with the real CLI against three real nodes: ingest, scan, review, approve,
a peer's alert read with the local exposure, and no indicator figure on the wire or in a log."""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.ews.store import EWS_FILE
from tests.node.cli.test_cli import cli_cluster, ewx, wait_until
from tests.support.ews_factories import EVENT_HEADER, FLOW_HEADER, flow_rows, gallium_event, write_csv

pytestmark = pytest.mark.slow


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[dict[str, Path]]:
    with cli_cluster(tmp_path) as configs:
        yield configs


def test_auto_publish_publishes_at_scan_what_the_config_names(tmp_path: Path) -> None:
    with cli_cluster(tmp_path, ews={"auto_publish": "EXTREME"}) as configs:
        kr = str(configs["KR"])
        write_csv(tmp_path / "kr.csv", FLOW_HEADER, flow_rows(shock_from="2023-08"))
        write_csv(tmp_path / "events.csv", EVENT_HEADER, [gallium_event()])
        ewx("ews", "ingest", "--config", kr, str(tmp_path / "kr.csv"), str(tmp_path / "events.csv"))
        scan = json.loads(ewx("ews", "scan", "--config", kr, "--json").stdout)
        (published,) = scan["auto_published"].items()
        assert published[0] == "D-811292-202308-EXTREME" and published[1].startswith("KR-")
        states = {
            d["detection_id"]: d["state"]
            for d in json.loads(ewx("ews", "review", "--all", "--json", "--config", kr).stdout)
        }
        assert states == {"D-811292-202307-SEVERE": "draft", "D-811292-202308-EXTREME": "published"}
        listed = json.loads(ewx("alert", "list", "--config", kr, "--json").stdout)["alerts"]
        assert [a["alert_id"] for a in listed] == [published[1]]
        again = json.loads(ewx("ews", "scan", "--config", kr, "--json").stdout)
        assert again["auto_published"] == {} and again["detections"][1]["state"] == "published"


def _figures(rows: list[str]) -> set[str]:
    """Every value and quantity ingested, as written in the files."""
    out = set()
    for row in rows:
        _period, _hs, _partner, value, quantity, _unit = row.split(",")
        out.update({value, quantity})
    return out


def _leaks(figure: str, data: bytes) -> bool:
    """Whether `data` holds the figure: as a number in text, or float64 / float32 / int64 little-endian.

    In text only as a number of its own: a run of the same digits inside a hex
    key id or a base64 signature, which every bundle is full of, is chance.
    """
    number = float(figure)
    text = re.compile(rb"(?<![0-9A-Za-z])" + re.escape(figure.encode()) + rb"(?![0-9A-Za-z])")
    binary = [struct.pack("<d", number), struct.pack("<f", number)]
    if number.is_integer():
        binary.append(struct.pack("<q", int(number)))
    return text.search(data) is not None or any(b in data for b in binary)


def test_ingest_scan_approve_and_a_peer_sees_its_own_exposure(nodes: dict[str, Path], tmp_path: Path) -> None:
    kr, us, jp = (str(nodes[c]) for c in ("KR", "US", "JP"))
    kr_rows = flow_rows(shock_from="2023-08", partners={"CN": 81234.0, "JP": 10321.0, "DE": 5123.0})
    us_rows = flow_rows(seed=3, partners={"CN": 2345.0, "JP": 3456.0, "DE": 4567.0})
    write_csv(tmp_path / "kr.csv", FLOW_HEADER, kr_rows)
    write_csv(tmp_path / "us.csv", FLOW_HEADER, us_rows)
    write_csv(tmp_path / "events.csv", EVENT_HEADER, [gallium_event()])

    out = ewx(
        "ews", "ingest", "--config", kr, str(tmp_path / "kr.csv"), str(tmp_path / "events.csv"), "--json"
    )
    assert [r["added"] for r in json.loads(out.stdout)] == [len(kr_rows), 1]
    ewx("ews", "ingest", "--config", us, str(tmp_path / "us.csv"))
    again = ewx("ews", "ingest", "--config", kr, str(tmp_path / "kr.csv"))
    assert f"0 added, 0 replaced, {len(kr_rows)} unchanged" in again.stdout

    scan = json.loads(ewx("ews", "scan", "--config", kr, "--json").stdout)
    found = {d["detection_id"]: d for d in scan["detections"]}
    assert sorted(d["period"] for d in found.values()) == ["2023-07", "2023-08"]
    extreme = next(i for i, d in found.items() if d["severity"] == "EXTREME")
    severe = next(i for i, d in found.items() if d["severity"] == "SEVERE")
    review = ewx("ews", "review", "--config", kr)
    assert extreme in review.stdout and "robust z" in review.stdout
    explained = ewx("ews", "explain", extreme, "--config", kr)
    assert "reproduced: the data now in the store" in explained.stdout

    alert_id = ewx("ews", "approve", extreme, "--config", kr, "--status", "EXERCISE").stdout.strip()
    assert alert_id.startswith("KR-")
    twice = ewx("ews", "approve", extreme, "--config", kr, check=False)
    assert twice.returncode == 1 and f"already published as alert {alert_id}" in twice.stderr
    dismissed = ewx("ews", "dismiss", severe, "--config", kr, "--reason", "ALREADY_KNOWN")
    assert "dismissed" in dismissed.stdout
    assert ewx("ews", "approve", severe, "--config", kr, check=False).returncode == 1

    shown = wait_until(
        lambda: (
            (s := json.loads(ewx("alert", "show", alert_id, "--origin", "KR", "--config", us).stdout)).get(
                "local_exposure"
            )
            and s
        )
    )
    assert shown["info"]["severity"] == "EXTREME" and shown["info"]["source_countries"] == ["CN"]
    (item,) = shown["local_exposure"]["items"]
    assert item["hs_code"] == "811292" and item["share_band"] == "FROM_10_TO_30"
    listed = ewx("alert", "list", "--config", us)
    assert "own share from CN FROM_10_TO_30" in listed.stdout
    jp_view = wait_until(
        lambda: json.loads(ewx("alert", "show", alert_id, "--origin", "KR", "--config", jp).stdout).get(
            "local_exposure"
        )
    )
    assert jp_view["items"] == [] and jp_view["no_data"] == ["811292"]  # JP loaded no data
    jp_rows = flow_rows(seed=5, partners={"CN": 7000.0, "KR": 2500.0})
    loaded = ewx("ews", "ingest", "--config", jp, str(write_csv(tmp_path / "jp.csv", FLOW_HEADER, jp_rows)))
    assert "the node checks 1 peer alerts against the new data" in loaded.stdout
    rechecked = wait_until(
        lambda: json.loads(ewx("alert", "show", alert_id, "--origin", "KR", "--config", jp).stdout)[
            "local_exposure"
        ]["items"]
    )
    assert rechecked[0]["share_band"] == "ABOVE_60"

    response = ewx(
        "alert",
        "respond",
        alert_id,
        "--origin",
        "KR",
        "--config",
        us,
        "--measure",
        "STOCKPILE_RELEASE",
        "--with-exposure",
        "--status",
        "EXERCISE",
    ).stdout.strip()
    got = wait_until(
        lambda: next(
            (
                a
                for a in json.loads(ewx("alert", "list", "--config", kr, "--json").stdout)["alerts"]
                if a["alert_id"] == response
            ),
            None,
        )
    )
    assert got["msg_type"] == "RESPONSE"
    kr_copy = json.loads(ewx("alert", "show", response, "--origin", "US", "--config", kr).stdout)
    assert kr_copy["response"]["own_exposure"] == "FROM_10_TO_30"

    # Nothing of the indicator data crosses: not in any node's exchange log (every
    # envelope that went over the wire is in them), in no encoding.
    bundles = b""
    for country, config in nodes.items():
        out_file = tmp_path / f"{country}.ewxlog"
        ewx("log", "export", "--config", str(config), "--out", str(out_file))
        bundles += out_file.read_bytes()
    figures = {f for f in _figures(kr_rows) | _figures(us_rows) | _figures(jp_rows) if float(f) >= 1000}
    assert len(figures) > 200
    leaked = [f for f in figures if _leaks(f, bundles)]
    assert leaked == []
    evidence = json.loads(ewx("ews", "review", "--config", kr, "--all", "--json").stdout)
    computed = {
        str(v)
        for d in evidence
        for v in d["evidence"]["values"].values()
        if isinstance(v, float) and abs(v) >= 1
    }
    assert [c for c in computed if c.encode() in bundles or struct.pack("<d", float(c)) in bundles] == []
    assert (Path(nodes["KR"]).parent / "data" / EWS_FILE).exists()


def test_a_bad_file_is_refused_with_exit_2_and_nothing_stored(nodes: dict[str, Path], tmp_path: Path) -> None:
    kr = str(nodes["KR"])
    path = write_csv(
        tmp_path / "bad.csv", FLOW_HEADER, ["2023-01,811292,CN,10,2,kg", "2023-02,8112,CN,10,2,kg"]
    )
    refused = ewx("ews", "ingest", "--config", kr, str(path), check=False)
    assert refused.returncode == 2
    assert "bad.csv: row 2, column hs_code: '8112' is not a 6-digit HS code" in refused.stderr
    assert "Traceback" not in refused.stderr
    listed = ewx("ews", "scan", "--config", kr, "--json")
    assert json.loads(listed.stdout)["codes"] == 0
    skipped = ewx("ews", "ingest", "--config", kr, str(path), "--skip-bad")
    assert "1 added" in skipped.stdout and "skipped bad.csv: row 2, column hs_code" in skipped.stdout
    assert ewx("ews", "scan", "--config", kr, "--period", "2023-1", check=False).returncode == 2
    event = ewx(
        "ews",
        "event",
        "add",
        "--config",
        kr,
        "--country",
        "CN",
        "--hs",
        "3102.10",
        "--measure",
        "EXPORT_INSPECTION",
        "--announced",
        "2021-10-11",
        "--effective",
        "2021-10-15",
        "--stage",
        "IN_FORCE",
    )
    assert event.stdout.startswith("EV-") and "recorded" in event.stdout
    bad_event = ewx(
        "ews",
        "event",
        "add",
        "--config",
        kr,
        "--country",
        "XX",
        "--hs",
        "31021",
        "--measure",
        "EXPORT_BAN",
        "--announced",
        "2021-02-30",
        check=False,
    )
    assert bad_event.returncode == 2
    for part in ("column country: 'XX'", "column hs_codes: '31021'", "column announced: '2021-02-30'"):
        assert part in bad_event.stderr
    assert "310210" in ewx("ews", "event", "list", "--config", kr).stdout
