"""Append row groups to a parquet file so that every earlier version is a byte prefix of it.

Why: DuckDB's ``read_parquet(path)`` reads a file's footer through one open of the path and
its column chunks through later opens, at the offsets that footer gave. If the writer replaces
the file in between with a freshly encoded version, those offsets point into different bytes
and the read fails (or worse). When every new version keeps the old version's column chunks
byte-identical at the same offsets (old data, then the new row groups, then a new footer), a
reader that mixes two versions still reads exactly the rows of the older one.

The footer is Thrift (compact protocol). The Apache ``thrift`` library does the encoding; this
module walks the values generically (no generated classes), shifts the file offsets of the new
row groups by where their bytes land, and re-assembles the footer. Field ids are those of the
Parquet format specification (``FileMetaData``, ``RowGroup``, ``ColumnChunk``,
``ColumnMetaData``).

Checksums: DuckDB writes no page checksums (its ``COPY`` has no option for them), and bytes
damaged inside a page can still decode, as wrong rows. So every file this project writes
carries a CRC-32 of its bytes in its own footer (key-value metadata ``argo.crc32``, readers
ignore it): one of the data bytes (everything before the footer) and one of the footer
without its key-value metadata. It is atomic with the file (no second file to keep in step
across a crash), and an append extends the CRC of the bytes it keeps instead of reading them
again (:func:`append_file`). :func:`check_file` recomputes both.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import zlib
from pathlib import Path
from typing import Any

from thrift.protocol.TCompactProtocol import TCompactProtocol
from thrift.Thrift import TType
from thrift.transport.TTransport import TMemoryBuffer

MAGIC = b"PAR1"

# copy_file_range refusals that mean "not between these files", not "I/O failed".
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EPERM}

# FileMetaData fields.
_FMD_NUM_ROWS = 3
_FMD_ROW_GROUPS = 4
_FMD_SCHEMA = 2
_FMD_KEY_VALUE = 5
# RowGroup fields.
_RG_COLUMNS = 1
_RG_FILE_OFFSET = 5
_RG_ORDINAL = 7
# ColumnChunk fields: file_offset, meta_data.
_CC_FILE_OFFSET = 2
_CC_META = 3
# ColumnMetaData fields: data_page_offset, index_page_offset, dictionary_page_offset,
# bloom_filter_offset.
_CMD_OFFSETS = (9, 10, 11, 14)
# ColumnChunk fields of page indexes, whose contents hold absolute offsets themselves.
_CC_PAGE_INDEX = (4, 6)

# One decoded Thrift value: a struct is a list of (field id, type, value); a list or set is
# (element type, values); a map is (key type, value type, pairs).
Value = Any
Field = tuple[int, int, Value]


class ParquetAppendError(Exception):
    """The files cannot be combined by appending (the caller rewrites the file instead)."""


def _read_value(proto: TCompactProtocol, ttype: int) -> Value:
    if ttype == TType.STRUCT:
        return _read_struct(proto)
    if ttype in (TType.LIST, TType.SET):
        etype, size = proto.readCollectionBegin()
        items = [_read_value(proto, etype) for _ in range(size)]
        proto.readCollectionEnd()
        return (etype, items)
    if ttype == TType.MAP:
        ktype, vtype, size = proto.readMapBegin()
        pairs = [(_read_value(proto, ktype), _read_value(proto, vtype)) for _ in range(size)]
        proto.readCollectionEnd()
        return (ktype, vtype, pairs)
    reader = _READERS.get(ttype)
    if reader is None:
        raise ParquetAppendError(f"unexpected thrift type {ttype} in a parquet footer")
    return reader(proto)


def _read_struct(proto: TCompactProtocol) -> list[Field]:
    proto.readStructBegin()
    fields: list[Field] = []
    while True:
        _, ftype, fid = proto.readFieldBegin()
        if ftype == TType.STOP:
            break
        fields.append((fid, ftype, _read_value(proto, ftype)))
        proto.readFieldEnd()
    proto.readStructEnd()
    return fields


def _write_value(proto: TCompactProtocol, ttype: int, value: Value) -> None:
    if ttype == TType.STRUCT:
        _write_struct(proto, value)
    elif ttype in (TType.LIST, TType.SET):
        etype, items = value
        proto.writeCollectionBegin(etype, len(items))
        for item in items:
            _write_value(proto, etype, item)
        proto.writeCollectionEnd()
    elif ttype == TType.MAP:
        ktype, vtype, pairs = value
        proto.writeMapBegin(ktype, vtype, len(pairs))
        for k, v in pairs:
            _write_value(proto, ktype, k)
            _write_value(proto, vtype, v)
        proto.writeCollectionEnd()
    else:
        _WRITERS[ttype](proto, value)


def _write_struct(proto: TCompactProtocol, fields: list[Field]) -> None:
    proto.writeStructBegin("s")
    for fid, ftype, value in fields:
        proto.writeFieldBegin("f", ftype, fid)
        _write_value(proto, ftype, value)
        proto.writeFieldEnd()
    proto.writeFieldStop()
    proto.writeStructEnd()


_READERS = {
    TType.BOOL: TCompactProtocol.readBool,
    TType.BYTE: TCompactProtocol.readByte,
    TType.I16: TCompactProtocol.readI16,
    TType.I32: TCompactProtocol.readI32,
    TType.I64: TCompactProtocol.readI64,
    TType.DOUBLE: TCompactProtocol.readDouble,
    TType.STRING: TCompactProtocol.readBinary,
}
_WRITERS = {
    TType.BOOL: TCompactProtocol.writeBool,
    TType.BYTE: TCompactProtocol.writeByte,
    TType.I16: TCompactProtocol.writeI16,
    TType.I32: TCompactProtocol.writeI32,
    TType.I64: TCompactProtocol.writeI64,
    TType.DOUBLE: TCompactProtocol.writeDouble,
    TType.STRING: TCompactProtocol.writeBinary,
}


def decode_struct(data: bytes) -> list[Field]:
    """Decode one compact-protocol Thrift struct into (field id, type, value) triples."""
    proto = TCompactProtocol(TMemoryBuffer(data))
    try:
        return _read_struct(proto)
    except ParquetAppendError:
        raise
    except Exception as exc:  # the thrift library raises assorted errors on bad input
        raise ParquetAppendError(f"unreadable parquet footer: {exc}") from exc


def encode_struct(fields: list[Field]) -> bytes:
    """Encode (field id, type, value) triples as one compact-protocol Thrift struct."""
    buffer = TMemoryBuffer()
    _write_struct(TCompactProtocol(buffer), fields)
    return bytes(buffer.getvalue())


@dataclasses.dataclass(frozen=True, slots=True)
class Footer:
    """What an append needs to know about a parquet file written by this module or DuckDB.

    Attributes:
        head: The FileMetaData fields other than num_rows and row_groups, in field order.
        num_rows: Rows in the file.
        row_groups: Each RowGroup struct, already encoded (re-encoding them all on every append
            would cost time proportional to the file's history).
        data_end: Offset where the footer starts: bytes before it are kept verbatim.
        size: File size.
    """

    head: tuple[Field, ...]
    num_rows: int
    row_groups: tuple[bytes, ...]
    data_end: int
    size: int

    @property
    def schema(self) -> Value:
        """The encoded-schema field value (compared to decide whether files can be combined)."""
        for fid, _, value in self.head:
            if fid == _FMD_SCHEMA:
                return value
        raise ParquetAppendError("parquet footer without a schema")


def read_footer(path: Path) -> Footer:
    """Parse the footer of ``path``.

    Raises:
        ParquetAppendError: If the file is not a parquet file this module understands.
        OSError: If the file cannot be read.
    """
    fields, data_end, size = _read_raw_footer(path)
    return _footer_from(fields, data_end, size)


def _read_raw_footer(path: Path) -> tuple[list[Field], int, int]:
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size < 12:
            raise ParquetAppendError(f"{path} is too short to be a parquet file")
        handle.seek(size - 8)
        tail = handle.read(8)
        if tail[4:] != MAGIC:
            raise ParquetAppendError(f"{path} does not end with the parquet magic")
        length = int.from_bytes(tail[:4], "little")
        data_end = size - 8 - length
        if data_end < 4:
            raise ParquetAppendError(f"{path} has an impossible footer length {length}")
        handle.seek(data_end)
        raw = handle.read(length)
    return decode_struct(raw), data_end, size


def _footer_from(fields: list[Field], data_end: int, size: int) -> Footer:
    head: list[Field] = []
    num_rows = 0
    row_groups: tuple[bytes, ...] = ()
    for fid, ftype, value in fields:
        if fid == _FMD_NUM_ROWS:
            num_rows = int(value)
        elif fid == _FMD_ROW_GROUPS:
            row_groups = tuple(encode_struct(rg) for rg in value[1])
        else:
            head.append((fid, ftype, value))
    return Footer(tuple(head), num_rows, row_groups, data_end, size)


def encode_footer(footer: Footer) -> bytes:
    """The footer bytes of ``footer``: Thrift FileMetaData, its length and the magic."""
    buffer = TMemoryBuffer()
    proto = TCompactProtocol(buffer)
    proto.writeStructBegin("FileMetaData")
    fields = sorted(
        [*footer.head, (_FMD_NUM_ROWS, TType.I64, footer.num_rows), (_FMD_ROW_GROUPS, 0, None)]
    )
    for fid, ftype, value in fields:
        if fid == _FMD_ROW_GROUPS:
            proto.writeFieldBegin("row_groups", TType.LIST, fid)
            proto.writeCollectionBegin(TType.STRUCT, len(footer.row_groups))
            # Already-encoded structs are copied as they are: a compact-protocol struct carries
            # its own field-id context, so its bytes do not depend on what precedes them.
            for encoded in footer.row_groups:
                buffer.write(encoded)
            proto.writeCollectionEnd()
        else:
            proto.writeFieldBegin("f", ftype, fid)
            _write_value(proto, ftype, value)
        proto.writeFieldEnd()
    proto.writeFieldStop()
    proto.writeStructEnd()
    body = bytes(buffer.getvalue())
    return body + len(body).to_bytes(4, "little") + MAGIC


def _shift(fields: list[Field], ids: tuple[int, ...], by: int) -> list[Field]:
    return [(fid, t, v + by if fid in ids and t == TType.I64 else v) for fid, t, v in fields]


def _shift_row_group(fields: list[Field], by: int, ordinal: int) -> bytes:
    out: list[Field] = []
    for fid, ftype, value in fields:
        if fid == _RG_COLUMNS:
            chunks = []
            for chunk in value[1]:
                if any(f in _CC_PAGE_INDEX for f, _, _ in chunk):
                    # Page indexes store absolute page offsets inside their own structs.
                    raise ParquetAppendError("page indexes are not supported by append")
                shifted = _shift(chunk, (_CC_FILE_OFFSET,), by)
                chunks.append(
                    [
                        (f, t, _shift(v, _CMD_OFFSETS, by) if f == _CC_META else v)
                        for f, t, v in shifted
                    ]
                )
            out.append((fid, ftype, (value[0], chunks)))
        elif fid == _RG_FILE_OFFSET:
            out.append((fid, ftype, value + by))
        elif fid == _RG_ORDINAL:
            out.append((fid, ftype, ordinal))
        else:
            out.append((fid, ftype, value))
    return encode_struct(out)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _copy_range(source: Path, dest: int, start: int, length: int) -> None:
    """Append ``length`` bytes of ``source`` from ``start`` to ``dest`` (at its position)."""
    with source.open("rb") as src:
        fd = src.fileno()
        offset, end = start, start + length
        kernel = hasattr(os, "copy_file_range")
        while offset < end:
            if kernel:
                try:
                    # In-kernel copy (a reflink where the filesystem has them).
                    copied = os.copy_file_range(fd, dest, end - offset, offset)
                except OSError as exc:
                    if exc.errno not in _NO_KERNEL_COPY:
                        raise
                    kernel = False
                    continue
            else:
                chunk = os.pread(fd, min(end - offset, 1 << 20), offset)
                _write_all(dest, chunk)
                copied = len(chunk)
            if copied == 0:
                raise ParquetAppendError(f"{source} shrank while being copied")
            offset += copied


def data_bytes(path: Path) -> int:
    """Bytes of row-group data in a parquet file: its size without the magics and footer.

    Raises:
        ParquetAppendError: If the file does not end like a parquet file.
        OSError: If it cannot be read.
    """
    with path.open("rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size < 2 * len(MAGIC) + 4:
            raise ParquetAppendError(f"{path} is too short for a parquet file")
        fh.seek(size - 4 - len(MAGIC))
        tail = fh.read(4 + len(MAGIC))
    if tail[4:] != MAGIC:
        raise ParquetAppendError(f"{path} does not end with the parquet magic")
    return size - 2 * len(MAGIC) - 4 - int.from_bytes(tail[:4], "little")


def append_file(
    current: Path, footer: Footer, part: Path, out_fd: int, *, supersede: bool = False
) -> Footer:
    """Write ``current`` plus the row groups of ``part`` to ``out_fd`` (an empty file).

    The first ``footer.data_end`` bytes of ``current`` are copied verbatim, so offsets into the
    old version stay valid in the new one.

    Args:
        current: The file now at the target path.
        footer: Its footer (from :func:`read_footer` or an earlier append).
        part: A parquet file holding the new rows, with the same schema.
        out_fd: Descriptor of the new file, positioned at 0.
        supersede: ``part`` holds the whole new table: the new footer lists only its row
            groups, and the old ones stay behind as unreferenced bytes (so the old version
            is still a prefix of the new one, at the cost of that space).

    Returns:
        The footer of the new file.

    Raises:
        ParquetAppendError: If ``part`` has another schema or features an append cannot shift.
        OSError: If a file cannot be read or written.
    """
    fields, part_end, _ = _read_raw_footer(part)
    part_rows = 0
    part_groups: list[list[Field]] = []
    part_schema: Value = None
    for fid, _, value in fields:
        if fid == _FMD_NUM_ROWS:
            part_rows = int(value)
        elif fid == _FMD_ROW_GROUPS:
            part_groups = value[1]
        elif fid == _FMD_SCHEMA:
            part_schema = value
    if part_schema != footer.schema:
        raise ParquetAppendError("the new rows have another parquet schema")
    kept_crc = data_checksum(footer)
    if kept_crc is None:
        kept_crc = _crc_range(current, 0, footer.data_end)
    shift = footer.data_end - len(MAGIC)
    kept = () if supersede else footer.row_groups
    groups = [_shift_row_group(rg, shift, len(kept) + i) for i, rg in enumerate(part_groups)]
    _copy_range(current, out_fd, 0, footer.data_end)
    _copy_range(part, out_fd, len(MAGIC), part_end - len(MAGIC))
    merged = Footer(
        head=footer.head,
        num_rows=(0 if supersede else footer.num_rows) + part_rows,
        row_groups=kept + tuple(groups),
        data_end=footer.data_end + part_end - len(MAGIC),
        size=0,
    )
    # The new data bytes are the kept ones, then the part's: its CRC extends theirs.
    merged = with_checksum(merged, _crc_range(part, len(MAGIC), part_end - len(MAGIC), kept_crc))
    tail = encode_footer(merged)
    _write_all(out_fd, tail)
    return dataclasses.replace(merged, size=merged.data_end + len(tail))


CHECKSUM_KEY = b"argo.crc32"


def _crc_range(path: Path, start: int, length: int, crc: int = 0) -> int:
    """CRC-32 of ``length`` bytes of ``path`` from ``start``, continuing ``crc``."""
    with path.open("rb") as handle:
        fd = handle.fileno()
        offset, end = start, start + length
        while offset < end:
            chunk = os.pread(fd, min(end - offset, 1 << 20), offset)
            if not chunk:
                raise ParquetAppendError(f"{path} ends before byte {end}")
            crc = zlib.crc32(chunk, crc)
            offset += len(chunk)
    return crc


def _checksum_value(footer: Footer) -> bytes | None:
    for fid, _, value in footer.head:
        if fid == _FMD_KEY_VALUE:
            for pair in value[1]:
                fields = {f: v for f, _, v in pair}
                if fields.get(1) == CHECKSUM_KEY:
                    found = fields.get(2)
                    return found if isinstance(found, bytes) else None
    return None


def data_checksum(footer: Footer) -> int | None:
    """The CRC-32 of the data bytes that ``footer`` records, or None (none recorded)."""
    value = _checksum_value(footer)
    if value is None:
        return None
    try:
        return int(value.split(b":")[0], 16)
    except ValueError:
        return None


def footer_checksum(footer: Footer) -> int:
    """CRC-32 of the footer as encoded without its key-value metadata."""
    bare = dataclasses.replace(footer, head=tuple(f for f in footer.head if f[0] != _FMD_KEY_VALUE))
    return zlib.crc32(encode_footer(bare))


def with_checksum(footer: Footer, data_crc: int) -> Footer:
    """``footer`` recording ``data_crc`` and its own checksum (other key-values kept)."""
    value = f"{data_crc:08x}:{footer_checksum(footer):08x}".encode()
    entry = [(1, TType.STRING, CHECKSUM_KEY), (2, TType.STRING, value)]
    pairs: list[Any] = []
    head: list[Field] = []
    for fid, ftype, field_value in footer.head:
        if fid == _FMD_KEY_VALUE:
            pairs = [p for p in field_value[1] if {f: v for f, _, v in p}.get(1) != CHECKSUM_KEY]
        else:
            head.append((fid, ftype, field_value))
    head.append((_FMD_KEY_VALUE, TType.LIST, (TType.STRUCT, [*pairs, entry])))
    return dataclasses.replace(footer, head=tuple(sorted(head, key=lambda f: f[0])))


def seal_file(path: Path) -> Footer:
    """Record the checksums of a freshly written parquet file in its footer (in place).

    For a file another writer produced (a DuckDB ``COPY``, pyarrow): the data bytes are read
    once, and the footer is written again with the checksum entry.

    Returns:
        The file's new footer.

    Raises:
        ParquetAppendError: If the file is not a parquet file this module understands.
        OSError: If it cannot be read or written.
    """
    footer = read_footer(path)
    sealed = with_checksum(footer, _crc_range(path, 0, footer.data_end))
    tail = encode_footer(sealed)
    with path.open("r+b") as handle:
        handle.seek(footer.data_end)
        handle.write(tail)
        handle.truncate()
    return dataclasses.replace(sealed, size=footer.data_end + len(tail))


def check_file(path: Path) -> str | None:
    """Compare a parquet file with the checksums its footer records.

    Returns:
        What does not match (the data bytes or the footer), or None when both match or the
        file records none (written by an earlier version, or by another tool).

    Raises:
        ParquetAppendError: If the footer cannot be read.
        OSError: If the file cannot be read.
    """
    footer = read_footer(path)
    value = _checksum_value(footer)
    if value is None:
        return None
    try:
        data_crc, footer_crc = (int(part, 16) for part in value.split(b":"))
    except ValueError:
        return f"unreadable checksum entry {value!r}"
    if footer_checksum(footer) != footer_crc:
        return "footer does not match its checksum"
    if _crc_range(path, 0, footer.data_end) != data_crc:
        return "data bytes do not match their checksum (CRC-32)"
    return None


__all__ = [
    "CHECKSUM_KEY",
    "MAGIC",
    "Footer",
    "ParquetAppendError",
    "append_file",
    "check_file",
    "data_bytes",
    "data_checksum",
    "decode_struct",
    "encode_footer",
    "encode_struct",
    "footer_checksum",
    "read_footer",
    "seal_file",
    "with_checksum",
]
