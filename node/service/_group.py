"""Group commit of the publishes that wait at the same time (issue 15, item 2).

One publish costs one durable commit (an fsync) when it is the only one. When
many operators or scripts publish at once, each waited for its own: the commit
rate bounded the publish rate. Here the publishes waiting when the store's
thread is free are taken together into one transaction (Store.group), each in
a savepoint of its own: one that fails is undone alone and its caller gets its
error, the others stand, and all of them are answered only after the one
commit. Nothing waits on purpose: a publish alone goes at once, as a group of
one, and those that arrive meanwhile form the next group.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from node.limits import PUBLISH_GROUP_MAX
from node.store import Store


class PublishGroups:
    """Publishes taken in groups, one store transaction each, in the order they came."""

    def __init__(
        self,
        *,
        store: Store,
        publish: Callable[..., Any],
        on_store_thread: Callable[..., Awaitable[Any]],
        limit: int = PUBLISH_GROUP_MAX,
    ) -> None:
        self._store = store
        self._publish = publish
        self._on_store_thread = on_store_thread
        self._limit = limit
        self._waiting: list[tuple[dict[str, Any], asyncio.Future[Any]]] = []
        self._draining: asyncio.Task[None] | None = None
        self.sizes: list[int] = []
        """The size of each group committed so far, newest last (a test and the bench read it)."""

    async def publish(self, fields: dict[str, Any]) -> Any:
        """Publish one message (Publishing.publish's keywords); answered after its group commits."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((fields, future))
        if self._draining is None or self._draining.done():
            self._draining = asyncio.create_task(self._drain(), name="publish-groups")
        return await future

    async def _drain(self) -> None:
        while self._waiting:
            group = self._waiting[: self._limit]
            del self._waiting[: self._limit]
            try:
                outcomes = await self._on_store_thread(self._run, [fields for fields, _ in group])
            except asyncio.CancelledError:
                # The node stops. The group runs on to its end in the store's thread, so
                # whether it committed is unknown here, as for any call cancelled: cancel.
                for _, future in (*group, *self._waiting):
                    future.cancel()
                self._waiting.clear()
                raise
            except BaseException as exc:  # the commit failed: none of the group was written
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.sizes.append(len(group))
            del self.sizes[:-1000]
            for (_, future), outcome in zip(group, outcomes, strict=True):
                if future.done():  # its caller gave up waiting; it was published all the same
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    def _run(self, group: list[dict[str, Any]]) -> list[Any]:
        """On the store's thread: every publish of the group, then the one commit."""
        outcomes: list[Any] = []
        with self._store.group():
            for fields in group:
                try:
                    outcomes.append(self._publish(**fields))
                except Exception as exc:
                    outcomes.append(exc)
        return outcomes
