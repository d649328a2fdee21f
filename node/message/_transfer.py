"""Offline transfer of an outbox, for a link that is down for days (issue 4).

`ewx outbox export` writes the signed alerts one peer has not receipted yet,
exactly as signed; `ewx outbox import` at that peer hands them to the node,
which applies the same checks as the network path (every alert is
self-authenticating: the origin's signature binds it). Importing twice
changes nothing. File: magic "EWXOUTBOX1\\n", then length-delimited
ewx.v1.TransferRecords: one header, then the envelopes in sequence order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from node.errors import FramingError, TransferError
from node.files import atomic_output, read_bounded
from node.ids import Country
from node.limits import MAX_ENVELOPE_BYTES
from node.message._convert import member, timestamp
from node.message._framing import frame, records
from node.wire import ewx_pb2 as pb

MAGIC: Final = b"EWXOUTBOX1\n"
FORMAT_VERSION: Final = 1
MAX_TRANSFER_BYTES: Final = 1 << 30
"""A transfer file larger than this is refused before it is read."""


@dataclass(frozen=True, slots=True)
class Transfer:
    """An outbox transfer as read back."""

    origin: Country
    recipient: Country
    exported_at: datetime
    envelopes: list[bytes]


def write_transfer(
    path: Path, *, origin: Country, recipient: Country, envelopes: list[bytes], force: bool = False
) -> None:
    """Write the file atomically (node/files.atomic_output); an existing one is replaced only with `force`."""
    with atomic_output(path, force=force) as f:
        f.write(MAGIC)
        f.write(
            frame(
                pb.TransferRecord(
                    header=pb.TransferHeader(
                        format_version=FORMAT_VERSION,
                        origin=origin,
                        recipient=recipient,
                        exported_at=timestamp(datetime.now(UTC)),
                    )
                )
            )
        )
        for envelope in envelopes:
            f.write(frame(pb.TransferRecord(envelope=envelope)))


def read_transfer(path: Path) -> Transfer:
    """Read a transfer file; TransferError names what is wrong with it."""
    data = read_bounded(path, MAX_TRANSFER_BYTES, what="outbox transfer", error=TransferError, magic=MAGIC)
    header: pb.TransferHeader | None = None
    envelopes: list[bytes] = []
    try:
        for pos, record in records(data, len(MAGIC), pb.TransferRecord, max_bytes=MAX_ENVELOPE_BYTES + 64):
            kind = record.WhichOneof("record")
            if kind == "header" and header is None and not envelopes:
                header = record.header
            elif kind == "envelope" and header is not None:
                envelopes.append(bytes(record.envelope))
            else:
                raise TransferError(f"{path}: unexpected {kind or 'empty'} record at byte {pos}")
    except FramingError as exc:
        raise TransferError(f"{path}: {exc}") from None
    if header is None:
        raise TransferError(f"{path}: no header")
    if header.format_version != FORMAT_VERSION:
        raise TransferError(f"{path}: transfer format {header.format_version} is not supported")
    origin, recipient = member(header.origin), member(header.recipient)
    if origin is None or recipient is None or origin == recipient:
        raise TransferError(f"{path}: header names no valid origin and recipient")
    return Transfer(
        origin=origin,
        recipient=recipient,
        exported_at=header.exported_at.ToDatetime(tzinfo=UTC),
        envelopes=envelopes,
    )
