"""A renewed node certificate is picked up without a restart (issue 5 item 1).

The renewal goes the production way: a new key and request made with
`create_node_request` (`ewx pki csr`), issued by the national CA with
`sign_node_csr` (`ewx pki sign`), and renamed into place. What a peer sees
is read with Python's own TLS client (tests/gateway/tls_probe.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.local_nodes import NodeProcess
from gateway.runtime import NodeRuntime
from node.config import NodeConfig
from node.errors import ConfigError
from node.ids import Country
from node.pki import (
    create_national_ca,
    create_node_request,
    issue_node_certificate,
    load_certificate_file,
    load_ec_private_key,
    sign_node_csr,
    write_private_key,
    write_public_file,
)
from tests.gateway.tls_probe import handshake
from tests.support.factories import RunningNode, alert_info, make_federation, wait_for


def renew(
    config_path: Path,
    staging: Path,
    *,
    days: int = 397,
    now: datetime | None = None,
    ca_dir: Path | None = None,
    country: Country | None = None,
    install: bool = True,
) -> x509.Certificate:
    """A new key and certificate for the node of `config_path` by csr and sign; renamed into place."""
    config = NodeConfig.load(config_path)
    ca = ca_dir or config_path.parent / "ca"
    request = create_node_request(staging, country=country or config.node_id, now=now)
    certificate = sign_node_csr(
        request.csr_path.read_bytes(),
        ca_certificate=load_certificate_file(ca / "ca.pem"),
        ca_key=load_ec_private_key(ca / "ca.key"),
        validity=timedelta(days=days),
        now=now,
    )
    write_public_file(staging / "tls" / "node.pem", certificate)
    if install:
        os.replace(request.key_path, config.tls.private_key)
        os.replace(staging / "tls" / "node.pem", config.tls.certificate)
    return certificate


def served_serial(target: Path, client: Path) -> int:
    return handshake(target, client=client).serial


class ShiftedClock:
    """A peer's clock that the test can move forward (the TLS stack keeps real time)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@asynccontextmanager
async def nodes(
    fed: dict[Country, Path], *, clocks: dict[Country, ShiftedClock] | None = None, poll: float = 3600.0
) -> AsyncIterator[dict[Country, Any]]:
    runtimes: dict[Country, NodeRuntime] = {}
    try:
        for country, path in fed.items():
            clock: Any = (clocks or {}).get(country)
            extra = {"clock": clock} if clock else {}
            runtime = NodeRuntime(NodeConfig.load(path), tls_poll_seconds=poll, **extra)
            await runtime.start()
            runtimes[country] = runtime
        yield {country: RunningNode(runtime) for country, runtime in runtimes.items()}
    finally:
        for runtime in runtimes.values():
            await runtime.stop()


def delivered(runtime: RunningNode) -> Callable[[], bool]:
    return lambda: all(row.delivered_at for row in runtime.service.store.outbox(None))


async def in_thread(function: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


@pytest.fixture
def fed(tmp_path: Path) -> dict[Country, Path]:
    return make_federation(tmp_path / "fed", outbox_retry_max_seconds=0.5)


def test_renewed_files_are_picked_up_and_both_ends_use_them(fed: dict[Country, Path], tmp_path: Path) -> None:
    # KR starts on a certificate that ends in two days.
    first = renew(fed["KR"], tmp_path / "first", days=2)
    peer_clocks = {"US": ShiftedClock(), "JP": ShiftedClock()}

    async def scenario() -> None:
        async with nodes(fed, clocks=peer_clocks, poll=0.1) as running:
            kr = running["KR"]
            kr.service.publish(msg_type="ALERT", info=alert_info())
            await wait_for(delivered(kr))
            assert await in_thread(served_serial, fed["KR"], fed["US"]) == first.serial_number

            with structlog.testing.capture_logs() as logs:
                renewed = renew(fed["KR"], tmp_path / "renewed")
                await wait_for(lambda: kr.tls.identity.serial == f"{renewed.serial_number:x}")
            reloaded = [e for e in logs if e["event"] == "tls_reloaded"]
            assert len(reloaded) == 1
            assert reloaded[0]["trigger"] == "file_change"
            assert reloaded[0]["serial"] == f"{renewed.serial_number:x}"
            assert reloaded[0]["not_after"] == renewed.not_valid_after_utc.isoformat()

            # Server side: a peer's new connection sees the new certificate.
            assert await in_thread(served_serial, fed["KR"], fed["US"]) == renewed.serial_number
            # `ewx status` reports the certificate in use.
            status = kr.service.status().to_json()["certificate"]
            assert status["not_after"].startswith(renewed.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%S"))
            assert not status["expiring_soon"]

            # Client side: the peers' clocks move past the first certificate's
            # end, so they accept KR's calls only with the renewed one.
            for clock in peer_clocks.values():
                clock.offset = timedelta(days=3)
            published = kr.service.publish(msg_type="ALERT", info=alert_info())
            await wait_for(delivered(kr))
            for peer in ("US", "JP"):
                assert running[peer].service.store.alert("KR", published.alert.alert_id) is not None
            # And the peers, their clocks back in line with KR's, still reach KR.
            for clock in peer_clocks.values():
                clock.offset = timedelta()
            ack = running["US"].service.publish(
                msg_type="ACK", reference=("KR", published.alert.alert_id), reason="RECEIVED"
            )
            await wait_for(lambda: kr.service.store.alert("US", ack.alert.alert_id) is not None)

    asyncio.run(scenario())


def test_a_failed_reload_keeps_the_certificate_in_use(fed: dict[Country, Path], tmp_path: Path) -> None:
    config = NodeConfig.load(fed["KR"])
    rogue_ca = tmp_path / "rogue-ca"
    create_national_ca(rogue_ca, country="KR")

    def only_certificate(staging: Path) -> None:
        # A certificate for a new key, without that key: it does not match the key in place.
        renew(fed["KR"], staging, install=False)
        os.replace(staging / "tls" / "node.pem", config.tls.certificate)

    def other_node(_staging: Path) -> None:
        us = NodeConfig.load(fed["US"])
        config.tls.certificate.write_bytes(us.tls.certificate.read_bytes())
        config.tls.private_key.unlink()
        config.tls.private_key.write_bytes(us.tls.private_key.read_bytes())
        config.tls.private_key.chmod(0o600)

    def expired(_staging: Path) -> None:
        # Issued by the right CA through the common profile, but already over.
        key = ec.generate_private_key(ec.SECP256R1())
        ca = fed["KR"].parent / "ca"
        end = datetime.now(UTC) - timedelta(minutes=1)
        certificate = issue_node_certificate(
            country="KR",
            public_key=key.public_key(),
            ca_certificate=load_certificate_file(ca / "ca.pem"),
            ca_key=load_ec_private_key(ca / "ca.key"),
            not_before=end - timedelta(minutes=30),
            not_after=end,
        )
        config.tls.private_key.unlink()
        write_private_key(config.tls.private_key, key)
        config.tls.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))

    def loose_key(_staging: Path) -> None:
        config.tls.private_key.chmod(0o644)

    bad: dict[str, tuple[Callable[[Path], object], str]] = {
        "key not matching": (only_certificate, "does not belong to the certificate"),
        "another node": (other_node, "names node US, but this node is KR"),
        "another CA": (lambda s: renew(fed["KR"], s, ca_dir=rogue_ca), "not issued by the KR national CA"),
        "expired": (expired, "expired at"),
        "key readable by others": (loose_key, "accessible by group or others"),
    }

    async def scenario() -> None:
        async with nodes(fed) as running:
            kr = running["KR"]
            in_use = kr.tls.identity
            for name, (damage, message) in bad.items():
                with structlog.testing.capture_logs() as logs:
                    damage(tmp_path / name.replace(" ", "-"))
                    assert kr.reload_tls("test") is False, name
                (event,) = [e for e in logs if e["event"] == "tls_reload_failed"]
                assert event["log_level"] == "error"
                assert message in event["error"], (name, event["error"])
                assert event["serial_in_use"] == in_use.serial
                assert kr.tls.identity == in_use
                assert await in_thread(served_serial, fed["KR"], fed["US"]) == int(in_use.serial, 16)
                # status speaks of the certificate served, not of the (bad) file
                assert kr.service.status().to_json()["certificate"][
                    "not_after"
                ] == in_use.not_after.isoformat().replace("+00:00", "Z")
                config.tls.private_key.chmod(0o600)

            # Still exchanging on the old certificate; then a good renewal is taken.
            kr.service.publish(msg_type="ALERT", info=alert_info())
            await wait_for(delivered(kr))
            renewed = renew(fed["KR"], tmp_path / "good")
            assert kr.reload_tls("test") is True
            assert await in_thread(served_serial, fed["KR"], fed["US"]) == renewed.serial_number
            assert kr.reload_tls("test") is False  # unchanged files: nothing to do

    asyncio.run(scenario())


def test_sighup_reloads_a_running_node_process(fed: dict[Country, Path], tmp_path: Path) -> None:
    processes = {cc: NodeProcess.start(cc, fed[cc]) for cc in ("KR", "US")}
    log = fed["KR"].parent / "node.log"

    def events(name: str) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        return [line for line in lines if line.get("event") == name]

    try:
        for node in processes.values():
            node.wait_ready()
        kr = processes["KR"]
        # SIGHUP with nothing renewed: the node looks and keeps what it has.
        kr.process.send_signal(signal.SIGHUP)
        wait_for_sync(lambda: events("tls_unchanged"))
        assert events("tls_unchanged")[0]["trigger"] == "SIGHUP"

        renewed = renew(fed["KR"], tmp_path / "renewed")
        kr.process.send_signal(signal.SIGHUP)
        wait_for_sync(lambda: served_serial(fed["KR"], fed["US"]) == renewed.serial_number)
        (event,) = events("tls_reloaded")
        assert event["serial"] == f"{renewed.serial_number:x}"
        assert kr.client.call("status")["certificate"]["not_after"].startswith(
            renewed.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%S")
        )
        # Exchange continues both ways.
        to_us = kr.client.call("publish", msg_type="ALERT", status="TEST", info=alert_info())["alert_id"]
        wait_for_sync(lambda: any(a["alert_id"] == to_us for a in processes["US"].client.alerts()))
        to_kr = processes["US"].client.call("publish", msg_type="ALERT", status="TEST", info=alert_info())
        wait_for_sync(lambda: any(a["alert_id"] == to_kr["alert_id"] for a in kr.client.alerts()))
        assert kr.process.poll() is None
    finally:
        for node in processes.values():
            node.stop()


def wait_for_sync(check: Callable[[], object], timeout: float = 20.0) -> None:
    """Poll `check` until it returns something true; fail after `timeout` seconds (a bound only)."""

    async def poll() -> None:
        await wait_for(check, timeout=timeout, interval=0.05)

    asyncio.run(poll())


def test_start_refuses_a_wrong_certificate_but_not_an_expired_one(
    fed: dict[Country, Path], tmp_path: Path
) -> None:
    config = NodeConfig.load(fed["KR"])
    us = NodeConfig.load(fed["US"])

    async def scenario() -> None:
        # Another node's certificate: the node does not start, and says why.
        kept = config.tls.certificate.read_bytes(), config.tls.private_key.read_bytes()
        config.tls.certificate.write_bytes(us.tls.certificate.read_bytes())
        config.tls.private_key.write_bytes(us.tls.private_key.read_bytes())
        with pytest.raises(ConfigError, match="names node US, but this node is KR"):
            await NodeRuntime(config).start()
        config.tls.certificate.write_bytes(kept[0])
        config.tls.private_key.write_bytes(kept[1])

        # An expired one (by the node's clock): it starts, so the operator keeps
        # `ewx status` and the operator API, says so, and takes the renewal.
        short = renew(fed["KR"], tmp_path / "short", days=1)
        clock = ShiftedClock()
        clock.offset = timedelta(days=2)
        with structlog.testing.capture_logs() as logs:
            async with nodes({"KR": fed["KR"]}, clocks={"KR": clock}) as running:
                kr = running["KR"]
                assert kr.tls.identity.serial == f"{short.serial_number:x}"
                assert kr.service.status().to_json()["certificate"]["days_left"] < 0
                renewed = renew(fed["KR"], tmp_path / "renewed")
                assert kr.reload_tls("test") is True
                assert kr.tls.identity.serial == f"{renewed.serial_number:x}"
        (warning,) = [e for e in logs if e["event"] == "tls_certificate_not_valid"]
        assert warning["log_level"] == "error" and "expired at" in warning["error"]

    asyncio.run(scenario())
