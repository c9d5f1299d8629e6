"""JSON reading and writing that never holds a store's big base64 matrix as one string.

A nano-vectordb file of 200,000 rows of dimension 1024 carries a ~1.1 GB base64
string. ``json.load`` would hold the file text *and* that string at once. Here the
file is memory-mapped, the top-level matrix string is located by its byte span and
cut out before the rest is parsed, and the base64's shape is checked and its size
measured in place (a migration never needs the old vectors, only their count).
"""

from __future__ import annotations

import binascii
import contextlib
import json
import mmap
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from vllm_embed._errors import StoreFormatError

__all__ = ["Base64Span", "iter_f32_rows_b64", "load_json", "load_json_with_span"]

_SENTINEL = "\x00vllm-embed:cut-span\x00"
_CHUNK = 8 * 1024 * 1024  # bytes per validation / encoding step (a multiple of 4 and 3)
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


@dataclass(frozen=True)
class Base64Span:
    """Where a top-level base64 string sits inside a file (content between the quotes)."""

    path: Path
    start: int
    end: int

    @property
    def decoded_size(self) -> int:
        """Number of bytes the base64 decodes to (computed without decoding)."""
        length = self.end - self.start
        if length == 0:
            return 0
        with open(self.path, "rb") as f:
            f.seek(self.end - 2)
            tail = f.read(2)
        return length // 4 * 3 - tail.count(b"=")


def _corrupt(path: Path, exc: json.JSONDecodeError | UnicodeDecodeError) -> StoreFormatError:
    where = (
        f" at line {exc.lineno}, column {exc.colno}"
        if isinstance(exc, json.JSONDecodeError)
        else ""
    )
    return StoreFormatError(
        f"{path} is not valid JSON{where} ({exc.__class__.__name__}: "
        f"{getattr(exc, 'msg', exc)}). The file may be truncated or was written by a crashed "
        "process: restore it from a backup; nothing was written."
    )


def load_json(path: Path) -> Any:
    """Parse a whole (small) JSON file, with a `StoreFormatError` that says where it broke."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _corrupt(path, exc) from exc
    except OSError as exc:
        raise StoreFormatError(f"cannot read {path}: {exc.strerror or exc}") from exc


def load_json_with_span(
    path: Path,
    key: str,
    *,
    validate: bool = True,
    expected_length: Callable[[dict[str, Any]], int | None] | None = None,
) -> tuple[Any, Base64Span | None]:
    """Parse ``path``; if its top-level object has a string ``key``, return its span instead.

    Returns ``(document, span)``. When a span is returned, ``document[key]`` is
    ``None`` and (unless ``validate`` is false) the string is checked to have the shape
    of base64 (length, padding) without being loaded.
    Falls back to a plain parse (span ``None``) when the key is absent or not a string.

    ``expected_length``: given the members before ``key`` (parsed), the length the
    string must have (nano-vectordb: rows x dimension x 4 bytes in base64), or None.
    When the closing quote is exactly there and the rest parses, the string is never
    read (a 1 GB matrix); otherwise the string is scanned for its end as usual.
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise StoreFormatError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if size == 0:
        raise StoreFormatError(f"{path} is empty: restore it from a backup; nothing was written.")
    if expected_length is not None:
        known = _span_at_expected_end(path, key, expected_length)
        if known is not None:
            document, span, valid = known
            if validate and not valid:
                raise _not_base64(span)
            return document, span
    found = _find_top_level_string(path, key)
    if found is None:
        return load_json(path), None
    candidate, valid = found
    document, parsed = _parse_without(path, candidate, key)
    if parsed is not None and validate and not valid:
        raise _not_base64(parsed)
    return document, parsed


def _span_at_expected_end(
    path: Path, key: str, expected_length: Callable[[dict[str, Any]], int | None]
) -> tuple[dict[str, Any], Base64Span, bool] | None:
    """(document, span, base64-shaped) when ``key``'s string ends where the members
    before it say, or None (the caller then scans for the end)."""
    pattern = re.compile(rb'"' + re.escape(key.encode()) + rb'"\s*:\s*"')
    with open(path, "rb") as f:
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            try:
                match = pattern.search(mm)
                head = mm[: match.start()] if match is not None else b""
            finally:
                _drop_pages(mm)
        if match is None:
            return None
        head = head.rstrip()
        try:
            if head == b"{":
                before: Any = {}
            elif head.endswith(b","):
                before = json.loads(head[:-1] + b"}")
            else:
                return None
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None  # the key was not a top-level member: scan
        if not isinstance(before, dict) or key in before:
            return None
        length = expected_length(before)
        if length is None:
            return None
        start = match.end()
        end = start + length
        f.seek(max(start, end - 3))
        edge = f.read(end + 1 - max(start, end - 3))
        if not edge.endswith(b'"') or b'"' in edge[:-1]:
            return None
        rest = f.read().strip()
    try:
        if rest == b"}":
            after: Any = {}
        elif rest.startswith(b","):
            after = json.loads(b"{" + rest[1:])
        else:
            return None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(after, dict) or key in after or set(before) & set(after):
        return None
    shaped = _base64_shaped(length, edge[:-1])
    return {**before, key: None, **after}, Base64Span(path, start, end), shaped


def _find_top_level_string(path: Path, key: str) -> tuple[Base64Span, bool] | None:
    """The longest ``"key": "<no quotes or backslashes>"`` candidate and whether it is base64.

    The key is searched through a memory map, but a candidate string is scanned with
    plain reads, once, finding its closing quote and checking its alphabet in the same
    pass (mapping a 1 GB matrix page by page cost more than reading it), and the search
    resumes after it instead of running the pattern over the whole string.
    """
    pattern = re.compile(rb'"' + re.escape(key.encode()) + rb'"\s*:\s*"')
    best: tuple[Base64Span, bool] | None = None
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        try:
            position = 0
            while (match := pattern.search(mm, position)) is not None:
                start = match.end()
                end, valid = _scan_string(f, start)
                if end < 0:
                    break
                if best is None or end - start > best[0].end - best[0].start:
                    best = (Base64Span(path, start, end), valid)
                position = end + 1
        finally:
            _drop_pages(mm)
    return best


def _scan_string(f: IO[bytes], start: int) -> tuple[int, bool]:
    """(offset of the quote closing the string that starts at ``start``, or -1; does it
    have the shape of base64: a length that is a multiple of 4, at most two final ``=``).

    The alphabet is not checked: a migration never decodes the old vectors (only their
    count is needed), and what does decode them (`iter_f32_rows_b64`) decodes strictly.
    Reads into one reused buffer: a fresh 8 MiB ``bytes`` per block costs page faults
    that made this scan 4x slower than the read itself.
    """
    f.seek(start)
    offset = start
    buffer = bytearray(_CHUNK)
    while True:
        size = f.readinto(buffer)  # type: ignore[attr-defined]
        if not size:
            return -1, False
        quote = buffer.find(b'"', 0, size)
        if quote >= 0:
            end = offset + quote
            break
        offset += size
    f.seek(max(start, end - 3))
    return end, _base64_shaped(end - start, f.read(end - max(start, end - 3)))


def _base64_shaped(length: int, last: bytes) -> bool:
    """Whether a string of ``length`` ending in ``last`` (its last three characters, or all
    of a shorter one) has the shape of base64: a multiple of 4, at most two final ``=``."""
    tail = last.rstrip(b"=")
    return length % 4 == 0 and len(last) - len(tail) <= 2 and b"=" not in tail


def _not_base64(span: Base64Span) -> StoreFormatError:
    return StoreFormatError(
        f"{span.path}: the matrix is not valid base64 (its length, {span.end - span.start}, "
        "is not a multiple of 4, or it has more than two '=' at the end): the file is "
        "damaged or truncated. Restore it from a backup; nothing was written."
    )


def _drop_pages(mm: mmap.mmap) -> None:
    """Tell the kernel we are done with the mapped pages (keeps RSS low)."""
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if advice is not None and len(mm):
        with contextlib.suppress(OSError):  # advisory only
            mm.madvise(advice)


def _parse_without(path: Path, span: Base64Span, key: str) -> tuple[Any, Base64Span | None]:
    with open(path, "rb") as f:
        head = f.read(span.start)
        f.seek(span.end)
        tail = f.read()
    skeleton = head + json.dumps(_SENTINEL).encode()[1:-1] + tail
    try:
        document = json.loads(skeleton)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _corrupt(path, exc) from exc
    if not isinstance(document, dict) or document.get(key) != _SENTINEL:
        # The longest candidate was not the top-level value: parse the plain way.
        return load_json(path), None
    document[key] = None
    return document, span


def iter_f32_rows_b64(
    span: Base64Span, dim: int, rows_per_step: int = 8192
) -> Iterator[npt.NDArray[np.float32]]:
    """Decode a base64 float32 matrix from its span, a block of rows at a time."""
    step_chars = max(4, rows_per_step * dim * 4 // 3 * 4)  # whole base64 quanta
    with open(span.path, "rb") as f:
        f.seek(span.start)
        remaining = span.end - span.start
        pending = b""
        while remaining:
            block = f.read(min(step_chars, remaining))
            remaining -= len(block)
            try:
                raw = pending + binascii.a2b_base64(block, strict_mode=True)
            except binascii.Error as exc:
                raise StoreFormatError(f"{span.path}: the matrix is not valid base64.") from exc
            usable = len(raw) - len(raw) % (dim * 4)
            pending = raw[usable:]
            if usable:
                yield np.frombuffer(raw[:usable], dtype="<f4").reshape(-1, dim)
        if pending:
            raise StoreFormatError(
                f"{span.path}: the matrix ends in the middle of a row (dimension {dim})."
            )


class Base64Writer:
    """Streams bytes as base64 into a binary file without building one big string."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._pending = b""

    def write(self, data: bytes) -> None:
        data = self._pending + data
        usable = len(data) - len(data) % 3
        self._pending = data[usable:]
        if usable:
            self._out.write(binascii.b2a_base64(data[:usable], newline=False))

    def close(self) -> None:
        if self._pending:
            self._out.write(binascii.b2a_base64(self._pending, newline=False))
            self._pending = b""


class SyncEvery:
    """``fdatasync`` an open file every ``every`` bytes written to it (`wrote`), so the
    final fsync of a file written over minutes has only the last few MiB to flush."""

    def __init__(self, file: IO[bytes], every: int = 64 * 1024 * 1024) -> None:
        self._file = file
        self._every = every
        self._unsynced = 0

    def wrote(self, nbytes: int) -> None:
        self._unsynced += nbytes
        if self._unsynced >= self._every:
            self._file.flush()
            _datasync(self._file.fileno())
            self._unsynced = 0


#: ``fdatasync`` where the OS has it (not macOS), else ``fsync``.
_datasync = getattr(os, "fdatasync", os.fsync)


def fsync_file(path: Path) -> None:
    """fsync a file by path (used after closing a writer)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename inside it is durable (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
