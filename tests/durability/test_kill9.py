"""The durability suite: writers over REST (three dialects) and MCP (streamable HTTP, the SDK's client)
against a real ``memos-mcp serve``, which is killed with SIGKILL at a random point of their writes,
restarted, and killed again. Every acknowledged write must be there at the end, every memory must
have its history, and no write may be left half applied. The random points come from a fixed seed
(``MEMOS_DURABILITY_SEED`` overrides it), printed with every failure."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx2
import pytest

from memos_mcp.core.embedder import LocalOnnxEmbedder
from memos_mcp.core.service import MemoryService
from memos_mcp.core.stores.vector import MemoryFilter
from tests.conftest import settings_for
from tests.durability.support import Server, catalog_rows
from tests.http.support import streamable

pytestmark = pytest.mark.usefixtures("clean_environment")

SEED = int(os.environ.get("MEMOS_DURABILITY_SEED", "20261130"))
ROUNDS = 4
WRITERS_BOUND = 30.0  # seconds a round's writers may run at most
# Short chunks: the MCP writer's texts become about twenty memories each, a longer write to land in.
ENV = {"MEMOS_CHUNK_SIZE": "150", "MEMOS_STORAGE__MIN_FREE_BYTES": "0"}


@dataclass
class Acks:
    """What the server acknowledged: memory ids and, for answers that carry none, texts."""

    ids: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)  # failures of writes the server was alive for
    texts: set[str] = field(default_factory=set)
    count: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    enough: threading.Event = field(default_factory=threading.Event)
    target: int = 0

    def add(self, ids: tuple[str, ...] = (), text: str | None = None) -> None:
        with self.lock:
            self.ids.update(ids)
            if text is not None:
                self.texts.add(text)
            self.count += 1
            if self.count >= self.target:
                self.enough.set()


def note(writer: str, n: int, rng: random.Random) -> str:
    return f"Writer {writer} note {n} token{rng.randrange(10**9)}: the {rng.choice(['red', 'blue', 'green'])} " \
           f"kayak is stored in shed {n}."


def rest_writer(url: str, name: str, acks: Acks, stop: threading.Event, rng: random.Random) -> None:
    """Adds through one REST dialect until the server stops answering."""
    deadline = time.monotonic() + WRITERS_BOUND
    with httpx2.Client(base_url=url, timeout=20.0) as http:
        for n in range(10_000):
            if stop.is_set() or time.monotonic() > deadline:
                return
            text = note(name, n, rng)
            try:
                if name == "mem0":
                    answer = http.post("/v1/memories", json={"content": text})
                    ok = answer.status_code == 201
                    if ok:
                        acks.add(tuple(m["id"] for m in answer.json()["data"]))
                elif name == "memio":
                    answer = http.post("/v1/facts", json={"content": text})
                    ok = answer.status_code == 201
                    if ok:
                        acks.add((answer.json()["id"],))
                else:
                    answer = http.post("/product/add", json={"user_id": "default", "memory_content": text})
                    ok = answer.status_code == 200 and answer.json()["code"] == 200
                    if ok:
                        acks.add(text=text)
            except httpx2.HTTPError as exc:
                if not stop.is_set():
                    acks.errors.append(f"{name}: {exc!r}")
                return  # the server was killed
            if not ok:
                acks.errors.append(f"{name}: {answer.status_code} {answer.text}")
                return


def mcp_writer(url: str, acks: Acks, stop: threading.Event, rng: random.Random) -> None:
    """Adds multi-chunk texts with the MCP SDK's client until the server stops answering."""
    async def run() -> None:
        with anyio.fail_after(WRITERS_BOUND + 20):
            async with streamable(url) as session:
                for n in range(10_000):
                    if stop.is_set():
                        return
                    text = " ".join(note("mcp", n * 100 + i, rng) for i in range(20))
                    with anyio.fail_after(20):
                        result = await session.call_tool("add_memory", {"memory_content": text})
                    if result.is_error or result.structured_content is None:
                        acks.errors.append(f"mcp: {result}")
                        return
                    acks.add(tuple(m["id"] for m in result.structured_content["memories"]))

    try:
        anyio.run(run)
    except BaseException as exc:  # the session ends in errors once the server is killed
        if not stop.is_set():
            acks.errors.append(f"mcp: {exc!r}")


def unfinished(data_dir: Path) -> int:
    """Memory writes under way (begun, not yet complete) in the catalog of a running server."""
    return int(str(catalog_rows(data_dir, "SELECT COUNT(*) FROM pending_writes")[0][0]))


def one_round(server: Server, data_dir: Path, acks: Acks, rng: random.Random, mid_write: bool) -> bool:
    """Writers on every face; SIGKILL once a random number of further writes were acknowledged, and
    with ``mid_write`` then as soon as the catalog shows a memory write under way (polled, bounded).
    Whether the kill landed inside a memory write."""
    stop = threading.Event()
    acks.enough.clear()
    acks.target = acks.count + rng.randint(2, 25)
    writers: list[threading.Thread] = [
        threading.Thread(target=rest_writer, args=(server.url, name, acks, stop, random.Random(rng.random())))
        for name in ("mem0", "memio", "product")]
    writers.append(threading.Thread(target=mcp_writer, args=(server.url, acks, stop, random.Random(rng.random()))))
    for writer in writers:
        writer.start()
    acks.enough.wait(WRITERS_BOUND)
    landed = False
    for _ in range(20_000 if mid_write else 0):
        if unfinished(data_dir) or not server.alive():
            landed = server.alive()
            break
    stop.set()  # writes in flight stay in flight: the kill lands in them
    server.kill()
    for writer in writers:
        writer.join(WRITERS_BOUND)
        assert not writer.is_alive(), "a writer did not stop"
    return landed or unfinished(data_dir) > 0


def check(data_dir: Path, embedder: LocalOnnxEmbedder, acks: Acks, fail: Callable[[str], None]) -> dict[str, int]:
    """Open the data directory as a restart does; what is missing and what lacks history."""
    service = MemoryService.open(settings_for(data_dir), embedder=embedder)
    try:
        vectors = service.ready()  # rolls back what the last kill left unfinished
        flt = MemoryFilter(cube_ids=tuple(c.cube_id for c in service.catalog.list_cubes()), status=())
        points = vectors.scroll(flt, max(1, vectors.count(flt)))
        ids = {p.id for p in points}
        texts = {str(p.payload["memory"]) for p in points}
        for memory_id in sorted(acks.ids)[:20]:
            if memory_id in ids and not service.history("root", memory_id):
                fail(f"memory_history of {memory_id} is empty")
    finally:
        service.close()
    pending = catalog_rows(data_dir, "SELECT COUNT(*) FROM pending_writes")[0][0]
    recorded = {str(row[0]) for row in catalog_rows(data_dir, "SELECT DISTINCT memory_id FROM history")}
    return {"missing ids": len(acks.ids - ids), "missing texts": len(acks.texts - texts),
            "without history": len(ids - recorded), "pending": int(str(pending)),
            "history of absent memories": len(recorded - ids)}


def test_acknowledged_writes_survive_kill_9_and_every_memory_keeps_its_history(
        tmp_path: Path, embedder: LocalOnnxEmbedder) -> None:
    rng = random.Random(SEED)
    data = tmp_path / "data"
    acks = Acks()
    started = time.monotonic()
    mid_write = 0
    for number in range(ROUNDS):
        server = Server(data, **ENV)
        try:
            mid_write += one_round(server, data, acks, rng, mid_write=number % 2 == 1)
        finally:
            server.kill()

    def fail(message: str) -> None:
        pytest.fail(f"{message} (seed {SEED})")

    found = check(data, embedder, acks, fail)
    summary = f"seed {SEED}: {acks.count} acknowledged writes ({len(acks.ids)} ids, {len(acks.texts)} texts) " \
              f"in {ROUNDS} rounds ({mid_write} killed inside a memory write), " \
              f"{time.monotonic() - started:.0f} s: {found}"
    print(summary)
    assert not acks.errors, f"{summary}\n" + "\n".join(acks.errors)
    assert acks.count >= ROUNDS * 2, summary
    assert mid_write >= 1, f"no kill landed inside a memory write, so no rollback was tried: {summary}"
    assert found == {"missing ids": 0, "missing texts": 0, "without history": 0, "pending": 0,
                     "history of absent memories": 0}, summary
