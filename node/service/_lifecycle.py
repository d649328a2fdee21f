"""What an alert's lifecycle allows this node to publish next (issue 10, item 16).

The schema (node/message/_models.py) checks each message alone; these rules need the
store, so they are checked in publish's transaction, before anything is
signed. They bind this node's own publishing only: a peer's message that
breaks them is still stored on receipt, since refusing a validly signed
alert would stall its origin's gapless sequence for good.

- UPDATE and CANCEL follow an ALERT or an UPDATE, never a CANCEL or another
  type: an alert's history is ALERT, then UPDATEs, then at most one CANCEL.
- A cancelled alert takes no further UPDATE or CANCEL, whichever message of
  its history the new one names.
- A node acknowledges a peer's alert once (later news goes in a RESPONSE).
- A CANCEL withdraws one of the node's own POLICY_REPORTs, once.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from node.errors import RefusedOperation
from node.ids import Country
from node.message import pb
from node.store import Tx

FOLLOWS: frozenset[str] = frozenset({"ALERT", "UPDATE"})
"""What an UPDATE or a CANCEL may reference."""


def check_lifecycle(tx: Tx, *, me: Country, msg_type: str, reference: tuple[Country, str]) -> None:
    """Raise RefusedOperation, naming the rule, if `msg_type` may not follow `reference` now."""
    origin, alert_id = reference
    if msg_type in ("UPDATE", "CANCEL") and origin == me:
        _check_own_followup(tx, me=me, msg_type=msg_type, alert_id=alert_id)
    elif msg_type == "ACK" and origin != me:
        _check_acknowledged_once(tx, me=me, reference=reference)


def _reference_of(envelope: bytes) -> tuple[str, str] | None:
    """(origin, alert id) the stored signed alert references, None if none."""
    try:
        alert = pb.Alert.FromString(pb.SignedAlert.FromString(envelope).alert)
    except DecodeError:  # stored only after verification; never expected
        return None
    if not alert.references:
        return None
    ref = alert.references[0]
    return pb.Country.Name(ref.origin), ref.alert_id


def _check_own_followup(tx: Tx, *, me: Country, msg_type: str, alert_id: str) -> None:
    target = tx.alert(me, alert_id)
    if target is None:  # publish refuses an unknown reference before asking
        return
    if msg_type == "CANCEL" and target.msg_type == "POLICY_REPORT":
        _check_report_withdrawn_once(tx, me=me, alert_id=alert_id)
        return
    if target.msg_type not in FOLLOWS:
        raise RefusedOperation(
            f"{msg_type} may only follow an ALERT or an UPDATE, and {alert_id} is a {target.msg_type}"
        )
    parent: dict[str, str] = {}
    cancels: list[str] = []
    for own_id, own_type, envelope in tx.alerts_of_type(me, ("UPDATE", "CANCEL")):
        ref = _reference_of(envelope)
        if ref is not None and ref[0] == me:
            parent[own_id] = ref[1]
        if own_type == "CANCEL":
            cancels.append(own_id)
    root = _first_alert(alert_id, parent)
    for cancel in cancels:
        if _first_alert(cancel, parent) == root:
            raise RefusedOperation(
                f"{root} was cancelled by {cancel}: a cancelled alert takes no further UPDATE or CANCEL"
            )


def _check_report_withdrawn_once(tx: Tx, *, me: Country, alert_id: str) -> None:
    for own_id, _type, envelope in tx.alerts_of_type(me, ("CANCEL",)):
        if _reference_of(envelope) == (me, alert_id):
            raise RefusedOperation(f"{me} already withdrew its report {alert_id} with {own_id}")


def _first_alert(alert_id: str, parent: dict[str, str]) -> str:
    """The ALERT an own message's history starts from (references followed back)."""
    seen = {alert_id}
    while (up := parent.get(alert_id)) is not None and up not in seen:
        seen.add(up)
        alert_id = up
    return alert_id


def _check_acknowledged_once(tx: Tx, *, me: Country, reference: tuple[Country, str]) -> None:
    for own_id, _type, envelope in tx.alerts_of_type(me, ("ACK",)):
        if _reference_of(envelope) == reference:
            raise RefusedOperation(
                f"{me} already acknowledged {reference[0]}/{reference[1]} with {own_id}: "
                "a node acknowledges an alert once (send a RESPONSE for what changed since)"
            )
