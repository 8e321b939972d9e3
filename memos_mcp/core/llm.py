"""The configured OpenAI-compatible language model: one client, counted calls, clear failures.

Any endpoint that speaks the OpenAI chat API works (OpenAI, Azure, Ollama, vLLM, llama.cpp).
Timeouts, rate limits (429, honouring ``retry-after``), 5xx and connection errors are retried with
exponential backoff by the ``openai`` client (``llm.max_retries``); what still fails becomes
``BackendUnavailable`` naming the reason. A stream is retried only before its first token.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import openai

from memos_mcp.config import LLMSettings
from memos_mcp.errors import BackendUnavailable, LLMNotConfigured

log = logging.getLogger(__name__)
Messages = Sequence[dict[str, str]]


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int


@dataclass
class Usage:
    """What this process asked of the model, for metrics and benchmarks."""

    calls: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class LanguageModel:
    def __init__(self, settings: LLMSettings) -> None:
        if not settings.configured:
            raise LLMNotConfigured("a language model")
        self.settings = settings
        self.model = str(settings.model)
        key = settings.api_key.get_secret_value() if settings.api_key else "unused"
        self._client = openai.OpenAI(base_url=settings.base_url, api_key=key, timeout=settings.timeout,
                                     max_retries=settings.max_retries)
        self._json_mode = settings.json_mode
        self.usage = Usage()
        self._count = threading.Lock()

    def close(self) -> None:
        self._client.close()

    def complete(self, messages: Messages, *, json_schema: dict[str, Any] | None = None,
                 temperature: float | None = None, max_tokens: int | None = None) -> Completion:
        """One chat completion. With ``json_schema`` the endpoint's JSON mode (``llm.json_mode``) is
        asked for; an endpoint that refuses ``response_format`` is asked again without it (and never
        again after)."""
        options = self._sampling(temperature, max_tokens)
        if json_schema is not None and self._json_mode != "off":
            try:
                return self._complete(messages, {**options, "response_format": self._format(json_schema)})
            except _Refused:
                log.warning("the model endpoint refuses response_format %s; asking without it", self._json_mode)
                self._json_mode = "off"
        return self._complete(messages, options)

    def _sampling(self, temperature: float | None, max_tokens: int | None) -> dict[str, Any]:
        """Temperature and token limit of a request: the caller's, else the settings'."""
        return {"temperature": self.settings.temperature if temperature is None else temperature,
                "max_tokens": max_tokens or self.settings.max_tokens}

    def _format(self, schema: dict[str, Any]) -> dict[str, Any]:
        if self._json_mode == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
        if self._json_mode == "json_object_schema":
            return {"type": "json_object", "schema": schema}
        return {"type": "json_object"}

    def _complete(self, messages: Messages, options: dict[str, Any]) -> Completion:
        try:
            response = self._client.chat.completions.create(
                model=self.model, messages=self._shape(messages), **options)  # type: ignore[arg-type]
        except openai.BadRequestError as exc:
            if "response_format" in options and "response_format" in str(exc):
                raise _Refused from exc
            raise self._failure(exc) from exc
        except openai.APIError as exc:
            raise self._failure(exc) from exc
        text = (response.choices[0].message.content or "") if response.choices else ""
        usage = response.usage
        done = Completion(text=text.strip(), prompt_tokens=usage.prompt_tokens if usage else 0,
                          completion_tokens=usage.completion_tokens if usage else 0)
        self._record(done.prompt_tokens, done.completion_tokens)
        return done

    def stream(self, messages: Messages, *, temperature: float | None = None,
               max_tokens: int | None = None) -> Iterator[str]:
        """The answer's text as it is generated; a failure before or during the stream raises
        ``BackendUnavailable`` (the text already yielded stands)."""
        try:
            chunks = self._client.chat.completions.create(  # type: ignore[call-overload]
                model=self.model, messages=self._shape(messages), stream=True,
                stream_options={"include_usage": True}, **self._sampling(temperature, max_tokens))
            prompt = completion = 0
            with chunks:
                for chunk in chunks:
                    if chunk.usage:
                        prompt, completion = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
                    if chunk.choices and chunk.choices[0].delta.content:
                        yield chunk.choices[0].delta.content
        except openai.APIError as exc:
            raise self._failure(exc) from exc
        self._record(prompt, completion)

    def _shape(self, messages: Messages) -> list[dict[str, str]]:
        """The messages as sent: with ``fold_system``, system text joins the first user turn."""
        if not self.settings.fold_system:
            return list(messages)
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        rest = [dict(m) for m in messages if m["role"] != "system"]
        if system:
            first = next((m for m in rest if m["role"] == "user"), None)
            if first is None:
                rest.insert(0, {"role": "user", "content": system})
            else:
                first["content"] = f"{system}\n\n{first['content']}"
        return rest

    def _record(self, prompt: int, completion: int) -> None:
        with self._count:
            self.usage.calls += 1
            self.usage.prompt_tokens += prompt
            self.usage.completion_tokens += completion

    def _failure(self, exc: openai.APIError) -> BackendUnavailable:
        with self._count:
            self.usage.failures += 1
        where = self.settings.base_url or "OpenAI"
        if isinstance(exc, openai.RateLimitError):
            reason = f"kept rate limiting (HTTP 429) through {self.settings.max_retries} retries"
        elif isinstance(exc, openai.APITimeoutError):
            reason = f"timed out after {self.settings.timeout:g} s"
        elif isinstance(exc, openai.APIConnectionError):
            reason = "could not be reached or dropped the connection"
        elif isinstance(exc, openai.APIStatusError):
            reason = f"answered HTTP {exc.status_code}"
        else:
            reason = f"failed: {exc}"
        return BackendUnavailable(f"the language model at {where} {reason}", model=self.model)


class _Refused(Exception):
    """The endpoint does not accept ``response_format``."""
