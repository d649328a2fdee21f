"""A window of alerts in flight to one peer on one DeliverStream (issue 15, item 3).

One Deliver at a time waits a round trip per alert: over the 150 ms of a
Seoul-Washington link, about 7 alerts a second. DeliveryLoop (gateway/peers.py)
hands whatever is pending to a DeliveryWindow instead: alerts go out in
sequence order, up to `delivery_window` (node.toml) unanswered; the peer checks, stores and
answers them in that order, each after its durable commit; the answers that
have arrived are taken into the store together, one commit for their
receipts. Nothing is acknowledged here that the peer had not committed, and
nothing is lost when the link drops mid-window: every unanswered alert is
still pending in the outbox, the retry sends it again from the first, and the
peer stores a repeated alert once and answers with the same receipt.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, cast

import structlog
from grpc import aio

from gateway.tasks import cancel_and_wait
from node.ids import Country
from node.service import LinkState, NodeService
from node.wire import ewx_pb2 as pb

if TYPE_CHECKING:
    from gateway.peers import PeerClient

log = structlog.get_logger("ewx.gateway")

BATCH: Final = 100
"""Outbox rows read from the store at a time, for a window as for one-by-one Delivers."""

FIRST_FLIGHT: Final = 512
"""Alerts sent on a stream before its first answer says how fast the peer answers: as
many as a window held before it grew to cover a lossy link's stalls (node/limits.py
DELIVERY_WINDOW), and what any peer answers well within a deadline."""

_EOF: Final[Any] = getattr(aio, "EOF")  # noqa: B009 - in grpc.aio, not in its type stubs


def _take_deliveries(service: NodeService, peer: Country, receipts: list[bytes], gossiped: str) -> None:
    """A window's answers in one turn of the store's thread: the peer's gossip, then its receipts."""
    service.check_gossip(peer, gossiped)
    service.accept_receipts(peer, receipts)


def answered_in_time(*, unanswered: int, answered: int, elapsed: float, left: float) -> bool:
    """Whether `unanswered` alerts, at the rate `answered` in `elapsed` seconds, are answered
    within half of the `left` seconds of the call's deadline (half: the rate is a guess).
    Before the first answer there is no rate: FIRST_FLIGHT of them may go."""
    if answered <= 0:
        return unanswered <= FIRST_FLIGHT
    if elapsed <= 0:
        return False
    return unanswered * elapsed / answered < left / 2


class DeliveryWindow:
    """One DeliverStream: sends what is pending, takes the answers, ends when all are answered.

    `run` raises the call's AioRpcError, or InboundRejected for an answer
    that does not hold; `first_unanswered` then names the alert to record
    the failure against.
    """

    def __init__(
        self,
        *,
        service: NodeService,
        client: PeerClient,
        link: LinkState,
        on_delivered: Callable[[Country, float], None] | None,
    ) -> None:
        self._service = service
        self._client = client
        self._link = link
        self._on_delivered = on_delivered
        self._in_flight: deque[tuple[int, str, float]] = deque()
        """(seq, alert id, when sent) of the alerts sent and not answered yet, oldest first."""
        self._room = asyncio.Semaphore(service.config.delivery_window)
        self._answers: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        self._progress = asyncio.Event()
        """Set when answers were taken: the sender may have time for more."""
        self._began = 0.0
        self.answered = 0
        """Alerts of this window the peer answered (receipts taken)."""

    @property
    def peer(self) -> Country:
        """The peer the window delivers to."""
        return self._client.peer

    def first_unanswered(self) -> tuple[int, str] | None:
        """(seq, alert id) of the oldest alert sent and not answered; None if none is."""
        if self._in_flight:
            seq, alert_id, _ = self._in_flight[0]
            return seq, alert_id
        return None

    async def run(self) -> None:
        """Send, and take the answers, until every alert sent is answered."""
        checkpoint = await self._service.call(self._service.gossip_checkpoint)
        call = self._client.open_delivery_stream()
        self._began, self.answered = time.monotonic(), 0
        sender = asyncio.create_task(self._send(call, checkpoint), name=f"deliver-window-{self.peer}")
        reader = asyncio.create_task(self._read(call), name=f"deliver-answers-{self.peer}")
        try:
            ended = False
            while not ended:
                taken = [await self._answers.get()]
                while not self._answers.empty():
                    taken.append(self._answers.get_nowait())
                replies = [a for a in taken if isinstance(a, bytes)]
                if replies:
                    await self._take(replies)
                failure = next((a for a in taken if isinstance(a, BaseException)), None)
                if failure is not None:
                    raise failure
                ended = None in taken
            await sender  # its failure (a write refused) is the call's, raised here
        finally:
            if self.answered:  # a window that got nowhere is the delivery_failed event's to tell
                log.info(
                    "delivery_window",
                    node=self._service.me,
                    peer=self.peer,
                    answered=self.answered,
                    unanswered=len(self._in_flight),
                    seconds=round(time.monotonic() - self._began, 3),
                )
            call.cancel()
            await cancel_and_wait(sender, reader)

    async def _send(self, call: aio.StreamStreamCall[bytes, bytes], checkpoint: str) -> None:
        """Pending alerts in sequence order while there is room in the window and time.

        Stops taking new ones at half the call's deadline, so the last ones
        sent are answered within it, or when the peer starts catching up by
        pages (pushing the same alerts would only compete with it).
        """
        service = self._service
        after = 0
        sending = True
        while sending:
            batch = await service.call(service.pending, self.peer, BATCH, after_seq=after)
            if not batch:
                break
            for seq, alert_id, envelope in batch:
                await self._room.acquire()
                if not await self._time_to_send():
                    sending = False
                    break
                self._in_flight.append((seq, alert_id, time.monotonic()))
                await call.write(
                    pb.DeliverRequest(envelope=envelope, checkpoint=checkpoint).SerializeToString()
                )
            after = batch[-1][0]
        await call.done_writing()

    async def _time_to_send(self) -> bool:
        """Wait until one more alert sent would be answered in time; False once no more may go.

        A large window over a lossy link keeps the peer busy through the link's
        stalls, but at a slow peer's pace (a PostgreSQL store) that many
        unanswered would outlast the call's deadline: one more goes only while
        those unanswered, at the rate the peer has answered this window so
        far, take at most half of what is left of the deadline
        (`answered_in_time`).
        """
        deadline = self._service.config.rpc_deadline_seconds
        stop_at, deadline_at = self._began + deadline / 2, self._began + deadline
        while True:
            now = time.monotonic()
            if now >= stop_at or self._link.is_pulling(now):
                return False
            if answered_in_time(
                unanswered=len(self._in_flight) + 1,
                answered=self.answered,
                elapsed=now - self._began,
                left=deadline_at - now,
            ):
                return True
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(stop_at - now):
                    await self._progress.wait()

    async def _read(self, call: aio.StreamStreamCall[bytes, bytes]) -> None:
        """The peer's answers, in order, then None at the stream's end (or the call's failure)."""
        try:
            while (answer := await call.read()) is not _EOF:
                self._answers.put_nowait(cast(bytes, answer))
            self._answers.put_nowait(None)
        except BaseException as exc:  # the call's failure, taken in order after the answers before it
            self._answers.put_nowait(exc)
            raise

    async def _take(self, replies: list[bytes]) -> None:
        """Answers that have arrived: the gossip and the receipts in one store turn, then room."""
        service = self._service
        decoded = [self._client.answer(pb.DeliverResponse, reply, what="deliver") for reply in replies]
        receipts = [bytes(reply.receipt) for reply in decoded]
        await service.call(_take_deliveries, service, self.peer, receipts, decoded[-1].checkpoint)
        now = time.monotonic()
        self.answered += len(replies)
        for _ in replies:
            if self._in_flight:
                _, _, sent_at = self._in_flight.popleft()
                if self._on_delivered is not None:
                    self._on_delivered(self.peer, now - sent_at)
            self._room.release()
        self._progress.set()
        self._link.succeeded(service.clock())
