"""`ewx pki init/show/ca/csr/sign`: the federation's PKI, development and production.

Key rotation, endorsement, announcement and revocation are node/cli/_rotation.py;
node/cli/_main.py hands its `add_rotation_commands` in, so that `ewx pki --help`
lists them after `show` without this module importing that one.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from node.cli._common import EXIT_OK, load_config, print_json
from node.errors import RefusedOperation, UsageError
from node.ids import COUNTRIES
from node.parsing import cli_days, cli_int, flag, parse_country
from node.pki import MAX_NODE_CERT_DAYS, parse_countries

_pki_countries = flag(parse_countries, error=UsageError)
"""--countries KR,US,JP, as node.pki reads it."""


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


def add_pki_commands(commands: Any, add_config: Any, rotation: Any) -> None:
    """The `pki` command group; `rotation(pki, add_config)` adds rotate/endorse/announce after `show`."""
    group = commands.add_parser("pki", help="federation PKI")
    pki = group.add_subparsers(dest="pki", required=True, parser_class=type(group))
    p: argparse.ArgumentParser = pki.add_parser(
        "init", help="create a development federation (CAs, certificates, keys, configs)"
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="the folder to write into; refused if it already holds federation.json or a CC folder",
    )
    p.add_argument(
        "--countries",
        type=_pki_countries,
        default=COUNTRIES,
        metavar="KR,US,JP",
        help="the members (default KR,US,JP)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address the nodes listen on (default 127.0.0.1)")
    p.add_argument("--base-port", type=cli_int(), default=7401, help="first node's port (default 7401)")
    p.set_defaults(func=cmd_pki_init)

    p = pki.add_parser("show", help="what a node trusts: each member's CA and keys with validity")
    add_config(p)
    p.add_argument("--trust", metavar="federation.json", help="show a trust file instead of a node's view")
    p.add_argument("--json", action="store_true", help="machine output")
    p.set_defaults(func=cmd_pki_show)
    rotation(pki, add_config)

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
