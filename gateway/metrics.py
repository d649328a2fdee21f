"""Prometheus metrics of one running node (prometheus-client), on `metrics_listen`.

Counters and histograms are fed as things happen: the service's Observer
hook (a refusal, an alert stored), the delivery loops (a receipt back, a
call's round trip) and the gateway's own admission refusals. Gauges are read
when Prometheus scrapes, from the same status `ewx status` shows (the
in-memory half on the store's thread, the rest on a read-only connection),
so nothing is kept twice. Each node has its own registry: tests run three
nodes in one process.

Every metric is named once, in METRICS; deploy/prometheus/ and
deploy/grafana/ name only those (tests/gateway/test_metrics.py holds them to it).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from node.errors import ConfigError
from node.ids import Country
from node.service import NodeService

METRICS: Final[dict[str, str]] = {
    "ewx_alerts_received_total": "new alerts durably stored from each peer (pushed, caught up or relayed)",
    "ewx_alerts_delivered_total": "own alerts a peer receipted",
    "ewx_alerts_refused_total": "peers' messages and calls refused, by peer and reason",
    "ewx_delivery_seconds": "round trip of one Deliver call to a peer, receipt included",
    "ewx_propagation_seconds": "from an alert's sent time at its origin to its durable commit here",
    "ewx_outbox_backlog": "own alerts waiting for a peer's receipt",
    "ewx_peer_reachable": "1 if the last call to the peer got through, 0 if not (absent before the first)",
    "ewx_acks_overdue": "open alerts whose acknowledgement by this recipient is past its deadline",
    "ewx_log_size": "entries in this node's exchange log",
    "ewx_checkpoint_age_seconds": "age of this node's newest signed checkpoint",
    "ewx_cosignature_lag_entries": "entries of this node's log beyond what each peer has cosigned",
    "ewx_trust_update_serial": "the serial of each member's newest trust update this node applied",
    "ewx_certificate_days_left": "days until this node's TLS certificate expires",
    "ewx_signing_key_days_left": "days until each signing key of this node expires",
    "ewx_evidence_kept": "equivocation and split-view evidence kept",
    "ewx_ews_scans_total": "early-warning scans run against this node's data (`ewx ews scan` reports each)",
    "ewx_ews_scan_seconds": "how long the latest early-warning scan took",
    "ewx_ews_detections": "detections the latest early-warning scan made, by severity",
}
"""Every metric the node exports, with its help text (histograms and counters add the usual suffixes)."""

_LATENCY_BUCKETS: Final = (
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    30.0,
    60.0,
)


class NodeMetrics:
    """The metrics of one node, and the Observer its service reports to."""

    def __init__(self, service: NodeService) -> None:
        self.registry = CollectorRegistry()
        self._service = service
        labels = ["node", "peer"]
        self._received = Counter(
            "ewx_alerts_received", METRICS["ewx_alerts_received_total"], labels, registry=self.registry
        )
        self._delivered = Counter(
            "ewx_alerts_delivered", METRICS["ewx_alerts_delivered_total"], labels, registry=self.registry
        )
        self._refused = Counter(
            "ewx_alerts_refused",
            METRICS["ewx_alerts_refused_total"],
            [*labels, "reason"],
            registry=self.registry,
        )
        self._delivery = Histogram(
            "ewx_delivery_seconds", METRICS["ewx_delivery_seconds"], labels, buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self._propagation = Histogram(
            "ewx_propagation_seconds", METRICS["ewx_propagation_seconds"], labels, buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self._scans = Counter(
            "ewx_ews_scans", METRICS["ewx_ews_scans_total"], ["node"], registry=self.registry
        )
        self._scan_seconds = Gauge(
            "ewx_ews_scan_seconds", METRICS["ewx_ews_scan_seconds"], ["node"], registry=self.registry
        )
        self._detections = Gauge(
            "ewx_ews_detections", METRICS["ewx_ews_detections"], ["node", "severity"], registry=self.registry
        )
        self.registry.register(_StatusCollector(service))
        self._server: object | None = None

    # ------------------------------------------------------------ the Observer (node/service/_context.py)
    def refused(self, peer: str, reason: str) -> None:
        self._refused.labels(self._service.me, peer, reason).inc()

    def received(self, peer: Country, delay_seconds: float) -> None:
        self._received.labels(self._service.me, peer).inc()
        self._propagation.labels(self._service.me, peer).observe(max(0.0, delay_seconds))

    # ------------------------------------------------------------ the gateway's own
    def delivered(self, peer: Country, seconds: float) -> None:
        """A Deliver call to `peer` came back with a receipt that verified, after `seconds`."""
        self._delivered.labels(self._service.me, peer).inc()
        self._delivery.labels(self._service.me, peer).observe(seconds)

    def scanned(self, seconds: float, detections: dict[str, int]) -> None:
        """`ewx ews scan` ran (in its own process, on this node's data) and took `seconds`."""
        me = self._service.me
        self._scans.labels(me).inc()
        self._scan_seconds.labels(me).set(seconds)
        for severity in ("MINOR", "MODERATE", "SEVERE", "EXTREME"):
            self._detections.labels(me, severity).set(detections.get(severity, 0))

    def start(self, listen: str) -> None:
        """Serve /metrics on `listen` (host:port) from a thread of its own."""
        host, _, port = listen.rpartition(":")
        try:
            self._server, _thread = start_http_server(
                int(port), host.strip("[]") or "127.0.0.1", registry=self.registry
            )
        except (OSError, ValueError) as exc:
            raise ConfigError(f"metrics_listen {listen}: {exc}") from None

    @property
    def port(self) -> int | None:
        """The port the endpoint listens on (after start), for `metrics_listen` port 0."""
        server = self._server
        return None if server is None else int(server.server_address[1])  # type: ignore[attr-defined]

    def stop(self) -> None:
        """Stop serving (safe if never started)."""
        server = self._server
        if server is not None:
            server.shutdown()  # type: ignore[attr-defined]
            server.server_close()  # type: ignore[attr-defined]
            self._server = None


class _StatusCollector(Collector):
    """Gauges read at scrape time from the node's status."""

    def __init__(self, service: NodeService) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        service = self._service
        thread = service.store_thread
        snapshot = service.status_snapshot() if thread is None else thread.wait_for(service.status_snapshot)
        status = service.status_from(snapshot)  # a read-only connection of this (the scrape's) thread
        me = status.node
        peer_labels = ["node", "peer"]
        backlog = GaugeMetricFamily("ewx_outbox_backlog", METRICS["ewx_outbox_backlog"], labels=peer_labels)
        reachable = GaugeMetricFamily("ewx_peer_reachable", METRICS["ewx_peer_reachable"], labels=peer_labels)
        lag = GaugeMetricFamily(
            "ewx_cosignature_lag_entries", METRICS["ewx_cosignature_lag_entries"], labels=peer_labels
        )
        overdue = GaugeMetricFamily(
            "ewx_acks_overdue", METRICS["ewx_acks_overdue"], labels=["node", "recipient"]
        )
        overdue.add_metric([me, me], len(status.overdue_acks))
        for peer, state in status.peers.items():
            overdue.add_metric([me, peer], len(state.overdue_acks))
            backlog.add_metric([me, peer], state.backlog)
            if state.reachable is not None:
                reachable.add_metric([me, peer], 1.0 if state.reachable else 0.0)
            lag.add_metric([me, peer], status.log_size - (state.last_checkpoint_cosigned or 0))
        yield backlog
        yield overdue
        yield reachable
        yield lag
        yield _family("ewx_log_size", me, status.log_size)
        age = GaugeMetricFamily(
            "ewx_checkpoint_age_seconds", METRICS["ewx_checkpoint_age_seconds"], labels=["node"]
        )
        if status.checkpoint_at is not None:
            at = datetime.fromisoformat(status.checkpoint_at)
            age.add_metric([me], max(0.0, (datetime.fromisoformat(status.time) - at).total_seconds()))
        yield age
        serial = GaugeMetricFamily(
            "ewx_trust_update_serial", METRICS["ewx_trust_update_serial"], labels=["node", "member"]
        )
        for member, value in status.trust_updates.items():
            serial.add_metric([me, member], value)
        yield serial
        yield _family("ewx_certificate_days_left", me, status.certificate_days_left)
        keys = GaugeMetricFamily(
            "ewx_signing_key_days_left", METRICS["ewx_signing_key_days_left"], labels=["node", "purpose"]
        )
        for purpose, key in status.signing_keys.items():
            keys.add_metric([me, purpose], float(key["days_left"]))
        yield keys
        yield _family("ewx_evidence_kept", me, status.evidence)


def _family(name: str, node: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, METRICS[name], labels=["node"])
    family.add_metric([node], value)
    return family
