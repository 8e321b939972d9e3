"""Writing a file a person names (``export --out``, ``setup --write``) whole or not at all, without
replacing what the name stands for."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def rename_target(path: Path) -> Path | None:
    """Where a write of ``path`` that renames its finished file into place (so that a failed write leaves
    no partial file) renames it: ``path`` with its symbolic links followed, so that a linked file (a
    dotfiles folder) stays linked and the file it names is written; also for a file not made yet.

    None when ``path`` names anything but a regular file: a character device (``/dev/null``,
    ``/dev/stdout`` on a terminal), a FIFO, a socket, a directory, or a link the file system cannot follow
    to a path (``/proc/self/fd/1`` on a pipe). Such a name is written in place: a file renamed over it
    would replace the device with a file."""
    try:
        found = os.stat(path)  # follows links
    except FileNotFoundError:
        return path.resolve()
    if not stat.S_ISREG(found.st_mode):
        return None
    real = path.resolve()
    try:
        return real if os.path.samefile(real, path) else None
    except OSError:
        return None
