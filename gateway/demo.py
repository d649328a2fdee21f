"""`ewx demo`: the main job end to end (SPEC section 8).

Three real nodes (KR, US, JP) run as separate `ewx serve` processes on
127.0.0.1 with a fresh development PKI. The three agree a first watchlist
(gallium, germanium, graphite, batteries from CN); Japan's mission reports
China's July 2023 announcement as a policy move; Korea's node takes the
report as the trigger of its scan over its own (bundled, illustrative) import
data, finds the gallium and germanium shock, and publishes an alert; the US and Japan receive and acknowledge it, the US
responds, Japan asks for a consultation; Korea rotates its alert key (a trust
update endorsed by its national CA, taken by the peers without a restart)
and updates the alert under the new key, and the US and Japan acknowledge the
new version. Then the nodes stop, their logs are exported, the audit verifies
them across all three, and the demo ends with Korea's situation board (`ewx
board`, taken as the scenario ended): the open update with its peers'
acknowledgements, and the watchlist with the reported policy move.

Detection is the real engine (node/ews/): each node ingests its own bundled
sample data (node/ews/data/<CC>/), Korea's node scans it, and the analyst's
approval of the gallium and germanium drafts publishes the alert; the US and
Japan nodes check it against their own data at once and show their exposure.
"""

from __future__ import annotations

import base64
import tempfile
import time
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from gateway.local_nodes import NodeProcess, assign_free_ports
from node.audit import Bundle, read_bundle, render_html, replay, verify_bundles
from node.checks import cosigned_by
from node.config import NodeConfig
from node.crypto import parse_checkpoint, parse_signed_note
from node.errors import ConfigError, EwxError
from node.ews.cli import scan_synced, sync_from
from node.ews.ingest import ingest_file
from node.ews.review import approve, open_store
from node.ews.rules import explain
from node.ids import Country
from node.operator import OperatorClient
from node.pki import init_federation, load_national_ca
from node.service import export_bundle, prepare_rotation
from node.situation.board import render_text
from node.trilateral import SEVERITIES
from node.trust import Trust, endorse_update

GALLIUM_GERMANIUM = ("811292", "282560")
GALLIUM_SHOCK = ("2023-07", "2023-08")
"""The month China announced the controls and the first month Korea's sample data shows them biting."""
FIRST_WATCHLIST: tuple[tuple[str, str], ...] = (
    ("811292", "SUPPLY_CONCENTRATION"),  # gallium, germanium, indium: unwrought, powders
    ("282560", "SUPPLY_CONCENTRATION"),  # germanium oxides
    ("250410", "POLICY_RISK"),  # natural graphite, powder or flakes
    ("380110", "POLICY_RISK"),  # artificial graphite
    ("850760", "STRATEGIC_ITEM"),  # lithium-ion batteries
)
"""Watchlist version 1: key items and the supplier country the federation watches for them."""
CHINA_JULY_2023: dict[str, Any] = {
    "country": "CN",
    "measure": "EXPORT_LICENSING",
    "hs_codes": ["282560", "811292"],
    "hs_edition": "HS2022",
    "stage": "ANNOUNCED",
    "announced": "2023-07-03",
    "effective": "2023-08-01",
    "source": "MISSION_REPORT",
}
"""MOFCOM and GAC announcement No. 23 of 2023: export licensing of gallium and germanium items."""
SETTLE_TIMEOUT_SECONDS = 20.0
DEMO_CHECKPOINT_SECONDS = 0.25
"""A short checkpoint cadence so the demo's logs are witnessed within a second."""


def _say(text: str = "") -> None:
    print(text, flush=True)


def _settle(nodes: dict[Country, NodeProcess]) -> None:
    """Wait until every alert is receipted and every log's newest checkpoint,
    covering all of it, is cosigned by both peers (published)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        statuses = [n.client.call("status") for n in nodes.values()]
        delivered = all(p["backlog"] == 0 for s in statuses for p in s["peers"].values())
        published = all(s["log"]["published_size"] == s["log"]["size"] for s in statuses)
        if delivered and published:
            return
        time.sleep(0.1)
    raise EwxError("alerts or checkpoints were still unconfirmed after 20 s; see the node logs")


def _wait_for_alert(node: NodeProcess, origin: Country, alert_id: str) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if any(
            a["origin"] == origin and a["alert_id"] == alert_id
            for a in node.client.alerts(origin=origin, alert_id=alert_id)
        ):
            return
        time.sleep(0.05)
    raise EwxError(f"{node.country} did not receive {alert_id} in time")


def _load_sample_data(nodes: dict[Country, NodeProcess], work: Path) -> None:
    """Each node ingests its own bundled indicator data (ewx ews ingest).

    Korea's own policy events leave out China's July 2023 announcement: in the
    demo, Korea learns of it from Japan's mission (a POLICY_REPORT), and its
    scan takes the report as the trigger.
    """
    for country, node in nodes.items():
        config = NodeConfig.load(node.config)
        with (
            resources.as_file(resources.files("node.ews") / "data" / country) as folder,
            open_store(config) as store,
        ):
            files = sorted(Path(folder).glob("*.csv"))
            if country == "KR":
                files = [
                    _without_the_july_move(path, work) if path.name == "events.csv" else path
                    for path in files
                ]
            reports = [ingest_file(store, path) for path in files]
        rows = ", ".join(
            f"{r.added} {r.kind.value}" + (" (UN Comtrade layout)" if r.layout == "comtrade" else "")
            for r in reports
        )
        _say(f"   {country} ingests its own sample data: {rows}")


def _without_the_july_move(events: Path, work: Path) -> Path:
    """A copy of Korea's events.csv without the row of China's 2023-07-03 announcement."""
    lines = events.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if f",{CHINA_JULY_2023['announced']}," not in line]
    copy = work / "KR-events.csv"
    copy.write_text("".join(kept), encoding="utf-8")
    return copy


def _detect_and_approve(nodes: dict[Country, NodeProcess]) -> str:
    """Korea's analyst: scan, review the gallium and germanium drafts, approve them as one alert.

    The scan takes the node's policy reports and its watchlist in force first,
    as `ewx ews scan` does (node/ews/cli.py).
    """
    config = NodeConfig.load(nodes["KR"].config)
    client = nodes["KR"].client
    sync = sync_from(client)
    if not sync.reachable or sync.watchlist is None:
        raise EwxError(f"KR's node did not answer for its scan: {sync.down}")
    with open_store(config) as store:
        result, taken = scan_synced(store, sync, config.ews, me=config.node_id)
    _say(
        f"   KR takes {taken.added if taken else 0} policy report of its peers as its own policy event, "
        f"and watchlist version {sync.watchlist.version} for its scan"
    )
    _say(
        f"1. KR scans {result.codes} HS-6 codes over {result.months} code-months: {len(result.detections)} "
        "detections, each a draft with its evidence:"
    )
    for d in result.detections:
        _say(f"   {d.detection_id:<26} {d.severity:<8} {d.category:<15} source {d.partner}  ({d.rule})")
    # Per item, the most severe detection of the months the controls were announced and bit.
    chosen = []
    for code in GALLIUM_GERMANIUM:
        found = [d for d in result.detections if d.hs_code == code and d.period in GALLIUM_SHOCK]
        if found:
            chosen.append(max(found, key=lambda d: (SEVERITIES.index(d.severity), d.period)))
    if len(chosen) != len(GALLIUM_GERMANIUM):
        raise EwxError("the scan did not find the gallium and germanium shock in KR's sample data")
    _say(f"   the analyst reviews {', '.join(d.detection_id for d in chosen)}:")
    for line in explain(chosen[0].evidence).splitlines():
        _say(f"   | {line}")
    client = nodes["KR"].client
    return approve(
        config,
        [d.detection_id for d in chosen],
        publish=lambda **fields: dict(
            client.call("publish", **{k: v for k, v in fields.items() if v is not None})
        ),
        status="EXERCISE",
    )


def _wait_for(what: str, check: Any) -> Any:
    deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise EwxError(f"{what} did not happen within {SETTLE_TIMEOUT_SECONDS:g} s")


def _pending(client: OperatorClient, alert_id: str, signer: Country | None = None) -> bool:
    versions = client.call("watchlist")["versions"]
    return any(v["alert_id"] == alert_id and (signer is None or signer in v["signers"]) for v in versions)


def _agree_watchlist(nodes: dict[Country, NodeProcess]) -> None:
    """The three members agree the first watchlist: KR proposes, the US and Japan sign (ewx watchlist)."""
    kr, us, jp = nodes["KR"].client, nodes["US"].client, nodes["JP"].client
    proposal = kr.call(
        "propose_watch",
        add=[{"hs_code": code, "country": "CN", "reason": reason} for code, reason in FIRST_WATCHLIST],
        hs_edition="HS2022",
    )["alert_id"]
    _say(
        f"   KR proposes watchlist version 1 ({proposal}): "
        + ", ".join(f"{code}:CN" for code, _ in FIRST_WATCHLIST)
    )
    _wait_for("the proposal reaching the US", lambda: _pending(us, proposal))
    us.call("vote_watch", origin="KR", alert_id=proposal, decision="ACCEPT")
    _wait_for("the US vote reaching Japan", lambda: _pending(jp, proposal, signer="US"))
    jp.call("vote_watch", origin="KR", alert_id=proposal, decision="ACCEPT")
    for name, node in nodes.items():
        _wait_for(
            f"version 1 in force at {name}",
            lambda node=node: node.client.call("watchlist")["current"]["version"] == 1,
        )
    _say("   the US and Japan sign it: version 1 is in force at all three nodes, signed by KR, US and JP")


def _report_policy(nodes: dict[Country, NodeProcess]) -> str:
    """Japan's mission in China reports the July 2023 announcement (ewx policy report)."""
    report = nodes["JP"].client.call("report_policy", policy=CHINA_JULY_2023)["alert_id"]
    _say(
        f"   JP's mission reports China's {CHINA_JULY_2023['announced']} announcement: "
        f"{CHINA_JULY_2023['measure']} on HS {', '.join(CHINA_JULY_2023['hs_codes'])} from "
        f"{CHINA_JULY_2023['effective']} ({CHINA_JULY_2023['source']}; POLICY_REPORT {report})"
    )
    for name in ("KR", "US"):
        client = nodes[name].client
        _wait_for(
            f"the report reaching {name}",
            lambda client=client: any(r["alert_id"] == report for r in client.call("policy_list")),
        )
    return str(report)


def _scenario(nodes: dict[Country, NodeProcess], work: Path) -> dict[str, Any]:
    """The scenario; returns Korea's situation board (the `board` reply) as it ends."""
    kr, us, jp = nodes["KR"].client, nodes["US"].client, nodes["JP"].client
    _load_sample_data(nodes, work)
    _agree_watchlist(nodes)
    _report_policy(nodes)
    alert_id = _detect_and_approve(nodes)
    shown = kr.call("show", origin="KR", alert_id=alert_id)
    info = shown["info"]
    _say(
        f"2. the analyst approves: KR publishes ALERT {alert_id} ({info['severity']}, {info['category']}, "
        f"HS {', '.join(i['hs_code'] for i in info['items'])}, source {', '.join(info['source_countries'])}, "
        f"impact {info['supply_impact']}; bands only, no figure) to "
        + " and ".join(f"{d['recipient']} (seq {d['seq']})" for d in shown["deliveries"])
    )
    ref = {"origin": "KR", "alert_id": alert_id}
    for name, client in (("US", us), ("JP", jp)):
        _wait_for_alert(nodes[name], "KR", alert_id)  # type: ignore[index]
        exposure = _wait_for_exposure(client, alert_id)
        ack = client.call("publish", msg_type="ACK", status="EXERCISE", reference=ref, reason="RECEIVED")
        _say(
            f"3. {name} verifies and stores it, checks it against its own data, and acknowledges: ACK {ack['alert_id']}"
        )
        for item in exposure["items"]:
            _say(
                f"   {name}'s own exposure on HS {item['hs_code']} ({item['window']['first']}..{item['window']['last']}): "
                f"share from {', '.join(exposure['sources'])} {item['share_band']}, HHI {item['hhi_band']}, "
                f"trend {item['trend']} (kept at home)"
            )
    us_exposure = us.call("show", origin="KR", alert_id=alert_id)["local_exposure"]
    resp = us.call(
        "publish",
        msg_type="RESPONSE",
        status="EXERCISE",
        reference=ref,
        response={
            "measures": ["STOCKPILE_RELEASE", "ALTERNATIVE_SOURCING"],
            "assistance": "OFFERED",
            "assistance_measures": ["INFORMATION_SHARING", "JOINT_PROCUREMENT"],
            "expected_duration_days": 90,
            "own_exposure": us_exposure["share_band"],
        },
    )
    _say(
        f"4. US responds: stockpile release and alternative sourcing, assistance offered, and shares its "
        f"own exposure as a band, {us_exposure['share_band']} (RESPONSE {resp['alert_id']})"
    )
    consult = jp.call(
        "publish",
        msg_type="CONSULT",
        status="EXERCISE",
        reference=ref,
        consult={
            "impact": "ABOVE_60",
            "cause": "EXPORT_CONTROL",
            "expected_duration_days": 180,
            "sectors": ["SEMICONDUCTORS", "CRITICAL_MINERALS"],
            "measures_taken": ["ALTERNATIVE_SOURCING"],
            "assistance_wanted": ["JOINT_PROCUREMENT", "INFORMATION_SHARING"],
        },
    )
    _say(f"5. JP requests a consultation on the {info['severity']} alert (CONSULT {consult['alert_id']})")
    _rotate_alert_key(nodes)
    update = kr.call(
        "publish",
        msg_type="UPDATE",
        status="EXERCISE",
        reference=ref,
        info={
            **info,
            "expected_duration_days": 180,
            "headline": "Update: CN licences for gallium and germanium slow; KR imports from CN near zero",
        },
    )
    _say(
        f"6. KR updates the alert: expected duration 180 days (UPDATE {update['alert_id']}), signed with its new key"
    )
    new_ref = {"origin": "KR", "alert_id": update["alert_id"]}
    acks = []
    for name, client in (("US", us), ("JP", jp)):
        _wait_for_alert(nodes[name], "KR", update["alert_id"])  # type: ignore[index]
        acks.append(
            client.call("publish", msg_type="ACK", status="EXERCISE", reference=new_ref, reason="RECEIVED")
        )
    _say(
        f"   US and JP verify the new version under KR's new key and acknowledge it: "
        f"ACK {acks[0]['alert_id']}, ACK {acks[1]['alert_id']}"
    )
    _settle(nodes)
    _say("7. Every message delivered, every receipt back, every log's checkpoint cosigned by both peers:")
    for name, node in nodes.items():
        status = node.client.call("status")
        links = "; ".join(
            f"{p}: sent {s['last_seq_sent']}, delivered {s['last_seq_delivered']}, "
            f"received {s['last_seq_received']}"
            for p, s in status["peers"].items()
        )
        _say(
            f"   {name} log {status['log']['size']} entries, published (cosigned) up to "
            f"{status['log']['published_size']} | {links}"
        )
    _say()
    _say("   Korea's view of its alert:")
    for a in kr.alerts(alert_id=alert_id):
        if a["alert_id"] == alert_id:
            _say(
                f"   {a['alert_id']} state={a['state']} acknowledged by {', '.join(a['acknowledged_by'])}; "
                f"follow-ups: {', '.join(f['origin'] + ' ' + f['msg_type'] for f in a['responses'])}"
            )
    return dict(kr.call("board"))


def _wait_for_exposure(client: OperatorClient, alert_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        exposure = client.call("show", origin="KR", alert_id=alert_id).get("local_exposure")
        if exposure:
            return dict(exposure)
        time.sleep(0.05)
    raise EwxError(f"the local exposure to {alert_id} was not computed in time")


def _rotate_alert_key(nodes: dict[Country, NodeProcess]) -> None:
    """KR rotates its alert key while everything runs (ewx pki rotate / endorse / announce)."""
    config = NodeConfig.load(nodes["KR"].config)
    request = prepare_rotation(config, now=datetime.now(UTC), purposes=["alert"])
    ca_dir = nodes["KR"].config.parent / "ca"  # the development PKI keeps the CA beside the node
    ca = load_national_ca(certificate=ca_dir / "ca.pem", key=ca_dir / "ca.key")
    update = endorse_update(request, ca_key=ca.key, ca_certificate=ca.certificate)
    result = nodes["KR"].client.call("announce", update=base64.b64encode(update).decode("ascii"))
    _say(
        f"   KR rotates its alert key: new key {result['signing_keys']['alert']}, endorsed by KR's national CA, "
        f"announced as trust update {result['serial']}"
    )
    deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
    for name in ("US", "JP"):
        while True:
            if nodes[name].client.call("status")["trust_updates"]["KR"] >= result["serial"]:
                break
            if time.monotonic() > deadline:
                raise EwxError(f"{name} did not take KR's trust update within {SETTLE_TIMEOUT_SECONDS}s")
            time.sleep(0.05)
    _say(
        "   US and JP verify it and take the new key without a restart; the old key still verifies old alerts"
    )


def _checkpoint_summary(bundle: Bundle, trust: Trust) -> str:
    """`KR: 5 checkpoints; newest (size 10) cosigned by US, JP`."""
    if not bundle.history:
        return f"{bundle.node}: no checkpoints"
    note = bundle.history[-1]
    checkpoint = parse_checkpoint(parse_signed_note(note).body)
    witnesses = sorted(cosigned_by(note, trust=trust, checkpoint=checkpoint))
    return (
        f"{bundle.node}: {len(bundle.history)} checkpoints; newest (size {checkpoint.size}) cosigned by "
        f"{', '.join(witnesses) or 'nobody'}; {len(bundle.witnessed)} peer checkpoints witnessed"
    )


def run_demo(directory: Path | None) -> int:
    """Run the whole demo; returns the exit code (0 when the audit is clean)."""
    root = directory or Path(tempfile.mkdtemp(prefix="ewx-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    fed = root / "federation"
    if (fed / "federation.json").exists():
        raise ConfigError(f"{fed} already holds a federation; give a new --dir")
    started = time.monotonic()
    _say(f"EWX demo in {root}")
    init_federation(fed)
    configs = assign_free_ports(fed, checkpoint_interval_seconds=DEMO_CHECKPOINT_SECONDS)
    _say(
        "0. Fresh development PKI: a national CA, node certificate and signing keys per country; "
        "trust file federation.json"
    )
    nodes: dict[Country, NodeProcess] = {}
    board: dict[str, Any] = {}
    try:
        for cc, path in configs.items():
            nodes[cc] = NodeProcess.start(cc, path)
        for node in nodes.values():
            node.wait_ready()
        _say(
            "   KR, US and JP nodes serving on 127.0.0.1 over mutual TLS "
            f"(ports {', '.join(NodeConfig.load(p).listen.rsplit(':', 1)[1] for p in configs.values())})"
        )
        board = _scenario(nodes, root)
    finally:
        codes = {cc: node.stop() for cc, node in nodes.items()}
    _say(f"8. Nodes stopped on SIGTERM (exit codes {', '.join(f'{c} {v}' for c, v in codes.items())})")
    logs = []
    for cc, path in configs.items():
        out = root / f"{cc}.ewxlog"
        size = export_bundle(NodeConfig.load(path), out)
        logs.append(out)
        _say(f"   exported {cc} log: {size} entries -> {out}")
    trust = Trust.load(fed / "federation.json")
    for path in logs:
        _say(f"   {_checkpoint_summary(read_bundle(path), trust)}")
    report = verify_bundles(logs, trust=trust)
    _say()
    _say("9. Offline audit of the three logs (ewx audit verify):")
    for line in report.to_text().splitlines():
        _say(f"   {line}")
    history = replay([read_bundle(p) for p in logs], trust=trust)
    page = root / "replay.html"
    page.write_text(render_html(history), encoding="utf-8")
    _say()
    _say("10. Replay from the logs alone (ewx audit replay):")
    for alert in history.alerts:
        acked = ", ".join(sorted(alert.acknowledged_by)) or "nobody"
        _say(
            f"   {alert.msg_type} {alert.alert_id} from {alert.origin}: {alert.state}; delivered to "
            f"{', '.join(sorted(alert.delivered_to)) or 'nobody'}; acknowledged by {acked}"
        )
    _say(f"   timeline page: {page}")
    _say()
    _say("== Korea's situation board (ewx board at KR, as the scenario ended, before the nodes stopped)")
    _say()
    for line in render_text(board).splitlines():
        _say(line)
    _say()
    _say(
        f"Done in {time.monotonic() - started:.1f}s. Try: ewx audit replay {' '.join(map(str, logs))} "
        f"--trust {fed / 'federation.json'}"
    )
    return 0 if report.clean and all(c == 0 for c in codes.values()) else 1


__all__ = ["NodeProcess", "assign_free_ports", "run_demo"]
