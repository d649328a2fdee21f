"""The watchlist in force, as the early-warning engine sees it (issue 12).

The watchlist is the federation's (node/trilateral folds the signed
proposals and votes; the running node answers the operator op `watchlist`).
The engine sits below that layer (README, "Layers"): it takes the version in
force as plain data, a `WatchView`, and keeps every version it was given in
its own store (`watchlists`), so that a scan while the node is down and
`ewx ews explain` later use the same pairs as the scan they repeat.

A pair (HS code of 4 or 6 digits, supplier country) watches a detection on
an HS-6 code from that country when the codes overlap: equal, or the pair's
heading is the code's first four digits. `WatchView.watched` is
`node.trilateral.Watchlist.watched` over this data
(tests/node/ews/test_ews_watch.py holds the two together).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from node.errors import RefusedOperation
from node.ews import codes

if TYPE_CHECKING:  # pure at run time: the store helpers below are given an open store
    from node.ews.store import EwsStore


@dataclass(frozen=True, slots=True)
class WatchedPair:
    """One pair on the watchlist: an HS code (4 or 6 digits), a supplier country and the coded reason."""

    hs_code: str
    country: str
    reason: str

    def to_json(self) -> dict[str, str]:
        """As the operator API and the evidence name it."""
        return {"hs_code": self.hs_code, "country": self.country, "reason": self.reason}

    @property
    def key(self) -> str:
        """`HS:CC`, as `ewx watchlist propose --add` takes it."""
        return f"{self.hs_code}:{self.country}"


@dataclass(frozen=True, slots=True)
class WatchView:
    """The version in force (version 0: none), and when the node last said so."""

    version: int = 0
    digest: str | None = None
    """The hex digest of the proposal that made this version (None: version 0)."""
    hs_edition: str | None = None
    in_force_at: str | None = None
    pairs: tuple[WatchedPair, ...] = ()
    """Sorted by (hs_code, country), as the watchlist keeps them."""
    seen_at: str | None = None
    """When the node last answered with this version (None: never asked)."""

    def watched(self, hs_code: str, country: str) -> WatchedPair | None:
        """The first pair (in the list's order) that watches `hs_code` from `country`, or None."""
        return next(
            (p for p in self.pairs if p.country == country and _covers(p.hs_code, hs_code)),
            None,
        )

    def to_json(self) -> dict[str, Any]:
        """As `ewx ews scan --json` prints it."""
        return {
            "version": self.version,
            "digest": self.digest,
            "hs_edition": self.hs_edition,
            "in_force_at": self.in_force_at,
            "pairs": [p.to_json() for p in self.pairs],
            "seen_at": self.seen_at,
        }

    @classmethod
    def from_current(cls, current: Mapping[str, Any], *, seen_at: str | None = None) -> WatchView:
        """The operator op `watchlist`'s `current` (node.trilateral Watchlist.to_json), checked.

        RefusedOperation if it is not the shape the node answers: its codes go into the scan's SQL.
        """
        try:
            version = current["version"]
            raw_pairs = current["pairs"]
            if not isinstance(version, int) or isinstance(version, bool) or version < 0:
                raise ValueError(f"version {version!r}")
            pairs = tuple(
                sorted(
                    (_pair(p) for p in raw_pairs),
                    key=lambda p: (p.hs_code, p.country),
                )
            )
            digest = current.get("digest")
            if version and (not isinstance(digest, str) or re.fullmatch("[0-9a-f]{64}", digest) is None):
                raise ValueError(f"digest {digest!r}")
        except (KeyError, TypeError, ValueError) as exc:
            raise RefusedOperation(f"the node's watchlist is not in the expected shape: {exc}") from None
        if version == 0:
            return cls(seen_at=seen_at)
        return cls(
            version=version,
            digest=digest,
            hs_edition=_text(current.get("hs_edition")),
            in_force_at=_text(current.get("in_force_at")),
            pairs=pairs,
            seen_at=seen_at,
        )


def _covers(pair_code: str, code: str) -> bool:
    """The codes overlap: equal, or one is the other's 4-digit heading (node.trilateral.covers)."""
    return pair_code == code or code.startswith(pair_code) or pair_code.startswith(code)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _pair(raw: Mapping[str, Any]) -> WatchedPair:
    hs_code, country, reason = str(raw["hs_code"]), str(raw["country"]), str(raw["reason"])
    if re.fullmatch(codes.HS_PATTERN, hs_code) is None:
        raise ValueError(f"HS code {hs_code!r}")
    if re.fullmatch(codes.COUNTRY_PATTERN, country) is None:
        raise ValueError(f"country {country!r}")
    if re.fullmatch("[A-Z_]{1,40}", reason) is None:
        raise ValueError(f"reason {reason!r}")
    return WatchedPair(hs_code, country, reason)


# ------------------------------------------------------------------ kept in the store
def keep_watchlist(store: EwsStore, view: WatchView, *, now: datetime | None = None) -> WatchView:
    """Record `view` as the version in force now (one transaction); returns it with its `seen_at`."""
    at = view.seen_at or (now or datetime.now(UTC)).isoformat(timespec="seconds")
    with store.transaction():
        if view.version:
            store.db.execute(
                "INSERT OR IGNORE INTO watchlists VALUES (?, ?, ?, ?, ?, ?)",
                [
                    view.digest,
                    view.version,
                    view.hs_edition,
                    view.in_force_at,
                    json.dumps([p.to_json() for p in view.pairs]),
                    at,
                ],
            )
        store.db.execute(
            "INSERT OR REPLACE INTO meta VALUES ('watchlist', ?)",
            [json.dumps({"digest": view.digest, "seen_at": at})],
        )
    return WatchView(view.version, view.digest, view.hs_edition, view.in_force_at, view.pairs, at)


def stored_watchlist(store: EwsStore) -> WatchView:
    """The version the node last said was in force (version 0 if it never did)."""
    row = store.db.execute("SELECT value FROM meta WHERE key = 'watchlist'").fetchone()
    if row is None:
        return WatchView()
    kept = json.loads(row[0])
    return watchlist_by_digest(store, kept.get("digest"), seen_at=kept.get("seen_at"))


def watchlist_by_digest(store: EwsStore, digest: str | None, *, seen_at: str | None = None) -> WatchView:
    """A version this store was given, by its proposal's digest (None or unknown: version 0)."""
    if digest is None:
        return WatchView(seen_at=seen_at)
    rows = store.rows("SELECT * FROM watchlists WHERE digest = ?", [digest])
    if not rows:
        return WatchView(seen_at=seen_at)
    row = rows[0]
    return WatchView(
        version=int(row["version"]),
        digest=row["digest"],
        hs_edition=row["hs_edition"],
        in_force_at=row["in_force_at"],
        pairs=tuple(WatchedPair(p["hs_code"], p["country"], p["reason"]) for p in json.loads(row["pairs"])),
        seen_at=seen_at,
    )
