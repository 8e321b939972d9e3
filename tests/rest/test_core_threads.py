"""``server.core_threads``: how many core calls of the HTTP server run at once in worker threads. A call
beyond the bound waits for a free thread, first come first served; the others are not held up."""

from __future__ import annotations

import json
import threading
import time

import anyio
import pytest

from tests.http.support import Running, call, streamable
from tests.openai_server import OpenAIServer, Reply
from tests.rest.conftest import RestServe, client, llm_of, ok

MODEL_DELAY = 1.5  # seconds the language model takes to answer the suggestions: the busy core thread


def search_over(face: str, app: Running) -> None:
    """One search of the default user's memories, over REST or over MCP (streamable HTTP)."""
    if face == "rest":
        with client(app) as http:
            ok(http.post("/product/search", json={"user_id": "default", "query": "cello"}))
        return

    async def through_mcp() -> None:
        with anyio.fail_after(60):
            async with streamable(app.url) as session:
                await call(session, "search_memory", query="cello")
    anyio.run(through_mcp)


def finish_times(rest_serve: RestServe, model: OpenAIServer, core_threads: int, face: str) -> tuple[float, float]:
    """When a REST suggestions call (held MODEL_DELAY in its worker thread by the model) and a search
    over ``face`` sent while it waits each finished (perf_counter seconds)."""
    app = rest_serve(llm=llm_of(model), server_options={"core_threads": core_threads})
    finished: dict[str, float] = {}
    with client(app) as http:
        ok(http.post("/product/add", json={"user_id": "default", "memory_content": "The user plays the cello."}))
        model.replies.append(Reply(json.dumps({"questions": ["Which piece next?"]}), delay=MODEL_DELAY))
        asked = len(model.chat_requests)

        def suggest() -> None:
            with client(app) as other:
                ok(other.post("/product/suggestions", json={"user_id": "default"}))
            finished["suggestions"] = time.perf_counter()

        waiting = threading.Thread(target=suggest)
        waiting.start()
        deadline = time.monotonic() + 10
        while len(model.chat_requests) == asked and time.monotonic() < deadline:  # the call is with the model
            time.sleep(0.01)
        assert len(model.chat_requests) > asked, "the suggestions never reached the model"
        search_over(face, app)
        finished["search"] = time.perf_counter()
        waiting.join(timeout=30)
    assert not waiting.is_alive()
    return finished["suggestions"], finished["search"]


@pytest.mark.parametrize("face", ["rest", "mcp"])
def test_a_search_waits_for_the_one_core_thread_while_a_slow_call_holds_it(rest_serve: RestServe,
                                                                           model: OpenAIServer, face: str) -> None:
    suggestions, search = finish_times(rest_serve, model, 1, face)
    assert search >= suggestions


@pytest.mark.parametrize("face", ["rest", "mcp"])
def test_a_search_does_not_wait_for_a_slow_call_while_a_core_thread_is_free(rest_serve: RestServe,
                                                                            model: OpenAIServer, face: str) -> None:
    suggestions, search = finish_times(rest_serve, model, 2, face)
    assert search < suggestions


@pytest.mark.parametrize("value", [0, -1, 1025])
def test_core_threads_out_of_range_is_a_config_error_naming_the_field(value: int) -> None:
    from pydantic import ValidationError

    from memos_mcp.config import ServerSettings

    with pytest.raises(ValidationError, match="core_threads"):
        ServerSettings(core_threads=value)
