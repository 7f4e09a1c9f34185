"""Write-ahead journals of a run folder: one orjson array per line.

A line of a table's own journal (``.journal/<table>.jsonl``) holds one row in the column order
of the table's :class:`~argo_engine.persistence.schema.TableSchema`, timestamps as integer
microseconds since the Unix epoch (UTC). A line of a shared journal (``.journal/durable.jsonl``:
market data, orders and trades, so that an order and the bars before it cost one fsync) starts
with the table's name, then the row. The journal makes a row durable before the parquet file
that will hold it is written; once that parquet file is durable the journal is truncated.
Readers never look here.

Every line carries a checksum: the JSON array, a tab, then the CRC-32 of the array as 8 hex
digits (orjson escapes tabs inside strings, so the last tab of a line is the separator). A line
whose checksum does not match is damaged, even when it still parses as JSON: a flipped digit
must not become a wrong price. Journals of earlier versions have no checksums and still read
(a file is checked once any of its lines has one).

Reading is forgiving because the file may end mid-write after a crash: a torn last line (no
newline, not parseable) is ignored, and a damaged, unparseable or ill-typed line elsewhere is
skipped, counted and described (which table, which keys when they can still be read), never
raised.
"""

from __future__ import annotations

import contextlib
import os
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from argo_engine.persistence.files import fsync_dir, persistence_error
from argo_engine.persistence.schema import RECOVERY_MARKER, TableSchema

# One orjson call for a whole batch is several times faster than one call per row; the rows are
# then split on the "],[" between them (see encode_rows).
_ROW_GAP = b"],["
_LINE_GAP = b"]\n["

_SEP = b"\t"
_CRC_LEN = 8
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def seal_lines(data: bytes) -> bytes:
    """Append the checksum to each newline-terminated line of ``data``.

    Args:
        data: Complete journal lines (each a JSON array, newline-terminated).

    Returns:
        The lines as written to a journal file.
    """
    if not data:
        return data
    if data.count(b"\n") == 1:  # the common case: one batch line
        body = data[:-1]
        return body + b"\t%08x\n" % zlib.crc32(body)
    return b"".join(line + b"\t%08x\n" % zlib.crc32(line) for line in data[:-1].split(b"\n"))


def unseal_line(line: bytes, *, sealed: bool) -> bytes | None:
    """The JSON of one journal line (without its newline), or None when it is damaged.

    Args:
        line: The line as read.
        sealed: Whether the file carries checksums (then a line without one is damaged).
    """
    body, sep, crc = line.rpartition(_SEP)
    if not sep:
        return None if sealed else line
    if len(crc) != _CRC_LEN:
        return None
    try:
        expected = int(crc, 16)
    except ValueError:
        return None
    return body if zlib.crc32(body) == expected else None


def is_sealed(data: bytes) -> bool:
    """Whether journal contents were written with checksums (by this version or later)."""
    return _SEP in data


# Python types a journal value may have per DuckDB column type (None is always allowed).
_ALLOWED: dict[str, tuple[type, ...]] = {
    "VARCHAR": (str,),
    "DOUBLE": (float, int),
    "BIGINT": (int,),
    "TIMESTAMP": (int,),
}


def encode_rows(rows: Sequence[Sequence[object]]) -> bytes:
    """Encode rows as journal lines, each terminated by a newline.

    Args:
        rows: Rows of scalar values (str, int, float, None) in schema column order.

    Returns:
        The bytes to append to a journal file (empty for no rows).
    """
    if not rows:
        return b""
    body = orjson.dumps(rows)[1:-1]
    # Rows hold scalars only, so outside strings "],[" occurs exactly between rows; any extra
    # occurrence sits inside a string, and then the cheap split would be wrong.
    if body.count(_ROW_GAP) == len(rows) - 1:
        return body.replace(_ROW_GAP, _LINE_GAP) + b"\n"
    return b"".join(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE) for row in rows)


def encode_batch_line(rows: Sequence[Sequence[object]], tag: bytes) -> bytes:
    """One journal line holding a batch of rows of one table: ``["<table>",[row],[row],...]``.

    One orjson call and no scan of its output (cheaper per row than one line per row). A
    batch is all or nothing on reading, which keeps every prefix of a journal a state its
    writer went through; rows hold scalars only, so a batch line (arrays after the tag) is
    told apart from a one-row line (scalars after the tag, :func:`tag_lines`).

    Args:
        rows: Rows of scalar values in schema column order.
        tag: The JSON-encoded tag followed by a comma, e.g. ``b'"orders",'``.

    Returns:
        The line, newline-terminated (empty for no rows).
    """
    if not rows:
        return b""
    return b"[" + tag + orjson.dumps(rows)[1:-1] + b"]\n"


def tag_lines(data: bytes, tag: bytes) -> bytes:
    """Prefix every line of :func:`encode_rows` output with a table tag.

    Args:
        data: Complete journal lines (each a JSON array, newline-terminated).
        tag: The JSON-encoded tag followed by a comma, e.g. ``b'"orders",'``.

    Returns:
        The lines with the tag as each array's first element.
    """
    if not data:
        return data
    # Lines start with "[" and orjson escapes newlines inside strings, so "\n[" only ever
    # starts a line.
    return b"[" + tag + data[1:-1].replace(b"\n[", b"\n[" + tag) + b"\n"


@dataclass(slots=True)
class JournalContents:
    """Rows recovered from a journal file.

    Attributes:
        rows: Valid rows in file order.
        corrupt_lines: Lines that were complete but damaged (checksum), unparseable or did
            not fit the schema.
        torn_tail: Whether the file ended with an incomplete line (ignored).
        dropped: One description per skipped line: where, and what it held as far as it
            can still be read.
    """

    rows: list[list[object]] = field(default_factory=list)
    corrupt_lines: int = 0
    torn_tail: bool = False
    dropped: list[str] = field(default_factory=list)


def _valid(row: object, schema: TableSchema, key_idx: Sequence[int]) -> bool:
    # A row of an earlier version ends before the columns added since (schema.added).
    if not isinstance(row, list) or not schema.min_width <= len(row) <= len(schema.columns):
        return False
    for value, (_, sql_type) in zip(row, schema.columns, strict=False):
        if value is None:
            continue
        # bool is an int subclass, and never a valid column value.
        if isinstance(value, bool) or not isinstance(value, _ALLOWED[sql_type]):
            return False
    return all(row[i] is not None for i in key_idx)


def _completed(rows: list[list[object]], schema: TableSchema) -> list[list[object]]:
    """Valid ``rows``, each extended to the schema's width (rows of earlier versions)."""
    width = len(schema.columns)
    for row in rows:
        if len(row) != width:
            schema.complete(row)
    return rows


def read_tagged_journal(
    path: Path, schemas: dict[str, TableSchema], dropped: list[str] | None = None
) -> tuple[dict[str, list[list[object]]], int, bool]:
    """Read a shared journal: lines tagged with their table.

    A line holds a batch of rows (:func:`encode_batch_line`) or one row (:func:`tag_lines`,
    what earlier versions wrote).

    Args:
        path: Journal file; a missing file reads as empty.
        schemas: The tables that may appear, by name.
        dropped: Receives a description of each corrupt line when given.

    Returns:
        The valid rows per table in file order (without the tag), the number of corrupt
        lines, and whether the file ended with a torn line.

    Raises:
        PersistenceError: If the file exists but cannot be read.
    """
    rows: dict[str, list[list[object]]] = {name: [] for name in schemas}
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return rows, 0, False
    except OSError as exc:
        raise persistence_error(exc, path) from exc
    keys = {n: [s.column_names.index(k) for k in s.key] for n, s in schemas.items()}

    def take(line: object) -> bool:
        if not isinstance(line, list) or len(line) < 2 or not isinstance(line[0], str):
            return False
        schema = schemas.get(line[0])
        if schema is None:
            return False
        key_idx = keys[line[0]]
        if isinstance(line[1], list):
            # A batch line (encode_batch_line): all its rows, or none.
            batch = line[1:]
            if not all(_valid(row, schema, key_idx) for row in batch):
                return False
            rows[line[0]].extend(_completed(batch, schema))
            return True
        if not _valid(line[1:], schema, key_idx):
            return False
        rows[line[0]].append(schema.complete(line[1:]))
        return True

    complete, _, tail = data.rpartition(b"\n")
    sealed = is_sealed(data)
    parsed: list[object] | None = None
    if complete and not sealed:
        # Fast path: a clean journal of an earlier version parses in one call.
        with contextlib.suppress(orjson.JSONDecodeError):
            parsed = orjson.loads(b"[" + complete.replace(b"\n", b",") + b"]")
    corrupt = 0
    if parsed is not None:
        for number, line in enumerate(parsed, 1):
            if not take(line):
                corrupt += 1
                _note(dropped, path, number, "did not fit its table", line, schemas)
    else:
        for number, raw in enumerate(complete.split(b"\n") if complete else [], 1):
            body = unseal_line(raw, sealed=sealed)
            try:
                line = orjson.loads(raw.rpartition(_SEP)[0] or raw if body is None else body)
            except orjson.JSONDecodeError:
                line = None
            if body is None or line is None:
                corrupt += 1
                why = "checksum mismatch" if body is None else "unparseable"
                _note(dropped, path, number, why, line, schemas, raw)
            elif not take(line):
                corrupt += 1
                _note(dropped, path, number, "did not fit its table", line, schemas, raw)
    torn = False
    if tail:
        # Only a tail that is a whole valid row (the newline alone was lost) is kept.
        body = unseal_line(tail, sealed=sealed)
        try:
            torn = body is None or not take(orjson.loads(body))
        except orjson.JSONDecodeError:
            torn = True
    return rows, corrupt, torn


def _note(
    dropped: list[str] | None,
    path: Path,
    number: int,
    why: str,
    line: object,
    schemas: dict[str, TableSchema],
    raw: bytes = b"",
) -> None:
    """Describe a dropped journal line: its table and row keys when they can still be read."""
    if dropped is None:
        return
    what = _describe(line, schemas) if line is not None else None
    if what is None:
        excerpt = raw[:80].decode("utf-8", "replace")
        what = f"{len(raw)} unreadable bytes starting {excerpt!r}"
    dropped.append(f"{path.name} line {number} ({why}): {what}")


def _describe(line: object, schemas: dict[str, TableSchema]) -> str | None:
    if not isinstance(line, list) or not line:
        return None
    if isinstance(line[0], str) and line[0] in schemas:
        name, rows = line[0], line[1:]
        if rows and not isinstance(rows[0], list):
            rows = [rows]
    elif len(schemas) == 1:
        (name,) = schemas
        rows = [line]
    else:
        return None
    schema = schemas[name]
    keys = []
    for row in rows:
        if not isinstance(row, list):
            return None
        values = []
        for k in schema.key:
            i = schema.column_names.index(k)
            value = row[i] if i < len(row) else None
            if dict(schema.columns)[k] == "TIMESTAMP" and isinstance(value, int):
                with contextlib.suppress(OverflowError, ValueError):
                    value = (_EPOCH + timedelta(microseconds=value)).isoformat()
            values.append(f"{k}={value}")
        keys.append(" ".join(values))
    return f"{len(rows)} {name} row(s): " + "; ".join(keys)


def read_journal(path: Path, schema: TableSchema) -> JournalContents:
    """Read every valid row of a journal file; missing files read as empty.

    Args:
        path: Journal file.
        schema: Table the rows belong to (column count, types and key are checked).

    Returns:
        The valid rows and counts of what was skipped.

    Raises:
        PersistenceError: If the file exists but cannot be read.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return JournalContents()
    except OSError as exc:
        raise persistence_error(exc, path) from exc
    out = JournalContents()
    if not data:
        return out
    key_idx = [schema.column_names.index(k) for k in schema.key]
    complete, _, tail = data.rpartition(b"\n")
    sealed = is_sealed(data)
    schemas = {schema.name: schema}
    # Fast path: a clean journal of an earlier version parses in one call.
    if complete and not tail and not sealed:
        try:
            rows = orjson.loads(b"[" + complete.replace(b"\n", b",") + b"]")
        except orjson.JSONDecodeError:
            pass
        else:
            if all(_valid(row, schema, key_idx) for row in rows):
                out.rows = _completed(rows, schema)
                return out
    lines = complete.split(b"\n") if complete else []
    for number, line in enumerate(lines, 1):
        body = unseal_line(line, sealed=sealed)
        try:
            row = orjson.loads(line.rpartition(_SEP)[0] or line if body is None else body)
        except orjson.JSONDecodeError:
            row = None
        if body is None or row is None:
            out.corrupt_lines += 1
            why = "checksum mismatch" if body is None else "unparseable"
            _note(out.dropped, path, number, why, row, schemas, line)
        elif _valid(row, schema, key_idx):
            out.rows.append(schema.complete(row))
        else:
            out.corrupt_lines += 1
            _note(out.dropped, path, number, "did not fit its table", row, schemas, line)
    if tail:
        # A crash may cut the last write anywhere; only a tail that is a whole valid row (the
        # newline alone was lost) is kept.
        body = unseal_line(tail, sealed=sealed)
        try:
            row = None if body is None else orjson.loads(body)
        except orjson.JSONDecodeError:
            row = None
        if row is not None and _valid(row, schema, key_idx):
            out.rows.append(schema.complete(row))
        else:
            out.torn_tail = True
    return out


class Journal:
    """Append-only journal file of one table, opened lazily on the first write.

    One thread writes; another may :meth:`sync` or :meth:`truncate_if_unchanged` at the same
    time (the background flusher of :class:`~argo_engine.persistence.writers.RunWriters`).
    Writes are counted: a sync makes durable every write counted before it started, and a
    conditional truncation never drops a line written after the point it was asked about.

    Args:
        path: ``.journal/<table>.jsonl`` inside a run folder.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._lock = threading.Lock()
        # Writes done, and writes known durable: a sync is due while they differ.
        self._written = 0
        self._synced = 0
        # The generation at the last truncation: nothing to empty while it is current. A file
        # left by an earlier process may hold lines, so no generation is known empty at first.
        self._emptied_at = -1

    @property
    def unsynced(self) -> bool:
        """Whether lines were written that no fsync has covered yet."""
        return self._synced < self._written

    @property
    def generation(self) -> int:
        """How many writes this journal has taken (for :meth:`truncate_if_unchanged`)."""
        return self._written

    def _open(self) -> int:
        if self._fd is None:
            created = not self.path.exists()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if created:
                # The directory entry must be durable too, or a crash can lose the whole file.
                fsync_dir(self.path.parent)
        return self._fd

    def write(self, data: bytes) -> None:
        """Append complete lines (see :func:`encode_rows`) without waiting for the disk.

        Raises:
            PersistenceError: On disk full, permission or other OS errors.
        """
        if not data:
            return
        data = seal_lines(data)
        with self._lock:
            try:
                fd = self._open()
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            except OSError as exc:
                raise persistence_error(exc, self.path) from exc
            self._written += 1

    def sync(self) -> None:
        """Make every written line durable (fsync); cheap when nothing was written.

        Raises:
            PersistenceError: On OS errors.
        """
        target = self._written
        fd = self._fd
        if self._synced >= target or fd is None:
            return
        try:
            os.fsync(fd)
        except OSError as exc:
            raise persistence_error(exc, self.path) from exc
        # Every write counted in ``target`` had returned before the fsync started.
        self._synced = max(self._synced, target)

    def truncate(self) -> None:
        """Empty the file once every row in it is durable elsewhere (in the parquet file).

        Raises:
            PersistenceError: On OS errors.
        """
        with self._lock:
            self._truncate()

    def truncate_if_unchanged(self, generation: int) -> bool:
        """Empty the file if nothing was written since :attr:`generation` was ``generation``.

        Used when the rows up to that point are durable elsewhere while later rows may have
        been appended meanwhile: those must stay.

        Returns:
            Whether the file was emptied.

        Raises:
            PersistenceError: On OS errors.
        """
        with self._lock:
            if self._written != generation:
                return False
            if self._emptied_at != generation:
                self._truncate()
            return True

    def _truncate(self) -> None:
        try:
            if self._fd is not None:
                os.ftruncate(self._fd, 0)
                os.fsync(self._fd)
            elif self.path.exists():
                fd = os.open(self.path, os.O_WRONLY)
                try:
                    os.ftruncate(fd, 0)
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise persistence_error(exc, self.path) from exc
        self._synced = self._written
        self._emptied_at = self._written

    def remove(self) -> None:
        """Close and delete the file once its rows are durable elsewhere.

        The next write creates the file again.

        Raises:
            PersistenceError: On OS errors.
        """
        self.close()
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise persistence_error(exc, self.path) from exc
        self._emptied_at = self._written

    def close(self) -> None:
        """Close the file descriptor (idempotent); unsynced lines stay in the OS cache."""
        with self._lock:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._synced = self._written


def journal_holds_data(journal_dir: Path) -> bool:
    """Whether a run folder's journal directory holds what its files do not hold yet.

    Journals are emptied once their rows are in durable parquet files (and removed when the
    folder is final), so rows left in one mean a crash. The recovery marker means a reopen
    that moved them into the parquet files but did not get to save the state reconciled with
    them (a broker that could not be asked about PENDING orders, say).

    Args:
        journal_dir: The ``.journal`` directory of a run folder.

    Returns:
        True when the folder needs recovery.
    """
    if not journal_dir.exists():
        return False
    if (journal_dir / RECOVERY_MARKER).exists():
        return True
    return any(p.stat().st_size > 0 for p in journal_dir.glob("*.jsonl"))
