"""A search hit's ``relativity``: how relevant a memory is to the query, calibrated to [0, 1].

The ranking of a search is the fused hybrid score (dense + keyword + boosts + graph links); that score
says which memory is better than another, not whether either is relevant. ``relativity`` is apart
from it: the dense cosine similarity of the query and the memory's stored vector, mapped through a
logistic fitted on labelled pairs, so that 0.5 is where a relevant and an unrelated memory are
equally likely (equal priors) and a threshold such as MemOS's default 0.45 keeps clear matches and
drops unrelated memories:

    relativity = 1 / (1 + exp(-(SLOPE * cosine + BIAS)))

With the default embedder (all-MiniLM-L6-v2) 0.45 lies at cosine 0.318, 0.5 at 0.332, 0.9 at 0.481;
unrelated text (cosine 0 to 0.2) gets 0.008 to 0.12. The fit (``benchmarks/relevance_calibration.py``,
results in ``benchmarks/relevance/results.md``): LoCoMo development split, each question against every
turn, the turns the answer key cites as its evidence positive, the other turns of its conversation and
the turns of other conversations negative (a quarter of the weight each, positives half), samples 0-2
for the fit and 3-4 held out. Another embedder has other cosines: refit for it.

The query is compared without its closing question mark, and a query that speaks of "the user" also
in the first person ("where does the user live?" -> "where do I live") and one in the first person
also about "the user" ("what is my dog called?" -> "what is the user's dog called"), since memories
are stored both as the user said them and in the third person; the best cosine counts.

A long memory (a piece of a long text: up to ``chunk_size`` characters) is also compared sentence by
sentence (``windows``: runs of whole sentences of at most ``WINDOW_CHARS``), and its best window
counts: one fact in a page of other text is as relevant as the same fact said alone, while the whole
piece's vector is diluted by the rest (a passport number at the end of 3,000 characters scored 0.24).
Only hits longer than ``LONG_MEMORY`` pay for it. A memory's window vectors are made when it is written
(by the model that embeds queries: ``Embedder.embed_for_comparison``) and kept in its payload
(``stored_windows``, ``WINDOWS_FIELD``); a long hit without them (stored before they existed, imported)
has its windows embedded at search time, at most ``MAX_WINDOWS`` per search (one batch, the best-ranked
hits' first).
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

WINDOW_CHARS = 300  # the longest window of sentences a long memory is judged by
LONG_MEMORY = 2 * WINDOW_CHARS  # a memory longer than this is also judged by its windows
MAX_WINDOWS = 16  # windows embedded per search, at most: the best-ranked long hits' first (a bounded cost)
WINDOWS_FIELD = "windows"  # the payload field of a long memory's window vectors, made when it is written
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n+")
SLOPE = 14.699  # logistic on the cosine, fitted as the module docstring says
BIAS = -4.875

_FIRST_PERSON = (  # third person about the user -> first person, in this order
    (re.compile(r"\b(does|did|has|had|can|could|will|would|should|was|is)\s+the\s+user\b(?!'s)", re.I), None),
    (re.compile(r"\bthe\s+user's\b", re.I), "my"),
    (re.compile(r"\bthe\s+user\s+(was)\b", re.I), r"I \1"),
    (re.compile(r"\bthe\s+user\s+is\b", re.I), "I am"),
    (re.compile(r"\bthe\s+user\s+has\b", re.I), "I have"),
    (re.compile(r"\bthe\s+user\s+(\w+?)s\b", re.I), r"I \1"),
    (re.compile(r"\bthe\s+user\b", re.I), "me"),
)
_AUXILIARY = {"does": "do", "did": "did", "has": "have", "had": "had", "can": "can", "could": "could",
              "will": "will", "would": "would", "should": "should", "was": "was", "is": "am"}
_THIRD_PERSON = (  # first person -> third person about the user, in this order
    (re.compile(r"\b(do|did|have|had|can|could|will|would|should|was|am)\s+I\b", re.I), None),
    (re.compile(r"\b(I\s+am|I'm)\b", re.I), "the user is"),
    (re.compile(r"\b(I\s+have|I've)\b", re.I), "the user has"),
    (re.compile(r"\b(my|mine)\b", re.I), "the user's"),
    (re.compile(r"\b(I|me|myself)\b"), "the user"),
)
_ASKING = {"do": "does", "did": "did", "have": "has", "had": "had", "can": "can", "could": "could",
           "will": "will", "would": "would", "should": "should", "was": "was", "am": "is"}


def calibrated(cosine: float) -> float:
    """The relativity in [0, 1] of a query-memory cosine similarity (monotone increasing)."""
    return 1.0 / (1.0 + math.exp(-(SLOPE * cosine + BIAS)))


def query_variants(query: str) -> list[str]:
    """What a memory is compared with: the query without its closing question marks (a question
    embeds far from the statement that answers it) and, when it speaks of "the user" or in the first
    person, the same in the other person (memories are stored both as the user said them and as
    "The user ..."); distinct texts, the plain query first."""
    plain = query.strip().rstrip("?？ \t").strip() or query.strip()
    first = _FIRST_PERSON[0][0].sub(lambda m: f"{_AUXILIARY[m.group(1).lower()]} I", plain)
    for pattern, replacement in _FIRST_PERSON[1:]:
        first = pattern.sub(replacement or "", first)
    third = _THIRD_PERSON[0][0].sub(lambda m: f"{_ASKING[m.group(1).lower()]} the user", plain)
    for pattern, replacement in _THIRD_PERSON[1:]:
        third = pattern.sub(replacement or "", third)
    return list(dict.fromkeys([plain, first, third]))


def windows(text: str) -> list[str]:
    """The runs of whole sentences (split after . ! ? and at line breaks) of ``text`` that a long memory
    is judged by, each at most ``WINDOW_CHARS`` characters (a longer sentence is a window of its own);
    at most ``MAX_WINDOWS``. Empty for a text of ``LONG_MEMORY`` characters or fewer (a short memory's
    own vector is not diluted)."""
    if len(text) <= LONG_MEMORY:
        return []
    found: list[str] = []
    current = ""
    for sentence in (s.strip() for s in _SENTENCE_END.split(text)):
        if not sentence:
            continue
        if current and len(current) + 1 + len(sentence) > WINDOW_CHARS:
            found.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}" if current else sentence
    if current:
        found.append(current)
    return found[:MAX_WINDOWS] if len(found) > 1 else []


def stored_windows(parts: Sequence[str], vectors: Sequence[Sequence[float]]) -> dict[str, str]:
    """The payload form (``WINDOWS_FIELD``) of the vectors of a text's windows ``parts`` (``windows(text)``),
    one per window in order: ``digest``, 16 hex digits of the SHA-256 of the windows joined by line breaks
    (``read_windows`` trusts the vectors only for the same windows), and ``f16``, the vectors as
    little-endian 16-bit floats (a cosine changes by less than 0.001), base64. ``ValueError`` when the
    counts differ."""
    import numpy as np

    if len(parts) != len(vectors):
        raise ValueError(f"{len(vectors)} vectors for {len(parts)} windows")
    packed = np.asarray(vectors, dtype="<f2").tobytes()
    return {"digest": _digest(parts), "f16": base64.b64encode(packed).decode("ascii")}


def window_payloads(embed: Callable[[list[str]], list[list[float]]], texts: Sequence[str]) -> dict[str, dict[str, str]]:
    """The payload form (``stored_windows``) of each long text's window vectors, by text; short texts are
    left out. ``embed``: the model's ``embed_for_comparison`` (texts -> unit vectors, in order); one call
    for every distinct window of every text, none when no text is long."""
    parts = {text: found for text in dict.fromkeys(texts) if (found := windows(text))}
    unique = list(dict.fromkeys(window for found in parts.values() for window in found))
    if not unique:
        return {}
    vectors = dict(zip(unique, embed(unique), strict=True))
    return {text: stored_windows(found, [vectors[w] for w in found]) for text, found in parts.items()}


UNIT_TOLERANCE = 0.01  # how far from 1 a stored window vector's norm may be (16-bit floats move it < 0.001)


def read_windows(text: str, stored: object, dimension: int) -> npt.NDArray[np.float32] | None:
    """The window vectors (windows x ``dimension``) that ``stored_windows`` made for ``text``, or None
    when ``stored`` is missing, malformed, made for other windows (the text changed since), or holds
    anything but unit vectors (not finite, or a norm off 1 by more than ``UNIT_TOLERANCE``: a cosine
    with them would not lie in [-1, 1]). A value of the wrong size is refused before it is decoded."""
    import numpy as np

    if not isinstance(stored, dict) or not isinstance(stored.get("f16"), str):
        return None
    parts = windows(text)
    if not parts or stored.get("digest") != _digest(parts):
        return None
    size = len(parts) * dimension * 2
    if len(stored["f16"]) != 4 * -(-size // 3):  # the base64 length of ``size`` bytes
        return None
    try:
        packed = base64.b64decode(stored["f16"], validate=True)
    except ValueError:
        return None
    if len(packed) != size:
        return None
    vectors = np.frombuffer(packed, dtype="<f2").reshape(len(parts), dimension).astype(np.float32)
    norms = np.linalg.norm(vectors, axis=1)
    if not np.isfinite(vectors).all() or np.abs(norms - 1).max() > UNIT_TOLERANCE:
        return None
    return vectors


def _digest(parts: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:16]


def relativities(queries: Sequence[Sequence[float]],
                 hits: Sequence[tuple[Sequence[float] | None, str, npt.NDArray[np.float32] | None]],
                 embed: Callable[[list[str]], Sequence[Sequence[float]]]) -> list[float]:
    """The calibrated relevance of each hit ``(unit dense vector, text, its window vectors or None)`` to
    the best of the query's unit vectors: its whole vector's, or for a long text the best of that and
    its sentence windows', as stored (``read_windows``) or else embedded by ``embed`` in one batch (at
    most ``MAX_WINDOWS`` of them); 0.0 for a hit without a vector (or with no query vector)."""
    if not queries or not hits:
        return [0.0] * len(hits)
    import numpy as np  # here, not at the top: importing it would slow stdio's handshake (see embedder)

    judges = np.asarray(queries, dtype=np.float32)
    best = np.full(len(hits), -np.inf, dtype=np.float32)
    whole = [index for index, (dense, _, _) in enumerate(hits) if dense is not None]
    if whole:
        best[whole] = (np.asarray([hits[i][0] for i in whole], dtype=np.float32) @ judges.T).max(axis=1)
    for index, (_, _, known) in enumerate(hits):
        if known is not None and len(known):
            best[index] = max(best[index], float((known @ judges.T).max()))
    parts = [(index, window) for index, (_, text, known) in enumerate(hits) if known is None
             for window in windows(text)][:MAX_WINDOWS]
    if parts:
        cosines = (np.asarray(embed([window for _, window in parts]), dtype=np.float32) @ judges.T).max(axis=1)
        np.maximum.at(best, [index for index, _ in parts], cosines)
    return [calibrated(float(cosine)) if cosine > -np.inf else 0.0 for cosine in best]
