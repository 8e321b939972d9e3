"""Ranking priors applied to the fused hits before the best ``top_k`` are kept.

A memory that ends in a question ("Sounds fun! What was the best part?") asks more than it tells: in a
conversation it is one person asking the other, and rarely the memory that answers a question about
either of them (on LoCoMo's development split 13 % of such turns are cited as evidence against 29 % of
the others). ``questions_last`` takes ``penalty`` off such a memory's ranking score, so that a telling
memory of about the same score ranks before it; a question far ahead of the rest stays ahead. A search
with graph expansion ranks the fusion's pool (``graph.fusion.POOL`` beyond ``top_k``) again; one without
fetches ``QUESTION_POOL`` hits beyond ``top_k`` for the telling memories to move up from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from memos_mcp.core.stores.vector import ScoredPoint

QUESTION_POOL = 10  # hits beyond top_k that a telling memory may overtake a question from
RANKED_FIELDS = ("memory",)  # the payload keys the priors read: all a ranking query needs to return
_QUESTION_MARKS = ("?", "？")


def asks(text: str) -> bool:
    """Whether ``text`` ends in a question mark (trailing whitespace apart)."""
    return text.rstrip().endswith(_QUESTION_MARKS)


def questions_last(points: Sequence[ScoredPoint], penalty: float) -> list[ScoredPoint]:
    """``points`` ranked again with ``penalty`` taken off the score of each memory that ends in a
    question (payload ``memory``), best first, ties by id; as they are when ``penalty`` is 0."""
    if not penalty:
        return list(points)
    scored = [replace(p, score=p.score - penalty) if asks(str(p.payload.get("memory", ""))) else p for p in points]
    return sorted(scored, key=lambda p: (-p.score, p.id))
