"""Length-delimited protobuf records: the framing of exported files.

Used by the log bundle (node/audit/_bundle.py) and the offline outbox transfer
(node/message/_transfer.py): a magic line, then records, each a varint length and a
serialized message. Readers bound every length before allocating.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from node.errors import FramingError
from node.message._convert import encode

M = TypeVar("M", bound=Message)


def varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative integer."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def read_varint(data: bytes | mmap.mmap, pos: int) -> tuple[int, int]:
    """(value, next position); a length prefix here is at most 4 bytes."""
    value = 0
    for shift in range(0, 28, 7):
        if pos >= len(data):
            break
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    raise FramingError(f"bad record length prefix before byte {pos}")


def frame(message: Message) -> bytes:
    """One record: varint length, then the message's canonical bytes."""
    data = encode(message)
    return varint(len(data)) + data


def records(
    data: bytes | mmap.mmap, start: int, message_type: type[M], *, max_bytes: int
) -> Iterator[tuple[int, M]]:
    """(byte offset, message) for each record of `data` from `start` (a file's bytes, or its map)."""
    pos = start
    name = message_type.DESCRIPTOR.name
    while pos < len(data):
        length, begin = read_varint(data, pos)
        if length > max_bytes or begin + length > len(data):
            raise FramingError(f"record at byte {pos} claims {length} bytes, beyond the file or the limit")
        record = message_type()
        try:
            record.ParseFromString(data[begin : begin + length])
        except DecodeError:
            raise FramingError(f"record at byte {pos} is not a valid {name}") from None
        yield pos, record
        pos = begin + length
