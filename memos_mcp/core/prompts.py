"""Every prompt memos-mcp sends to a language model, in one place, in English: the words apart from
the code so that they can be read, reviewed and tuned together. Memories are written, and answers
given, in the language the user wrote in."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from memos_mcp.core.models import Memory, Message

# --- chat -----------------------------------------------------------------------------------------

CHAT_PERSONA = "You are a helpful assistant with a long-term memory of the user."

CHAT_MEMORY = """# Memory
Below is what you remember about the user, each memory with its ref_id in square brackets.
Use a memory when it helps and cite every memory you use by its ref_id, e.g. [1a2b3c4d].
Respect the user's preferences in everything you answer: never contradict or ignore them.
If the memories do not contain the answer, say so rather than guess.
Answer in the language of the user's last message.

## Facts
{facts}

## Preferences (respect these)
{preferences}
"""

NO_MEMORIES = "(none)"

# --- suggestions ------------------------------------------------------------------------------------

SUGGESTIONS = """You suggest follow-up questions a user might ask an assistant that remembers them.
From the user's recent memories below, propose exactly {count} short, distinct questions the user
would plausibly ask next, each written from the user's point of view and ending with a question mark.
Write them in {language}.
Answer with a JSON object and nothing else: {{"questions": ["...", "...", "..."]}}

# Recent memories
{memories}
"""

LANGUAGES = {"en": "English", "zh": "Simplified Chinese"}

# Without a model: a question about each of the most recent memories' keys.
KEY_QUESTION = {"en": "What else do you remember about “{key}”?", "zh": "关于“{key}”，你还记得什么？"}

# --- extraction -----------------------------------------------------------------------------------

EXTRACTION_SYSTEM = """You maintain the long-term memory of an assistant about its users.
From the NEW messages of a conversation, extract what is worth remembering and reconcile it with \
the EXISTING memories. Reply with one JSON object and nothing else:
{"facts": [{"key": str, "value": str, "memory_type": "UserMemory" | "LongTermMemory", "tags": [str], \
"confidence": number, "sources": [int]}],
 "preferences": [{"preference": str, "type": "explicit" | "implicit", "reasoning": str, "sources": [int]}],
 "updates": [{"memory": int, "action": "update" | "archive", "value": str, "reason": str}],
 "entities": [{"name": str, "type": str}],
 "relations": [{"subject": str, "predicate": str, "object": str, "sources": [int], "replaces": bool}]}
Rules:
- facts: durable, self-contained statements, one per item, in the third person with the speaker's \
name ("Caroline joined a choir", or "The user ..." without a name). Resolve relative dates \
("yesterday", "last week", "next month") to absolute dates from the message time. "key" is a short \
title of at most 8 words. memory_type: UserMemory for facts about the user's identity, life, plans \
and relationships; LongTermMemory for other knowledge. confidence is between 0 and 1.
- "sources" are the [numbers] of the NEW messages an item comes from.
- Skip greetings, small talk, questions that carry no information, and what an EXISTING memory \
already says.
- preferences: likes, dislikes, habits and wishes; "explicit" when stated, "implicit" when inferred \
(say why in "reasoning").
- updates: for an EXISTING memory (by its [number]) that a new message contradicts or makes more \
precise, "update" with the corrected full text in "value", or "archive" when it is no longer true. \
Use only the numbers shown.
- entities: people, places, organisations, events and things named, each with its type (person, \
place, organisation, event, thing, date). relations: how they relate, \
predicate in snake_case (lives_in, works_at, friend_of, attended); "replaces": true when the \
relation supersedes an earlier one (a move, a new job).
- Assistant messages are context: keep from them only what the user confirmed.
- Write every memory in the language the user wrote in.
Nothing worth remembering: {"facts": [], "preferences": [], "updates": [], "entities": [], "relations": []}"""

EXTRACTION_RETRY = """Your reply could not be used: {problem}.
Reply again with only the JSON object described, nothing before or after it."""


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "time unknown"


def _line(message: Message) -> str:
    who = f"{message.name} ({message.role})" if message.name else message.role
    return f"{_when(message.chat_time or message.created_at)} {who}: {message.content}"


def extraction_request(new: Sequence[Message], earlier: Sequence[Message], existing: Sequence[Memory],
                       now: datetime) -> str:
    """The user turn of an extraction call: numbered new messages, context, numbered memories."""
    parts = [f"Current time: {_when(now)}"]
    if earlier:
        parts += ["", "EARLIER MESSAGES (context only):", *(f"- {_line(m)}" for m in earlier)]
    parts += ["", "NEW MESSAGES:", *(f"[{i}] {_line(m)}" for i, m in enumerate(new))]
    parts += ["", "EXISTING MEMORIES:"]
    parts += [f"[{i}] {m.memory} ({_when(m.event_time or m.created_at)})" for i, m in enumerate(existing)] or ["(none)"]
    return "\n".join(parts)
