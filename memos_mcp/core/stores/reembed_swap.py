"""Where ``memos-mcp reembed`` builds an embedded data directory's vector store again with another
embedding model, and the swap of that store for the directory's own, which whichever process opens the
directory next finishes when the one that began it stopped part-way.

Beside the shard ``<data>/vectors`` (``EDGE_DIR``):
``vectors.reembed``       the store being built with the new model's vectors; the directory's own store
                          keeps serving (with the model it was made by) until the swap;
``reembed.json``          the target: ``{"model": id, "dimension": n, "state": "building" | "swapping"}``;
``vectors.reembed-old``   the replaced store, while the swap runs.

The swap begins when ``reembed.json`` says ``swapping``, written (atomically, synced) once the new store
holds every point and is flushed. From then on it only goes forward (``finish``): the new store takes the
shard's place, the catalog records the new model and dimension, the old store is removed, and the state
file goes last, so a stop at any step leaves a state the next ``finish`` completes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from memos_mcp.core.stores import edge_index
from memos_mcp.core.stores.catalog import Catalog
from memos_mcp.core.stores.data_dir import EDGE_DIR
from memos_mcp.errors import StorageError

STAGING, REPLACED, STATE_FILE = ".reembed", ".reembed-old", "reembed.json"
State = Literal["building", "swapping"]


@dataclass(frozen=True)
class Target:
    """A re-embedding under way in a data directory: the ``model`` id (``Embedder.model_id``) and
    ``dimension`` its vectors are made with, and its ``state``."""

    model: str
    dimension: int
    state: State


def staging(data_dir: Path) -> Path:
    """The directory the new store is built in."""
    return edge_index.sibling(data_dir / EDGE_DIR, STAGING)


def read_target(data_dir: Path) -> Target | None:
    """The re-embedding under way in ``data_dir``, None when there is none. ``StorageError`` naming the
    file when it cannot be read or does not hold a target (it is only ever replaced whole)."""
    path = data_dir / STATE_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        target = Target(model=str(raw["model"]), dimension=int(raw["dimension"]), state=raw["state"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StorageError(f"cannot read {path} (the state of a re-embedding): {exc}", path=str(path)) from exc
    if target.state not in ("building", "swapping"):
        raise StorageError(f"{path} holds an unknown state {target.state!r}", path=str(path))
    return target


def write_target(data_dir: Path, target: Target) -> None:
    """Record ``target`` in ``data_dir`` durably: written beside, synced, renamed over the old file, and
    the directory synced (the rename is what makes ``swapping`` binding)."""
    path = data_dir / STATE_FILE
    part = path.with_name(path.name + ".part")
    with part.open("w", encoding="utf-8") as handle:
        json.dump({"model": target.model, "dimension": target.dimension, "state": target.state}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(part, path)
    _sync_dir(data_dir)


def abandon(data_dir: Path) -> None:
    """Remove a re-embedding that is still ``building`` (its store, what an index build or a removal cut
    short left beside it, and its state file); the data directory's own store is untouched."""
    edge_index.discard(staging(data_dir))
    for leftover in data_dir.glob(f"{EDGE_DIR}{STAGING}.*"):  # vectors.reembed.index-next-*, .doomed-*
        edge_index.discard(leftover)
    (data_dir / STATE_FILE).unlink(missing_ok=True)


def finish(data_dir: Path, catalog: Catalog) -> bool:
    """Complete a swap that began (``reembed.json`` says ``swapping``); idempotent, under the data
    directory's lock. Returns whether there was one to complete (the removals a stop cut short are
    finished before, by ``data_dir.claim_data_dir``). A re-embedding still ``building``, or
    none, is left as it is (False): the directory's own store is whole and matches the catalog.
    ``StorageError`` for a read-only catalog (the swap cannot go on, and the stores do not match until it
    does) or an impossible arrangement of the directories (nothing is guessed)."""
    target = read_target(data_dir)
    if target is None or target.state != "swapping":
        return False
    if catalog.read_only:
        raise StorageError(f"a re-embedding of {data_dir} stopped during its swap: open the data directory "
                           "writable once (serve, stdio or reembed) to finish it", data_dir=str(data_dir))
    shard, new = data_dir / EDGE_DIR, staging(data_dir)
    replaced = edge_index.sibling(shard, REPLACED)
    if new.exists():
        if shard.exists():
            if replaced.exists():
                raise StorageError(f"{shard}, {new} and {replaced} all exist: a re-embedding's swap cannot tell "
                                   "which store to keep; move the one that is not wanted away", path=str(shard))
            os.replace(shard, replaced)
        os.replace(new, shard)
        _sync_dir(data_dir)
    elif not shard.exists():
        raise StorageError(f"neither {shard} nor {new} exists: the re-embedded store is gone", path=str(shard))
    catalog.set_meta("embedding_model", target.model)
    catalog.set_meta("dimension", str(target.dimension))
    edge_index.discard(replaced)
    (data_dir / STATE_FILE).unlink(missing_ok=True)
    _sync_dir(data_dir)
    return True


def swap_cut_short(data_dir: Path) -> bool:
    """Whether a re-embedding's swap began in ``data_dir`` and has not ended: until an open that may write
    finishes it (``finish``), the stores there do not match (for a reader that opens no service)."""
    target = read_target(data_dir)
    return target is not None and target.state == "swapping"


def _sync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
