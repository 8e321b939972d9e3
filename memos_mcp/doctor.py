"""``memos-mcp doctor``: the effective configuration (secrets masked) and one verdict per backend."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

import yaml

from memos_mcp.config import Settings, masked
from memos_mcp.core.stores import reembed_swap
from memos_mcp.core.stores.data_dir import CATALOG_FILE
from memos_mcp.errors import MemosError

if TYPE_CHECKING:
    from memos_mcp.core.service import MemoryService

Check = Callable[[], str]


def _line(verdict: str, name: str, detail: str) -> None:
    print(f"{verdict:<5} {name:<12} {' '.join(detail.split())}")  # one line each, as a driver's error is not


def run_checks(settings: Settings) -> int:
    print("# effective configuration (secrets masked)")
    print(yaml.safe_dump(masked(settings), sort_keys=False, default_flow_style=False).rstrip())
    print("\n# checks")
    failures = 0

    def check(name: str, probe: Check) -> bool:
        nonlocal failures
        started = time.perf_counter()
        try:
            detail = probe()
        except MemosError as exc:
            failures += 1
            _line("FAIL", name, f"[{exc.code}] {exc.message}")
            return False
        except Exception as exc:  # doctor reports every failure, whatever raised it
            failures += 1
            _line("FAIL", name, f"{type(exc).__name__}: {exc}")
            return False
        _line("ok", name, f"{detail} ({(time.perf_counter() - started) * 1000:.0f} ms)")
        return True

    from memos_mcp.core.service import MemoryService

    holder: list[MemoryService] = []

    def open_service() -> str:
        # said apart, so that a mistyped --data-dir is seen: doctor makes the stores as serve would
        new = settings.catalog.url is None and not (settings.data_dir / CATALOG_FILE).exists()
        holder.append(MemoryService.open(settings, allow_read_only=True))
        if holder[0].read_only:
            return f"data directory {settings.data_dir} is not writable: opened read-only (serve --read-only, export)"
        return f"data directory {settings.data_dir} {'made (it held no store)' if new else 'opened'} and locked"

    if check("data dir", open_service):
        service = holder[0]
        try:
            check("catalog", lambda: f"{service.catalog.location}: {service.catalog.check()}; " + ", ".join(
                f"{n} {k}" for k, n in service.catalog.counts().items()) + _unfinished(service))
            check("embedder", lambda: f"{service.embedder.model_id}, dimension {service.embedder.dimension}; "
                  f"queries: {service.embedder.query_model()}")
            check("vectors", lambda: _check_vectors(service))
            check("graph", lambda: _check_graph(service))
        finally:
            service.close()
    check("llm", lambda: _check_llm(settings))
    check("rate_limits", lambda: _check_rate_limits(settings))
    print(f"\n{'all checks passed' if not failures else f'{failures} check(s) failed'}", file=sys.stderr)
    return 1 if failures else 0


def _unfinished(service: MemoryService) -> str:
    """The writes a stopped process left part-way, if any: the next start that may write rolls back its
    adds and updates and finishes its deletes."""
    pending = service.catalog.pending_writes()
    if not pending:
        return ""
    kinds = Counter(e.event for e in pending)
    return ("; unfinished writes of a stopped process (rolled back, or for deletes finished, when the stores "
            "open to write): " + ", ".join(f"{n} {event}" for event, n in sorted(kinds.items())))


def _check_vectors(service: MemoryService) -> str:
    """The store's own check (collection, payload indexes, an ordered scroll), what opening it had to
    repair, and its stats."""
    vectors = service.ready()
    summary = vectors.check()
    repaired = f"; repaired on open: {', '.join(vectors.repaired)}" if vectors.repaired else ""
    return (f"{summary}{repaired}; " + ", ".join(f"{k}={v}" for k, v in vectors.stats().items())
            + _reembedding(service))


def _reembedding(service: MemoryService) -> str:
    """A re-embedding that stopped part-way (``memos-mcp reembed``), if any: its store takes disk space."""
    if service.settings.vector.backend != "edge":
        return ""
    target = reembed_swap.read_target(service.settings.data_dir)
    if target is None:
        return ""
    return (f"; a re-embedding to {target.model} stopped part-way ({reembed_swap.staging(service.settings.data_dir)}"
            " holds its vectors): run memos-mcp reembed with that model to finish it, or with this directory's "
            "model to drop it")


def _check_graph(service: MemoryService) -> str:
    graph, memory = service.settings.graph, service.graph()
    if memory is None:
        return "off: no entities or relations are kept"
    if graph.backend == "neo4j":
        return f"neo4j at {graph.neo4j_uri} answers, database {graph.neo4j_database or 'default'}"
    from memos_mcp.core.graph.postgres_store import PostgresGraphStore

    if isinstance(memory.store, PostgresGraphStore):
        return f"postgresql at {memory.store.location} (the catalog's database, tables graph_*) opened"
    return f"sqlite at {service.settings.data_dir / 'graph.sqlite3'} opened"


def _check_rate_limits(settings: Settings) -> str:
    rest = settings.rest
    if not rest.rate_limits:
        return "off (rest.rate_limits is empty)"
    if rest.rate_limit_storage.startswith("memory://"):
        return f"{', '.join(rest.rate_limits)} per user, counted in each process (memory://)"
    from memos_mcp.rest.ratelimit import RateLimiter

    RateLimiter(rest.rate_limits, storage=rest.rate_limit_storage).check()
    where = masked(settings)["rest"]["rate_limit_storage"]
    return f"{', '.join(rest.rate_limits)} per user, shared by every replica in {where}, which answers"


def _check_llm(settings: Settings) -> str:
    llm = settings.llm
    if not llm.configured:
        return "not configured: adding uses the deterministic extractor; chat is unavailable"
    import openai

    key = llm.api_key.get_secret_value() if llm.api_key else "unused"
    client = openai.OpenAI(base_url=llm.base_url, api_key=key, timeout=10.0, max_retries=0)
    try:
        models = [m.id for m in client.models.list()]
    except openai.APIError as exc:
        raise MemosError(f"{llm.base_url or 'OpenAI'} did not answer: {exc}") from exc
    finally:
        client.close()
    listed = "listed" if llm.model in models else "not listed by the endpoint"
    return f"{llm.base_url or 'https://api.openai.com/v1'} answers; model {llm.model} {listed}"
