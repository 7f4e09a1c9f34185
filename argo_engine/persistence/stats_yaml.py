"""stats.yaml: atomic writes (readers never see a partial file) and reads."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml

from argo_engine.persistence.files import atomic_write_bytes


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def plain_document(document: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of a stats document in plain YAML types (safe to hand to another thread)."""
    plain: dict[str, Any] = _plain(document)
    return plain


def dump_stats_yaml(document: dict[str, Any]) -> bytes:
    """Serialize a stats document (key order kept; datetimes as ISO 8601 UTC with ``Z``)."""
    # libyaml's emitter when available: stats.yaml is rewritten often.
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text: str = yaml.dump(_plain(document), Dumper=dumper, sort_keys=False, allow_unicode=True)
    return text.encode()


def write_stats_yaml(path: Path, document: dict[str, Any]) -> None:
    """Write ``stats.yaml`` atomically (temp file, fsync, rename).

    Raises:
        PersistenceError: If the file cannot be written.
    """
    # stats.yaml is derived from the journaled rows and rewritten by recovery: atomic, but
    # without the fsyncs that would put a disk flush on the hot path.
    atomic_write_bytes(path, dump_stats_yaml(document), durable=False)


def read_stats_yaml(path: Path) -> dict[str, Any]:
    """Read a ``stats.yaml`` file.

    Raises:
        yaml.YAMLError: If the file is not valid YAML.
        ValueError: If it is not a mapping.
    """
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a stats document")
    return data
