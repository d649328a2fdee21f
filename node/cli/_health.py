"""`ewx health`: is this node up and serving? For a container's HEALTHCHECK or a service monitor.

Three checks, all from the node's own host, none needing a private key:

1. **operator API**: the node answers `ping` on its unix socket and says it
   is serving, which it does only once its store is open and its
   federation server has started (gateway/runtime.py `NodeRuntime.start`);
2. **federation port**: a TLS 1.3 handshake to the `listen` port, as a client
   that checks the server as a peer would: its certificate must chain to this
   node's national CA in the trust file, name this node
   (`<cc>.node.ewx`) and be valid now, and the server must offer HTTP/2
   (gRPC). Then the probe, which presents no client certificate, must be
   shut out: a port that served a client without one would not be
   enforcing mutual TLS;
3. **gRPC health** (added by gateway/cli.py, since node/ never imports
   gRPC): `grpc.health.v1.Health/Check` on the node's local health socket,
   a unix socket (0600) beside the operator socket where the runtime serves
   the same health service and nothing else. On the federation port that
   service answers only callers whose client certificate comes from a peer's
   national CA; a probe on the node's own host holds none. Healthy when the
   node as a whole is SERVING; a peer NOT_SERVING is reported, not failed,
   since restarting this node would not bring that peer back.

Exit 0 healthy, 1 unhealthy (each failed check says why on standard output).
"""

from __future__ import annotations

import argparse
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any, Final

from node.cli._common import EXIT_FINDING, EXIT_OK, load_config, print_json
from node.config import NodeConfig, split_address
from node.errors import EwxError
from node.operator import OperatorClient
from node.parsing import flag
from node.trust import node_dns_name

DEFAULT_TIMEOUT_SECONDS: Final = 5.0
_HTTP2_PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
"""The client connection preface and an empty SETTINGS frame (RFC 9113 section 3.4)."""
_LOOPBACK: Final = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 - a wildcard, mapped to the loopback


@dataclass(frozen=True, slots=True)
class Check:
    """One check's outcome."""

    name: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail}


def check_operator(config: NodeConfig, *, timeout: float) -> Check:
    """The node answers on its operator socket and is serving."""
    try:
        answer = OperatorClient(config.operator_socket, timeout=timeout).call("ping")
    except EwxError as exc:
        return Check("operator", ok=False, detail=str(exc))
    if answer.get("node") != config.node_id:
        return Check("operator", ok=False, detail=f"the socket answers as node {answer.get('node')!r}")
    if not answer.get("serving"):
        return Check("operator", ok=False, detail="the node is starting or stopping (not serving)")
    return Check("operator", ok=True, detail=f"{config.operator_socket}: serving")


def probe_address(listen: str) -> tuple[str, int]:
    """Where to reach a node that listens on `listen`: a wildcard host becomes the loopback address."""
    host, port = split_address(listen, allow_port_zero=True)
    host = host.removeprefix("[").removesuffix("]")
    return _LOOPBACK.get(host, host), port


def check_federation_port(config: NodeConfig, *, timeout: float) -> Check:
    """A TLS 1.3 handshake with the node's federation port, checking the server as a peer would."""
    host, port = probe_address(config.listen)
    if port == 0:
        return Check("federation", ok=False, detail=f"listen {config.listen}: port 0 cannot be probed")
    where = f"{config.listen} ({host}:{port})"
    try:
        roots = config.load_trust().ca_bundle_pem([config.node_id])
    except EwxError as exc:
        return Check("federation", ok=False, detail=str(exc))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the host name
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_verify_locations(cadata=roots.decode("ascii"))
    context.set_alpn_protocols(["h2"])
    name = node_dns_name(config.node_id)
    started = time.monotonic()
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=name) as tls,
        ):
            if tls.selected_alpn_protocol() != "h2":
                return Check(
                    "federation", ok=False, detail=f"{where}: the server does not speak HTTP/2 (gRPC)"
                )
            served = _served_without_certificate(tls)
    except ssl.SSLCertVerificationError as exc:
        return Check(
            "federation",
            ok=False,
            detail=f"{where}: the server's certificate is not this node's, or not valid now: {exc.verify_message}",
        )
    except (OSError, ssl.SSLError) as exc:
        return Check("federation", ok=False, detail=f"{where}: {exc.strerror or exc}")
    if served:
        return Check(
            "federation",
            ok=False,
            detail=f"{where}: the server answered a client without a certificate (mutual TLS not enforced)",
        )
    elapsed = (time.monotonic() - started) * 1000
    return Check(
        "federation",
        ok=True,
        detail=f"{where}: TLS 1.3 as {name}, client certificate required ({elapsed:.0f} ms)",
    )


def _served_without_certificate(tls: ssl.SSLSocket) -> bool:
    """Whether the server, having seen no client certificate, still answers HTTP/2 (it must not)."""
    try:
        tls.sendall(_HTTP2_PREFACE)
        return bool(tls.recv(9))
    except (OSError, ssl.SSLError):  # refused: an alert, a reset or a close
        return False


def cmd_health(args: argparse.Namespace) -> int:
    """Check the node from its own host: operator API serving, federation port's TLS."""
    config = load_config(args)
    checks = [
        check_operator(config, timeout=args.timeout),
        check_federation_port(config, timeout=args.timeout),
        *(check(config, timeout=args.timeout) for check in args.extra_checks),
    ]
    healthy = all(c.ok for c in checks)
    if args.json:
        print_json({"node": config.node_id, "healthy": healthy, "checks": [c.to_json() for c in checks]})
    else:
        for c in checks:
            print(f"{'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}")
        print(f"{config.node_id}: {'healthy' if healthy else 'UNHEALTHY'}")
    return EXIT_OK if healthy else EXIT_FINDING


def _seconds(value: str) -> float:
    number = float(value)
    if not 0 < number <= 300:
        raise ValueError(value)
    return number


_timeout = flag(
    _seconds, error=ValueError, refusal=lambda v: f"{v!r} is not a number of seconds between 0 and 300"
)


def add_health_command(commands: Any, add_config: Any) -> None:
    """Register `ewx health`."""
    p: argparse.ArgumentParser = commands.add_parser(
        "health",
        help="is this node up? operator API serving and the federation port's TLS (exit 0 healthy, 1 not)",
        description="Check the node from its own host, for a container HEALTHCHECK or a monitor: "
        "(1) the operator API answers and the node is serving; (2) the federation port completes a "
        "TLS 1.3 handshake with HTTP/2 as this node (certificate from this node's national CA in the "
        "trust file, valid now) and refuses a client without a certificate; (3) the standard gRPC "
        "health service (grpc.health.v1) answers SERVING on the node's local health socket (beside "
        "the operator socket; on the federation port it answers peers only), with each peer's status. "
        "Needs read access to the config, the trust file and the operator socket; no private key. "
        "Exit 0 healthy, 1 unhealthy, 2 bad configuration.",
    )
    add_config(p)
    p.add_argument(
        "--timeout",
        type=_timeout,
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"for each check (default {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    p.add_argument("--json", action="store_true", help="machine output")
    # The gateway adds the gRPC health service's check (gateway/cli.py): node/ never imports gRPC.
    p.set_defaults(func=cmd_health, extra_checks=[])
