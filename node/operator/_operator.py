"""The operator API: JSON lines on a unix socket that only the node's user can use.

Not on the network (SPEC section 2). The socket file is created with mode
0600 inside the node's 0700 data directory, and every connection's peer
credentials are checked as well: a process of another user is refused even
if the file modes were loosened by hand.

Protocol: one request per line, `{"op": NAME, "args": {...}}`; one reply per
line, `{"ok": true, "result": ...}` or `{"ok": false, "error": {"kind":
"usage"|"refused"|"internal", "message": ...}}`.

The socket is bounded as the federation port is (issue 10, items 6 and 7):
at most MAX_OPERATOR_CONNECTIONS at once (one more gets a short refusal and
is closed), a request line of at most MAX_OPERATOR_REQUEST_BYTES, and
OPERATOR_IDLE_SECONDS to send a line or take a reply. Listings come in pages,
and requests that read the store run in worker threads on read-only
connections, so no operator request holds the event loop that answers peers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from node import limits
from node.errors import ConfigError, EwxError, RefusedOperation, UsageError, operator_error
from node.ids import Country, as_country
from node.limits import MAX_ALERT_ID_CHARS, MAX_IDEMPOTENCY_KEY_CHARS, MAX_OPERATOR_REQUEST_BYTES
from node.parsing import parse_iso_time, whole_number
from node.service import NodeService, micros
from node.store import AlertFilter
from node.trust import describe_validation_error

log = structlog.get_logger("ewx.operator")

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
T = TypeVar("T")

_MAX_CURSOR = 2**63 - 1
"""A cursor is a log index, which SQLite holds in a signed 64-bit integer."""

READ_THREADS = 2
"""Worker threads for the operator's store reads: enough for the CLI and a
monitor at once, few enough that a burst of listings cannot starve the
default executor the early-warning checks run in."""


def _peer_creds(sock: socket.socket) -> tuple[int | None, int | None]:
    """(pid, uid) of the process at the other end, or (None, None) where the OS cannot tell."""
    if not hasattr(socket, "SO_PEERCRED"):
        return None, None  # not Linux: the 0600 socket file is the only guard
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", creds)
    return int(pid), int(uid)


class _Throttled:
    """A warning logged at most once a second, with how many were left unlogged.

    A flood of connections must not turn into a flood of log lines: issue 10,
    item 6 found hundreds of MB of tracebacks after one.
    """

    def __init__(self, event: str, interval: float = 1.0) -> None:
        self._event = event
        self._interval = interval
        self._next = 0.0
        self._suppressed = 0

    def warning(self, **fields: Any) -> None:
        now = time.monotonic()
        if now < self._next:
            self._suppressed += 1
            return
        log.warning(self._event, suppressed=self._suppressed, **fields)
        self._next, self._suppressed = now + self._interval, 0


class Reference(BaseModel):
    """The alert a message refers to, as the operator names it."""

    model_config = ConfigDict(extra="forbid", strict=True)
    origin: Country
    alert_id: str = Field(max_length=MAX_ALERT_ID_CHARS)


class PublishRequest(BaseModel):
    """The shape of a `publish` request; the alert's own rules are checked by the service.

    Only the types are checked here, so that a wrong one is a usage error
    naming the field instead of a failure deep in the service.
    """

    model_config = ConfigDict(extra="forbid", strict=True)
    msg_type: str
    status: str = "ACTUAL"
    recipients: list[Country] | None = None
    reference: Reference | None = None
    info: dict[str, Any] | None = None
    reason: str | None = None
    response: dict[str, Any] | None = None
    consult: dict[str, Any] | None = None
    alert_id: str | None = Field(default=None, max_length=MAX_ALERT_ID_CHARS)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=MAX_IDEMPOTENCY_KEY_CHARS)


class ListRequest(BaseModel):
    """The shape of a `list` request: one page of alerts, filtered (issue 10, item 7)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    state: Literal["active", "updated", "cancelled", "expired"] | None = None
    origin: Country | None = None
    since: str | None = Field(default=None, max_length=64)
    """An ISO 8601 time with its zone: alerts sent at or after it."""
    limit: int = Field(default=limits.OPERATOR_PAGE_DEFAULT, ge=1, le=limits.OPERATOR_PAGE_MAX)
    after: str | None = Field(default=None, max_length=32)
    """The `next` cursor of the page before."""
    alert_id: str | None = Field(default=None, max_length=MAX_ALERT_ID_CHARS)

    def to_filter(self) -> AlertFilter:
        """The store's filter; UsageError naming the field for a time or cursor that is not one."""
        return AlertFilter(
            limit=self.limit,
            after=-1 if self.after is None else parse_cursor(self.after),
            origin=self.origin,
            since_us=None if self.since is None else micros(parse_since(self.since)),
            state=self.state,
            alert_id=self.alert_id,
        )


class WatchlistProposeRequest(BaseModel):
    """The shape of a `propose_watch` request; the pairs' own rules are node/message's."""

    model_config = ConfigDict(extra="forbid", strict=True)
    add: list[dict[str, Any]] = Field(default_factory=list, max_length=limits.MAX_WATCH_CHANGE_PAIRS)
    remove: list[dict[str, Any]] = Field(default_factory=list, max_length=limits.MAX_WATCH_CHANGE_PAIRS)
    hs_edition: str | None = Field(default=None, max_length=16)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=MAX_IDEMPOTENCY_KEY_CHARS)


class WatchlistVoteRequest(BaseModel):
    """The shape of a `vote_watch` request: a vote on one peer's proposal."""

    model_config = ConfigDict(extra="forbid", strict=True)
    origin: Country
    alert_id: str = Field(max_length=MAX_ALERT_ID_CHARS)
    decision: Literal["ACCEPT", "REJECT"]
    reject_reason: str | None = Field(default=None, max_length=64)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=MAX_IDEMPOTENCY_KEY_CHARS)


class PolicyReportRequest(BaseModel):
    """The shape of a `report_policy` request; the move's own rules are node/message's."""

    model_config = ConfigDict(extra="forbid", strict=True)
    policy: dict[str, Any]
    status: str = "ACTUAL"
    recipients: list[Country] | None = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=MAX_IDEMPOTENCY_KEY_CHARS)


def parse_cursor(value: str) -> int:
    """A listing cursor (the `next` of a page) as the log index it stands for."""
    refusal = f"after: {value!r} is not a cursor; give the 'next' of the page before"
    return whole_number(value, low=0, high=_MAX_CURSOR, refusal=refusal, refuse=UsageError)


def parse_since(value: str) -> datetime:
    """An ISO 8601 time with a zone, in UTC."""
    return parse_iso_time(value, field="since", refuse=UsageError)


class OperatorServer:
    """Serves the operator API for one NodeService on its unix socket.

    `max_connections` and `idle_seconds` default to node/limits.py's values,
    read when the server is made.
    """

    def __init__(
        self,
        service: NodeService,
        *,
        extra: dict[str, Handler] | None = None,
        max_connections: int | None = None,
        idle_seconds: float | None = None,
    ) -> None:
        self._service = service
        self._server: asyncio.AbstractServer | None = None
        self._max_connections = max_connections or limits.MAX_OPERATOR_CONNECTIONS
        self._idle_seconds = idle_seconds or limits.OPERATOR_IDLE_SECONDS
        self._connections = 0
        self._over_capacity = _Throttled("operator_refused")
        self._reads: ThreadPoolExecutor | None = None
        self._ops: dict[str, Handler] = {
            "ping": self._ping,
            "publish": self._publish,
            "list": self._list,
            "status": self._status,
            "evidence": self._evidence,
            "show": self._show,
            "import": self._import,
            "announce": self._announce,
            "watchlist": self._watchlist,
            "propose_watch": self._propose_watch,
            "vote_watch": self._vote_watch,
            "report_policy": self._report_policy,
            "policy_list": self._policy_list,
            "board": self._board,
            "cap": self._cap,
        }
        self._ops.update(extra or {})
        self.serving = False
        """Set by whoever runs the federation side once peers can reach the node."""

    async def start(self, path: Path) -> None:
        """Bind the socket (mode 0600) and start accepting.

        A socket file left by a crashed node is replaced; one that still
        answers belongs to a running node, and this one refuses to start.
        """
        if _answers(path):
            raise ConfigError(f"another node is already serving on {path}")
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._client, path=str(path), limit=MAX_OPERATOR_REQUEST_BYTES
            )
        finally:
            os.umask(old)
        path.chmod(0o600)
        self._path = path

    async def close(self) -> None:
        """Stop accepting and remove the socket file."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            with contextlib.suppress(FileNotFoundError):
                self._path.unlink()
        if self._reads is not None:
            self._reads.shutdown(wait=False, cancel_futures=True)

    async def _off_loop(self, work: Callable[..., T], *args: Any) -> T:
        """Run blocking store reads in the operator's worker threads, never on the event loop."""
        if self._reads is None:
            self._reads = ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="operator-read")
        return await asyncio.get_running_loop().run_in_executor(self._reads, lambda: work(*args))

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        pid, uid = _peer_creds(sock) if sock is not None else (None, None)
        if self._connections >= self._max_connections:
            self._over_capacity.warning(
                node=self._service.me,
                peer_pid=pid,
                peer_uid=uid,
                reason="too_many_connections",
                limit=self._max_connections,
            )
            with contextlib.suppress(ConnectionError):
                # One short line the client can read, never waited on: a flood
                # that does not read it must not hold this coroutine either.
                writer.write(self._reply(_error("refused", self._too_many())))
            writer.close()
            return
        if uid is not None and uid != os.getuid():
            log.warning("operator_refused", node=self._service.me, peer_uid=uid, reason="foreign_user")
            writer.close()
            return
        self._connections += 1
        try:
            await self._serve(reader, writer, pid=pid)
        except (ConnectionError, TimeoutError):  # the client went away, or stopped reading its reply
            pass
        finally:
            self._connections -= 1
            writer.close()

    def _too_many(self) -> str:
        return (
            f"the node serves at most {self._max_connections} operator connections at once; "
            "close one and try again"
        )

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, pid: int | None
    ) -> None:
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that arrives in the turn its read completes, and the handler would serve on.
            try:
                async with asyncio.timeout(self._idle_seconds):
                    line = await reader.readline()
            except TimeoutError:
                log.info(
                    "operator_idle_closed",
                    node=self._service.me,
                    peer_pid=pid,
                    reason="idle_timeout",
                    seconds=self._idle_seconds,
                )
                return
            except ValueError:  # asyncio's LimitOverrunError: no newline within the limit
                log.warning(
                    "operator_refused",
                    node=self._service.me,
                    peer_pid=pid,
                    reason="request_too_large",
                    limit=MAX_OPERATOR_REQUEST_BYTES,
                )
                message = f"request line is longer than {MAX_OPERATOR_REQUEST_BYTES} bytes; nothing was done"
                writer.write(self._reply(_error("usage", message)))
                async with asyncio.timeout(self._idle_seconds):
                    await writer.drain()
                return
            if not line:
                return
            reply = await self._dispatch(line)
            # A page of a thousand alerts is over a megabyte of JSON: encoded in a
            # worker thread too, like the reads that made it.
            writer.write(await self._off_loop(self._reply, reply))
            async with asyncio.timeout(self._idle_seconds):
                await writer.drain()

    @staticmethod
    def _reply(reply: dict[str, Any]) -> bytes:
        return json.dumps(reply, default=str).encode() + b"\n"

    async def _dispatch(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("op"), str):
                raise UsageError("request must be an object with an 'op' string")
            handler = self._ops.get(request["op"])
            if handler is None:
                raise UsageError(f"unknown operation {request['op']!r}")
            args = request.get("args") or {}
            if not isinstance(args, dict):
                raise UsageError("'args' must be an object")
            return {"ok": True, "result": await handler(args)}
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error("usage", "request is not valid UTF-8 JSON")
        except RecursionError:
            return _error("usage", "request is nested too deeply")
        except EwxError as exc:
            return _error(type(exc).operator_kind, str(exc))
        except Exception:
            correlation = uuid.uuid4().hex
            log.exception("operator_internal_error", node=self._service.me, correlation_id=correlation)
            return _error("internal", f"internal error, correlation id {correlation}")

    async def _ping(self, _args: dict[str, Any]) -> Any:
        return {"node": self._service.me, "serving": self.serving}

    async def _publish(self, args: dict[str, Any]) -> Any:
        request = _parsed(PublishRequest, args, "publish")
        reference = request.reference
        fields = request.model_dump(exclude={"reference"})
        fields["reference"] = (reference.origin, reference.alert_id) if reference else None
        published = await self._service.publish_grouped(**fields)
        return published.to_json()

    async def _list(self, args: dict[str, Any]) -> Any:
        request = _parsed(ListRequest, args, "list")
        page = await self._off_loop(self._service.alert_page, request.to_filter())
        return page.to_json()

    async def _show(self, args: dict[str, Any]) -> Any:
        country, alert_id = _alert_key(args, "show")
        detail = await self._service.call(self._service.show, country, alert_id)
        return detail.to_json()

    async def _import(self, args: dict[str, Any]) -> Any:
        origin, recipient, envelopes = args.get("origin"), args.get("recipient"), args.get("envelopes")
        if not isinstance(envelopes, list) or not all(isinstance(e, str) for e in envelopes):
            raise UsageError("import needs 'envelopes': a list of base64 strings")
        try:
            decoded = [base64.b64decode(e, validate=True) for e in envelopes]
            source, target = as_country(str(origin)), as_country(str(recipient))
        except ValueError as exc:
            raise UsageError(f"bad import request: {exc}") from None
        service = self._service
        return await service.call(service.import_transfer, origin=source, recipient=target, envelopes=decoded)

    async def _announce(self, args: dict[str, Any]) -> Any:
        update = args.get("update")
        if not isinstance(update, str):
            raise UsageError("announce needs 'update': a base64 SignedTrustUpdate")
        try:
            envelope = base64.b64decode(update, validate=True)
        except ValueError as exc:
            raise UsageError(f"bad announce request: {exc}") from None
        return await self._service.call(self._service.announce_trust_update, envelope)

    async def _status(self, _args: dict[str, Any]) -> Any:
        # The in-memory half, on the store's thread that changes it; the rest on a reader.
        snapshot = await self._service.call(self._service.status_snapshot)
        status = await self._off_loop(self._service.status_from, snapshot)
        return status.to_json()

    async def _board(self, _args: dict[str, Any]) -> Any:
        # The watchlist and reports on the store's thread; the open alerts, folded, on a reader.
        snapshot = await self._service.call(self._service.board_snapshot)
        return await self._off_loop(self._service.board_from, snapshot)

    async def _cap(self, args: dict[str, Any]) -> Any:
        country, alert_id = _alert_key(args, "cap")
        filename, document = await self._service.call(self._service.cap_document, country, alert_id)
        return {"filename": filename, "xml": document.decode("utf-8")}

    async def _evidence(self, _args: dict[str, Any]) -> Any:
        return await self._off_loop(self._service.evidence)

    async def _watchlist(self, _args: dict[str, Any]) -> Any:
        state = await self._service.call(self._service.watchlist_state)
        return state.to_json()

    # Each request model's fields are the service method's keyword arguments.
    async def _propose_watch(self, args: dict[str, Any]) -> Any:
        request = _parsed(WatchlistProposeRequest, args, "propose_watch")
        published = await self._service.call(self._service.propose_watchlist, **request.model_dump())
        return published.to_json()

    async def _vote_watch(self, args: dict[str, Any]) -> Any:
        request = _parsed(WatchlistVoteRequest, args, "vote_watch")
        published = await self._service.call(self._service.vote_watchlist, **request.model_dump())
        return published.to_json()

    async def _report_policy(self, args: dict[str, Any]) -> Any:
        request = _parsed(PolicyReportRequest, args, "report_policy")
        published = await self._service.call(self._service.report_policy, **request.model_dump())
        return published.to_json()

    async def _policy_list(self, _args: dict[str, Any]) -> Any:
        return await self._service.call(self._service.policy_reports)


M = TypeVar("M", bound=BaseModel)


def _alert_key(args: dict[str, Any], op: str) -> tuple[Country, str]:
    """The (origin, alert id) an op names; UsageError otherwise."""
    origin, alert_id = args.get("origin"), args.get("alert_id")
    if not isinstance(origin, str) or not isinstance(alert_id, str):
        raise UsageError(f"{op} needs 'origin' and 'alert_id' strings")
    try:
        return as_country(origin), alert_id
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _parsed(model: type[M], args: dict[str, Any], op: str) -> M:
    """`args` as the request model of `op`; UsageError naming the field otherwise."""
    try:
        return model.model_validate(args)
    except ValidationError as exc:
        raise UsageError(f"bad {op} request: {describe_validation_error(exc)}") from None


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__} to the node")


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
        return True


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"kind": kind, "message": message}}


class OperatorClient:
    """A blocking client for the CLI: one connection, one request per call."""

    def __init__(self, path: Path, *, timeout: float = 30.0) -> None:
        self._path = path
        self._timeout = timeout

    def call(self, op: str, **args: Any) -> Any:
        """Send one request; return its result or raise the matching EwxError."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self._timeout)
                sock.connect(str(self._path))
                # A node at its connection cap answers before it reads and
                # closes: its one-line refusal is still there to be read.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    sock.sendall(json.dumps({"op": op, "args": args}, default=_json_default).encode() + b"\n")
                chunks: list[bytes] = []
                while not chunks or not chunks[-1].endswith(b"\n"):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
                data = b"".join(chunks)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise ConfigError(f"node is not running (no operator socket at {self._path})") from exc
        except OSError as exc:
            raise ConfigError(f"cannot reach the node's operator socket {self._path}: {exc}") from exc
        if not data:
            outcome = ""
            if op == "publish":
                retry = (
                    "retry with the same --idempotency-key" if args.get("idempotency_key") else "then decide"
                )
                outcome = f"; whether it published is unknown: check `ewx alert list`, {retry}"
            raise RefusedOperation(f"the node closed the operator connection without answering{outcome}")
        reply = json.loads(data)
        if reply.get("ok"):
            return reply.get("result")
        error = reply.get("error") or {}
        message = str(error.get("message", "unknown error"))
        raise operator_error(error.get("kind"), message)

    def alerts(self, **filters: Any) -> list[dict[str, Any]]:
        """Every alert the `list` filters select, one page per request (for scripts and tests)."""
        return list(self.iter_alerts(**filters))

    def iter_alerts(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """The alerts the `list` filters select, fetched a page at a time as they are consumed."""
        filters.setdefault("limit", limits.OPERATOR_PAGE_MAX)
        while True:
            page = self.call("list", **filters)
            yield from page["alerts"]
            if not page["more"]:
                return
            filters["after"] = page["next"]
