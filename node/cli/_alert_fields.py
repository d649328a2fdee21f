"""The flags that shape an alert, shared by `ewx alert raise/update` and `ewx ews approve`.

Also the recipient list and --config, which every publishing command takes.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from node.cli._common import operator_client
from node.ids import Country
from node.message import enum_names, pb
from node.parsing import cli_int, parse_country, parse_when

DEFAULT_EXPIRY: Final = timedelta(days=30)
"""An alert raised without --expires expires this long after it is sent."""


def choices(wrapper: Any) -> list[str]:
    """The names of a protobuf enum, for argparse choices."""
    return enum_names(wrapper)


def parse_recipients(value: str) -> list[Country]:
    """A recipient list: never empty, so an empty variable cannot widen the audience to both peers."""
    countries = [parse_country(v.strip()) for v in value.split(",") if v.strip()]
    if not countries:
        raise argparse.ArgumentTypeError(
            f"{value!r} names no recipient; give CC[,CC], or leave --to out for both peers"
        )
    return countries


def parse_iso_list(value: str) -> list[str]:
    """CC[,CC]: country codes as given, upper-cased (the node checks them)."""
    return [v.strip().upper() for v in value.split(",") if v.strip()]


def parse_hs(value: str) -> list[dict[str, str]]:
    """CODE[:EDITION][,...]: HS items, the dots of 8112.92 dropped (the node checks the digits)."""
    items = []
    for part in value.split(","):
        code, _, edition = part.strip().partition(":")
        code = code.replace(".", "")
        items.append({"hs_code": code, "hs_edition": edition.upper() or "HS2022"})
    return items


def alert_info_from(args: argparse.Namespace, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The alert info the flags of `add_alert_info` give, over `base` (an UPDATE keeps what is not given)."""
    info: dict[str, Any] = dict(base or {})
    flags = {
        "category": args.category,
        "urgency": args.urgency,
        "severity": args.severity,
        "certainty": args.certainty,
        "headline": args.headline,
        "supply_impact": args.impact,
        "expected_duration_days": args.duration_days,
        "effective": args.effective,
        "expires": args.expires,
        "source_countries": args.source_country,
        "affected_countries": args.affected_country,
        "items": [item for group in args.hs for item in group] if args.hs else None,
    }
    info.update({k: v for k, v in flags.items() if v is not None})
    if base is None or args.expires is not None:
        info["expires"] = args.expires or datetime.now(UTC) + DEFAULT_EXPIRY
    if isinstance(info.get("effective"), datetime):
        info["effective"] = info["effective"].isoformat()
    if isinstance(info.get("expires"), datetime):
        info["expires"] = info["expires"].isoformat()
    if args.hs_edition:
        for item in info.get("items", []):
            item["hs_edition"] = args.hs_edition
    return info


def publish_request(args: argparse.Namespace, **fields: Any) -> dict[str, Any]:
    """Publish through the running node; the node's reply (alert id, digest, sequences)."""
    return dict(operator_client(args).call("publish", **{k: v for k, v in fields.items() if v is not None}))


def add_config(p: argparse.ArgumentParser) -> None:
    """--config FILE, else $EWX_CONFIG."""
    p.add_argument("--config", metavar="FILE", help="node configuration (default: $EWX_CONFIG)")


RAISE_DEFAULTS: Final[dict[str, str | int]] = {
    "urgency": "EXPECTED",
    "certainty": "LIKELY",
    "impact": "BELOW_10",
    "duration_days": 0,
}
"""What `alert raise` fills in when not told; `alert update` keeps the alert's own values instead."""


def add_alert_info(p: argparse.ArgumentParser, *, required: bool) -> None:
    """The info flags; `required` for raise (which has defaults), not for update (which keeps values)."""

    def default(text: object) -> str:
        return f"default: {text}" if required else "default: unchanged"

    if required:
        p.set_defaults(**RAISE_DEFAULTS)
    p.add_argument(
        "--hs",
        type=parse_hs,
        action="append",
        required=required,
        metavar="CODE[:EDITION][,...]",
        help="HS codes at 4 or 6 digits, with edition (default edition HS2022); repeatable",
    )
    p.add_argument("--hs-edition", choices=choices(pb.HsEdition), help="edition for every --hs code")
    p.add_argument(
        "--category", choices=choices(pb.Category), required=required, help="what kind of disruption"
    )
    p.add_argument(
        "--severity",
        choices=choices(pb.Severity),
        required=required,
        help="CAP severity; it sets the acknowledgement deadline ([ack_deadline_minutes])",
    )
    p.add_argument("--urgency", choices=choices(pb.Urgency), help=default(RAISE_DEFAULTS["urgency"]))
    p.add_argument("--certainty", choices=choices(pb.Certainty), help=default(RAISE_DEFAULTS["certainty"]))
    p.add_argument(
        "--source-country",
        type=parse_iso_list,
        required=required,
        metavar="CC[,CC]",
        help="ISO 3166-1 alpha-2 (ZZ unknown)",
    )
    p.add_argument("--affected-country", type=parse_iso_list, metavar="CC[,CC]", help=default("none"))
    p.add_argument(
        "--impact",
        choices=choices(pb.ImpactBand),
        help=f"supply impact band ({default(RAISE_DEFAULTS['impact'])})",
    )
    p.add_argument(
        "--duration-days", type=cli_int(), help=f"expected duration in days ({default('0, unknown')})"
    )
    p.add_argument(
        "--effective", type=parse_when, metavar="TIME", help=f"ISO 8601 UTC or +Nd ({default('sent')})"
    )
    p.add_argument(
        "--expires", type=parse_when, metavar="TIME", help=f"ISO 8601 UTC or +Nd ({default('+30d')})"
    )
    p.add_argument("--headline", required=required, help="plain text, at most 140 characters")
