"""Retrieval: the hybrid search (dense and keyword vectors fused, filters, graph fusion, the
calibrated relevance of each hit) and reading memories by id or page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from memos_mcp.core.access import AccessControl, named
from memos_mcp.core.checks import bounded, id_key, is_uuid
from memos_mcp.core.checks import threshold as check_threshold
from memos_mcp.core.context import Room, Stores
from memos_mcp.core.embed_cache import EmbeddingCache
from memos_mcp.core.filters import SearchFilters, parse_filters
from memos_mcp.core.graph.extract import without_names
from memos_mcp.core.graph.fusion import fuse_graph
from memos_mcp.core.graph.memory import Expansion
from memos_mcp.core.models import Memory, MemoryKind, MemoryPage, Permission, SearchHit, SearchResult, User
from memos_mcp.core.payload import from_point, hit_from_point
from memos_mcp.core.ranking import QUESTION_POOL, RANKED_FIELDS, questions_last
from memos_mcp.core.relevance import WINDOWS_FIELD, query_variants, read_windows, relativities
from memos_mcp.core.stores.vector import HybridQuery, MemoryFilter, ScoredPoint, SparseVector, StoredPoint
from memos_mcp.core.text import sparse_query, terms
from memos_mcp.errors import InvalidRequest, NotFound

MAX_PAGE = 1_000_000  # keeps (page - 1) * size a 64-bit offset for the vector stores


WINDOW_CACHE = 4096  # sentence windows of long memories whose vectors are kept (see core.embed_cache)


class Retrieval(Room):
    """Search and reading of memories."""

    def __init__(self, stores: Stores) -> None:
        super().__init__(stores)
        self._windows = EmbeddingCache(self.embedder.embed_for_comparison, WINDOW_CACHE)

    def search(
        self, actor_id: str, query: str, *, cube_ids: Sequence[str] | None = None, user_id: str | None = None,
        conversation_id: str | None = None, top_k: int | None = None, include_preference: bool = True,
        pref_top_k: int | None = None, filters: SearchFilters | dict[str, Any] | None = None,
        threshold: float | None = None, graph: bool | None = None, graph_depth: int | None = None,
    ) -> SearchResult:
        """Hybrid search, ranked by the fused score; with the graph on, memories linked to the entities the
        query names (within ``graph_depth`` hops) gain up to ``graph.weight`` of it, and join the hits if
        they were not among them. The names of people the graph resolves leave the text query (the links
        carry them), which is then weighted ``graph.dense_weight`` dense. Each hit's ``relativity`` is apart
        from the ranking: the calibrated relevance of ``core.relevance`` (the query and its variants against
        the memory, and a long memory's sentence windows), and hits below ``threshold`` (default
        ``search.threshold``) are dropped."""
        user = self.access.acting_as(self.access.user(actor_id), user_id)
        self.stores.check_text(query or "", "query")
        search = self.settings.search
        top_k = bounded("top_k", top_k, search.top_k)
        pref_top_k = bounded("pref_top_k", pref_top_k, search.pref_top_k, minimum=0)
        depth = self.settings.graph.depth if graph_depth is None else graph_depth
        if depth not in (1, 2) or isinstance(depth, bool):
            raise InvalidRequest("graph_depth is 1 or 2", field="graph_depth")
        cubes = self.access.readable(user, cube_ids)
        if not cubes:
            return SearchResult(memories=[], preferences=[], cube_ids=[])
        expansion = self._graph_expansion(cubes, query, depth) if (self.settings.graph.search if graph is None
                                                                   else graph) else Expansion({})
        flt = parse_filters(filters, cubes)
        vectors = self.ready()
        text = without_names(query, expansion.people) if expansion.people else query
        text = text if terms(text) else query
        variants = query_variants(query)
        # One model call for the ranking query and the relevance judges (the variants of the query).
        embedded = dict(zip(texts := list(dict.fromkeys([text, *variants])), self.embedder.embed_queries(texts),
                            strict=True))
        dense = embedded[text]
        judges = [embedded[v] for v in variants]
        least = search.threshold if threshold is None else check_threshold(threshold)
        sparse = sparse_query(text)
        dense_weight = self.settings.graph.dense_weight if text != query else None

        def ranked(kinds: tuple[str, ...], limit: int) -> list[ScoredPoint]:
            if not kinds or limit == 0:
                return []
            def order(points: Sequence[ScoredPoint]) -> list[ScoredPoint]:
                return questions_last(points, search.question_penalty)

            hq = self.hybrid_query(dense, sparse, replace(flt, kinds=kinds), limit,
                                   boost_conversation_id=conversation_id,
                                   conversation_boost=search.conversation_boost if conversation_id else 0.0,
                                   dense_weight=dense_weight, fields=RANKED_FIELDS, with_dense=False)
            if expansion.links:  # the fusion ranks its own pool beyond the limit
                return fuse_graph(vectors, hq, expansion, self.settings.graph.weight, order)
            pool = limit + QUESTION_POOL if search.question_penalty else limit
            return order(vectors.hybrid_search(replace(hq, limit=pool)))[:limit]

        wanted = flt.kinds or tuple(k.value for k in MemoryKind)
        facts = tuple(k for k in wanted if k != MemoryKind.PREFERENCE)
        prefs = tuple(k for k in wanted if k == MemoryKind.PREFERENCE) if include_preference else ()
        # Many cubes hold no preference: one cheap look spares them the pass (on pgvector a hybrid query
        # that matches nothing costs as much as one that does). A read of the store: exact on replicas too.
        prefs = prefs if prefs and pref_top_k and vectors.exists(replace(flt, kinds=prefs)) else ()
        found, preferred = ranked(facts, top_k), ranked(prefs, pref_top_k)
        # The ranking read the fields it needs; the hits kept are read whole, for both passes at once.
        kept = [p.id for p in (*found, *preferred)]
        gone = self.catalog.unacknowledged(kept)
        whole = {p.id: p for p in vectors.retrieve([i for i in kept if i not in gone], with_vectors=True)}

        def hits(ranking: list[ScoredPoint]) -> list[SearchHit]:
            points = [ScoredPoint(p.id, p.score, w.payload, w.dense) for p in ranking if (w := whole.get(p.id))]
            texts = [str(p.payload.get("memory", "")) for p in points]
            scores = relativities(judges, [(p.dense, text, read_windows(text, p.payload.get(WINDOWS_FIELD), len(dense)))
                                           for p, text in zip(points, texts, strict=True)], self._windows.embed)
            return [hit_from_point(p, r) for p, r in zip(points, scores, strict=True) if r >= least]

        return SearchResult(memories=hits(found), preferences=hits(preferred), cube_ids=cubes)

    def _acknowledged(self, points: Sequence[StoredPoint]) -> list[StoredPoint]:
        """``points`` without the memories whose adding a dead replica began and never acknowledged
        (``Catalog.unacknowledged``: rolled back by the next clean-up), which reads leave out."""
        gone = self.catalog.unacknowledged([p.id for p in points])
        return [p for p in points if p.id not in gone]

    def hybrid_query(self, dense: list[float], sparse: SparseVector, flt: MemoryFilter, limit: int,
                     dense_weight: float | None = None, **options: Any) -> HybridQuery:
        """A fused query weighted as the search settings say, or with another ``dense_weight`` (the
        keyword weight then takes the rest of the settings' sum); ``options`` add the conversation boost, or
        narrow what each hit carries (``fields``, ``with_dense``)."""
        search = self.settings.search
        dense_weight = search.dense_weight if dense_weight is None else dense_weight
        sparse_weight = max(0.0, search.dense_weight + search.sparse_weight - dense_weight)
        return HybridQuery(dense=dense, sparse=sparse, filter=flt, limit=limit, dense_weight=dense_weight,
                           sparse_weight=sparse_weight, sparse_saturation=search.sparse_saturation,
                           candidates=max(search.candidates, limit), **options)

    def _graph_expansion(self, cubes: Sequence[str], query: str, depth: int) -> Expansion:
        graph = self.graph()
        if graph is None:
            return Expansion({})
        found = [graph.expand(cube_id, query, depth) for cube_id in cubes]
        found = [f for f in found if f.links]
        if len(found) <= 1:
            return found[0] if found else Expansion({})
        links: dict[str, float] = {}
        for each in found:
            links.update(each.links)

        def weigh(memory_ids: Sequence[str]) -> dict[str, float]:  # a memory lies in one cube
            return {m: w for each in found for m, w in each.weights(memory_ids).items()}

        return Expansion(links, tuple(dict.fromkeys(p for f in found for p in f.people)), weigh)

    def get_memory(self, actor_id: str, memory_id: str, cube_id: str | None = None,
                   with_embedding: bool = False) -> Memory:
        user = self.access.user(actor_id)
        return self.readable_memory(user, memory_id, cube_id, with_embedding)

    def readable_memory(self, user: User, memory_id: str, cube_id: str | None, with_embedding: bool = False,
                        need: Permission = Permission.READ) -> Memory:
        """The memory if ``user`` may read it (and, with ``need=WRITE``, write it) and it lies in ``cube_id``
        when given; NotFound when it is missing or unreadable (nothing tells the two apart)."""
        if cube_id is not None:
            named(cube_id)
        key = id_key(memory_id)
        points = self.ready().retrieve([key], with_vectors=with_embedding) if is_uuid(key) else []
        points = self._acknowledged(points)
        memory = from_point(points[0]) if points else None
        if memory is None or (cube_id and memory.cube_id != cube_id):
            raise NotFound("memory", memory_id, "Search or list memories to find valid ids.")
        cube = self.catalog.get_cube(memory.cube_id)
        level = AccessControl.access(user, cube) if cube else None
        if level is None:
            raise NotFound("memory", memory_id, "Search or list memories to find valid ids.")
        if need is Permission.WRITE:
            self.access.cube(user, memory.cube_id, Permission.WRITE)
        return memory

    def list_memories(self, actor_id: str, *, cube_ids: Sequence[str] | None = None,
                      user_id: str | None = None, page: int = 1, size: int = 20,
                      filters: SearchFilters | dict[str, Any] | None = None) -> MemoryPage:
        user = self.access.acting_as(self.access.user(actor_id), user_id)
        if not 1 <= page <= MAX_PAGE or not 1 <= size <= 200:
            raise InvalidRequest(f"page lies in 1..{MAX_PAGE} and size in 1..200", page=page, size=size)
        cubes = self.access.readable(user, cube_ids)
        if not cubes:
            return MemoryPage(memories=[], total=0, page=page, size=size)
        flt = parse_filters(filters, cubes)
        vectors = self.ready()
        points = self._acknowledged(vectors.scroll(flt, size, offset=(page - 1) * size))
        return MemoryPage(memories=[from_point(p) for p in points], total=vectors.count(flt), page=page, size=size)

