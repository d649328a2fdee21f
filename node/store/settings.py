"""What node.toml's `[store]` table may say, checked before any store is opened: the
PostgreSQL URL (never with a password in it) and where its password comes from.

Apart from the store itself so that the configuration can check its table without
importing a database driver (as node.situation.settings is for the situation).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final
from urllib.parse import parse_qsl, urlsplit

from node.errors import ConfigError

STORE_FILE: Final = "ewx.sqlite3"
"""The SQLite store's file name inside the node's data directory (no `[store]` table)."""

POSTGRES_SCHEMES: Final = ("postgresql", "postgres")
"""URL schemes of a PostgreSQL store (libpq's)."""

PASSWORD_ENV: Final = "EWX_STORE_PASSWORD"  # noqa: S105 - a variable's name, not a password
"""The environment variable that may hold the PostgreSQL password (else `password_file`)."""


def check_postgres_url(url: str) -> str:
    """Refuse a store URL that is not PostgreSQL's or that holds a password (ConfigError)."""
    parts = urlsplit(url)
    if parts.scheme not in POSTGRES_SCHEMES:
        raise ConfigError(f"store url {redact(url)!r}: not a postgresql:// URL")
    if parts.password or any(key == "password" and value for key, value in parse_qsl(parts.query)):
        raise ConfigError(
            "store url holds a password: give it in [store] password_file or the"
            f" {PASSWORD_ENV} environment variable, never in node.toml"
        )
    return url


def redact(url: str) -> str:
    """`url` without any password (for messages about a URL that was refused)."""
    parts = urlsplit(url)
    if parts.password is None:
        netloc = parts.netloc
    else:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    query = "&".join(
        f"{key}=***" if key == "password" else f"{key}={value}" for key, value in parse_qsl(parts.query)
    )
    return parts._replace(netloc=netloc, query=query).geturl()


def read_password(password_file: Path | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The PostgreSQL password: the file's first line, else EWX_STORE_PASSWORD, else None (libpq's own)."""
    if password_file is not None:
        try:
            text = password_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"store password_file {password_file}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"store password_file {password_file}: not UTF-8 text") from None
        return text.splitlines()[0] if text else ""
    return (os.environ if environ is None else environ).get(PASSWORD_ENV)
