"""The real ``openai`` client against a real OpenAI-compatible inference server (llama.cpp serving
Gemma 3 270M on 127.0.0.1): plain completions, streaming, and JSON mode work end to end. The model is a
small base model, so only the shape of its answers is checked, not their sense."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from openai import OpenAI

from tests.llama_server import LlamaServer

MESSAGES = [{"role": "system", "content": "You are a helpful assistant. Answer briefly."},
            {"role": "user", "content": "Name three colours of the rainbow."}]


@pytest.fixture
def client(llama_server: LlamaServer) -> Iterator[OpenAI]:
    with OpenAI(base_url=llama_server.url, api_key="unused", max_retries=0, timeout=60) as client:
        yield client


def test_chat_completion_returns_text(client: OpenAI, llama_server: LlamaServer) -> None:
    response = client.chat.completions.create(model=llama_server.model, messages=MESSAGES,
                                              max_tokens=32, temperature=0)
    text = response.choices[0].message.content
    assert text and text.strip()
    assert response.usage is not None
    assert response.usage.prompt_tokens > 0
    assert 0 < response.usage.completion_tokens <= 32


def test_streaming_yields_several_chunks(client: OpenAI, llama_server: LlamaServer) -> None:
    stream = client.chat.completions.create(model=llama_server.model, messages=MESSAGES,
                                            max_tokens=32, temperature=0, stream=True)
    pieces = [chunk.choices[0].delta.content for chunk in stream
              if chunk.choices and chunk.choices[0].delta.content]
    assert len(pieces) >= 3
    assert "".join(pieces).strip()


def test_json_mode_returns_a_json_object(client: OpenAI, llama_server: LlamaServer) -> None:
    # JSON mode constrains the grammar, not the length: a base model left to itself writes long objects
    # that max_tokens cuts off, so one example shows it a short one.
    messages = [{"role": "system", "content": "Reply with one JSON object."},
                {"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": '{"colour": "red"}'},
                {"role": "user", "content": "Name a fruit."}]
    response = client.chat.completions.create(model=llama_server.model, messages=messages, max_tokens=64,
                                              temperature=0, response_format={"type": "json_object"})
    text = response.choices[0].message.content
    assert text is not None
    assert isinstance(json.loads(text), dict), text


def test_json_mode_with_a_schema_follows_it(client: OpenAI, llama_server: LlamaServer) -> None:
    """llama.cpp's extension: a JSON schema beside ``json_object`` (``json_schema`` itself is an HTTP 500)."""
    schema = {"type": "object", "properties": {"colour": {"type": "string", "maxLength": 20}},
              "required": ["colour"], "additionalProperties": False}
    response = client.chat.completions.create(
        model=llama_server.model, messages=[{"role": "user", "content": "Name a colour as JSON."}], max_tokens=64,
        temperature=0, response_format={"type": "json_object", "schema": schema})
    text = response.choices[0].message.content
    assert text is not None
    answer = json.loads(text)
    assert list(answer) == ["colour"] and isinstance(answer["colour"], str), text
