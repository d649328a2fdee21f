"""What the parts of NodeService share, declared once for the type checker.

NodeService (node/service/_service.py) is assembled from parts, each a class in its
own module: witnessing (node/service/_witnessing.py), trust updates
(node/service/_trust.py) and the operator's views (node/service/_views.py).
They use the node's state and a few helpers of the core; ServiceState
declares those here and NodeService defines them. At run time this class is
empty.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509

    from node.clock import Clock
    from node.config import NodeConfig
    from node.crypto import KeyPurpose, Signer
    from node.errors import InboundRejected
    from node.ids import Country
    from node.service._links import LinkState
    from node.store import Store
    from node.trust import Trust


class ServiceState:
    """The state and core helpers every part of NodeService relies on."""

    if TYPE_CHECKING:
        config: NodeConfig
        trust: Trust
        signers: dict[KeyPurpose, Signer]
        store: Store
        clock: Clock
        on_outbox: Callable[[Country], None] | None
        certificate_in_use: Callable[[], x509.Certificate] | None
        links: dict[Country, LinkState]
        _gossip_seen: dict[Country, str]

        @property
        def me(self) -> Country: ...

        @property
        def peers(self) -> tuple[Country, ...]: ...

        @property
        def max_skew(self) -> timedelta: ...

        def _entry(
            self,
            kind: str,
            now: datetime,
            *,
            peer: Country | None,
            envelope: bytes | None = None,
            receipt: bytes | None = None,
            trust_update: bytes | None = None,
        ) -> bytes: ...

        def note_history_missing(self, peer: Country, held: str, *, evidence: str) -> None: ...

        def history_answered(self, peer: Country) -> None: ...

        def _refused(
            self, exc: InboundRejected, *, peer: Country, alert_id: str | None, data: bytes | None = None
        ) -> None: ...
