"""Text handling shared by the extractor and the index: hashing for de-duplication, the stemmed BM25
keyword encoder, key and tag derivation, chunking, and what counts as blank."""

from __future__ import annotations

import hashlib
import itertools
import re
import unicodedata
import zlib
from collections import Counter
from functools import lru_cache

import Stemmer

from memos_mcp.core.stores.vector import SparseVector

STOPWORDS = frozenset("""
a about above after again against all am an and any are aren't as at be because been before being
below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't
down during each few for from further had hadn't has hasn't have haven't having he he'd he'll he's
her here here's hers herself him himself his how how's i i'd i'll i'm i've if in into is isn't it
it's its itself let's me more most mustn't my myself no nor not of off on once only or other ought
our ours ourselves out over own same shan't she she'd she'll she's should shouldn't so some such
than that that's the their theirs them themselves then there there's these they they'd they'll
they're they've this those through to too under until up very was wasn't we we'd we'll we're we've
were weren't what what's when when's where where's which while who who's whom why why's with won't
would wouldn't you you'd you'll you're you've your yours yourself yourselves just also really yeah
yes oh hey hi so well like got get
""".split())

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_SPACE = re.compile(r"\s+")
_SENTENCE = re.compile(r"(?<=[.!?。！？])\s+|\n+")
_K1, _B, _AVG_LEN = 1.2, 0.75, 24.0
# Characters that show nothing (``is_blank``). A text shows something when it holds a letter, number,
# punctuation or symbol, a private-use character (a font's icon) or an unassigned code point (an emoji
# newer than this Python's Unicode tables), except these: controls, format characters and separators
# are not in those categories anyway; combining marks (Mn, Mc, Me) show only on a character before
# them; and the following letters and symbols are blank-looking or default-ignorable (Unicode's
# Default_Ignorable_Code_Point: combining grapheme joiner, Hangul fillers, Khmer inherent vowels,
# Mongolian variation selectors, variation selectors), or stand for no text (the Braille blank, the
# object replacement character) ...
_INVISIBLE_OTHERS = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u2800\u3164\uffa0\ufffc"
    + "".join(map(chr, range(0xFE00, 0xFE10))) + "".join(map(chr, range(0xE0100, 0xE01F0))))
# ... and the unassigned code points Unicode reserves as default-ignorable (they will never show).
_RESERVED_IGNORABLE = ((0x2065, 0x2065), (0xFFF0, 0xFFF8), (0xE0000, 0xE0FFF))


def _shows(char: str) -> bool:
    if char in _INVISIBLE_OTHERS:
        return False
    category = unicodedata.category(char)
    if category == "Cn":
        point = ord(char)
        return not any(low <= point <= high for low, high in _RESERVED_IGNORABLE)
    return category[0] in "LNPS" or category == "Co"


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def _folded(text: str) -> str:
    """``text`` without case, compatibility forms, runs of whitespace and end punctuation."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _SPACE.sub(" ", folded).strip().strip(".!?。！？ ")


def is_blank(text: str) -> bool:
    """Whether ``text`` shows nothing: no character in it shows (``_shows``). Blank: ``"\\u200b"``,
    ``" \\ufeff\\n"``, ``"\\u3164\\u2065"``, a lone combining accent ``"\\u0301"``. Not blank: any letter,
    digit, punctuation or symbol, even with invisible characters around it."""
    return not any(_shows(char) for char in text)


def content_hash(text: str) -> str:
    """The lookup key of texts that may be one memory (32 hex digits): the hash of the text folded
    (case, compatibility forms, whitespace, end punctuation), as stored in every memory's payload since
    the first store. It only finds candidates: two texts are one memory when they are equal
    (``exact_hash``), so "Abc123" and "abc123" share this key and stay two memories."""
    return hashlib.sha256(_folded(text).encode("utf-8")).hexdigest()[:32]


def exact_hash(text: str) -> str:
    """The hash of ``text`` itself (32 hex digits): equal only for texts equal character for character."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def words(text: str) -> list[str]:
    """Lower-cased word tokens; runs of CJK characters become overlapping bigrams."""
    tokens: list[str] = []
    for match in _WORD.finditer(text.casefold()):
        token = match.group()
        if _CJK.search(token):
            tokens.extend([token] if len(token) == 1 else [a + b for a, b in itertools.pairwise(token)])
        else:
            tokens.append(token)
    return tokens


def terms(text: str) -> list[str]:
    """Stemmed keyword terms without stop words: what the keyword index matches on."""
    kept = [w.replace("'", "") for w in words(text) if w not in STOPWORDS]
    return _stemmer().stemWords(kept)  # type: ignore[no-any-return]


def _term_id(term: str) -> int:
    return zlib.crc32(term.encode("utf-8")) & 0x7FFFFFFF


def sparse_document(text: str) -> SparseVector:
    """BM25 term-frequency weights (with length normalisation); the store multiplies in IDF."""
    counts = Counter(_term_id(t) for t in terms(text))
    length = sum(counts.values()) or 1
    norm = _K1 * (1 - _B + _B * length / _AVG_LEN)
    indices = sorted(counts)
    return SparseVector(indices, [counts[i] * (_K1 + 1) / (counts[i] + norm) for i in indices])


def sparse_query(text: str) -> SparseVector:
    indices = sorted({_term_id(t) for t in terms(text)})
    return SparseVector(indices, [1.0] * len(indices))


def derive_key(text: str, max_words: int = 8, max_chars: int = 64) -> str:
    """A short title: the start of the first sentence."""
    first = _SENTENCE.split(text.strip(), maxsplit=1)[0]
    picked = first.split()[:max_words]
    key = " ".join(picked)
    if len(key) > max_chars:
        key = key[: max_chars - 1].rstrip() + "…"
    elif len(picked) < len(first.split()):
        key += "…"
    return key


def derive_tags(text: str, limit: int = 5) -> list[str]:
    """Salient words: proper names first, then the longest content words, in text order."""
    seen: dict[str, float] = {}
    for index, match in enumerate(_WORD.finditer(text)):
        word = match.group()
        lowered = word.casefold()
        if lowered in STOPWORDS or len(lowered) < 3 or lowered.isdigit():
            continue
        weight = len(lowered) + (6 if word[0].isupper() and index > 0 else 0)
        seen[lowered] = max(seen.get(lowered, 0.0), weight)
    best = sorted(seen, key=lambda w: -seen[w])[:limit]
    return [w for w in seen if w in best]


def chunk_spans(text: str, size: int) -> list[tuple[int, int]]:
    """Where to cut long text: ``(start, end)`` offsets of pieces of at most ``size`` characters, in
    order, cut at paragraph and sentence ends (a sentence longer than ``size`` at a space, else hard).
    Each piece ``text[start:end]`` is an exact slice without surrounding whitespace, and only whitespace
    lies between pieces, so the pieces and the gaps between them give back the text exactly."""
    spans: list[tuple[int, int]] = []
    current: tuple[int, int] | None = None
    position = 0
    for boundary in [*_SENTENCE.finditer(text), None]:
        end = len(text) if boundary is None else boundary.start()
        start, position = position, (len(text) if boundary is None else boundary.end())
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start == end:
            continue
        while end - start > size:  # one sentence longer than a chunk: cut at a space
            cut = text.rfind(" ", start, start + size)
            cut = cut if cut > start + size // 2 else start + size
            if current is not None:
                spans.append(current)
                current = None
            piece_end = cut
            while piece_end > start and text[piece_end - 1].isspace():
                piece_end -= 1
            spans.append((start, piece_end))
            start = cut
            while start < end and text[start].isspace():
                start += 1
        if current is not None and end - current[0] > size:
            spans.append(current)
            current = None
        current = (start, end) if current is None else (current[0], end)
    if current is not None:
        spans.append(current)
    return spans

