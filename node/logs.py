"""Structured logging (structlog): one JSON object per line on standard error.

Security-relevant refusals are events named `inbound_rejected`,
`operator_refused`, `equivocation` and `delivery_failed`, each with the node,
the peer, the reason and the message id where there is one.
"""

from __future__ import annotations

import logging
import sys
from typing import Final, TextIO

import structlog

DEFAULT_LEVEL: Final = "info"
"""The least severe events a serving node writes unless told (`ewx serve --log-level`)."""


def configure(*, level: str = DEFAULT_LEVEL, stream: TextIO | None = None, json: bool = True) -> None:
    """Set up structlog for a process; call once at start-up."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
