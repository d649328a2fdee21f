"""Operations (issue 14, items 2 and 3): Prometheus metrics scraped over HTTP, per-peer health, reflection."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from pathlib import Path

import grpc
import pytest
import yaml
from grpc import aio
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from gateway.metrics import METRICS
from gateway.runtime import peer_health_name
from node.config import NodeConfig
from node.errors import UsageError
from node.ids import Country
from node.message import pb
from node.operator import OperatorClient
from tests.federation.test_hostile_matrix import deliver_as, identity_of, wrap
from tests.node.cli.test_cli import ewx
from tests.support.factories import alert_info, make_federation, peer_channel, running

ROOT = Path(__file__).resolve().parents[2]


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return str(reply.read().decode())


def _value(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.partition("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_a_running_node_is_scraped_over_http(tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed", metrics_listen="127.0.0.1:0", outbox_retry_max_seconds=0.3)

    async def scenario() -> None:
        async with running(fed["KR"], fed["US"]) as nodes:
            kr, us = nodes["KR"], nodes["US"]
            kr_port, us_port = kr.runtime.metrics.port, us.runtime.metrics.port
            kr.service.publish(msg_type="ALERT", info=alert_info())
            scraped = ""

            async def delivered_to_us() -> bool:
                nonlocal scraped
                scraped = await asyncio.to_thread(_scrape, kr_port)
                return _value(scraped, "ewx_alerts_delivered_total", node="KR", peer="US") == 1.0

            deadline = asyncio.get_running_loop().time() + 15
            while not await delivered_to_us():
                assert asyncio.get_running_loop().time() < deadline, scraped
                await asyncio.sleep(0.05)
            # Every metric the node documents is exported.
            families = set(re.findall(r"^# TYPE (\w+) ", scraped, flags=re.MULTILINE))
            for name in METRICS:
                assert name in families, name
            assert _value(scraped, "ewx_delivery_seconds_count", node="KR", peer="US") == 1.0
            assert _value(scraped, "ewx_outbox_backlog", node="KR", peer="JP") == 1.0  # JP is down
            assert _value(scraped, "ewx_outbox_backlog", node="KR", peer="US") == 0.0
            assert _value(scraped, "ewx_log_size", node="KR") == kr.service.log_size
            assert (_value(scraped, "ewx_certificate_days_left", node="KR") or 0) > 300

            # An early-warning scan (its own process) reports to the node over the operator socket.
            operator = OperatorClient(NodeConfig.load(fed["KR"]).operator_socket)
            await asyncio.to_thread(
                operator.call, "ews_scanned", seconds=2.5, detections={"EXTREME": 2, "SEVERE": 1}
            )
            text = await asyncio.to_thread(_scrape, kr_port)
            assert _value(text, "ewx_ews_scans_total", node="KR") == 1.0
            assert _value(text, "ewx_ews_scan_seconds", node="KR") == 2.5
            assert _value(text, "ewx_ews_detections", node="KR", severity="EXTREME") == 2.0
            assert _value(text, "ewx_ews_detections", node="KR", severity="MINOR") == 0.0
            with pytest.raises(UsageError, match="ews_scanned needs"):
                await asyncio.to_thread(operator.call, "ews_scanned", seconds=-1, detections={})
            # `ewx ews scan` itself reports (an empty early-warning store: no detections).
            done = await asyncio.to_thread(ewx, "ews", "scan", "--config", str(fed["KR"]), "--json")
            assert json.loads(done.stdout)["detections"] == []
            text = await asyncio.to_thread(_scrape, kr_port)
            assert _value(text, "ewx_ews_scans_total", node="KR") == 2.0
            assert _value(text, "ewx_ews_detections", node="KR", severity="EXTREME") == 0.0

            # The receiver counts the alert, how long it took, and a refusal by its reason.
            outcome = await deliver_as(fed["US"], identity_of(fed["KR"]), wrap(b"\xff not an envelope"))
            assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT
            text = await asyncio.to_thread(_scrape, us_port)
            assert _value(text, "ewx_alerts_received_total", node="US", peer="KR") == 1.0
            assert _value(text, "ewx_propagation_seconds_count", node="US", peer="KR") == 1.0
            assert _value(text, "ewx_alerts_refused_total", node="US", peer="KR", reason="malformed") == 1.0
            assert _value(text, "ewx_peer_reachable", node="US", peer="KR") == 1.0

        # Stopped: the endpoint is gone.
        try:
            await asyncio.to_thread(_scrape, kr_port)
            raise AssertionError("the metrics endpoint outlived its node")
        except OSError:
            pass

    asyncio.run(scenario())


async def _health(channel: aio.Channel, service: str) -> int:
    reply = await channel.unary_unary("/grpc.health.v1.Health/Check")(
        health_pb2.HealthCheckRequest(service=service).SerializeToString(), timeout=5
    )
    return int(health_pb2.HealthCheckResponse.FromString(reply).status)


def test_a_peer_unreachable_too_long_is_not_serving_under_its_name(tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed", peer_unhealthy_after_seconds=0.5, outbox_retry_max_seconds=0.2)

    async def scenario() -> None:
        async with running(fed["KR"], fed["US"]), peer_channel(fed["KR"], fed["US"]) as channel:
            serving, not_serving = (
                health_pb2.HealthCheckResponse.SERVING,
                health_pb2.HealthCheckResponse.NOT_SERVING,
            )
            jp: Country = "JP"
            deadline = asyncio.get_running_loop().time() + 15
            # KR started before US, so its link to US may count as down until the next
            # pull gets through (every few seconds); JP never comes up.
            while (
                await _health(channel, peer_health_name(jp)) != not_serving
                or await _health(channel, peer_health_name("US")) != serving
            ):
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.1)
            assert await _health(channel, "") == serving  # the node itself serves on
            async with running(fed["JP"]):
                deadline = asyncio.get_running_loop().time() + 15
                while await _health(channel, peer_health_name(jp)) != serving:
                    assert asyncio.get_running_loop().time() < deadline
                    await asyncio.sleep(0.1)

    asyncio.run(scenario())


async def _listed_services(channel: aio.Channel) -> list[str]:
    call = channel.stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )

    async def one() -> object:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    async for reply in call(one(), timeout=5):
        return sorted(s.name for s in reply.list_services_response.service)
    return []


def test_reflection_answers_only_when_the_operator_turns_it_on(tmp_path: Path) -> None:
    fed = make_federation(tmp_path / "fed", grpc_reflection=True)

    async def scenario() -> None:
        async with running(fed["KR"]), peer_channel(fed["KR"], fed["US"]) as channel:
            listed = await _listed_services(channel)
            assert pb.DESCRIPTOR.services_by_name["Federation"].full_name in listed
            assert "grpc.health.v1.Health" in listed

    asyncio.run(scenario())
    # Off by default: tests/gateway/test_federation_surface.py finds it UNIMPLEMENTED.


def test_the_shipped_alert_rules_and_dashboard_name_only_exported_metrics() -> None:
    exported = {n.removesuffix("_total") for n in METRICS}
    suffixes = ("_total", "_bucket", "_count", "_sum")
    named: set[str] = set()
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yaml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            named.update(re.findall(r"\bewx_\w+", rule["expr"]))
    dashboard = (ROOT / "deploy" / "grafana" / "ewx-node.json").read_text()
    named.update(re.findall(r"\bewx_\w+", dashboard))
    assert named, "no metric named at all"
    for name in named:
        base = next((name.removesuffix(s) for s in suffixes if name.endswith(s)), name)
        assert base in exported, name
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {
        "EwxPeerDown",
        "EwxBacklogGrowing",
        "EwxCheckpointNotCosigned",
        "EwxCertificateExpiring",
    } <= alerts
