"""Shared test factories: federations with free ports, alert fields, running nodes."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from node.config import NodeConfig
from node.ids import Country
from node.pki import init_federation
from node.store import Store, StoreThread


def make_federation(root: Path, **overrides: Any) -> dict[Country, Path]:
    """A development federation under `root` with free ports; returns config paths.

    `overrides` are written into every node.toml (e.g. outbox_retry_max_seconds). Under
    EWX_TEST_STORE=postgresql each node gets a fresh PostgreSQL database as its `[store]`
    (tests/support/stores.py).
    """
    from gateway.local_nodes import assign_free_ports

    init_federation(root)
    from tests.support.ports import next_port
    from tests.support.stores import put_on_test_store

    paths = assign_free_ports(root, port_source=next_port, **overrides)
    put_on_test_store(paths, label=root.name)
    return paths


def alert_info(**overrides: Any) -> dict[str, Any]:
    """Valid ALERT info: China's 2023 gallium export controls."""
    now = datetime.now(UTC)
    info: dict[str, Any] = {
        "category": "EXPORT_CONTROL",
        "urgency": "EXPECTED",
        "severity": "SEVERE",
        "certainty": "OBSERVED",
        "effective": now + timedelta(days=1),
        "expires": now + timedelta(days=90),
        "headline": "Export licensing required for gallium and germanium products",
        "items": [
            {"hs_code": "811292", "hs_edition": "HS2022"},
            {"hs_code": "282590", "hs_edition": "HS2022"},
        ],
        "source_countries": ["CN"],
        "affected_countries": ["KR", "US", "JP"],
        "supply_impact": "ABOVE_60",
        "expected_duration_days": 180,
    }
    info.update(overrides)
    return info


class OnStoreThread:
    """A running node's service, or its store, for test code on the event loop.

    A running node's store answers only on its store thread (node/store/_thread.py);
    every attribute read and call through this runs there and blocks the test until
    it is done, as a call on the loop did before the store had its own thread.
    Attributes that are themselves the service's store come back wrapped too.
    """

    def __init__(self, target: Any, thread: StoreThread) -> None:
        self._target = target
        self._thread = thread

    @property
    def unwrapped(self) -> Any:
        """The real object, for code that routes its own calls (the operator server)."""
        return self._target

    def __getattr__(self, name: str) -> Any:
        value = self._thread.wait_for(getattr, self._target, name)
        if isinstance(value, Store):
            return OnStoreThread(value, self._thread)
        if callable(value) and not isinstance(value, type):
            return functools.partial(self._thread.wait_for, _drained, value)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            self._thread.wait_for(setattr, self._target, name, value)


def _drained(work: Any, *args: Any, **kwargs: Any) -> Any:
    """`work(...)`, with an iterator it returns read to the end (on the calling thread)."""
    result = work(*args, **kwargs)
    return list(result) if isinstance(result, Iterator) else result


class RunningNode:
    """A started NodeRuntime whose `service` test code may use straight from the loop."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.service: Any = OnStoreThread(runtime.service, runtime.store_thread)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.runtime, name)


@asynccontextmanager
async def running(*configs: Path) -> AsyncIterator[dict[Country, Any]]:
    """Start NodeRuntimes for the given configs in this event loop; stop them after.

    Yields RunningNodes: the runtime's attributes, with a `service` whose calls run
    on the node's store thread.
    """
    from gateway.runtime import NodeRuntime

    runtimes = {}
    try:
        for path in configs:
            config = NodeConfig.load(path)
            runtime = NodeRuntime(config)
            await runtime.start()
            runtimes[config.node_id] = runtime
        yield {cc: RunningNode(runtime) for cc, runtime in runtimes.items()}
    finally:
        for runtime in runtimes.values():
            await runtime.stop()


async def wait_for(predicate: Any, *, timeout: float = 10.0, interval: float = 0.02) -> None:
    """Poll `predicate()` until true or fail after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def alert_payload(
    origin: Country,
    deliveries: dict[Country, int],
    *,
    msg_type: str = "ALERT",
    sent: datetime | None = None,
    alert_id: str | None = None,
    **fields: Any,
) -> bytes:
    """Canonical bytes of a valid alert built through the models (so it is schema-clean)."""
    from node.message import Alert, alert_to_bytes

    sent = sent or datetime.now(UTC)
    alert = Alert.model_validate(
        {
            "schema_version": 1,
            "alert_id": alert_id or f"{origin}-T-{sent.timestamp():.6f}".replace(".", ""),
            "origin": origin,
            "sent": sent,
            "status": "EXERCISE",
            "msg_type": msg_type,
            "deliveries": [{"recipient": r, "seq": s} for r, s in deliveries.items()],
            "info": alert_info(expires=sent + timedelta(days=30), effective=None)
            if msg_type == "ALERT"
            else None,
            **fields,
        }
    )
    return alert_to_bytes(alert)


def envelope(
    config_path: Path, payload: bytes, *, key_id: str | None = None, signature: bytes | None = None
) -> bytes:
    """A SignedAlert of `payload` signed with the alert key of the node at `config_path`."""
    from node.crypto import PAYLOAD_ALERT
    from node.message import encode
    from node.wire import ewx_pb2 as pb

    signer = NodeConfig.load(config_path).load_signers()["alert"]
    return encode(
        pb.SignedAlert(
            alert=payload,
            key_id=key_id or signer.key_id,
            signature=signature if signature is not None else signer.sign(PAYLOAD_ALERT, payload),
        )
    )


def peer_channel(target: Path, client: Path) -> Any:
    """An mTLS channel to the node of `target`, presenting the certificate of the node of `client`."""
    import grpc
    from grpc import aio

    from node.trust import Trust, node_dns_name

    target_config, client_config = NodeConfig.load(target), NodeConfig.load(client)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=Trust.load(target_config.trust_file).ca_bundle_pem([target_config.node_id]),
        private_key=client_config.tls.private_key.read_bytes(),
        certificate_chain=client_config.tls.certificate.read_bytes(),
    )
    options = [("grpc.ssl_target_name_override", node_dns_name(target_config.node_id))]
    return aio.secure_channel(target_config.listen, credentials, options=options)


@dataclass(frozen=True)
class SigningFederation:
    """A development federation on disk with every node's signers loaded, for signing test input."""

    root: Path
    trust: Any
    signers: dict[Country, dict[Any, Any]]

    def config(self, country: Country) -> Path:
        """The node.toml of `country`."""
        return self.root / country / "node.toml"


def signing_federation(root: Path) -> SigningFederation:
    """`init_federation(root)` and every node's signers, checked against the trust file."""
    from node.ids import COUNTRIES
    from node.trust import Trust

    trust = Trust.load(init_federation(root))
    signers = {cc: NodeConfig.load(root / cc / "node.toml").load_signers(trust) for cc in COUNTRIES}
    return SigningFederation(root=root, trust=trust, signers=signers)
