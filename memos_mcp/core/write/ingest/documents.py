"""Reading documents for ``doc_path``: only files under the configured import roots, after every
symlink and ``..`` is resolved; text, Markdown and JSON; flattened into text for chunking."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from memos_mcp.errors import InvalidRequest, PathNotAllowed, PayloadTooLarge

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".rst", ".text", ".log", ".csv"})
JSON_SUFFIXES = frozenset({".json", ".jsonl"})
MAX_DOCUMENT_BYTES = 20 * 1024 * 1024


def confine(doc_path: str, roots: list[Path]) -> Path:
    """The real path of ``doc_path`` if it lies inside one of ``roots``; relative paths are taken
    from the first root. A path outside the roots is refused (``PathNotAllowed``) with the same answer
    whether or not it exists, so that ``doc_path`` cannot probe the file system; a path that cannot
    name a file (a NUL byte) is ``InvalidRequest`` naming the field."""
    if not roots:
        raise PathNotAllowed("document import is disabled: no import roots are configured", field="doc_path")
    if not doc_path or "\0" in doc_path:
        raise InvalidRequest("doc_path is not a valid path (empty, or holds a NUL byte)", field="doc_path")
    outside = PathNotAllowed(f"document {doc_path!r} lies outside the import roots ({', '.join(map(str, roots))})",
                             field="doc_path", doc_path=doc_path)
    try:
        raw = Path(doc_path).expanduser()
        candidate = raw if raw.is_absolute() else roots[0] / raw
        # Symlinks and ".." resolved as far as the path exists: where it leads is judged before existence.
        if not _inside(candidate.resolve(strict=False), roots):
            raise outside
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise InvalidRequest(f"document {doc_path!r} does not exist or cannot be read", field="doc_path",
                             doc_path=doc_path) from exc
    if not _inside(real, roots):
        raise outside
    if not real.is_file():
        raise InvalidRequest(f"document {doc_path!r} is not a regular file", field="doc_path", doc_path=doc_path)
    return real


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def read_document(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in TEXT_SUFFIXES | JSON_SUFFIXES:
        raise InvalidRequest(
            f"cannot import {path.name}: supported kinds are {', '.join(sorted(TEXT_SUFFIXES | JSON_SUFFIXES))}")
    size = path.stat().st_size
    if size > MAX_DOCUMENT_BYTES:
        raise PayloadTooLarge(f"document {path.name} has {size} bytes; the limit is {MAX_DOCUMENT_BYTES}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"document {path.name} is not UTF-8 text") from exc
    if suffix in JSON_SUFFIXES:
        return json_to_text(text, path.name)
    return text


def json_to_text(text: str, name: str) -> str:
    try:
        values = ([json.loads(line) for line in text.splitlines() if line.strip()] if name.endswith(".jsonl")
                  else [json.loads(text)])
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"document {name} is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    lines: list[str] = []
    for value in values:
        _flatten(value, "", lines)
    return "\n".join(lines)


def _flatten(value: Any, prefix: str, out: list[str]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(inner, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            _flatten(inner, f"{prefix}[{index}]", out)
    elif value is not None:
        out.append(f"{prefix}: {value}" if prefix else str(value))
