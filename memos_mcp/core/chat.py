"""Chat grounded in memory, and follow-up suggestions.

Chat retrieves facts and preferences, lays them out with their ref_ids, keeps a window of the
conversation's recent turns, asks the configured OpenAI-compatible model, and stores the exchange
in the conversation (and in memory). Without a model it is a clear ``llm_not_configured`` error.
Suggestions come from the most recent memories' keys.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from memos_mcp.config import LLMSettings
from memos_mcp.core.models import Memory, SearchResult
from memos_mcp.errors import BackendUnavailable

SYSTEM_PROMPT = """You are a helpful assistant with a long-term memory of the user.
Use the memories below when they help, and cite each one you use by its ref_id, e.g. [1a2b3c4d].
Never contradict the user's preferences, explicit or implicit.
If the memories do not contain the answer, say so rather than guess.

# Facts
{facts}

# Preferences
{preferences}
"""


class ChatReply(BaseModel):
    answer: str
    references: list[Memory]
    conversation_id: str


def _lines(memories: Sequence[Memory]) -> str:
    return "\n".join(f"{m.ref_id} {m.memory}" for m in memories) or "(none)"


def build_messages(query: str, found: SearchResult, history: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    system = SYSTEM_PROMPT.format(facts=_lines(found.memories), preferences=_lines(found.preferences))
    return [{"role": "system", "content": system},
            *({"role": role, "content": content} for role, content in history),
            {"role": "user", "content": query}]


def complete(llm: LLMSettings, messages: list[dict[str, str]]) -> str:
    """One chat completion; failures of the endpoint become ``BackendUnavailable``."""
    import openai

    key = llm.api_key.get_secret_value() if llm.api_key else "unused"
    client = openai.OpenAI(base_url=llm.base_url, api_key=key, timeout=llm.timeout, max_retries=2)
    try:
        response = client.chat.completions.create(
            model=str(llm.model), messages=messages,  # type: ignore[arg-type]
            temperature=llm.temperature, max_tokens=llm.max_tokens)
    except openai.APIError as exc:
        raise BackendUnavailable(f"the language model at {llm.base_url or 'OpenAI'} failed: {exc}",
                                 model=llm.model) from exc
    finally:
        client.close()
    return (response.choices[0].message.content or "").strip() if response.choices else ""


def suggest(memories: Sequence[Memory], count: int = 3) -> list[str]:
    """Follow-up questions from the keys of the most recent memories."""
    keys = list(dict.fromkeys(m.key.rstrip("….") for m in memories if m.key))[:count]
    return [f"What else do you remember about “{key}”?" for key in keys]
