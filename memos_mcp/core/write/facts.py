"""A single fact (``memory_content``) added like a conversation turn: who said it and what came before.

A fact added with a ``conversation_id`` is indexed as a message of that conversation is: the last
``context_turns`` memories of the conversation (its earlier adds, by either path) are its keyword
context, and the fact's ``chat_time`` is its event time (``add.py``). A leading speaker form,
"Caroline: I adopted a dog", names the person who said it: the fact's speaker feeds graph memory's
person links as a message's ``name`` does; the text itself is stored as given.

A leading "Word: ..." is read as a speaker only when the word(s) look like a person's name and the
rest like something said: ``speaker_of``. Labels ("Note: buy milk", "TODO: x", "Re: the offer",
"Update: ..."), addresses and times ("http://...", "10:30") and capitalised non-names ("Dinner: pasta
at 7") are not speakers; a name the conversation or the cube already knows as a person is.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from memos_mcp.core.graph.extract import COMMON
from memos_mcp.core.graph.store import normalise
from memos_mcp.core.models import MemoryKind
from memos_mcp.core.payload import spoken
from memos_mcp.core.stores.vector import MemoryFilter, VectorStore

MAX_NAME_WORDS = 3
# "Name: text": one to three words, then a colon and a space (so "http://x" and "10:30" never match).
_PREFIX = re.compile(r"^\s*([^\s:][^:\n]{0,60}?)\s*:\s+(\S.*)$", re.DOTALL)
_NAME_WORD = re.compile(r"^[^\W\d_][^\W\d_'’.-]*(?:['’.-][^\W\d_]+)*\.?$")
# Words that open a line as a label, a heading or a role, never as a person's name.
LABELS = frozenset("""
note notes nb ps fyi todo to-do re fwd fw cc bcc subject from to date time when where who what why how
warning caution attention alert notice important info information tip hint reminder remember idea ideas
fact facts question answer q a summary tldr update edit correction context background example examples
result results output input source link url email phone address meeting agenda action decision conclusion
problem issue solution fix bug feature plan project topic category tag tags priority deadline due done
progress status title step goal task reason rule policy definition quote translation transcript lesson
news breaking disclaimer user assistant system bot ai agent human speaker name age job hobby hobbies
dinner lunch breakfast brunch snack shopping grocery groceries weather mood diet health work home family
preference preferences likes dislikes favorite favourite birthday anniversary password username login
pros cons morning afternoon evening night weekend today tomorrow yesterday monday tuesday wednesday
thursday friday saturday sunday january february march april may june july august september october
november december location place venue event events call calls chat log day week month year update
""".split())
# What makes the rest read as said by someone: a first or second person, or a greeting that opens it.
_SAID = re.compile(r"\b(?:I|I'm|I’m|I've|I’ve|I'd|I’d|I'll|I’ll|me|my|mine|myself|we|we're|we’re|our|ours|us|"
                   r"you|you're|you’re|your|yours)\b|^\s*(?:hey|hi|hello|thanks|thank|wow|yeah|yes|no|oh|"
                   r"aw+|haha|congrats|congratulations|sorry|good|great|sure|ok|okay)\b", re.IGNORECASE)


def name_like(words: Sequence[str]) -> bool:
    """Whether ``words`` can be a person's name: one to ``MAX_NAME_WORDS`` capitalised words of letters
    (an inner apostrophe, hyphen or dot allowed: O'Brien, Jean-Luc), each with a lower-case letter
    (not an acronym: TODO, FYI), none a label or a common word."""
    return 1 <= len(words) <= MAX_NAME_WORDS and all(
        _NAME_WORD.match(w) and w[0].isupper() and any(c.islower() for c in w) and len(w.rstrip(".")) >= 2
        and w.rstrip(".").casefold() not in LABELS and w.casefold() not in COMMON for w in words)


def split_speaker(text: str) -> tuple[str, str] | None:
    """The leading ``(name, rest)`` of "Name: rest" when the name is name-like, else None."""
    match = _PREFIX.match(text)
    if match is None:
        return None
    name = match.group(1).strip()
    return (name, match.group(2)) if name_like(name.split()) else None


def speaker_of(text: str, known: Collection[str] = ()) -> str | None:
    """The person a fact "Name: what they said" names as its speaker, or None: the name must be
    name-like (``name_like``) and either a person already ``known`` (normalised names: the
    conversation's speakers, the cube's persons) or followed by something said (a first or second
    person, or a greeting)."""
    found = split_speaker(text)
    if found is None:
        return None
    name, rest = found
    return name if normalise(name) in known or _SAID.search(rest) else None


def conversation_context(vectors: VectorStore, cube_id: str, conversation_id: str, turns: int) -> tuple[str, set[str]]:
    """The context a new fact of a conversation is indexed with: its last ``turns`` facts (oldest
    first, one "speaker: text" line each), and the normalised speakers those lines name."""
    if turns <= 0:
        return "", set()
    earlier = vectors.scroll(MemoryFilter(cube_ids=(cube_id,), conversation_id=conversation_id,
                                          kinds=(MemoryKind.FACT.value,)), turns)
    lines = [spoken(str(p.payload.get("memory", "")), _speaker(p.payload.get("speaker"))) for p in reversed(earlier)]
    speakers = {normalise(s) for p in earlier if (s := _speaker(p.payload.get("speaker")))}
    return "\n".join(line for line in lines if line), speakers


def _speaker(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None
