"""What a memory says about entities: ``ExtractedGraph``, and the deterministic extractor.

``ExtractedGraph`` is the plug point of the language-model pipeline: its extraction call fills one per
memory (``Candidate.graph``). Without a model, ``extract_graph`` reads the text: named entities are
runs of capitalised words (a sentence's first word only when it is no common word), the speaker is a
person, dates are dates; the speaker ``mentions`` every entity and entities named together are
``related_to`` each other. A person the text only addresses ("Thanks, Melanie!", "Hey Caroline,") is
spoken to, not spoken about: no entity of this memory. A lone entity (no speaker, nothing named beside
it) gets a ``mentioned`` relation to itself, so that the memory is linked to it like any other.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from itertools import combinations

from memos_mcp.core.graph.store import Entity, normalise

PERSON = "person"
MENTIONS = "mentions"
RELATED_TO = "related_to"
MENTIONED = "mentioned"
SPEAKER_CONFIDENCE = 0.6
CO_MENTION_CONFIDENCE = 0.5
MAX_ENTITIES = 8  # per memory: co-mention pairs grow with the square

Triple = tuple[str, str, str, float]  # subject, predicate, object, confidence


@dataclass
class ExtractedGraph:
    """Entities and relations of one memory. ``replaces`` names predicates whose new object replaces
    the old one even when the predicate is not single-valued by nature (the extraction says so)."""

    entities: list[Entity] = field(default_factory=list)
    relations: list[Triple] = field(default_factory=list)
    replaces: set[str] = field(default_factory=set)


_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december")
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTH = r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?" \
         r"|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
_DATE = re.compile(
    rf"\b(?:\d{{4}}-\d{{2}}-\d{{2}}|\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH},?\s+\d{{4}}"
    rf"|{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}|{_MONTH}\s+\d{{4}})\b")
_WORD = r"[A-Z][\w'’&-]*[\w&]"
_NAME = re.compile(rf"{_WORD}(?:\s+(?:of|the|de|van|von)(?=\s+[A-Z])|\s+{_WORD})*")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;\n\"“(]\s*)$")
_POSSESSIVE = re.compile(r"['’]s$")
_INFLECTED = re.compile(r"(?:ing|ed|ly)$")
_CONNECTORS = frozenset(("of", "the", "de", "van", "von"))
# Capitalised only because they open a sentence (or are "I"): never an entity on their own.
COMMON = frozenset("""
a about above after absolutely actually again against ah all almost also although always am amazing an
and another any anyway
are aren't around as at aw awesome aww back be because been before being best better both but by bye can
can't cheers congrats congratulations cool could couldn't dear definitely did didn't do does doesn't doing
don't done during each earlier either else enjoy especially even ever every everyone everything exactly
excellent fantastic few finally first for from fun funny gonna good goodbye got great guess ha had haha
hahaha has hasn't have haven't having he he's hello her here here's hers herself hey hi him himself his hm
hmm honestly hope how however i i'd i'll i'm i've if in indeed instead is isn't it it's its itself just
last later let let's lol look looking love lovely many maybe me meanwhile might mine more most much must my
myself neither never next nice no none nor not nothing now of off oh ok okay on once one only or other our
ours ourselves out over own perhaps please plus probably quite rather really right same see seems she she's
should so some something sometimes soon sorry still such sure sweet take thank thanks that that's the their
theirs them themselves then there there's these they they'd they'll they're they've thing things think this
those though through thx to today together tomorrow tonight too totally true um under unfortunately until
up us very wait want was wasn't we we'd we'll we're we've well were weren't what what's whatever when
where whether which while who whoa why will with without wonderful would wouldn't wow yay yeah year yes yep
yesterday yet you
went came made saw tried started bought took gave told said say felt sounds glad happy check keep
kind sure you'd you'll you're you've your yours yourself yup
""".split())


def _is_date(name: str) -> bool:
    return normalise(name) in _MONTHS or normalise(name) in _DAYS or bool(_DATE.fullmatch(name))


def _clean(run: str, sentence_start: bool) -> str:
    """The name in a run of capitalised words: common words and connectors trimmed from the ends; a
    sentence's first word also when it looks like a verb or an adverb (-ing, -ed, -ly)."""
    words = run.split()
    if sentence_start and words and _INFLECTED.search(words[0]):
        words = words[1:]
    while words and (words[0].casefold() in COMMON or words[0] in _CONNECTORS):
        words = words[1:]
    while words and (words[-1].casefold() in COMMON or words[-1] in _CONNECTORS):
        words = words[:-1]
    name = _POSSESSIVE.sub("", " ".join(words)).strip(".'’-")
    return "" if len(name) < 2 or name.casefold() in COMMON else name


# Words that open an address: "Hey Caroline", "Thanks, Mel!", "Bye, Jon."
_GREETINGS = frozenset("""
hey hi hello thanks thank bye goodbye dear congrats congratulations sorry oh wow yeah yep yes no ok okay
aw aww ah morning night cheers welcome you
""".split())
_CLAUSE_END = re.compile(r"(?:^|[.!?,;:\n\"“(—–-])$")
_ADDRESS_END = re.compile(r"^(?:[.!?,;:)\"”—–-]|$)")


def addressed(text: str, start: int, end: int) -> bool:
    """Whether the name at ``text[start:end]`` is a vocative: it stands alone between a clause edge or a
    greeting and punctuation ("Wow, Caroline!", "Hey Mel, ...", "Caroline, look", "... soon, Jon.")."""
    before, after = text[:start].rstrip(), text[end:].lstrip()
    if not _ADDRESS_END.match(after):
        return False
    last = re.search(r"(\w+)[,!]?$", before)
    return bool(_CLAUSE_END.search(before)) or (last is not None and last.group(1).casefold() in _GREETINGS)


def named_entities(text: str) -> list[Entity]:
    """Dates and capitalised names of ``text``, in order of first appearance, without repeats."""
    found: dict[str, Entity] = {}
    for match in _DATE.finditer(text):
        found.setdefault(normalise(match.group()), Entity(match.group(), "date"))
    masked = _DATE.sub(lambda m: " " * len(m.group()), text)
    for match in _NAME.finditer(masked):
        name = _clean(match.group(), bool(_SENTENCE_START.search(masked[:match.start()])))
        if name:
            found.setdefault(normalise(name), Entity(name, "date" if _is_date(name) else ""))
    return sorted(found.values(), key=lambda e: text.find(e.name))


def extract_graph(text: str, speaker: str | None = None, people: Collection[str] = ()) -> ExtractedGraph:
    """The deterministic graph of one memory: its named entities (the speaker a person) linked by
    co-mention. ``people`` (normalised names: the conversation's speakers, known persons) are left out
    where the text only addresses them."""
    skip = {*(key for key in people if _only_addressed(text, key)), *([normalise(speaker)] if speaker else [])}
    entities = [e for e in named_entities(text) if e.key not in skip][:MAX_ENTITIES]
    relations: list[Triple] = []
    if speaker and speaker.strip():
        relations += [(speaker, MENTIONS, e.name, SPEAKER_CONFIDENCE) for e in entities]
        entities = [Entity(speaker.strip(), PERSON), *entities]
    relations += [(a.name, RELATED_TO, b.name, CO_MENTION_CONFIDENCE)
                  for a, b in combinations(entities[1:] if speaker else entities, 2)]
    if not relations and len(entities) == 1:
        relations = [(entities[0].name, MENTIONED, entities[0].name, CO_MENTION_CONFIDENCE)]
    return ExtractedGraph(entities=entities, relations=relations)


def _word_pattern(name: str) -> str:
    return r"(?<![\w'’])" + r"\s+".join(re.escape(w) for w in name.split()) + r"(?!\w)"


def _only_addressed(text: str, key: str) -> bool:
    """Whether the name appears in ``text`` and only as a vocative (anywhere else it is spoken about)."""
    where = [addressed(text, m.start(), m.end()) for m in re.finditer(_word_pattern(key), text, re.IGNORECASE)]
    return bool(where) and all(where)


def without_names(text: str, keys: Collection[str]) -> str:
    """``text`` with the names (normalised keys, any case, possessive included) taken out."""
    for key in sorted(keys, key=len, reverse=True):
        text = re.sub(_word_pattern(key) + r"(?:['’]s)?", " ", text, flags=re.IGNORECASE)
    return re.sub(r"\s+", " ", text).strip()


def query_names(text: str) -> list[str]:
    """Names a query may refer to entities by: its named entities, and its words and word pairs and
    triples (lower-case), common words left out; the graph keeps only those that are entities."""
    words = [w for w in re.findall(r"[\w'’&.-]+", text) if w.casefold() not in COMMON]
    words = [_POSSESSIVE.sub("", w).strip(".'’-") for w in words]
    grams = [" ".join(words[i:i + n]) for n in (1, 2, 3) for i in range(len(words) - n + 1)]
    return list(dict.fromkeys([*(e.name for e in named_entities(text)), *(g for g in grams if g)]))
