"""The `ewx` command line (SPEC section 8), minus the commands that need the gateway.

`gateway/cli.py` adds `serve` and `demo` to this parser and is the console
entry point, so that node/ never imports gateway/. Exit codes: 0 ok, 1 a
verification finding or a refused operation, 2 usage error or bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn, TypeAlias

from node.cli._alert_fields import (
    add_alert_info,
    add_config,
    alert_info_from,
    choices,
    parse_recipients,
    publish_request,
)
from node.cli._backup import add_backup_commands
from node.cli._common import (
    EXIT_FINDING,
    EXIT_OK,
    EXIT_USAGE,
    load_config,
    operator_client,
    print_json,
)
from node.cli._health import add_health_command
from node.cli._rotation import add_rotation_commands
from node.cli._trilateral import add_trilateral_commands
from node.errors import EwxError, RefusedOperation, UsageError
from node.ews.cli import add_ews_commands
from node.ids import COUNTRIES, Country
from node.limits import OPERATOR_PAGE_DEFAULT, OPERATOR_PAGE_MAX
from node.message import pb
from node.operator import parse_cursor
from node.parsing import cli_days, cli_int, flag, parse_ago, parse_country
from node.pki import MAX_NODE_CERT_DAYS, parse_countries
from node.store import ALERT_STATES

Command = Callable[[argparse.Namespace], int]

_pki_countries = flag(parse_countries, error=UsageError)
"""--countries KR,US,JP, as node.pki reads it."""


# ------------------------------------------------------------------ pki
def cmd_pki_init(args: argparse.Namespace) -> int:
    """Create a development federation."""
    from node.pki import init_federation

    trust_path = init_federation(
        Path(args.out), countries=args.countries, host=args.host, base_port=args.base_port
    )
    print(f"federation trust file: {trust_path}")
    for country in args.countries:
        print(f"{country} node config: {Path(args.out) / country / 'node.toml'}")
    return EXIT_OK


def cmd_pki_show(args: argparse.Namespace) -> int:
    """What a node (or an auditor's trust file) trusts: CAs and keys with validity."""
    from node.trust import Trust

    if args.trust:
        trust, me = Trust.load(Path(args.trust)), None
    else:
        from node.service import node_trust

        config = load_config(args)
        # The node's view: the trust file amended by the trust updates it holds.
        trust, me = node_trust(config), config.node_id
    now = datetime.now(UTC)
    data: dict[str, Any] = {"federation": trust.federation, "members": {}}
    for country in trust.countries:
        ca = trust.ca_certificate(country)
        member = trust.member(country)
        data["members"][country] = {
            "ca_subject": ca.subject.rfc4514_string(),
            "ca_not_after": ca.not_valid_after_utc.isoformat(),
            "trusted_by_this_node_for_tls": me is not None and country != me,
            "trust_updates": trust.serial_of(country),
            "keys": [
                {
                    "key_id": k.key_id,
                    "purpose": k.purpose,
                    "not_before": k.not_before.isoformat(),
                    "not_after": k.not_after.isoformat(),
                    "revoked_from": k.revoked_from.isoformat() if k.revoked_from else None,
                    "revocation_reason": k.revocation_reason,
                    "valid_now": k.valid_at(now),
                }
                for k in member.keys
            ],
            "revoked_certificates": [
                {"serial": r.serial, "revoked_from": r.revoked_from.isoformat(), "reason": r.reason}
                for r in member.revoked_certificates
            ],
        }
    if args.json:
        print_json(data)
        return EXIT_OK
    print(f"federation {data['federation']}" + (f" (as seen by {me})" if me else ""))
    for country, member in data["members"].items():
        role = "this node" if country == me else ("peer: its CA is trusted for TLS" if me else "member")
        updates = f", {member['trust_updates']} trust update(s) applied" if member["trust_updates"] else ""
        print(
            f"  {country} ({role}) CA {member['ca_subject']}, valid until {member['ca_not_after']}{updates}"
        )
        for k in member["keys"]:
            state = "valid" if k["valid_now"] else "NOT VALID NOW"
            if k["revoked_from"]:
                state += f" (revoked {k['revocation_reason']} from {k['revoked_from']})"
            print(f"    {k['purpose']:<8} {k['key_id']}  {k['not_before']} .. {k['not_after']}  {state}")
        for r in member["revoked_certificates"]:
            print(f"    certificate {r['serial']} revoked ({r['reason']}) from {r['revoked_from']}")
    return EXIT_OK


def cmd_pki_ca(args: argparse.Namespace) -> int:
    """Create a production national CA: its key and self-signed certificate only."""
    from node.pki import create_national_ca, public_key_fingerprint

    ca = create_national_ca(Path(args.out), country=args.country, years=args.years)
    certificate = ca.certificate
    print(f"CA key:         {ca.key_path} (mode 0600; keep it offline, never on a node)")
    print(f"CA certificate: {ca.certificate_path}")
    print(f"  subject       {certificate.subject.rfc4514_string()}")
    print(
        f"  valid         {certificate.not_valid_before_utc.isoformat()} .. {certificate.not_valid_after_utc.isoformat()}"
    )
    print(f"  key SHA-256   {public_key_fingerprint(certificate)}")
    print(
        f"next: put {ca.certificate_path.name} into federation.json as members.{args.country}.ca_certificate"
    )
    return EXIT_OK


def cmd_pki_csr(args: argparse.Namespace) -> int:
    """At the node: its TLS key and certificate request (and optionally its signing keys)."""
    from node.pki import create_node_request

    request = create_node_request(
        Path(args.out),
        country=args.country,
        key_file=Path(args.key) if args.key else None,
        signing_keys=args.signing_keys,
    )
    key_note = "new, mode 0600" if request.key_created else "existing"
    print(f"TLS key:        {request.key_path} ({key_note}; stays on this host)")
    print(f"request:        {request.csr_path} -> send to the {args.country} national CA")
    print(f"key SHA-256:    {request.fingerprint}")
    print("                (confirm it with the CA officer: `ewx pki sign` prints the same)")
    if request.trust_entries_path is not None:
        paths = ", ".join(path.name for path in request.signing_key_paths)
        print(
            f"signing keys:   {request.signing_key_paths[0].parent}/{{{paths}}} (mode 0600; stay on this host)"
        )
        print(
            f"trust entries:  {request.trust_entries_path} -> for members.{args.country}.keys in federation.json"
        )
        for entry in request.entries:
            print(
                f"  {entry.purpose:<8} {entry.key_id}  "
                f"{entry.not_before.isoformat()} .. {entry.not_after.isoformat()}"
            )
    print(
        f"next: the CA runs `ewx pki sign --csr {request.csr_path.name} ...`; install its output as "
        f"{request.csr_path.with_suffix('.pem')}"
    )
    return EXIT_OK


def cmd_pki_sign(args: argparse.Namespace) -> int:
    """At the national CA: check a node's request and issue its certificate."""
    from node.pki import (
        load_national_ca,
        public_key_fingerprint,
        read_csr_file,
        sign_node_csr,
        write_public_file,
    )
    from node.trust import node_dns_name, node_uri

    out = Path(args.out)
    if out.exists() or out.is_symlink():
        raise RefusedOperation(f"{out} already exists; refusing to overwrite it")
    ca = load_national_ca(certificate=Path(args.ca_cert), key=Path(args.ca_key))
    country = ca.country
    csr_path = Path(args.csr)
    certificate = sign_node_csr(
        read_csr_file(csr_path),
        ca_certificate=ca.certificate,
        ca_key=ca.key,
        validity=timedelta(days=args.days),
        source=f"request {csr_path}",
    )
    write_public_file(out, certificate)
    print(f"issued:         {out} for {country}'s node ({node_uri(country)}, DNS {node_dns_name(country)})")
    print(f"  serial        {certificate.serial_number:x}")
    print(
        f"  valid         {certificate.not_valid_before_utc.isoformat()} .. {certificate.not_valid_after_utc.isoformat()}"
    )
    print(f"  key SHA-256   {public_key_fingerprint(certificate)}")
    print("next: the node installs it as tls/node.pem; a running node picks it up (SIGHUP or within seconds)")
    return EXIT_OK


# ------------------------------------------------------------------ alerts
def _publish(args: argparse.Namespace, **fields: Any) -> int:
    if getattr(args, "to", None) is not None:
        fields["recipients"] = args.to
    if getattr(args, "id", None):
        fields["alert_id"] = args.id
    if getattr(args, "idempotency_key", None):
        fields["idempotency_key"] = args.idempotency_key
    result = publish_request(args, status=args.status, **fields)
    print(result["alert_id"])
    return EXIT_OK


def cmd_alert_raise(args: argparse.Namespace) -> int:
    """Publish a new ALERT (the parser fills RAISE_DEFAULTS in)."""
    return _publish(args, msg_type="ALERT", info=alert_info_from(args))


def _find(args: argparse.Namespace, alert_id: str, origin: Country | None) -> dict[str, Any]:
    wanted = {"alert_id": alert_id} if origin is None else {"alert_id": alert_id, "origin": origin}
    matches = operator_client(args).alerts(**wanted)  # one per origin at most: the node looks it up by key
    if not matches:
        raise RefusedOperation(f"no alert {alert_id} is known to this node")
    if len(matches) > 1:
        raise UsageError(f"{alert_id} exists from several origins; give --origin")
    return dict(matches[0])


def cmd_alert_update(args: argparse.Namespace) -> int:
    """Publish an UPDATE of one of this node's alerts (unchanged fields carried over)."""
    base = operator_client(args).call("show", origin=load_config(args).node_id, alert_id=args.alert_id)
    info = alert_info_from(args, base=base.get("info") or {})
    return _publish(
        args, msg_type="UPDATE", reference={"origin": base["origin"], "alert_id": args.alert_id}, info=info
    )


def cmd_alert_cancel(args: argparse.Namespace) -> int:
    """Publish a CANCEL of one of this node's alerts."""
    me = load_config(args).node_id  # this node's own alert: its id is in the config
    return _publish(
        args, msg_type="CANCEL", reference={"origin": me, "alert_id": args.alert_id}, reason=args.reason
    )


def _peer_ref(args: argparse.Namespace) -> dict[str, str]:
    if args.origin:  # named in full: the node itself refuses an unknown reference
        return {"origin": args.origin, "alert_id": args.alert_id}
    found = _find(args, args.alert_id, args.origin)
    return {"origin": found["origin"], "alert_id": found["alert_id"]}


def cmd_alert_ack(args: argparse.Namespace) -> int:
    """Publish an ACK of a peer's alert."""
    return _publish(args, msg_type="ACK", reference=_peer_ref(args), reason=args.reason)


def cmd_alert_error(args: argparse.Namespace) -> int:
    """Publish an ERROR about a peer's alert."""
    return _publish(args, msg_type="ERROR", reference=_peer_ref(args), reason=args.reason)


def cmd_alert_respond(args: argparse.Namespace) -> int:
    """Publish a RESPONSE to an alert: measures taken, assistance offered or requested."""
    response = {
        "measures": args.measure,
        "assistance": args.assistance,
        "assistance_measures": args.assistance_measure or [],
        "expected_duration_days": args.duration_days,
    }
    reference = _peer_ref(args)
    if args.with_exposure:
        shown = operator_client(args).call("show", **reference)
        exposure = shown.get("local_exposure")
        if not exposure or not exposure.get("share_band"):
            raise RefusedOperation(
                f"no local exposure to share for {reference['origin']}/{reference['alert_id']}: "
                + ("not computed yet" if not exposure else "this node imports none of its codes")
            )
        response["own_exposure"] = exposure["share_band"]  # the band only: never a figure
    return _publish(args, msg_type="RESPONSE", reference=reference, response=response)


def cmd_alert_consult(args: argparse.Namespace) -> int:
    """Publish a CONSULT request on a SEVERE or EXTREME alert."""
    consult = {
        "impact": args.impact,
        "cause": args.cause,
        "expected_duration_days": args.duration_days,
        "sectors": args.sector,
        "measures_taken": args.measure_taken or [],
        "assistance_wanted": args.assistance_wanted or [],
    }
    return _publish(args, msg_type="CONSULT", reference=_peer_ref(args), consult=consult)


def _valid_cursor(value: str) -> str:
    """A listing cursor as given (the node reads it again), if parse_cursor takes it."""
    parse_cursor(value)
    return value


_cursor = flag(
    _valid_cursor,
    error=UsageError,
    refusal=lambda v: f"{v!r} is not a cursor; give the 'next' a listing printed",
)


def cmd_alert_list(args: argparse.Namespace) -> int:
    """List one page of own and received alerts with their delivery and acknowledgement state."""
    filters = {"state": args.state, "origin": args.origin, "after": args.after, "limit": args.limit}
    if args.since is not None:
        filters["since"] = args.since.isoformat()
    page = operator_client(args).call("list", **{k: v for k, v in filters.items() if v is not None})
    if args.json:
        print_json(page)
        return EXIT_OK
    alerts = page["alerts"]
    if not alerts:
        print("no alerts")
    for a in alerts:
        line = f"{a['alert_id']:<28} {a['origin']} {a['msg_type']:<8} {a['direction']:<8} {a['state']:<9}"
        if a["direction"] == "sent":
            done = [r for r, d in a["deliveries"].items() if d.get("delivered_at")]
            line += f" delivered:{','.join(done) or '-'}"
        line += f" acked-by:{','.join(a['acknowledged_by']) or '-'}"
        if a.get("headline"):
            line += f"  {a['severity']} {a['headline']}"
        elif a["references"]:
            line += f"  re {a['references'][0]['origin']}/{a['references'][0]['alert_id']}"
        if a.get("local_exposure"):
            line += f"  [{a['local_exposure']}]"
        print(line)
    if page["more"]:
        print(f"more: ewx alert list --after {page['next']} (with the same filters)")
    return EXIT_OK


def cmd_alert_show(args: argparse.Namespace) -> int:
    """Show one alert in full (JSON)."""
    origin = args.origin or _find(args, args.alert_id, None)["origin"]
    print_json(operator_client(args).call("show", origin=origin, alert_id=args.alert_id))
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """Each peer link: reachable, sequences, backlog."""
    status = operator_client(args).call("status")
    if args.json:
        print_json(status)
        return EXIT_OK
    print(
        f"node {status['node']}  log size {status['log']['size']}  root {status['log']['root'][:16]}…"
        f"  evidence {status['evidence']}"
    )
    for peer, held in status.get("history_missing", {}).items():
        print(
            f"  HISTORY MISSING: {peer} holds {held}; publishing is refused. "
            "Restore the data directory from a backup, or run `ewx node rejoin`"
        )
    if status.get("history_unchecked_since"):
        print(
            f"  WAITING FOR PEERS: the store was empty when it started at {status['history_unchecked_since']} and no "
            "peer has said what it holds of this node yet; publishing waits (first start of a new "
            "federation: `ewx node first-start --yes`)"
        )
    certificate = status["certificate"]
    print(
        f"  TLS certificate valid until {certificate['not_after']} ({certificate['days_left']:.0f} days)"
        + (
            "  EXPIRING SOON: renew it (SIGHUP picks up the new files)"
            if certificate["expiring_soon"]
            else ""
        )
    )
    for purpose, key in status.get("signing_keys", {}).items():
        warning = ""
        if not key["usable"]:
            warning = "  NOT USABLE: rotate it (ewx pki rotate)"
        elif key["expiring_soon"]:
            warning = "  EXPIRING SOON: rotate it (ewx pki rotate)"
        print(f"  {purpose} key {key['key_id']} valid until {key['valid_until']}{warning}")
    for peer, s in status["peers"].items():
        reach = {True: "reachable", False: "UNREACHABLE", None: "not yet tried"}[s["reachable"]]
        print(
            f"  {peer}: {reach}; sent {s['last_seq_sent']} delivered {s['last_seq_delivered']} "
            f"received {s['last_seq_received']}; backlog {s['backlog']}"
            + (f" (oldest {s['oldest_undelivered_seconds']:.0f}s)" if s["backlog"] else "")
            + (f"; last error: {s['last_error']}" if s["last_error"] else "")
        )
    return EXIT_OK


def cmd_node_rejoin(args: argparse.Namespace) -> int:
    """Recover this node's own alerts from its peers after its store lost them (issue 10, item 2)."""
    if not args.yes:
        raise UsageError(
            "re-join takes this node's own alerts back from its peers and continues its ids and sequences "
            "after them; the exchange log starts again from empty, and peers that witnessed the lost log "
            "are not asked to witness the new one. If a backup of the data directory exists, restore it "
            "instead. To re-join, run again with --yes"
        )
    done = operator_client(args).call("rejoin")
    if args.json:
        print_json(done)
        return EXIT_OK
    last = ", ".join(f"{peer} {seq}" for peer, seq in done["last_seq"].items())
    print(f"re-joined: {done['recovered']} own alerts recovered from the peers; last sequences {last}")
    return EXIT_OK


def cmd_node_first_start(args: argparse.Namespace) -> int:
    """Publish on a new store before any peer has answered: the first start of a new federation."""
    if not args.yes:
        raise UsageError(
            "first-start states that no peer holds any history of this node, so it may publish before a "
            "peer has answered. If this node ran before (its data directory was lost or not mounted), do "
            "not: restore a backup, or start it with its peers reachable. To declare it, run again with --yes"
        )
    done = operator_client(args).call("first_start")
    print(f"first start declared for the store created at {done['store_created']}; publishing is open")
    return EXIT_OK


# ------------------------------------------------------------------ offline transfer
IMPORT_CHUNK_BYTES = 40 * 1024
"""Envelopes per operator request are capped so a request stays under its limit."""


def cmd_outbox_export(args: argparse.Namespace) -> int:
    """Write what one peer has not receipted yet, for carrying by hand."""
    from node.files import check_output_target
    from node.message import write_transfer
    from node.service import NodeService

    config = load_config(args)
    if args.peer not in config.peers:
        raise UsageError(f"{args.peer} is not a peer of {config.node_id}")
    check_output_target(Path(args.out), force=args.force)  # before any work
    service = NodeService.open(config)
    try:
        envelopes = service.undelivered(args.peer)
    finally:
        service.close()
    write_transfer(
        Path(args.out), origin=config.node_id, recipient=args.peer, envelopes=envelopes, force=args.force
    )
    print(f"exported {len(envelopes)} undelivered alerts for {args.peer} to {args.out}")
    return EXIT_OK


def cmd_outbox_import(args: argparse.Namespace) -> int:
    """Hand a transfer file to the running node, which checks every alert."""
    import base64

    from node.message import read_transfer

    transfer = read_transfer(Path(args.file))
    client = operator_client(args)
    chunks: list[list[str]] = [[]]
    size = 0
    for envelope in transfer.envelopes:
        if chunks[-1] and size + len(envelope) > IMPORT_CHUNK_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(base64.b64encode(envelope).decode())
        size += len(envelope)
    stored = refused = last_seq = 0
    for chunk in filter(None, chunks):
        result = client.call("import", origin=transfer.origin, recipient=transfer.recipient, envelopes=chunk)
        stored, refused, last_seq = stored + result["stored"], refused + result["refused"], result["last_seq"]
    print(
        f"imported {stored} new of {len(transfer.envelopes)} alerts from {transfer.origin}; "
        f"now at sequence {last_seq} from {transfer.origin}"
    )
    if refused:
        print(f"ewx: refused: {refused} alerts failed the checks; see the node's log", file=sys.stderr)
        return EXIT_FINDING
    return EXIT_OK


# ------------------------------------------------------------------ log and audit
def cmd_log_export(args: argparse.Namespace) -> int:
    """Write the portable, self-contained log bundle."""
    from node.service import export_bundle

    config = load_config(args)
    size = export_bundle(config, Path(args.out), force=args.force)
    print(f"exported {size} entries to {args.out}")
    return EXIT_OK


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Verify exported logs offline against the trust file."""
    from node.audit import verify_bundles
    from node.trust import Trust

    trust = Trust.load(Path(args.trust))
    report = verify_bundles([Path(p) for p in args.logs], trust=trust)
    if args.json:
        print_json(report.to_json())
    else:
        print(report.to_text())
    return EXIT_OK if report.clean else EXIT_FINDING


def cmd_audit_replay(args: argparse.Namespace) -> int:
    """Rebuild every alert's timeline and state from exported logs; optionally an HTML page."""
    from node.audit import read_bundle, render_html, replay
    from node.trust import Trust

    trust = Trust.load(Path(args.trust))
    result = replay([read_bundle(Path(p)) for p in args.logs], trust=trust)
    if args.html:
        try:
            Path(args.html).write_text(render_html(result), encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {args.html}: {exc.strerror}") from None
    if args.json:
        print_json(result.to_json())
    else:
        print(result.to_text())
    return EXIT_OK if result.clean else EXIT_FINDING


def cmd_audit_prove(args: argparse.Namespace) -> int:
    """Write a self-contained inclusion proof (C2SP tlog-proof) of one alert in one log."""
    from node.audit import prove, read_bundle
    from node.errors import ProofError

    bundle = read_bundle(Path(args.log))
    try:
        text = prove(bundle, args.alert_id, origin=args.origin)
    except ProofError as exc:
        print(f"ewx: refused: {exc}", file=sys.stderr)
        return EXIT_FINDING
    try:
        Path(args.out).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {args.out}: {exc.strerror}") from None
    print(f"proof of {args.alert_id} in {bundle.node}'s log written to {args.out}")
    return EXIT_OK


def cmd_audit_check_proof(args: argparse.Namespace) -> int:
    """Verify an inclusion proof offline against the trust file."""
    from node.audit import HEADER, MAX_PROOF_CHARS, check_proof
    from node.errors import ProofError
    from node.files import read_bounded
    from node.trust import Trust

    trust = Trust.load(Path(args.trust))
    data = read_bounded(Path(args.proof), 4 * MAX_PROOF_CHARS, what="proof file", error=UsageError)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"cannot read {args.proof}: not UTF-8 text") from None
    if not text.startswith(HEADER + "\n"):
        raise UsageError(f"{args.proof} is not a tlog-proof (first line is not {HEADER})")
    try:
        result = check_proof(text, trust=trust, min_cosigners=args.min_cosigners)
    except ProofError as exc:
        if args.json:
            print_json({"valid": False, "defect": exc.defect, "detail": exc.detail})
        else:
            print(f"INVALID: {exc.defect}: {exc.detail}")
        return EXIT_FINDING
    if args.json:
        print_json(result.to_json())
    else:
        print(result.to_text())
    return EXIT_OK


# ------------------------------------------------------------------ the parser
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _add_export_out(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="a new file (written whole or not at all; never a device)",
    )
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")


def _add_common_publish(p: argparse.ArgumentParser) -> None:
    add_config(p)
    p.add_argument("--status", choices=choices(pb.Status), default="ACTUAL", help="default: ACTUAL")
    p.add_argument("--to", type=parse_recipients, metavar="CC[,CC]", help="recipients (default: both peers)")
    p.add_argument("--id", metavar="ALERT_ID", help="alert id (default: generated)")
    p.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="a retry with the same key publishes nothing new and prints the first alert's id",
    )


def _add_peer_ref(p: argparse.ArgumentParser) -> None:
    p.add_argument("alert_id", metavar="ID", help="the peer's alert id")
    p.add_argument("--origin", type=parse_country, help="the alert's origin (default: looked up)")


Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"  # no public name


def build_parser(extend: Callable[[Subcommands], None] | None = None) -> argparse.ArgumentParser:
    """The whole `ewx` parser; `extend` adds commands that live outside node/."""
    parser = _Parser(
        prog="ewx",
        description="EWX national node: the federated supply-chain "
        "early-warning exchange between KR, US and JP.",
    )
    commands: Subcommands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    pki = commands.add_parser("pki", help="federation PKI").add_subparsers(
        dest="pki", required=True, parser_class=_Parser
    )
    p: argparse.ArgumentParser = pki.add_parser(
        "init", help="create a development federation (CAs, certificates, keys, configs)"
    )
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--countries", type=_pki_countries, default=COUNTRIES, metavar="KR,US,JP")
    p.add_argument("--host", default="127.0.0.1", help="address the nodes listen on (default 127.0.0.1)")
    p.add_argument("--base-port", type=cli_int(), default=7401, help="first node's port (default 7401)")
    p.set_defaults(func=cmd_pki_init)

    p = pki.add_parser("show", help="what a node trusts: each member's CA and keys with validity")
    add_config(p)
    p.add_argument("--trust", metavar="federation.json", help="show a trust file instead of a node's view")
    p.add_argument("--json", action="store_true", help="machine output")
    p.set_defaults(func=cmd_pki_show)
    add_rotation_commands(pki, add_config)

    p = pki.add_parser(
        "ca",
        help="production: create a national CA (key and certificate only), on the CA's offline machine",
        description="Create a production national CA for one country: DIR/ca.key (ECDSA P-256, mode 0600) "
        "and DIR/ca.pem (self-signed, path length 0, C=<CC>). Keep the key off the nodes; publish ca.pem "
        "in federation.json. Refuses to overwrite either file.",
    )
    p.add_argument("--country", type=parse_country, required=True, metavar="CC", help="KR, US or JP")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for ca.key and ca.pem (created 0700)")
    p.add_argument(
        "--years", type=cli_int(low=1), default=10, metavar="N", help="CA validity in years (default 10)"
    )
    p.set_defaults(func=cmd_pki_ca)

    p = pki.add_parser(
        "csr",
        help="production, on the node: make its TLS key and a certificate request for the national CA",
        description="On the node host: write DIR/tls/node.key (new ECDSA P-256 key, mode 0600) and "
        "DIR/tls/node.csr, a PKCS#10 request for exactly this node's identity (subject CN=ewx-node-<cc>, "
        "SAN DNS <cc>.node.ewx and URI urn:ewx:node:<CC>). Give the node's config folder as DIR and "
        "the files land where node.toml expects them. Prints the key's SHA-256 fingerprint to confirm "
        "with the CA officer. Never overwrites a file: if any target exists, nothing is written.",
    )
    p.add_argument("--country", type=parse_country, required=True, metavar="CC", help="this node's country")
    p.add_argument(
        "--out", required=True, metavar="DIR", help="the node's config folder (tls/ and keys/ go here)"
    )
    p.add_argument(
        "--key",
        metavar="FILE",
        help="renew for an existing TLS key instead of making a new one (only DIR/tls/node.csr is written)",
    )
    p.add_argument(
        "--signing-keys",
        action="store_true",
        help="also make the Ed25519 alert, log and witness keys (DIR/keys/*.key, mode 0600) and write "
        "their public trust entries to DIR/keys/trust-entries.json for the federation trust file",
    )
    p.set_defaults(func=cmd_pki_csr)

    p = pki.add_parser(
        "sign",
        help="production, at the national CA: check a node's request and issue its certificate",
        description="Check a node's certificate request and issue the node certificate, with the same "
        "profile as `ewx pki init`. The country is the CA's own (its certificate's C=), and the request "
        "must ask for that country's node identity and nothing else: its signature must verify, its "
        "key must be ECDSA P-256, its names exactly DNS <cc>.node.ewx and URI urn:ewx:node:<CC>, and it "
        "may not ask for CA powers. On any refusal (exit 1) or bad input (exit 2) nothing is written.",
    )
    p.add_argument("--ca-cert", required=True, metavar="CA.pem", help="the national CA certificate")
    p.add_argument("--ca-key", required=True, metavar="CA.key", help="the national CA key (mode 0600)")
    p.add_argument("--csr", required=True, metavar="node.csr", help="the node's request (`ewx pki csr`)")
    p.add_argument(
        "--out", required=True, metavar="node.pem", help="where to write the certificate (new file)"
    )
    p.add_argument(
        "--days",
        type=cli_days(MAX_NODE_CERT_DAYS),
        default=397,
        metavar="N",
        help="validity in days, 1-397 (default 397)",
    )
    p.set_defaults(func=cmd_pki_sign)

    alert = commands.add_parser("alert", help="publish and read alerts").add_subparsers(
        dest="alert", required=True, parser_class=_Parser
    )
    p = alert.add_parser("raise", help="publish a new ALERT; prints its id")
    _add_common_publish(p)
    add_alert_info(p, required=True)
    p.set_defaults(func=cmd_alert_raise)
    p = alert.add_parser("update", help="publish an UPDATE of an own alert; prints its id")
    p.add_argument("alert_id", metavar="ID")
    _add_common_publish(p)
    add_alert_info(p, required=False)
    p.set_defaults(func=cmd_alert_update)
    p = alert.add_parser("cancel", help="publish a CANCEL of an own alert; prints its id")
    p.add_argument("alert_id", metavar="ID")
    _add_common_publish(p)
    p.add_argument(
        "--reason",
        choices=["ISSUED_IN_ERROR", "SITUATION_RESOLVED", "SUPERSEDED"],
        default="SITUATION_RESOLVED",
    )
    p.set_defaults(func=cmd_alert_cancel)
    p = alert.add_parser("ack", help="acknowledge a peer's alert; prints the ACK's id")
    _add_peer_ref(p)
    _add_common_publish(p)
    p.add_argument("--reason", choices=["RECEIVED", "UNDER_REVIEW", "ACTION_TAKEN"], default="RECEIVED")
    p.set_defaults(func=cmd_alert_ack)
    p = alert.add_parser("error", help="report a problem with a peer's alert; prints the ERROR's id")
    _add_peer_ref(p)
    _add_common_publish(p)
    p.add_argument(
        "--reason",
        choices=["UNKNOWN_REFERENCE", "NOT_UNDERSTOOD", "POLICY_REFUSED"],
        default="NOT_UNDERSTOOD",
    )
    p.set_defaults(func=cmd_alert_error)
    p = alert.add_parser("respond", help="publish a RESPONSE to an alert; prints its id")
    _add_peer_ref(p)
    _add_common_publish(p)
    p.add_argument("--measure", action="append", choices=choices(pb.Measure), required=True)
    p.add_argument("--assistance", choices=choices(pb.Assistance), default="NONE")
    p.add_argument("--assistance-measure", action="append", choices=choices(pb.Measure))
    p.add_argument("--duration-days", type=cli_int(), default=0)
    p.add_argument(
        "--with-exposure",
        action="store_true",
        help="also send this node's own exposure to the alert's sources, as a share band (never a figure)",
    )
    p.set_defaults(func=cmd_alert_respond)
    p = alert.add_parser("consult", help="request a consultation on a SEVERE or EXTREME alert")
    _add_peer_ref(p)
    _add_common_publish(p)
    p.add_argument("--impact", choices=choices(pb.ImpactBand), required=True)
    p.add_argument("--cause", choices=choices(pb.Category), required=True)
    p.add_argument("--sector", action="append", choices=choices(pb.Sector), required=True)
    p.add_argument("--measure-taken", action="append", choices=choices(pb.Measure))
    p.add_argument("--assistance-wanted", action="append", choices=choices(pb.Measure))
    p.add_argument("--duration-days", type=cli_int(), default=0)
    p.set_defaults(func=cmd_alert_consult)
    p = alert.add_parser(
        "list",
        help="own and received alerts with delivery and acknowledgement state, a page at a time",
        description="Alerts in log order, oldest first, one page at a time: a page that is not the "
        "last ends with the cursor to give to --after for the next one ('next' in --json).",
    )
    add_config(p)
    p.add_argument("--state", choices=ALERT_STATES, help="only alerts in this state")
    p.add_argument("--origin", type=parse_country, metavar="CC", help="only alerts from this node")
    p.add_argument(
        "--since",
        type=parse_ago,
        metavar="TIME",
        help="only alerts sent at or after TIME (ISO 8601 UTC, or Nd/Nh: days or hours ago)",
    )
    p.add_argument(
        "--limit",
        type=cli_int(low=1, high=OPERATOR_PAGE_MAX),
        metavar="N",
        help=f"alerts on the page (default {OPERATOR_PAGE_DEFAULT}, at most {OPERATOR_PAGE_MAX})",
    )
    p.add_argument("--after", type=_cursor, metavar="CURSOR", help="the page after this cursor")
    p.add_argument("--json", action="store_true", help="machine output: {alerts, more, next}")
    p.set_defaults(func=cmd_alert_list)
    p = alert.add_parser("show", help="one alert in full, as JSON")
    _add_peer_ref(p)
    add_config(p)
    p.set_defaults(func=cmd_alert_show)

    add_trilateral_commands(commands, add_config)

    p = commands.add_parser("status", help="each peer: reachable, sequences, backlog")
    add_config(p)
    p.add_argument("--json", action="store_true", help="machine output")
    p.set_defaults(func=cmd_status)

    add_health_command(commands, add_config)
    add_backup_commands(commands, add_config)

    node = commands.add_parser("node", help="this node's membership of the federation").add_subparsers(
        dest="node", required=True, parser_class=_Parser
    )
    p = node.add_parser(
        "rejoin",
        help="after a lost store: recover this node's own alerts from its peers, continue after them",
    )
    add_config(p)
    p.add_argument("--yes", action="store_true", help="confirm: without it, only says what re-join does")
    p.add_argument("--json", action="store_true", help="machine output")
    p.set_defaults(func=cmd_node_rejoin)
    p = node.add_parser(
        "first-start", help="a new federation with no peer up yet: publish before any peer has answered"
    )
    add_config(p)
    p.add_argument("--yes", action="store_true", help="confirm: without it, only says what this does")
    p.set_defaults(func=cmd_node_first_start)

    outbox = commands.add_parser("outbox", help="offline transfer for a link that is down").add_subparsers(
        dest="outbox", required=True, parser_class=_Parser
    )
    p = outbox.add_parser("export", help="write the signed alerts one peer has not receipted yet")
    add_config(p)
    p.add_argument("--peer", type=parse_country, required=True, help="the peer the file is for")
    _add_export_out(p)
    p.set_defaults(func=cmd_outbox_export)
    p = outbox.add_parser(
        "import", help="hand a transfer file to the running node (same checks as the network)"
    )
    p.add_argument("file", metavar="FILE")
    add_config(p)
    p.set_defaults(func=cmd_outbox_import)

    logp = commands.add_parser("log", help="the exchange log").add_subparsers(
        dest="log", required=True, parser_class=_Parser
    )
    p = logp.add_parser("export", help="write the portable log bundle (works with the node up or down)")
    add_config(p)
    _add_export_out(p)
    p.set_defaults(func=cmd_log_export)

    audit = commands.add_parser("audit", help="offline verification of exported logs").add_subparsers(
        dest="audit", required=True, parser_class=_Parser
    )
    p = audit.add_parser("verify", help="verify one or more exported logs; exit 1 on findings")
    p.add_argument("logs", nargs="+", metavar="LOG")
    p.add_argument("--trust", required=True, metavar="federation.json")
    p.add_argument("--json", action="store_true", help="machine report")
    p.set_defaults(func=cmd_audit_verify)
    p = audit.add_parser(
        "replay",
        help="rebuild every alert's timeline and state from exported logs; exit 1 on audit findings",
        description="Audit the logs, then replay every alert from their authentic entries: raised, "
        "delivered to each peer (direct or relayed, receipted), acknowledged, responded, consultation "
        "requested, updated, cancelled, expired. Prints the report; exit 0 if the audit is clean, "
        "1 on findings, 2 on unreadable input.",
    )
    p.add_argument("logs", nargs="+", metavar="LOG", help="exported log bundles, at most one per node")
    p.add_argument("--trust", required=True, metavar="federation.json", help="the federation trust file")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page with the timeline")
    p.add_argument("--json", action="store_true", help="machine report instead of text")
    p.set_defaults(func=cmd_audit_replay)
    p = audit.add_parser(
        "prove",
        help="write an offline-verifiable inclusion proof (C2SP tlog-proof) of one alert in a log",
        description="Find the alert's ALERT_SENT or ALERT_RECEIVED entry in the log and write a "
        "c2sp.org/tlog-proof@v1 file: the entry (extra line), its index, the inclusion proof and the "
        "log's signed checkpoint (the latest cosigned one covering it, else the export checkpoint). "
        "Exit 1 if the log holds no such alert, 2 on unreadable input.",
    )
    p.add_argument("alert_id", metavar="ALERT_ID", help="the alert's id")
    p.add_argument("--log", required=True, metavar="BUNDLE", help="an exported log bundle")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the proof")
    p.add_argument("--origin", type=parse_country, metavar="CC", help="the alert's origin, if the id is ambiguous")
    p.set_defaults(func=cmd_audit_prove)
    p = audit.add_parser(
        "check-proof",
        help="verify an inclusion proof offline; exit 0 valid, 1 invalid, 2 unreadable",
        description="Check a tlog-proof against the trust file alone: the checkpoint's log signature, "
        "the peers' cosignatures, the inclusion proof and the alert's signature. Prints the defect "
        "when invalid.",
    )
    p.add_argument("proof", metavar="FILE", help="a proof written by `ewx audit prove`")
    p.add_argument("--trust", required=True, metavar="federation.json", help="the federation trust file")
    p.add_argument(
        "--min-cosigners",
        type=cli_int(low=0),
        default=0,
        metavar="N",
        help="peers that must have cosigned (default 0)",
    )
    p.add_argument("--json", action="store_true", help="machine output")
    p.set_defaults(func=cmd_audit_check_proof)
    add_ews_commands(commands)
    if extend is not None:
        extend(commands)
    return parser


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse, run one command, map errors to exit codes and a one-line message."""
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except EwxError as exc:  # its class says how it ends (node/errors.py)
        print(f"ewx: {'error' if exc.exit_code == EXIT_USAGE else 'refused'}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`ewx ... | head`): not an error of ours
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return EXIT_OK
    except OSError as exc:  # a path missing or unwritable, a full disk: the operator's input or host
        print(f"ewx: error: {_os_error(exc)}", file=sys.stderr)
        return EXIT_USAGE


def _os_error(exc: OSError) -> str:
    """An OSError in one line: the file it names, then what went wrong."""
    what = exc.strerror or str(exc)
    return f"{exc.filename}: {what}" if exc.filename is not None else what


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for the node-only commands (gateway/cli.py adds the rest)."""
    return run(build_parser(), argv)
