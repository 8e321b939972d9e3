"""Every prompt the server sends to a language model, as plain text templates.

They are filled in by the module that uses them (``chat.py``); keeping the words apart from the code
lets them be read, reviewed and tuned in one place.
"""

from __future__ import annotations

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
