"""The analyst's decisions on detections: approve (publish one ALERT) or dismiss.

Shared by `ewx ews approve`/`dismiss`, `ews scan`'s auto-publish and the demo.
Approval builds the alert from the drafts (node/ews/drafts.py: bands, never
figures), publishes it through the running node with an idempotency key made
from the detections' ids, and only then marks them published: a retry after
a lost reply or a crash in between publishes nothing new and marks them with
the same alert.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from node.config import NodeConfig
from node.errors import RefusedOperation, UsageError
from node.ews.codes import DetectionState, DismissReason
from node.ews.drafts import draft_info
from node.ews.rules import Detection
from node.ews.store import EwsStore


class Publisher(Protocol):
    """Publishes through the running node (the operator API's `publish`); returns its reply."""

    def __call__(self, **fields: Any) -> dict[str, Any]: ...


def open_store(config: NodeConfig) -> EwsStore:
    """The node's early-warning store, for one operation."""
    return EwsStore.open(config.data_dir)


def _open(config: NodeConfig) -> EwsStore:
    return EwsStore.open(config.data_dir)


def detections(
    store: EwsStore, ids: list[str] | None = None, *, state: str | None = None
) -> list[dict[str, Any]]:
    sql = "SELECT * FROM detections"
    clauses: list[str] = []
    params: list[Any] = []
    if ids is not None:
        clauses.append("detection_id IN (SELECT unnest(?))")
        params.append(ids)
    if state is not None:
        clauses.append("state = ?")
        params.append(state)
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    rows = store.rows(sql + " ORDER BY period, hs_code", params)
    for row in rows:
        row["evidence"] = json.loads(row["evidence"])
        row["edits"] = json.loads(row["edits"]) if row["edits"] else None
    return rows


def as_detection(row: dict[str, Any]) -> Detection:
    return Detection(
        detection_id=row["detection_id"],
        hs_code=row["hs_code"],
        period=row["period"],
        partner=row["partner"],
        rule=row["rule"],
        severity=row["severity"],
        category=row["category"],
        evidence=row["evidence"],
    )


def approve(
    config: NodeConfig,
    ids: Sequence[str],
    *,
    publish: Publisher,
    edit: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    edits: dict[str, Any] | None = None,
    status: str = "ACTUAL",
    recipients: Sequence[str] | None = None,
) -> str:
    """Publish one ALERT from the drafts `ids` (one source country); returns its id.

    `edit` rewrites the drafted info (the analyst's changes, kept as `edits`).
    """
    ids = sorted(dict.fromkeys(ids))
    with open_store(config) as store:
        rows = detections(store, list(ids))
    missing = sorted(set(ids) - {r["detection_id"] for r in rows})
    if missing:
        raise RefusedOperation(f"no detection {', '.join(missing)} in this node's store")
    for row in rows:
        if row["state"] == DetectionState.DISMISSED.value:
            raise RefusedOperation(
                f"{row['detection_id']} was dismissed ({row['dismiss_reason']}); it cannot be published"
            )
    done = sorted({r["alert_id"] for r in rows if r["state"] == DetectionState.PUBLISHED.value})
    if done:
        every = all(r["state"] == DetectionState.PUBLISHED.value for r in rows)
        if every and len(done) == 1:
            raise RefusedOperation(f"already published as alert {done[0]}")
        raise RefusedOperation(f"some of these are already published (as {', '.join(done)})")
    partners = {r["partner"] for r in rows}
    if len(partners) > 1:
        raise UsageError(f"one alert covers one source country; these name {', '.join(sorted(partners))}")
    info = draft_info([as_detection(r) for r in rows], me=config.node_id, now=datetime.now(UTC))
    if edit is not None:
        info = edit(info)
    # The same drafts approved again (a retry after a lost reply) name the same key.
    key = "ews-approve:" + "+".join(ids)
    result = publish(msg_type="ALERT", status=status, info=info, recipients=recipients, idempotency_key=key)
    alert_id = str(result["alert_id"])
    with open_store(config) as store, store.transaction():
        store.db.execute(
            "UPDATE detections SET state = ?, alert_id = ?, decided_at = ?, edits = ? "
            "WHERE detection_id IN (SELECT unnest(?))",
            [
                DetectionState.PUBLISHED.value,
                alert_id,
                datetime.now(UTC).isoformat(),
                json.dumps(edits, default=str) if edits else None,
                list(ids),
            ],
        )
    return alert_id


def dismiss(config: NodeConfig, detection_id: str, *, reason: DismissReason) -> None:
    """Set a draft aside with a coded reason; it stays in the store with its evidence."""
    with open_store(config) as store:
        rows = detections(store, [detection_id])
        if not rows:
            raise RefusedOperation(f"no detection {detection_id} in this node's store")
        if rows[0]["state"] != DetectionState.DRAFT.value:
            raise RefusedOperation(
                f"{detection_id} is {rows[0]['state']}, not a draft; only a draft can be dismissed"
            )
        with store.transaction():
            store.db.execute(
                "UPDATE detections SET state = ?, dismiss_reason = ?, decided_at = ? WHERE detection_id = ?",
                [DetectionState.DISMISSED.value, reason.value, datetime.now(UTC).isoformat(), detection_id],
            )
