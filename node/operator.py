"""The operator API: JSON lines on a unix socket that only the node's user can use.

Not on the network (SPEC section 2). The socket file is created with mode
0600 inside the node's 0700 data directory, and every connection's peer
credentials are checked as well: a process of another user is refused even
if the file modes were loosened by hand.

Protocol: one request per line, `{"op": NAME, "args": {...}}`; one reply per
line, `{"ok": true, "result": ...}` or `{"ok": false, "error": {"kind":
"usage"|"refused"|"internal", "message": ...}}`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from node.errors import ConfigError, EwxError, RefusedOperation, UsageError
from node.ids import Country, as_country
from node.limits import MAX_ALERT_ID_CHARS, MAX_IDEMPOTENCY_KEY_CHARS, MAX_OPERATOR_REQUEST_BYTES
from node.service import NodeService
from node.trust import describe_validation_error

log = structlog.get_logger("ewx.operator")

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


def _peer_uid(sock: socket.socket) -> int | None:
    if not hasattr(socket, "SO_PEERCRED"):
        return None  # not Linux: the 0600 socket file is the only guard
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


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


class OperatorServer:
    """Serves the operator API for one NodeService on its unix socket."""

    def __init__(self, service: NodeService, *, extra: dict[str, Handler] | None = None) -> None:
        self._service = service
        self._server: asyncio.AbstractServer | None = None
        self._ops: dict[str, Handler] = {
            "ping": self._ping,
            "publish": self._publish,
            "list": self._list,
            "status": self._status,
            "evidence": self._evidence,
            "show": self._show,
            "import": self._import,
            "announce": self._announce,
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

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        uid = _peer_uid(sock) if sock is not None else None
        if uid is not None and uid != os.getuid():
            log.warning("operator_refused", node=self._service.me, peer_uid=uid, reason="foreign_user")
            writer.close()
            return
        try:
            while line := await reader.readline():
                reply = await self._dispatch(line)
                writer.write(json.dumps(reply, default=str).encode() + b"\n")
                await writer.drain()
        except (ValueError, ConnectionError):  # over-long line or client gone
            pass
        finally:
            writer.close()

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
        except UsageError as exc:
            return _error("usage", str(exc))
        except (RefusedOperation, EwxError) as exc:
            return _error("refused", str(exc))
        except Exception:
            correlation = uuid.uuid4().hex
            log.exception("operator_internal_error", node=self._service.me, correlation_id=correlation)
            return _error("internal", f"internal error, correlation id {correlation}")

    async def _ping(self, _args: dict[str, Any]) -> Any:
        return {"node": self._service.me, "serving": self.serving}

    async def _publish(self, args: dict[str, Any]) -> Any:
        try:
            request = PublishRequest.model_validate(args)
        except ValidationError as exc:
            raise UsageError(f"bad publish request: {describe_validation_error(exc)}") from None
        reference = request.reference
        published = self._service.publish(
            msg_type=request.msg_type,
            status=request.status,
            recipients=request.recipients,
            reference=(reference.origin, reference.alert_id) if reference else None,
            info=request.info,
            reason=request.reason,
            response=request.response,
            consult=request.consult,
            alert_id=request.alert_id,
            idempotency_key=request.idempotency_key,
        )
        return {
            "alert_id": published.alert.alert_id,
            "digest": published.digest.hex(),
            "log_index": published.log_index,
            "deliveries": {d.recipient: d.seq for d in published.alert.deliveries},
        }

    async def _list(self, _args: dict[str, Any]) -> Any:
        return self._service.list_alerts()

    async def _show(self, args: dict[str, Any]) -> Any:
        origin, alert_id = args.get("origin"), args.get("alert_id")
        if not isinstance(origin, str) or not isinstance(alert_id, str):
            raise UsageError("show needs 'origin' and 'alert_id' strings")
        try:
            country = as_country(origin)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        return self._service.show(country, alert_id)

    async def _import(self, args: dict[str, Any]) -> Any:
        origin, recipient, envelopes = args.get("origin"), args.get("recipient"), args.get("envelopes")
        if not isinstance(envelopes, list) or not all(isinstance(e, str) for e in envelopes):
            raise UsageError("import needs 'envelopes': a list of base64 strings")
        try:
            decoded = [base64.b64decode(e, validate=True) for e in envelopes]
            source, target = as_country(str(origin)), as_country(str(recipient))
        except ValueError as exc:
            raise UsageError(f"bad import request: {exc}") from None
        return self._service.import_transfer(origin=source, recipient=target, envelopes=decoded)

    async def _announce(self, args: dict[str, Any]) -> Any:
        update = args.get("update")
        if not isinstance(update, str):
            raise UsageError("announce needs 'update': a base64 SignedTrustUpdate")
        try:
            envelope = base64.b64decode(update, validate=True)
        except ValueError as exc:
            raise UsageError(f"bad announce request: {exc}") from None
        return self._service.announce_trust_update(envelope)

    async def _status(self, _args: dict[str, Any]) -> Any:
        return self._service.status()

    async def _evidence(self, _args: dict[str, Any]) -> Any:
        return self._service.store.evidence()


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
                sock.sendall(json.dumps({"op": op, "args": args}, default=_json_default).encode() + b"\n")
                data = b""
                while not data.endswith(b"\n"):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
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
        if error.get("kind") == "usage":
            raise UsageError(message)
        raise RefusedOperation(message)
