"""Reading indicator data into the early-warning store: every row validated, all or nothing.

`ewx ews ingest FILE` reads CSV (a header row, comma separated) or JSON lines
(`.jsonl`, `.ndjson`), in this project's plain layout for each kind or, for
trade flows, the column layout of a UN Comtrade export. Columns beyond the
ones a kind needs are ignored; a missing required one is named.

Every row is checked (SQL over the whole file at once, not a Python loop per
row). A file with any bad row is refused whole, naming the file, the row, the
column and the reason, unless `skip_bad` is set, when each skipped row is
reported and the rest is stored. Rows are keyed (a flow by code, partner and
period; a price by code and period; an event by country, measure,
announcement and codes; a share by year, code and country): ingesting the
same rows again changes nothing, and a row whose key is stored with other
values replaces it, the old and new values kept in `replacements`.

Row numbers count data records from 1 (the header is not a record), so in a
CSV without quoted line breaks row N is on line N + 1.

Progress (`ingest_file`'s `progress`) is told in bytes of the file: the
validating pass reads it once, DuckDB's scan of a CSV (its query progress,
polled from a thread) or the parse of JSON lines; the checks and the storing
that follow are not counted.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import duckdb
import pycountry

from node.countries import VALID_CODES
from node.errors import FileRefused, IngestRefused, UsageError
from node.ews import codes
from node.ews.codes import Kind
from node.ews.store import EwsStore
from node.limits import MAX_REPORTED_PROBLEMS

MONTH_OF_PERIOD: Final = (
    "TRY_CAST(substr(period, 1, 4) AS INTEGER) * 12 + TRY_CAST(substr(period, 6, 2) AS INTEGER) - 1"
)
"""The stored `month` of a flow: a number that windows can count in."""
MAX_LISTED_PROBLEMS: Final = 1000
"""A report with --skip-bad lists this many problems; the counts cover all."""
MAX_HEADER_BYTES: Final = 64 * 1024
EVENT_ID_SQL: Final = "'EV-' || substr(sha256(country || '|' || measure || '|' || CAST(announced AS VARCHAR) || '|' || hs_codes), 1, 12)"
"""An event's id from its key (country, measure, announcement, codes): the same move, the same id."""

AfterStore = Callable[[EwsStore, int], None]
"""Run inside an ingest's transaction once its rows are stored, with the batch number."""
Progress = Callable[[int], None]
"""Told how many bytes of the file were read since its last call (module docstring)."""
PROGRESS_POLL_SECONDS: Final = 0.2
"""How often DuckDB's progress through a CSV is read, while it reads one."""
PROGRESS_EVERY_LINES: Final = 4096
"""JSON lines parsed between two calls of `progress`, at most."""


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One bad row: where and why."""

    row: int
    column: str
    reason: str

    def describe(self, source: str) -> str:
        """`flows.csv: row 12, column hs_code: '31021' is not ...`."""
        return f"{source}: row {self.row}, column {self.column}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        """As printed by `--json`."""
        return {"row": self.row, "column": self.column, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What one ingest did."""

    source: str
    kind: Kind
    layout: str
    batch: int
    rows_read: int
    added: int
    replaced: int
    unchanged: int
    ignored: int
    skipped: list[RowProblem] = field(default_factory=list)
    """The problems of the skipped rows (the first MAX_LISTED_PROBLEMS)."""
    skipped_rows: int = 0
    data_version: int = 0

    def to_json(self) -> dict[str, Any]:
        """Machine output of `ewx ews ingest --json`."""
        return {
            "source": self.source,
            "kind": self.kind.value,
            "layout": self.layout,
            "batch": self.batch,
            "rows_read": self.rows_read,
            "added": self.added,
            "replaced": self.replaced,
            "unchanged": self.unchanged,
            "ignored": self.ignored,
            "skipped": [p.to_json() for p in self.skipped],
            "skipped_rows": self.skipped_rows,
            "data_version": self.data_version,
        }

    def to_text(self) -> str:
        """One line, then one line per skipped row."""
        lines = [
            f"{self.source}: {self.kind.value} ({self.layout}), {self.rows_read} rows read: "
            f"{self.added} added, {self.replaced} replaced, {self.unchanged} unchanged"
            + (f", {self.ignored} ignored (not imports of one partner)" if self.ignored else "")
            + (f", {self.skipped_rows} rows skipped" if self.skipped_rows else "")
            + f"; batch {self.batch}, data version {self.data_version}"
        ]
        lines += [f"  skipped {p.describe(self.source)}" for p in self.skipped]
        if len(self.skipped) < self.skipped_rows:
            lines.append(f"  (problems of the first {len(self.skipped)} listed)")
        return "\n".join(lines)


# ------------------------------------------------------------------ what each kind holds
@dataclass(frozen=True, slots=True)
class _Field:
    """One stored column: the rule its text must pass and how it is stored."""

    name: str
    rule: str
    sql_type: str = "VARCHAR"
    key: bool = False
    required: bool = True
    default: str | None = None


_FIELDS: Final[dict[Kind, tuple[_Field, ...]]] = {
    Kind.FLOWS: (
        _Field("period", "period", key=True),
        _Field("hs_code", "hs6", key=True),
        _Field("partner", "country", key=True),
        _Field("value", "number", "DOUBLE"),
        _Field("quantity", "number", "DOUBLE"),
        _Field("unit", "unit", required=False, default="kg"),
    ),
    Kind.PRICES: (
        _Field("period", "period", key=True),
        _Field("hs_code", "hs6", key=True),
        _Field("price", "number", "DOUBLE"),
        _Field("currency", "currency", required=False, default="USD"),
        _Field("unit", "unit", required=False, default="kg"),
    ),
    Kind.EVENTS: (
        _Field("country", "country", key=True),
        _Field("hs_codes", "hs_list", key=True),
        _Field("measure", "measure", key=True),
        _Field("announced", "date", "DATE", key=True),
        _Field("effective", "date", "DATE"),
        _Field("stage", "stage"),
    ),
    Kind.SHARES: (
        _Field("year", "year", "INTEGER", key=True),
        _Field("hs_code", "hs", key=True),
        _Field("country", "country", key=True),
        _Field("share", "share", "DOUBLE"),
    ),
}

_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "value": ("import_value_usd", "import_value", "value"),
    "hs_code": ("hs_code", "hs", "hs6"),
    "quantity": ("quantity", "quantity_kg"),
}
"""Plain-layout header names a stored column is read from, first match wins."""

_COMTRADE_MARKERS: Final = frozenset({"cmdcode", "primaryvalue", "flowcode"})
_COMTRADE_REQUIRED: Final = ("period", "cmdCode", "flowCode", "partnerISO", "primaryValue")

_RULE_SQL: Final[dict[str, str]] = {
    # Once a pattern has matched, plain string order is numeric order: the bounds
    # need no second parse of the text.
    "period": f"regexp_full_match($x, '{codes.PERIOD_PATTERN}') "
    f"AND $x BETWEEN '{codes.MIN_YEAR}-01' AND '{codes.MAX_YEAR}-12'",
    "hs6": f"regexp_full_match($x, '{codes.HS6_PATTERN}')",
    "hs": f"regexp_full_match($x, '{codes.HS_PATTERN}')",
    "hs_list": f"len(string_split($x, ';')) BETWEEN 1 AND {codes.MAX_HS_CODES_PER_EVENT} "
    f"AND list_bool_and([regexp_full_match(trim(s), '{codes.HS_PATTERN}') for s in string_split($x, ';')])",
    "country": "$x IN (SELECT code FROM _ews_countries)",
    "number": f"regexp_full_match($x, '{codes.NUMBER_PATTERN}') AND $v <= {codes.MAX_VALUE}",
    "share": f"regexp_full_match($x, '{codes.NUMBER_PATTERN}') AND $v <= 1",
    "unit": "$x IN (" + ", ".join(f"'{u}'" for u in codes.UNITS) + ")",
    "currency": f"regexp_full_match($x, '{codes.CURRENCY_PATTERN}')",
    "date": f"regexp_full_match($x, '{codes.DATE_PATTERN}') AND $v IS NOT NULL "
    f"AND $x BETWEEN '{codes.MIN_YEAR}-01-01' AND '{codes.MAX_YEAR}-12-31'",
    "year": f"regexp_full_match($x, '{codes.YEAR_PATTERN}') "
    f"AND $x BETWEEN '{codes.MIN_YEAR}' AND '{codes.MAX_YEAR}'",
    "measure": "$x IN (" + ", ".join(f"'{m}'" for m in codes.Measure) + ")",
    "stage": "$x IN (" + ", ".join(f"'{s}'" for s in codes.Stage) + ")",
}
"""Each rule as a SQL predicate over the trimmed text `$x` (never NULL here) and its
stored value `$v` (NULL where the text does not convert)."""

_RULE_TEXT: Final[dict[str, str]] = {
    "period": "is not a month YYYY-MM (ASCII digits, 1990-2099)",
    "hs6": "is not a 6-digit HS code (ASCII digits; dots are allowed)",
    "hs": "is not an HS code of 4 or 6 ASCII digits",
    "hs_list": f"is not a list of 1-{codes.MAX_HS_CODES_PER_EVENT} HS codes of 4 or 6 ASCII digits "
    "separated by ';'",
    "country": "is not an ISO 3166-1 alpha-2 country code (ZZ: unknown)",
    "number": "is not a plain non-negative decimal (ASCII digits and one '.', no sign, grouping or "
    f"exponent, at most {codes.MAX_VALUE:.0e})",
    "share": "is not a share: a plain decimal from 0 to 1",
    "unit": "is not a quantity unit (" + ", ".join(codes.UNITS) + ")",
    "currency": "is not a 3-letter ISO 4217 currency code",
    "date": "is not a date YYYY-MM-DD (1990-2099)",
    "year": "is not a year (1990-2099)",
    "measure": "is not a measure (" + ", ".join(codes.Measure) + ")",
    "stage": "is not a stage (" + ", ".join(codes.Stage) + ")",
}


_CSV_ERRORS: Final[dict[str, str]] = {
    "MISSING COLUMNS": "the record has fewer fields than the header",
    "TOO MANY COLUMNS": "the record has more fields than the header",
    "INVALID ENCODING": "not UTF-8 text",
    "UNQUOTED VALUE": "a quote inside an unquoted field",
    "LINE SIZE OVER MAXIMUM": "the line is too long",
}
"""DuckDB's reasons for a record it could not split, in this module's words."""


def _canonical(field_: _Field, expression: str) -> str:
    """The text a field is validated in: trimmed, codes normalized."""
    text = f"trim(CAST({expression} AS VARCHAR))"
    if field_.rule in ("hs6", "hs"):
        return f"replace({text}, '.', '')"
    if field_.rule == "hs_list":
        return (
            f"array_to_string(list_sort(list_distinct([replace(trim(s), '.', '') "
            f"for s in string_split({text}, ';')])), ';')"
        )
    if field_.rule in ("country", "currency", "measure", "stage"):
        return f"upper({text})"
    if field_.rule == "unit":
        return f"lower({text})"
    return text


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# ------------------------------------------------------------------ reading a file
@dataclass(frozen=True, slots=True)
class _Plan:
    """How to turn the raw columns of one file into a kind's fields."""

    kind: Kind
    layout: str
    expressions: dict[str, str]
    """Field name to a SQL expression over the raw columns."""
    sources: dict[str, str]
    """Field name to the header name it came from (for messages)."""
    ignored: str = "false"
    """A SQL predicate: rows that are not data of this kind (a Comtrade World row, exports)."""
    checks: tuple[tuple[str, str, str], ...] = ()
    """Extra (column, predicate, reason) checks over the raw columns."""


def _plan(header: Sequence[str], kind: Kind | None, source: str) -> _Plan:
    lower = {h.strip().lower(): h for h in header}
    if set(lower) >= _COMTRADE_MARKERS:
        if kind not in (None, Kind.FLOWS):
            raise FileRefused(f"{source}: a UN Comtrade export holds trade flows, not {kind.value}")
        return _comtrade_plan(lower, source)
    if kind is None:
        kind = _guess_kind(set(lower), source)
    expressions: dict[str, str] = {}
    sources: dict[str, str] = {}
    missing: list[str] = []
    for f in _FIELDS[kind]:
        name = next((lower[a] for a in _ALIASES.get(f.name, (f.name,)) if a in lower), None)
        if name is None:
            if f.required:
                missing.append(" or ".join(_ALIASES.get(f.name, (f.name,))))
                continue
            expressions[f.name] = f"'{f.default}'"
            sources[f.name] = f.name
            continue
        expressions[f.name] = _quote(name)
        sources[f.name] = name
    if missing:
        raise FileRefused(
            f"{source}: {kind.value} needs the column(s) {', '.join(missing)}; the header has {', '.join(header)}"
        )
    return _Plan(kind, "plain", expressions, sources)


def _guess_kind(columns: set[str], source: str) -> Kind:
    if "measure" in columns or "hs_codes" in columns:
        return Kind.EVENTS
    if "share" in columns:
        return Kind.SHARES
    if "price" in columns:
        return Kind.PRICES
    if "partner" in columns:
        return Kind.FLOWS
    raise FileRefused(f"{source}: cannot tell which kind of data this is from its header; give --kind")


def _comtrade_plan(lower: dict[str, str], source: str) -> _Plan:
    missing = [c for c in _COMTRADE_REQUIRED if c.lower() not in lower]
    if "netwgt" not in lower and "qty" not in lower:
        missing.append("netWgt or qty")
    if missing:
        raise FileRefused(f"{source}: a UN Comtrade export needs the column(s) {', '.join(missing)}")

    def col(name: str) -> str:
        return f"trim(CAST({_quote(lower[name.lower()])} AS VARCHAR))" if name.lower() in lower else "NULL"

    period = col("period")
    net, qty = col("netWgt"), col("qty")
    use_net = f"(TRY_CAST({net} AS DOUBLE) > 0)"
    expressions = {
        "period": f"CASE WHEN regexp_full_match({period}, '^[0-9]{{6}}$') "
        f"THEN substr({period}, 1, 4) || '-' || substr({period}, 5, 2) ELSE {period} END",
        "hs_code": col("cmdCode"),
        "partner": f"coalesce((SELECT alpha2 FROM _ews_alpha3 WHERE alpha3 = upper({col('partnerISO')})), "
        f"{col('partnerISO')})",
        "value": col("primaryValue"),
        "quantity": f"CASE WHEN {use_net} THEN {net} ELSE {qty} END",
        "unit": f"CASE WHEN {use_net} THEN 'kg' ELSE coalesce({col('qtyUnitAbbr')}, 'kg') END",
    }
    sources = {
        "period": lower["period"],
        "hs_code": lower["cmdcode"],
        "partner": lower["partneriso"],
        "value": lower["primaryvalue"],
        "quantity": lower.get("netwgt", lower.get("qty", "qty")),
        "unit": lower.get("qtyunitabbr", "qtyUnitAbbr"),
    }
    # Not data of one partner's imports: other flows, the World row, breakdowns by
    # customs procedure, mode of transport or second partner (their totals are kept).
    ignored = [f"coalesce(upper({col('flowCode')}), '') <> 'M'"]
    ignored.append(f"coalesce(upper({col('partnerISO')}), '') = 'W00'")
    if "partnercode" in lower:
        ignored.append(f"coalesce({col('partnerCode')}, '') = '0'")
    for name, total in (("customsCode", "C00"), ("motCode", "0"), ("partner2Code", "0")):
        if name.lower() in lower:
            ignored.append(f"coalesce({col(name)}, '{total}') NOT IN ('{total}', '')")
    checks: tuple[tuple[str, str, str], ...] = ()
    if "freqcode" in lower:
        checks = (
            (
                lower["freqcode"],
                f"coalesce(upper({col('freqCode')}), 'M') = 'M'",
                "only monthly data (freqCode M) is read",
            ),
        )
    return _Plan(Kind.FLOWS, "comtrade", expressions, sources, " OR ".join(ignored), checks)


def _check_file(path: Path) -> int:
    try:
        info = path.stat()
    except OSError as exc:
        raise FileRefused(f"{path}: cannot read it: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise FileRefused(f"{path}: not a regular file")
    if info.st_size > codes.MAX_INPUT_BYTES:
        raise FileRefused(f"{path}: larger than {codes.MAX_INPUT_BYTES} bytes")
    if not os.access(path, os.R_OK):
        raise FileRefused(f"{path}: cannot read it: permission denied")
    return info.st_size


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _csv_header(path: Path) -> list[str]:
    with path.open("rb") as stream:
        head = stream.read(MAX_HEADER_BYTES)
    if not head.strip():
        raise FileRefused(f"{path}: empty file (a header row is needed)")
    first = head.split(b"\n", 1)[0].rstrip(b"\r")
    if len(first) >= MAX_HEADER_BYTES:
        raise FileRefused(f"{path}: the header row is longer than {MAX_HEADER_BYTES} bytes")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FileRefused(f"{path}: the header row is not UTF-8 text") from None
    try:
        header = next(csv.reader(io.StringIO(text)), [])
    except csv.Error as exc:  # a lone carriage return, say
        raise FileRefused(f"{path}: the header row is not CSV: {exc}") from None
    names = [h.strip() for h in header]
    if not names or any(not n for n in names) or len(set(map(str.lower, names))) != len(names):
        raise FileRefused(f"{path}: the header row must name every column once, got {text[:200]!r}")
    if any(not n.isprintable() for n in names):
        raise FileRefused(f"{path}: the header row holds control characters")
    return names


def _is_json_lines(path: Path) -> bool:
    return path.suffix.lower() in (".jsonl", ".ndjson", ".json")


@dataclass(frozen=True, slots=True)
class _Raw:
    """Where a file's records are read from as text columns."""

    header: list[str]
    csv: Path | None = None
    """A CSV file, read by the first pass itself; else the table `_ews_raw` (with `_row`)."""
    columns: dict[str, str] = field(default_factory=dict)

    def read_sql(self, rejects: str) -> str:
        """The CSV's records (rows DuckDB cannot split go to `rejects`); parameters: path, columns."""
        return (
            "read_csv(?, header = true, auto_detect = false, columns = ?, delim = ',', quote = '\"', "
            f"escape = '\"', strict_mode = true, store_rejects = true, rejects_table = '{rejects}', "
            f"rejects_scan = '{rejects}_scan', encoding = 'utf-8')"
        )


def _load_raw(db: duckdb.DuckDBPyConnection, path: Path, progress: Progress | None = None) -> _Raw:
    """The file's records as text columns: a CSV as it is, JSON lines through `_ews_raw`."""
    if _is_json_lines(path):
        return _Raw(_load_json_lines(db, path, progress))
    header = _csv_header(path)
    return _Raw(header, path, dict.fromkeys(header, "VARCHAR"))


def _csv_rejects(db: duckdb.DuckDBPyConnection, rejects: str) -> list[tuple[int, str, str]]:
    """The records DuckDB could not split (row, column, DuckDB's reason), and their numbering.

    Such records are in no table, so the rest are numbered as in the file:
    `_ews_skips` holds, for each, the rowid below which one record is missing.
    """
    rejected = db.execute(
        # The first column DuckDB names for a line (by position: the order rows come
        # back in is not fixed, and the report must not change from run to run).
        "SELECT line, arg_min(coalesce(column_name, '(record)'), coalesce(column_idx, 0)), "
        f"arg_min(error_type, coalesce(column_idx, 0)) FROM {rejects} GROUP BY line ORDER BY line"
    ).fetchall()
    skips = sorted({int(line) - 1 for line, _c, _k in rejected})
    db.execute("CREATE OR REPLACE TEMP TABLE _ews_skips (below BIGINT)")
    if skips:
        db.executemany("INSERT INTO _ews_skips VALUES (?)", [[q - k] for k, q in enumerate(skips, start=1)])
    return [(int(line) - 1, str(column), str(kind)) for line, column, kind in rejected]


def _drop_rejects(db: duckdb.DuckDBPyConnection, rejects: str) -> None:
    db.execute(f"DROP TABLE IF EXISTS {rejects}")
    db.execute(f"DROP TABLE IF EXISTS {rejects}_scan")


def _numbered(table: str, skipped: bool) -> str:
    """`table`'s rows with `_row`, the record's number in the file (its rowid, file order kept)."""
    below = "(SELECT count(*) FROM _ews_skips WHERE below <= r.rowid)" if skipped else "0"
    return f"SELECT rowid + 1 + {below} AS _row, * FROM {table} r"


def _raw_table(db: duckdb.DuckDBPyConnection, raw: _Raw, *, skipped: bool) -> None:
    """`_ews_raw` for a CSV: read again, for the text of the few bad values a refusal quotes."""
    if raw.csv is None:
        return
    db.execute("DROP VIEW IF EXISTS _ews_raw")
    db.execute("DROP TABLE IF EXISTS _ews_raw")
    _drop_rejects(db, "_ews_rejects_again")
    db.execute(
        f"CREATE OR REPLACE TEMP TABLE _ews_raw_read AS SELECT * FROM {raw.read_sql('_ews_rejects_again')}",
        [str(raw.csv), raw.columns],
    )
    db.execute(f"CREATE TEMP VIEW _ews_raw AS {_numbered('_ews_raw_read', skipped)}")


def _load_json_lines(
    db: duckdb.DuckDBPyConnection, path: Path, progress: Progress | None = None
) -> list[str]:
    """JSON lines: one object per line; values may be strings or numbers."""
    records: list[dict[str, Any]] = []
    names: dict[str, None] = {}
    read = 0  # bytes not yet told to `progress`
    with path.open("rb") as stream:
        for number, line in enumerate(stream, start=1):
            if progress is not None:
                read += len(line)
                if not number % PROGRESS_EVERY_LINES:
                    progress(read)
                    read = 0
            if not line.strip():
                raise FileRefused(f"{path}: row {number}: empty line (one JSON object per line)")
            try:
                value = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
                raise FileRefused(f"{path}: row {number}: not a JSON object: {exc}") from None
            if not isinstance(value, dict):
                raise FileRefused(f"{path}: row {number}: not a JSON object")
            for key, item in value.items():
                if not isinstance(item, str | int | float) or isinstance(item, bool):
                    raise FileRefused(f"{path}: row {number}, column {key}: a string or a number is needed")
                if key not in names and len(names) >= 256:
                    raise FileRefused(f"{path}: more than 256 distinct keys")
                names.setdefault(key, None)
            records.append(value)
    if progress is not None and read:
        progress(read)
    if not records:
        raise FileRefused(f"{path}: empty file (one JSON object per line is needed)")
    header = list(names)
    if len({h.lower() for h in header}) != len(header):
        raise FileRefused(f"{path}: keys differ only in case")
    # Through a CSV of text cells: DuckDB reads it in one scan, with no row-by-row inserts.
    with tempfile.NamedTemporaryFile("w", suffix=".csv", newline="", encoding="utf-8", delete=False) as out:
        writer = csv.writer(out, quoting=csv.QUOTE_ALL)
        writer.writerow(["_row", *header])
        for number, record in enumerate(records, start=1):
            writer.writerow([number, *(_json_text(record.get(name)) for name in header)])
    try:
        db.execute("DROP VIEW IF EXISTS _ews_raw")
        db.execute(
            "CREATE OR REPLACE TEMP TABLE _ews_raw AS SELECT * FROM read_csv(?, header = true, "
            "auto_detect = false, columns = ?, delim = ',', quote = '\"', escape = '\"')",
            [out.name, {"_row": "BIGINT", **dict.fromkeys(header, "VARCHAR")}],
        )
    finally:
        os.unlink(out.name)
    return header


def _json_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


@contextmanager
def _reading(db: duckdb.DuckDBPyConnection, size: int, progress: Progress | None) -> Iterator[None]:
    """While the block's statement reads the whole file: its bytes read, told to `progress`.

    DuckDB's query progress (a percentage, -1 while no statement runs) is
    polled from a thread, the rest told when the statement has finished.
    """
    if progress is None:
        yield
        return
    told = 0

    def tell_up_to(done: int) -> None:
        nonlocal told
        if done > told:
            progress(done - told)
            told = done

    def poll() -> None:
        while not stop.wait(PROGRESS_POLL_SECONDS):
            percent = db.query_progress()
            if percent > 0:
                tell_up_to(min(size, int(size * percent / 100)))

    db.execute("SET enable_progress_bar = true")  # query_progress counts only with it set
    db.execute("SET enable_progress_bar_print = false")
    stop = threading.Event()
    poller = threading.Thread(target=poll, name="ingest-progress", daemon=True)
    poller.start()
    try:
        yield
    finally:
        stop.set()
        poller.join()
        db.execute("RESET enable_progress_bar")
        db.execute("RESET enable_progress_bar_print")
    tell_up_to(size)


# ------------------------------------------------------------------ validating and storing
def ingest_file(
    store: EwsStore,
    path: Path,
    *,
    kind: Kind | None = None,
    skip_bad: bool = False,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Validate `path` whole and store it in one transaction; IngestRefused or FileRefused otherwise.

    `progress`, if given, is called with how many bytes of the file were read
    since its last call (module docstring); once the file is read the calls
    have summed to its size.
    """
    size = _check_file(path)
    source = path.name
    db = store.db
    _reference_tables(db)
    raw = _load_raw(db, path, progress)
    plan = _plan(raw.header, kind, str(path))
    try:
        return _ingest(
            store,
            plan,
            raw,
            source=source,
            sha256=_sha256(path),
            skip_bad=skip_bad,
            now=now,
            progress=(size, progress) if progress is not None and raw.csv is not None else None,
        )
    finally:
        store.drop_work()


def ingest_records(
    store: EwsStore,
    kind: Kind,
    records: Iterable[dict[str, str]],
    *,
    source: str,
    now: datetime | None = None,
    then: AfterStore | None = None,
) -> IngestReport:
    """Store records given in code (`ewx ews event add`, a policy report) through the same checks as a file.

    `then` runs in the same transaction after the rows are stored (a policy
    report's link to its event: both or neither).
    """
    rows = list(records)
    if not rows:
        raise UsageError("nothing to store")
    names = list(rows[0])
    db = store.db
    _reference_tables(db)
    columns = ", ".join(f"CAST(NULL AS VARCHAR) AS {_quote(n)}" for n in names)
    db.execute("DROP VIEW IF EXISTS _ews_raw")
    db.execute(
        f"CREATE OR REPLACE TEMP TABLE _ews_raw AS SELECT CAST(NULL AS BIGINT) AS _row, {columns} LIMIT 0"
    )
    placeholders = ", ".join("?" for _ in range(len(names) + 1))
    for number, row in enumerate(rows, start=1):
        db.execute(f"INSERT INTO _ews_raw VALUES ({placeholders})", [number, *(row[n] for n in names)])
    plan = _plan(names, kind, source)
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()
    try:
        return _ingest(
            store, plan, _Raw(names), source=source, sha256=digest, skip_bad=False, now=now, then=then
        )
    finally:
        store.drop_work()


def _reference_tables(db: duckdb.DuckDBPyConnection) -> None:
    """Country codes as small temp tables, so rules and the Comtrade mapping are joins."""
    db.execute("CREATE OR REPLACE TEMP TABLE _ews_countries (code VARCHAR)")
    db.executemany("INSERT INTO _ews_countries VALUES (?)", [[c] for c in sorted(VALID_CODES)])
    db.execute("CREATE OR REPLACE TEMP TABLE _ews_alpha3 (alpha3 VARCHAR, alpha2 VARCHAR)")
    db.executemany(
        "INSERT INTO _ews_alpha3 VALUES (?, ?)",
        [[c.alpha_3, c.alpha_2] for c in pycountry.countries if c.alpha_2 in VALID_CODES],
    )


def _ingest(
    store: EwsStore,
    plan: _Plan,
    raw: _Raw,
    *,
    source: str,
    sha256: str,
    skip_bad: bool,
    now: datetime | None,
    then: AfterStore | None = None,
    progress: tuple[int, Progress] | None = None,
) -> IngestReport:
    """`progress`: the CSV's size, and what to tell the bytes its scan reads."""
    db = store.db
    fields = _FIELDS[plan.kind]
    rejected: list[tuple[int, str, str]] = []
    try:
        # One pass over the raw text: each field canonicalized, typed for storing and
        # checked against its rule; a bit per failed field in `_bad`. The text of a
        # bad value is not kept here (a column per field of mostly NULLs costs as
        # much as the values): the few bad rows are read again for the message.
        texts = ", ".join(f"{_canonical(f, plan.expressions[f.name])} AS {f.name}" for f in fields)
        typed = ", ".join(f"{_typed(f)} AS _v_{f.name}" for f in fields)
        flags = " | ".join(f"(CASE WHEN {_passes(f)} THEN 0 ELSE {1 << i} END)" for i, f in enumerate(fields))
        # The file's own checks (over its raw columns) take the bits after the fields'.
        raw_checks = "".join(
            f", NOT coalesce(({predicate}), false) AS _check_{j}"
            for j, (_c, predicate, _r) in enumerate(plan.checks)
        )
        checked = "".join(
            f" | (CASE WHEN _check_{j} THEN {1 << (len(fields) + j)} ELSE 0 END)"
            for j in range(len(plan.checks))
        )
        month = f", CAST({MONTH_OF_PERIOD} AS INTEGER) AS month" if plan.kind is Kind.FLOWS else ""
        values = ", ".join(f"_v_{f.name} AS {f.name}" for f in fields)
        outer = (
            f"SELECT {'' if raw.csv else '_row, '}_ignored, {values}{month}, "
            f"(CASE WHEN _ignored THEN 0 ELSE {flags} END){checked} AS _bad FROM (SELECT *, {typed} FROM "
        )
        inner = f"({plan.ignored}) AS _ignored, {texts}{raw_checks}"
        if raw.csv is None:
            db.execute("DROP VIEW IF EXISTS _ews_canon")
            db.execute(
                f"CREATE OR REPLACE TEMP TABLE _ews_canon AS {outer}(SELECT _row, {inner} FROM _ews_raw))"
            )
        else:
            # Straight from the file: its records are never stored as text, and the
            # rowids of the table follow the file (DuckDB keeps insertion order).
            db.execute("DROP VIEW IF EXISTS _ews_canon")
            db.execute("DROP TABLE IF EXISTS _ews_canon")
            _drop_rejects(db, "_ews_rejects")
            try:
                with _reading(db, *(progress or (0, None))):
                    db.execute(
                        f"CREATE OR REPLACE TEMP TABLE _ews_canon_read AS {outer}"
                        f"(SELECT {inner} FROM {raw.read_sql('_ews_rejects')}))",
                        [str(raw.csv), raw.columns],
                    )
            except duckdb.Error as exc:
                raise FileRefused(f"{raw.csv}: not readable as CSV: {_first_line(exc)}") from None
            rejected = _csv_rejects(db, "_ews_rejects")
            db.execute(f"CREATE TEMP VIEW _ews_canon AS {_numbered('_ews_canon_read', bool(rejected))}")
        counted = db.execute(
            "SELECT count(*), count(*) FILTER (WHERE _ignored), "
            f"count(*) FILTER (WHERE _bad & {(1 << len(fields)) - 1} <> 0) FROM _ews_canon"
        ).fetchone() or (0, 0, 0)
        rows_read, ignored, flagged = (int(c) for c in counted)
        if flagged:
            _raw_table(db, raw, skipped=bool(rejected))
        problems, total = _problems(db, plan, fields, rejected, flagged=flagged > 0)
    except duckdb.Error as exc:
        raise FileRefused(f"{source}: cannot read its rows: {_first_line(exc)}") from None
    rows_read += len({r for r, _c, _k in rejected})
    if total and not skip_bad:
        raise IngestRefused(source, problems[:MAX_REPORTED_PROBLEMS], total=total)
    bad = db.execute("SELECT count(*) FROM _ews_bad").fetchone()
    skipped = int(bad[0]) if bad else 0
    stored = [f.name for f in fields]
    if plan.kind is Kind.FLOWS:  # quantities in the stored unit (tonnes as kg)
        factor = " ".join(f"WHEN '{u}' THEN {x}" for u, x in codes.UNITS.items())
        stored_unit = " ".join(f"WHEN '{u}' THEN '{k}'" for u, k in codes.STORED_UNIT.items())
        stored = [
            f"quantity * CASE unit {factor} END AS quantity"
            if name == "quantity"
            else f"CASE unit {stored_unit} END AS unit"
            if name == "unit"
            else name
            for name in stored
        ] + ["month"]
    # A view, not a table: the rows are read once, by the insert or the comparison.
    where = "NOT _ignored" + (" AND _row NOT IN (SELECT _row FROM _ews_bad)" if skipped else "")
    db.execute("DROP VIEW IF EXISTS _ews_new")
    db.execute(f"CREATE TEMP VIEW _ews_new AS SELECT _row, {', '.join(stored)} FROM _ews_canon WHERE {where}")
    with store.transaction():
        return _store(
            store,
            kind=plan.kind,
            fields=fields,
            source=source,
            sha256=sha256,
            layout=plan.layout,
            rows_read=rows_read,
            ignored=ignored,
            problems=problems,
            skipped=skipped,
            now=now,
            then=then,
        )


def _passes(field_: _Field) -> str:
    """The field's check as a predicate over its canonical text (never NULL)."""
    name = field_.name
    rule = _RULE_SQL[field_.rule].replace("$x", name).replace("$v", f"_v_{name}")
    return f"({name} IS NOT NULL AND {name} <> '' AND coalesce(({rule}), false))"


def _typed(field_: _Field) -> str:
    """The field's stored value from its canonical text, converted once."""
    if field_.sql_type == "VARCHAR":
        return field_.name
    return f"TRY_CAST({field_.name} AS {field_.sql_type})"


def _problems(
    db: duckdb.DuckDBPyConnection,
    plan: _Plan,
    fields: Sequence[_Field],
    rejected: list[tuple[int, str, str]],
    *,
    flagged: bool,
) -> tuple[list[RowProblem], int]:
    """Every problem into `_ews_problems` (and every bad row into `_ews_bad`), in SQL;
    the first MAX_LISTED_PROBLEMS of them as RowProblems, and how many there are."""
    db.execute(
        "CREATE OR REPLACE TEMP TABLE _ews_problems (_row BIGINT, col VARCHAR, rule VARCHAR, value VARCHAR)"
    )
    first_per_row: dict[int, tuple[str, str]] = {}
    for row, column, kind in rejected:
        first_per_row.setdefault(row, (column, kind))
    if first_per_row:
        db.executemany(
            "INSERT INTO _ews_problems VALUES (?, ?, ?, NULL)",
            [[row, column, "csv:" + kind] for row, (column, kind) in first_per_row.items()],
        )
    checks = []
    if flagged:
        # Only the flagged rows are read again, for the text of each bad value.
        db.execute(
            "CREATE OR REPLACE TEMP TABLE _ews_flagged AS SELECT _row, _bad FROM _ews_canon "
            f"WHERE _bad & {(1 << len(fields)) - 1} <> 0"
        )
        for i, f in enumerate(fields):
            column = plan.sources[f.name].replace("'", "''")
            checks.append(
                f"SELECT r._row, '{column}', '{f.rule}', {_canonical(f, plan.expressions[f.name])} "
                f"FROM _ews_raw r JOIN _ews_flagged b ON b._row = r._row WHERE b._bad & {1 << i} <> 0"
            )
    if plan.kind is Kind.EVENTS:
        checks.append(
            "SELECT _row, 'effective', 'after_announced', CAST(effective AS VARCHAR) FROM _ews_canon "
            "WHERE NOT _ignored AND effective < announced"
        )
    for j, (column, _predicate, reason) in enumerate(plan.checks):
        safe_column, safe_reason = column.replace("'", "''"), reason.replace("'", "''")
        checks.append(
            f"SELECT _row, '{safe_column}', 'x:{safe_reason}', NULL FROM _ews_canon "
            f"WHERE _bad & {1 << (len(fields) + j)} <> 0"
        )
    if checks:
        db.execute("INSERT INTO _ews_problems " + " UNION ALL ".join(checks))
    keys = [f.name for f in fields if f.key]
    key_column = plan.sources[keys[0]].replace("'", "''")
    key_list = ", ".join(keys)
    # A 64-bit hash per key finds that there are no repeats in one cheap pass;
    # only a file with (probable) repeats pays for the exact grouping.
    # Sorting the hashes and comparing neighbours is cheaper than a hash table of them all.
    repeats = db.execute(
        f"SELECT count(*) FROM (SELECT h = lag(h) OVER (ORDER BY h) AS again FROM "
        f"(SELECT hash({key_list}) AS h FROM _ews_canon WHERE NOT _ignored)) WHERE again"
    ).fetchone()
    if repeats is not None and repeats[0]:
        db.execute(
            f"INSERT INTO _ews_problems SELECT c._row, '{key_column}', 'dup:' || d.first, NULL "
            f"FROM _ews_canon c JOIN (SELECT {key_list}, min(_row) AS first FROM _ews_canon WHERE NOT _ignored "
            f"GROUP BY {key_list} HAVING count(*) > 1) d USING ({key_list}) WHERE NOT c._ignored AND c._row > d.first"
        )
    if plan.kind is Kind.FLOWS:
        _unit_problems(db, plan)
    db.execute("CREATE OR REPLACE TEMP TABLE _ews_bad AS SELECT DISTINCT _row FROM _ews_problems")
    total = db.execute("SELECT count(*) FROM _ews_problems").fetchone()
    listed = db.execute(
        f"SELECT _row, col, rule, value FROM _ews_problems ORDER BY _row, col LIMIT {MAX_LISTED_PROBLEMS}"
    ).fetchall()
    keys_text = ", ".join(keys)
    problems = [
        RowProblem(int(row), str(col), _reason(str(rule), value, keys_text))
        for row, col, rule, value in listed
    ]
    return problems, int(total[0]) if total else 0


def _unit_problems(db: duckdb.DuckDBPyConnection, plan: _Plan) -> None:
    """A code's quantities are kept in one unit (tonnes count as kg): mixing is an error."""
    stored = "CASE unit " + " ".join(f"WHEN '{u}' THEN '{s}'" for u, s in codes.STORED_UNIT.items()) + " END"
    column = plan.sources["unit"].replace("'", "''")
    units = ", ".join(f"'{u}'" for u in codes.UNITS)
    # One pass over 4,000-odd codes, not over every row, for the common case:
    # each code arrives in one unit, the one it is kept in.
    conflicts = db.execute(
        f"""
        WITH incoming AS (SELECT hs_code, min({stored}) AS low, max({stored}) AS high FROM _ews_canon
                          WHERE NOT _ignored AND unit IN ({units}) GROUP BY hs_code),
             kept AS (SELECT hs_code, min(unit) AS low, max(unit) AS high FROM flows GROUP BY hs_code)
        SELECT count(*) FROM incoming i LEFT JOIN kept k USING (hs_code)
        WHERE i.low <> i.high OR k.low <> i.low OR k.high <> i.low
        """
    ).fetchone()
    if not conflicts or not conflicts[0]:
        return
    db.execute(
        f"""
        INSERT INTO _ews_problems
        WITH incoming AS (SELECT _row, hs_code, unit AS given, {stored} AS kept_as FROM _ews_canon
                          WHERE NOT _ignored AND unit IN ({units})),
             kept AS (SELECT hs_code, any_value(unit) AS kept_as FROM flows GROUP BY hs_code),
             first AS (SELECT hs_code, arg_min(kept_as, _row) AS kept_as FROM incoming GROUP BY hs_code),
             expected AS (SELECT f.hs_code, coalesce(k.kept_as, f.kept_as) AS kept_as FROM first f
                          LEFT JOIN kept k USING (hs_code))
        SELECT i._row, '{column}', 'mixed:' || i.hs_code || ':' || e.kept_as, i.given
        FROM incoming i JOIN expected e USING (hs_code) WHERE i.kept_as <> e.kept_as
        """
    )


def _reason(rule: str, value: object, keys: str) -> str:
    kind, _, detail = rule.partition(":")
    if kind == "x":
        return detail
    if kind == "csv":
        return _CSV_ERRORS.get(detail, f"the record could not be read ({detail.lower()})")
    if kind == "dup":
        return f"repeats row {detail} (same {keys})"
    if kind == "mixed":
        code, _, want = detail.partition(":")
        return f"HS {code} is kept in {want}; this row gives {value} (one unit per code)"
    if rule == "after_announced":
        return f"{value!s} is before the announcement date"
    if value is None or value == "":
        return "missing value"
    shown = str(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return f"{shown!r} {_RULE_TEXT[rule]}"


def _store(
    store: EwsStore,
    *,
    kind: Kind,
    fields: Sequence[_Field],
    source: str,
    sha256: str,
    layout: str,
    rows_read: int,
    ignored: int,
    problems: list[RowProblem],
    skipped: int,
    now: datetime | None,
    then: AfterStore | None = None,
) -> IngestReport:
    """Within the transaction: add new rows, replace changed ones (recording both), keep the rest."""
    db = store.db
    batch = store.next_batch()
    table = kind.value
    keys = [f.name for f in fields if f.key]
    values = [f.name for f in fields if not f.key]
    on = " AND ".join(f"t.{k} = n.{k}" for k in keys)
    if store.count(table) == 0:  # the first load: everything is new, no comparison to make
        db.execute(
            "CREATE OR REPLACE TEMP TABLE _ews_diff AS SELECT *, 'added' AS _what FROM _ews_new LIMIT 0"
        )
        source_rows = "_ews_new"
    else:
        source_rows = "_ews_diff"
    differs = " OR ".join(f"t.{v} IS DISTINCT FROM n.{v}" for v in values)
    if source_rows == "_ews_diff":
        db.execute(
            f"CREATE OR REPLACE TEMP TABLE _ews_diff AS SELECT n.*, "
            f"CASE WHEN t.{keys[0]} IS NULL THEN 'added' WHEN {differs} THEN 'replaced' ELSE 'unchanged' END AS _what, "
            f"CASE WHEN t.{keys[0]} IS NOT NULL THEN to_json(struct_pack({', '.join(f'{v} := t.{v}' for v in values)})) END AS _old "
            f"FROM _ews_new n LEFT JOIN {table} t ON {on}"
        )
        counts = dict(db.execute("SELECT _what, count(*) FROM _ews_diff GROUP BY _what").fetchall())
    else:
        counts = {"added": store.count("_ews_new")}
    added, replaced, unchanged = (int(counts.get(k, 0)) for k in ("added", "replaced", "unchanged"))
    key_text = " || '|' || ".join(f"CAST({k} AS VARCHAR)" for k in keys)
    if replaced:
        db.execute(
            f"INSERT INTO replacements SELECT ?, ?, {key_text}, _old, "
            f"to_json(struct_pack({', '.join(f'{v} := {v}' for v in values)})) FROM _ews_diff WHERE _what = 'replaced'",
            [batch, table],
        )
        db.execute(f"DELETE FROM {table} t USING _ews_diff n WHERE n._what = 'replaced' AND {on}")
    if added or replaced:
        columns = ", ".join(f.name for f in fields)
        extra = ""
        if kind is Kind.EVENTS:
            extra = f"{EVENT_ID_SQL} AS event_id, "
            db.execute(
                f"INSERT INTO {table} (event_id, {columns}, batch) SELECT {extra}{columns}, ? FROM {source_rows} "
                + ("WHERE _what <> 'unchanged'" if source_rows == "_ews_diff" else ""),
                [batch],
            )
        else:
            month = ", month" if kind is Kind.FLOWS else ""
            db.execute(
                f"INSERT INTO {table} ({columns}, batch{month}) SELECT {columns}, ?{month} FROM {source_rows} "
                + ("WHERE _what <> 'unchanged'" if source_rows == "_ews_diff" else ""),
                [batch],
            )
        store.set_data_version(batch)
    at = (now or datetime.now(UTC)).isoformat()
    db.execute(
        "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [batch, table, source, sha256, layout, rows_read, added, replaced, unchanged, skipped, ignored, at],
    )
    if then is not None:
        then(store, batch)
    return IngestReport(
        source=source,
        kind=kind,
        layout=layout,
        batch=batch,
        rows_read=rows_read,
        added=added,
        replaced=replaced,
        unchanged=unchanged,
        ignored=ignored,
        skipped=problems,
        skipped_rows=skipped,
        data_version=store.data_version(),
    )
