"""stats.yaml: atomic writes (readers never see a partial file) and reads."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml

from argo_engine.persistence.files import atomic_write_bytes, load_yaml


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


# libyaml's emitter when available: stats.yaml is rewritten often.
_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_TAG + t for t in ("str", "int", "float", "bool", "null"))
_PLAIN_SCALAR = (True, False)  # written plain, read back by its own type
_resolver: Any = yaml.resolver.Resolver()
# Whether a string may be written plain (it would not read back as a number, date, bool...):
# keys and names repeat in every document.
_str_implicit: dict[str, tuple[bool, bool]] = {}


class _NotPlain(Exception):
    """A value that :func:`_events` does not know: :func:`yaml.dump` writes the document."""


def _float_text(value: float) -> str:
    # SafeRepresenter.represent_float's text, so that both paths write the same bytes.
    if value != value:
        return ".nan"
    if value == math.inf:
        return ".inf"
    if value == -math.inf:
        return "-.inf"
    text = repr(value).lower()
    if "." not in text and "e" in text:
        text = text.replace("e", ".0e", 1)
    return text


def _events(value: Any, out: list[yaml.Event]) -> None:
    kind = type(value)
    if kind is str:
        implicit = _str_implicit.get(value)
        if implicit is None:
            detected = _resolver.resolve(yaml.ScalarNode, value, (True, False))
            implicit = (detected == _STR, True)
            if len(_str_implicit) < 4096:
                _str_implicit[value] = implicit
        out.append(yaml.ScalarEvent(None, _STR, implicit, value))
    elif kind is float:
        out.append(yaml.ScalarEvent(None, _FLOAT, _PLAIN_SCALAR, _float_text(value)))
    elif kind is bool:
        out.append(yaml.ScalarEvent(None, _BOOL, _PLAIN_SCALAR, "true" if value else "false"))
    elif kind is int:
        out.append(yaml.ScalarEvent(None, _INT, _PLAIN_SCALAR, str(value)))
    elif value is None:
        out.append(yaml.ScalarEvent(None, _NULL, _PLAIN_SCALAR, "null"))
    elif kind is dict:
        out.append(yaml.MappingStartEvent(None, None, True, flow_style=False))
        for key, item in value.items():
            _events(key, out)
            _events(item, out)
        out.append(yaml.MappingEndEvent())
    elif kind is list:
        out.append(yaml.SequenceStartEvent(None, None, True, flow_style=False))
        for item in value:
            _events(item, out)
        out.append(yaml.SequenceEndEvent())
    else:
        raise _NotPlain(kind.__name__)


def dump_stats_yaml(document: dict[str, Any]) -> bytes:
    """Serialize a stats document (key order kept; datetimes as ISO 8601 UTC with ``Z``).

    The bytes are those of ``yaml.dump(..., sort_keys=False, allow_unicode=True)``; the
    document's YAML events are built directly, because PyYAML's representer and resolver (in
    Python, even with libyaml) cost several milliseconds per document, on every rewrite.
    """
    plain = _plain(document)
    events: list[yaml.Event] = [yaml.StreamStartEvent(), yaml.DocumentStartEvent(explicit=False)]
    try:
        _events(plain, events)
    except _NotPlain:
        text: str = yaml.dump(plain, Dumper=_DUMPER, sort_keys=False, allow_unicode=True)
        return text.encode()
    events += [yaml.DocumentEndEvent(explicit=False), yaml.StreamEndEvent()]
    emitted: str = yaml.emit(events, Dumper=_DUMPER, allow_unicode=True)
    return emitted.encode()


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
    data = load_yaml(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a stats document")
    return data
