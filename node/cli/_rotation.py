"""`ewx pki rotate`, `ewx pki endorse`, `ewx pki announce`: key rotation and revocation.

The flow (docs/key-rotation.md): at the node, `rotate` makes the new keys and
a request signed by the node's current alert key; at the national CA,
`endorse` shows what the request changes and adds the CA's signature (the
CA key never needs to be on the node); back at the node, `announce` hands
the endorsed update to the running node, which adopts it, switches to the
new keys and sends it to its peers.
"""

from __future__ import annotations

import argparse
import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from node.cli._common import EXIT_OK, load_config, operator_client, print_json
from node.crypto import KEY_PURPOSES
from node.digits import ascii_hex
from node.errors import RefusedOperation, UsageError
from node.files import check_output_target, read_bounded
from node.limits import MAX_TRUST_UPDATE_BYTES
from node.parsing import cli_days, parse_when
from node.pki import PUBLIC_FILE_MODE, load_national_ca, write_new_file
from node.trust import CertificateRevocation, KeyRevocation, RevocationReason, describe, endorse_update


def _serial(value: str) -> int:
    number = ascii_hex(value.lower().removeprefix("0x").replace(":", ""))
    if number is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not a certificate serial in hex") from None
    if number <= 0 or number.bit_length() > 160:
        raise argparse.ArgumentTypeError(f"{value!r}: a certificate serial is 1 to 20 bytes")
    return number


_days = cli_days(3650)


def _read_update(path: Path) -> bytes:
    return read_bounded(path, MAX_TRUST_UPDATE_BYTES, what="trust update", error=UsageError)


def cmd_pki_rotate(args: argparse.Namespace) -> int:
    """At the node: new keys as `.next` files, and the request for the national CA."""
    from node.service import prepare_rotation

    config = load_config(args)
    now = datetime.now(UTC)
    reason: RevocationReason = args.reason
    out = Path(args.out)
    # Before any key is made, so that nothing is written when refused.
    check_output_target(out, force=False, if_exists="refusing to overwrite it")
    request = prepare_rotation(
        config,
        now=now,
        purposes=args.purpose or [],
        valid_for=timedelta(days=args.valid_days),
        key_revocations=[
            KeyRevocation(key_id, args.revoke_from or now, reason) for key_id in args.revoke_key
        ],
        certificate_revocations=[
            CertificateRevocation(serial, args.revoke_from or now, reason)
            for serial in args.revoke_certificate
        ],
    )
    write_new_file(out, request, mode=PUBLIC_FILE_MODE)
    print_json(describe(request))
    print(
        f"request written to {out}: next, the {config.node_id} national CA runs `ewx pki endorse {out.name}`"
    )
    return EXIT_OK


def cmd_pki_endorse(args: argparse.Namespace) -> int:
    """At the national CA: show what the request changes, then sign it."""

    ca_dir = Path(args.ca_dir) if args.ca_dir else None
    key_path = Path(args.ca_key) if args.ca_key else (ca_dir / "ca.key" if ca_dir else None)
    cert_path = Path(args.ca_cert) if args.ca_cert else (ca_dir / "ca.pem" if ca_dir else None)
    if key_path is None or cert_path is None:
        raise UsageError("name the CA: --ca-dir DIR (holding ca.key and ca.pem), or --ca-key and --ca-cert")
    ca = load_national_ca(certificate=cert_path, key=key_path)
    request = _read_update(Path(args.request))
    out = Path(args.out)
    if out.exists():  # before any key is made: nothing is written when refused
        raise RefusedOperation(f"{out} already exists; refusing to overwrite it")
    endorsed = endorse_update(request, ca_key=ca.key, ca_certificate=ca.certificate)
    write_new_file(out, endorsed, mode=PUBLIC_FILE_MODE)
    print_json(describe(endorsed))
    print(f"endorsed update written to {out}: next, the node runs `ewx pki announce {out.name}`")
    return EXIT_OK


def cmd_pki_announce(args: argparse.Namespace) -> int:
    """At the node: adopt the endorsed update and send it to the peers."""

    update = _read_update(Path(args.update))
    client = operator_client(args)
    print_json(client.call("announce", update=base64.b64encode(update).decode("ascii")))
    return EXIT_OK


def add_rotation_commands(pki: Any, add_config: Any) -> None:
    """Register rotate, endorse and announce under `ewx pki`."""

    p: argparse.ArgumentParser = pki.add_parser(
        "rotate",
        help="at the node: new signing keys and/or revocations, as a request for the national CA",
        description=(
            "Make new signing keys (kept as <key file>.next until announced) and a trust update "
            "request signed by the node's current alert key. Old keys stay valid until their "
            "not_after unless revoked here, so alerts still in the outbox are delivered."
        ),
    )
    add_config(p)
    p.add_argument("--purpose", action="append", choices=KEY_PURPOSES, help="a key to replace (repeatable)")
    p.add_argument(
        "--valid-days", type=_days, default=730, metavar="N", help="new keys' validity (default 730)"
    )
    p.add_argument(
        "--revoke-key", action="append", default=[], metavar="KEY_ID", help="revoke one of this node's keys"
    )
    p.add_argument(
        "--revoke-certificate",
        action="append",
        type=_serial,
        default=[],
        metavar="SERIAL",
        help="revoke a node TLS certificate of this country by its serial (hex)",
    )
    p.add_argument(
        "--revoke-from", type=parse_when, metavar="TIME", help="revocations apply from TIME (default now)"
    )
    p.add_argument(
        "--reason",
        choices=["compromised", "superseded"],
        default="compromised",
        help="why (default compromised)",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the request")
    p.set_defaults(func=cmd_pki_rotate)

    p = pki.add_parser(
        "endorse",
        help="at the national CA: sign a node's trust update request",
        description="Check that the request is for this CA's own country, print what it changes, and sign it.",
    )
    p.add_argument("request", metavar="REQUEST", help="the file `ewx pki rotate` wrote")
    p.add_argument("--ca-dir", metavar="DIR", help="folder holding ca.key and ca.pem")
    p.add_argument("--ca-key", metavar="FILE", help="the CA's private key (PEM)")
    p.add_argument("--ca-cert", metavar="FILE", help="the CA's certificate (PEM)")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the endorsed update")
    p.set_defaults(func=cmd_pki_endorse)

    p = pki.add_parser(
        "announce",
        help="at the node: adopt an endorsed trust update and send it to the peers",
        description="The running node checks the update as its peers will, logs it, switches to the new keys "
        "and announces it to both peers before anything the new keys sign.",
    )
    add_config(p)
    p.add_argument("update", metavar="UPDATE", help="the file `ewx pki endorse` wrote")
    p.set_defaults(func=cmd_pki_announce)
