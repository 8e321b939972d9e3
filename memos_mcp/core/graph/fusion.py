"""Fusing graph links into a hybrid search: a linked hit gains ``weight * link``; linked memories the
hybrid search left out are scored by the same hybrid query restricted to their ids (so the caller's
filters, cubes and threshold apply to them too) and compete on the same footing."""

from __future__ import annotations

from dataclasses import replace

from memos_mcp.core.stores.vector import HybridQuery, ScoredPoint, VectorStore

POOL = 50  # linked memories outside the hybrid hits considered per query, strongest links first


def fuse_graph(vectors: VectorStore, query: HybridQuery, links: dict[str, float], weight: float) -> list[ScoredPoint]:
    """The best ``query.limit`` points of the hybrid hits and the linked memories, scores in [0, 1]."""
    hits = vectors.hybrid_search(replace(query, limit=query.limit + POOL))
    have = {p.id for p in hits}
    missing = sorted((i for i in links if i not in have), key=lambda i: (-links[i], i))[:POOL]
    if missing:
        hits += vectors.hybrid_search(replace(query, limit=len(missing),
                                              filter=replace(query.filter, ids=tuple(missing))))
    fused = [replace(p, score=min(1.0, max(0.0, p.score) + weight * links.get(p.id, 0.0))) for p in hits]
    fused.sort(key=lambda p: (-p.score, p.id))
    return fused[:query.limit]
