"""Three real `ewx serve` processes, optionally behind one LinkProxy per directed link.

`Cluster` starts, kills, restarts and stops the nodes, publishes through the
operator API and remembers every alert whose publish call returned (those the
node acknowledged to its operator), then checks SPEC section 9, "Nothing
lost": each such alert is at every recipient exactly once, each recipient's
sequences from each origin run 1..n with no gap, and the offline audit of
the three exported logs is clean.
"""

from __future__ import annotations

import time
import tomllib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import grpc
import tomli_w
from grpc import aio

from gateway import rpc
from gateway.local_nodes import NodeProcess
from gateway.peers import trailer
from gateway.status_map import EXPECTED_SEQ_TRAILER, REASON_TRAILER
from node.audit import Report, read_bundle, verify_bundles
from node.config import NodeConfig
from node.ids import COUNTRIES, Country
from node.service import export_bundle
from node.trust import Trust
from node.wire import ewx_pb2 as pb
from tests.support.factories import alert_info, make_federation, peer_channel
from tests.support.proxy import LinkProxy, ProxyThread

T = TypeVar("T")

FAST: Final = {"outbox_retry_max_seconds": 0.5, "checkpoint_interval_seconds": 0.2}
"""Short backoff and checkpoint cadence, so faults heal within a second or two."""

POLL: Final = 0.1
SETTLE_TIMEOUT: Final = 45.0


def wait_until(check: Callable[[], T], *, timeout: float = SETTLE_TIMEOUT, what: str = "condition") -> T:
    """Poll `check()` every 0.1 s until it returns something true; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout:.0f}s")
        time.sleep(POLL)


def proxied_federation(
    root: Path, proxies: ProxyThread, **overrides: Any
) -> tuple[dict[Country, Path], dict[tuple[Country, Country], LinkProxy]]:
    """A development federation whose every peer address goes through a proxy.

    For each ordered pair (A, B) one proxy targets B's listen port, and A's
    `peers.B.address` points at it; `links[(A, B)]` is that proxy, carrying
    A's calls to B and their replies. The FAST settings apply unless overridden.
    """
    paths = make_federation(root, **{**FAST, **overrides})
    ports = {cc: int(NodeConfig.load(path).listen.rsplit(":", 1)[1]) for cc, path in paths.items()}
    links: dict[tuple[Country, Country], LinkProxy] = {}
    for a, path in paths.items():
        data = tomllib.loads(path.read_text())
        for b in data["peers"]:
            link = proxies.add(ports[b], name=f"{a}->{b}")
            data["peers"][b]["address"] = link.address
            links[(a, b)] = link
        path.write_text(tomli_w.dumps(data))
    return paths, links


@dataclass(frozen=True)
class Sent:
    """An alert whose publish call returned: acknowledged to the operator."""

    origin: Country
    alert_id: str
    deliveries: dict[Country, int]


@dataclass
class Cluster:
    """The three node processes of one test, and what they acknowledged."""

    root: Path
    configs: dict[Country, Path]
    links: dict[tuple[Country, Country], LinkProxy] = field(default_factory=dict)
    nodes: dict[Country, NodeProcess] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=alert_info)

    # ------------------------------------------------------------ processes
    def start(self, *countries: Country, wait: bool = True) -> None:
        """Start `ewx serve` for each country (all by default); wait until they answer."""
        for cc in countries or COUNTRIES:
            assert cc not in self.nodes or self.nodes[cc].process.poll() is not None, f"{cc} runs"
            self.nodes[cc] = NodeProcess.start(cc, self.configs[cc])
        if wait:
            self.wait_ready(*countries)

    def wait_ready(self, *countries: Country) -> None:
        """Wait until each node's operator socket answers."""
        for cc in countries or COUNTRIES:
            self.nodes[cc].wait_ready()

    def kill(self, cc: Country) -> None:
        """kill -9, as a crash would."""
        node = self.nodes[cc]
        node.process.kill()
        node.process.wait(10)
        node.log_file.close()

    def stop(self, *countries: Country) -> dict[Country, int]:
        """SIGTERM and wait (each node by default); returns the exit codes."""
        codes = {}
        for cc in countries or tuple(self.nodes):
            if cc in self.nodes and not self.nodes[cc].log_file.closed:
                codes[cc] = self.nodes[cc].stop()
        return codes

    def client(self, cc: Country) -> Any:
        """The operator client of one node."""
        return self.nodes[cc].client

    def node_log(self, cc: Country) -> Path:
        """The node's structured log (every run appended)."""
        return self.configs[cc].parent / "node.log"

    # ------------------------------------------------------------ publishing
    def publish(self, cc: Country, **extra: Any) -> Sent:
        """Publish one TEST alert at `cc`; remember it once the call returned."""
        reply = self.client(cc).call("publish", msg_type="ALERT", status="TEST", info=self.info, **extra)
        sent = Sent(cc, reply["alert_id"], dict(reply["deliveries"]))
        self.sent.append(sent)
        return sent

    def burst(self, plan: Iterable[Country], *, at: dict[int, Callable[[], None]] | None = None) -> None:
        """Publish once at each country of `plan`, in order; run `at[i]` before the i-th."""
        for i, cc in enumerate(plan):
            if at and i in at:
                at[i]()
            self.publish(cc)

    def expected(self) -> dict[tuple[Country, Country], int]:
        """(origin, recipient) -> the last sequence acknowledged to the origin's operator."""
        last: dict[tuple[Country, Country], int] = defaultdict(int)
        for s in self.sent:
            for recipient, seq in s.deliveries.items():
                last[(s.origin, recipient)] = max(last[(s.origin, recipient)], seq)
        return dict(last)

    # ------------------------------------------------------------ links
    def cut(self, a: Country, b: Country) -> None:
        """Cut both directed links between `a` and `b`."""
        self.links[(a, b)].cut()
        self.links[(b, a)].cut()

    def isolate(self, cc: Country, *, black_hole: bool = False) -> None:
        """Cut (or black-hole) every link to and from `cc`."""
        for (a, b), link in self.links.items():
            if cc in (a, b):
                link.drop() if black_hole else link.cut()

    def heal(self) -> None:
        """Restore every link to plain forwarding."""
        for link in self.links.values():
            link.restore()
            link.delay(0)
            link.reset_every()

    # ------------------------------------------------------------ waiting
    def delivered(self) -> bool:
        """Every acknowledged alert is stored at every recipient, and every receipt is back."""
        expected = self.expected()
        statuses = {cc: self.client(cc).call("status") for cc in COUNTRIES}
        for (origin, recipient), seq in expected.items():
            if statuses[recipient]["peers"][origin]["last_seq_received"] < seq:
                return False
        return all(p["backlog"] == 0 for s in statuses.values() for p in s["peers"].values())

    def settle(self, timeout: float = SETTLE_TIMEOUT) -> None:
        """Wait until `delivered()`; on timeout name the nodes' status and logs."""
        try:
            wait_until(self.delivered, timeout=timeout, what="delivery of every acknowledged alert")
        except AssertionError:
            statuses = {}
            for cc in COUNTRIES:
                try:
                    statuses[cc] = self.client(cc).call("status")["peers"]
                except Exception as exc:
                    statuses[cc] = repr(exc)
            raise AssertionError(
                f"not delivered within {timeout:.0f}s; expected last seqs {self.expected()}; "
                f"status {statuses}; logs under {self.root}"
            ) from None

    # ------------------------------------------------------------ the check
    def check_nothing_lost(self, out: Path) -> Report:
        """Check SPEC section 9 "Nothing lost" on the live nodes, then stop, export and audit.

        Returns the audit report (already asserted clean).
        """
        by_origin: dict[Country, set[str]] = defaultdict(set)
        for s in self.sent:
            by_origin[s.origin].add(s.alert_id)
        assert sum(len(v) for v in by_origin.values()) == len(self.sent), "an alert id was reused"
        # 1. live: each recipient lists each acknowledged alert exactly once
        for recipient in COUNTRIES:
            listed = Counter((a["origin"], a["alert_id"]) for a in self.client(recipient).alerts())
            for s in self.sent:
                if recipient in s.deliveries:
                    assert listed[(s.origin, s.alert_id)] == 1, (
                        f"{recipient} lists {s.origin} {s.alert_id} {listed[(s.origin, s.alert_id)]} times"
                    )
        # 2. the logs, exported from stopped nodes
        codes = self.stop()
        assert all(code == 0 for code in codes.values()), f"exit codes after SIGTERM: {codes}"
        out.mkdir(parents=True, exist_ok=True)
        paths = {}
        for cc in COUNTRIES:
            paths[cc] = out / f"{cc}.ewxlog"
            export_bundle(NodeConfig.load(self.configs[cc]), paths[cc])
        entries = {cc: log_alerts(paths[cc]) for cc in COUNTRIES}
        for origin in COUNTRIES:
            sent_ids = Counter(e.alert_id for e in entries[origin] if e.kind == pb.ALERT_SENT)
            for alert_id in by_origin[origin]:
                assert sent_ids[alert_id] == 1, f"{origin} logged ALERT_SENT {alert_id} {sent_ids[alert_id]}x"
        for recipient in COUNTRIES:
            received: dict[Country, list[LoggedAlert]] = defaultdict(list)
            for e in entries[recipient]:
                if e.kind == pb.ALERT_RECEIVED:
                    received[e.origin].append(e)
            for origin in COUNTRIES:
                if origin == recipient:
                    continue
                mine = received[origin]
                counts = Counter(e.alert_id for e in mine)
                for s in self.sent:
                    if s.origin == origin and recipient in s.deliveries:
                        assert counts[s.alert_id] == 1, (
                            f"{recipient} logged ALERT_RECEIVED {origin} {s.alert_id} {counts[s.alert_id]}x"
                        )
                seqs = [e.deliveries[recipient] for e in mine]
                assert seqs == list(range(1, len(seqs) + 1)), (
                    f"{recipient}'s sequence from {origin} is not gapless: {_runs(seqs)}"
                )
                # everything the origin logged as sent there arrived (not only what we saw returned)
                sent_there = {
                    e.alert_id
                    for e in entries[origin]
                    if e.kind == pb.ALERT_SENT and recipient in e.deliveries
                }
                assert sent_there == set(counts), (
                    f"{origin} sent {len(sent_there)} alerts to {recipient}, which logged {len(counts)}"
                )
        # 3. the offline audit of all three logs
        report = verify_bundles(
            list(paths.values()), trust=Trust.load(self.root / "federation.json"), workers=1
        )
        assert report.clean, "audit findings:\n" + report.to_text()
        return report


@dataclass(frozen=True)
class LoggedAlert:
    """What the checks need of one ALERT_SENT or ALERT_RECEIVED log entry."""

    kind: int
    origin: Country
    alert_id: str
    deliveries: dict[Country, int]


def log_alerts(path: Path) -> list[LoggedAlert]:
    """The alert entries of one exported log, in log order."""
    result = []
    for data in read_bundle(path).entries:
        entry = pb.LogEntry.FromString(data)
        if entry.kind not in (pb.ALERT_SENT, pb.ALERT_RECEIVED):
            continue
        alert = pb.Alert.FromString(entry.alert.alert)
        result.append(
            LoggedAlert(
                kind=entry.kind,
                origin=pb.Country.Name(alert.origin),  # type: ignore[arg-type]
                alert_id=alert.alert_id,
                deliveries={pb.Country.Name(d.recipient): d.seq for d in alert.deliveries},  # type: ignore[misc]
            )
        )
    return result


def _runs(seqs: list[int]) -> str:
    """`1-40, 42-50` for a list of sequence numbers, to show where it breaks."""
    if not seqs:
        return "none"
    parts, start, prev = [], seqs[0], seqs[0]
    for s in seqs[1:]:
        if s != prev + 1:
            parts.append(f"{start}-{prev}" if start != prev else str(start))
            start = s
        prev = s
    parts.append(f"{start}-{prev}" if start != prev else str(start))
    return ", ".join(parts)


# ------------------------------------------------------------ in-process delivery as a peer
@dataclass(frozen=True)
class Outcome:
    """A Deliver call's result: status, `ewx-reason` and `ewx-expected-seq` trailers, receipt."""

    code: grpc.StatusCode
    reason: str | None = None
    expected_seq: str | None = None
    receipt: bytes | None = None


async def deliver_as(*, target: Path, client: Path, envelope: bytes) -> Outcome:
    """Call Deliver on the node of `target` with the TLS identity of the node of `client`."""
    request = pb.DeliverRequest(envelope=envelope).SerializeToString()
    async with peer_channel(target, client) as channel:
        try:
            call = channel.unary_unary(rpc.DELIVER, request_serializer=None, response_deserializer=None)
            reply = await call(request, timeout=5)
        except aio.AioRpcError as exc:
            return Outcome(exc.code(), trailer(exc, REASON_TRAILER), trailer(exc, EXPECTED_SEQ_TRAILER))
    return Outcome(grpc.StatusCode.OK, receipt=bytes(pb.DeliverResponse.FromString(reply).receipt))
