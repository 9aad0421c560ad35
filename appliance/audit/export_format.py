"""The export file's shape, read defensively: what every line may hold, before any check of its meaning.

Standard library only (imported by the offline verifier). An export is untrusted
input: it is read from a regular file only (never a FIFO or a device, which could
block), line by line with a length bound checked before any JSON parsing, and
every line is parsed by :func:`events.loads_strict` (no NaN, no huge numbers, no
duplicate keys, no deep nesting, no lone surrogates). A line that cannot be read
makes the whole file unreadable (ExportFormatError, exit code 4); a readable line
of the wrong shape is a verification problem (exit code 10).
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from . import events

EXPORT_FORMAT = "lfr-audit-export"
EXPORT_VERSION = 1
MAX_LINE_BYTES = 64 * 1024   # the longest genuine line (an entry and its proof) is under 8 KiB
MAX_KEY_FILE_BYTES = 16 * 1024
_TAIL_CHUNK = 64 * 1024

# header field -> (kind, may be null); kinds as in events.py plus "any text" and containers
HEADER_FIELDS = {
    "format": ("text", False), "version": ("count", False), "tool": ("text", False),
    "exported_at": ("time", False), "unit": ("id", False), "log_id": ("log", False),
    "public_key": ("text", False), "key_fingerprint": ("text", False), "first_seq": ("count", False),
    "entry_count": ("count", False), "final_head_no": ("count", False), "since": ("text", True),
    "until": ("text", True), "previous_head": ("object", True), "previous_consistency": ("list", True),
}
LINE_SHAPES = {frozenset({"head", "consistency"}): "head", frozenset({"entry", "proof"}): "entry",
               frozenset({"end"}): "end"}
END_KEYS = frozenset({"entries", "heads"})


class ExportFormatError(ValueError):
    """The file is not a readable audit export (exit code 4)."""


def open_regular(path: Path, what: str = "export"):
    """Open ``path`` for binary reading if it is a regular file; never blocks on a FIFO or device."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ExportFormatError(f"{path}: cannot read the {what}: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ExportFormatError(f"{path}: the {what} is not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def read_small_file(path: Path, limit: int = MAX_KEY_FILE_BYTES, what: str = "key file") -> str:
    """The UTF-8 text of a small regular file (a key or head file), bounded in size."""
    with open_regular(path, what) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ExportFormatError(f"{path}: the {what} is larger than {limit} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ExportFormatError(f"{path}: the {what} is not UTF-8 text ({exc.reason})") from None


class ExportReader:
    """Reads an export line by line: a length bound, strict JSON, one object per line."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.fh = open_regular(self.path)
        self.line_no = 0
        self.pending: dict | None = None

    def __enter__(self) -> "ExportReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.fh.close()

    def _raw(self) -> bytes:
        raw = self.fh.readline(MAX_LINE_BYTES + 1)
        if raw:
            self.line_no += 1
        if len(raw) > MAX_LINE_BYTES:
            raise ExportFormatError(f"{self.path}: line {self.line_no} is longer than {MAX_LINE_BYTES} bytes "
                                    "(no genuine export line is)")
        return raw

    def next(self) -> dict | None:
        """The next line as a JSON object, or None at end of file."""
        if self.pending is not None:
            obj, self.pending = self.pending, None
            return obj
        raw = self._raw()
        if not raw:
            return None
        try:
            obj = events.loads_strict(raw, MAX_LINE_BYTES)
        except ValueError as exc:
            raise ExportFormatError(f"{self.path}: line {self.line_no} is not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise ExportFormatError(f"{self.path}: line {self.line_no} is not a JSON object")
        return obj

    def count_rest(self) -> int:
        """Count the lines left (without parsing them): anything after the end line is refused."""
        extra, tail = 0, b""
        while chunk := self.fh.read(_TAIL_CHUNK):
            extra += chunk.count(b"\n")
            tail = chunk
        return extra + (1 if tail and not tail.endswith(b"\n") else 0)


def line_kind(obj: dict) -> str | None:
    """"head", "entry" or "end" for a line of exactly that shape, else None."""
    return LINE_SHAPES.get(frozenset(obj))


def _field_problem(kind: str, value: object) -> str | None:
    if kind == "object":
        return None if isinstance(value, dict) else "must be an object"
    if kind == "list":
        return None if isinstance(value, list) else "must be a list"
    return events.check_value(kind, value)


def check_header(obj: dict | None, path: Path) -> dict:
    """The header line: exactly the documented fields, each of its kind; ExportFormatError otherwise."""
    if not obj or obj.get("format") != EXPORT_FORMAT:
        raise ExportFormatError(f"{path}: not an audit export (no '{EXPORT_FORMAT}' header)")
    if type(obj.get("version")) is not int or obj["version"] != EXPORT_VERSION:
        raise ExportFormatError(f"{path}: export version {ascii(obj.get('version'))[:20]} unsupported "
                                f"(this verifier reads version {EXPORT_VERSION})")
    if set(obj) != set(HEADER_FIELDS):
        extra, missing = sorted(set(obj) - set(HEADER_FIELDS)), sorted(set(HEADER_FIELDS) - set(obj))
        raise ExportFormatError(f"{path}: export header fields differ from version {EXPORT_VERSION}: "
                                f"unknown {ascii(extra)[:200]}, missing {missing}")
    for name, (kind, nullable) in HEADER_FIELDS.items():
        value = obj[name]
        why = None if value is None and nullable else _field_problem(kind, value)
        if why:
            raise ExportFormatError(f"{path}: export header field {name!r} {why}")
    return obj


def check_end(obj: dict) -> dict | None:
    """The end line's counts, or None when they are not two non-negative integers."""
    end = obj["end"]
    if not isinstance(end, dict) or set(end) != END_KEYS or not all(map(events.is_count, end.values())):
        return None
    return end
