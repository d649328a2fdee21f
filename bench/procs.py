"""The live processes below one, from /proc: what a bench's memory figures add up."""

from __future__ import annotations

import os
from pathlib import Path


def parents() -> dict[int, int]:
    """pid -> parent pid of every live process."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:  # it ended meanwhile
                continue
            parent[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parent


def descendants(root: int, *, below_children: bool = False) -> set[int]:
    """Live descendants of `root`; with `below_children`, only those below its own children
    (the audit's workers, which the forkserver, a child of the auditor, forks)."""
    parent = parents()
    children = {pid for pid, ppid in parent.items() if ppid == root}
    found: set[int] = set() if below_children else set(children)
    frontier = children
    while frontier:
        frontier = {pid for pid, ppid in parent.items() if ppid in frontier} - found
        found |= frontier
    return found
