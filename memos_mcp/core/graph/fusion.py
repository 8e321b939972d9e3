"""Fusing graph links into a hybrid search: a linked hit gains ``weight * link`` (its exact link weight,
asked of the graph for the hits alone); the linked candidates (``Expansion.links``: with one hop, the
newest links of each entity the query names, a bounded number however many memories a person has) the
hybrid search left out are scored by the same hybrid query restricted to their ids (so the caller's
filters and cubes apply to them too; the best ``POOL`` of them by that score) and compete on the same
footing. Scores here are the fused ranking score; a hit's relevance (``relativity``) is the service's.

The restricted query runs only when it can change the answer: a memory the hybrid search left out
scores at most the lowest hit's score, so it can only enter the results with a link strong enough to
lift it above the last result; and when the hybrid search returned fewer points than asked for, every
point that passes the filters is among them already.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from memos_mcp.core.graph.memory import Expansion
from memos_mcp.core.stores.vector import HybridQuery, ScoredPoint, VectorStore

POOL = 20  # hits beyond the limit that linked memories may overtake; also the most linked memories fetched
MAX_LINKED = 2000  # linked memories outside the hits the restricted query chooses among, strongest links first


Order = Callable[[Sequence[ScoredPoint]], list[ScoredPoint]]


def fuse_graph(vectors: VectorStore, query: HybridQuery, expansion: Expansion, weight: float,
               order: Order = list) -> list[ScoredPoint]:
    """The best ``query.limit`` points of the hybrid hits and the linked memories, scores in [0, 1];
    ``order`` ranks the fused candidates (``query.limit + POOL`` or fewer) again before the best are
    kept (the search's priors, ``core.ranking``)."""
    asked = query.limit + POOL
    hits = vectors.hybrid_search(replace(query, limit=asked))
    links = expansion.links
    fused = _boosted(hits, expansion.weights([p.id for p in hits]), weight)
    if len(hits) == asked and weight > 0:
        floor = max(0.0, hits[-1].score)
        last = fused[query.limit - 1].score if len(fused) >= query.limit else 0.0
        have = {p.id for p in hits}
        missing = sorted((i for i, link in links.items() if i not in have and floor + weight * link > last),
                         key=lambda i: -links[i])[:MAX_LINKED]  # stable: the newest first among equals
        if missing:
            extra = vectors.hybrid_search(replace(query, limit=min(len(missing), POOL),
                                                  filter=replace(query.filter, ids=tuple(missing))))
            fused = sorted([*fused, *_boosted(extra, expansion.weights([p.id for p in extra]), weight)],
                           key=lambda p: (-p.score, p.id))
    return order(fused)[:query.limit]


def _boosted(points: list[ScoredPoint], links: dict[str, float], weight: float) -> list[ScoredPoint]:
    boosted = [replace(p, score=min(1.0, max(0.0, p.score) + weight * links.get(p.id, 0.0))) for p in points]
    return sorted(boosted, key=lambda p: (-p.score, p.id))
