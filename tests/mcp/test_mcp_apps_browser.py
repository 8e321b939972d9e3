"""The memory view in a real headless Chromium: the app page the server serves, rendered by a small
host page that relays its bridge calls to the real HTTP app (``build_app`` under uvicorn on 127.0.0.1,
as ``memos-mcp serve`` runs it) over streamable HTTP, through the SDK's client negotiating MCP Apps.
It shows the cards, and what is done there (edit, archive, forget) is what the server's tools see
afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client import advertise
from mcp.types import TextResourceContents

from memos_mcp.core.embedder import LocalOnnxEmbedder
from memos_mcp.mcp.apps import APP_MIME_TYPE, EXTENSION_ID
from tests.http.support import TIMEOUT, Running, running_app, settings_for
from tests.mcp.apps_host import WAIT_MS, browser_page, model_context, open_app, tools_called
from tests.mcp.support import call, remember, text_of

pytestmark = pytest.mark.anyio

APPS = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
# Memories are untrusted input: this one must show as text, never run.
HOSTILE = ('<img src=x onerror="window.pwned=1"></script><script>window.pwned=2</script>'
           '<b onmouseover="window.pwned=3">bold?</b> & "quoted"')


@pytest.fixture
def app(tmp_path: Path, embedder: LocalOnnxEmbedder, clean_environment: None) -> Iterator[Running]:
    """The real HTTP app (uvicorn on a loopback port) over fresh stores."""
    with running_app(settings_for(tmp_path / "data"), embedder) as running:
        yield running


async def view_of(client: Client) -> tuple[dict[str, Any], str]:
    """The tools (by name) and the HTML of the view they point at, as a host that renders apps reads them."""
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    uri = (tools["search_memory"].meta or {})["ui"]["resourceUri"]
    read = await client.read_resource(uri)
    page = read.contents[0]
    assert isinstance(page, TextResourceContents) and page.mime_type == APP_MIME_TYPE
    return tools, page.text


def card(frame: Any, memory_id: str) -> Any:
    return frame.locator(f'li.card[data-id="{memory_id}"]')


async def test_search_hits_show_as_cards_and_an_edit_made_there_is_what_search_memory_finds(app: Running) -> None:
    with anyio.fail_after(TIMEOUT * 3):
        async with Client(f"{app.url}/mcp", extensions=[APPS]) as client:
            tools, html = await view_of(client)
            bakery = await remember(client, "The bakery on Elm Street sells rye bread on Fridays.", tags=["food"])
            other = await remember(client, "The dentist appointment is on March 3rd.")
            arguments = {"query": "where to buy rye bread"}
            result = await client.call_tool("search_memory", arguments)
            async with browser_page() as page:
                frame = await open_app(page, client, html, tools["search_memory"], arguments, result)
                bread = card(frame, bakery["id"])
                await bread.locator(".text").wait_for()
                assert await bread.locator(".text").text_content() == bakery["memory"]
                assert await bread.locator(".ref").text_content() == bakery["ref_id"]
                assert "relevance" in (await bread.text_content() or "")
                assert await frame.locator("#query").input_value() == arguments["query"]
                found = [m["id"] for m in (result.structured_content or {})["memories"]]
                assert await frame.locator("li.card").count() == len(found) and other["id"] in found

                await bread.locator('[data-action="edit"]').click()
                await bread.locator("textarea").fill("The bakery on Elm Street sells rye bread on Saturdays.")
                await bread.locator('input[name="tags"]').fill("food, weekend")
                await bread.locator('[data-action="save"]').click()
                await frame.locator(f'li.card[data-id="{bakery["id"]}"] .text').filter(
                    has_text="Saturdays").wait_for(timeout=WAIT_MS)
                assert await bread.locator("ul.tags li").all_text_contents() == ["food", "weekend"]
                assert await tools_called(page) == ["update_memory"]
                # The model is told, since its own search result no longer holds.
                told = await model_context(page)
                assert len(told) == 1 and bakery["ref_id"] in told[0] and "Saturdays" in told[0]

                await frame.locator("#query").fill("when is the dentist")  # a new search, from the keyboard
                await frame.locator("#query").press("Enter")
                await frame.locator("#summary").filter(has_text="when is the dentist").wait_for()
                assert await frame.locator("li.card .text").first.text_content() == other["memory"]
                assert (await tools_called(page))[-1] == "search_memory"

            found_after = await call(client, "search_memory", query="when is rye bread sold at the bakery")
            hit = next(m for m in found_after["memories"] if m["id"] == bakery["id"])
            assert hit["memory"] == "The bakery on Elm Street sells rye bread on Saturdays."
            assert hit["tags"] == ["food", "weekend"]
            history = await call(client, "memory_history", memory_id=bakery["id"])
            assert [e["event"] for e in history["events"]][-1] == "UPDATE"


async def test_listed_memories_show_hostile_text_as_text_and_archive_history_and_forget_work(app: Running) -> None:
    with anyio.fail_after(TIMEOUT * 3):
        async with Client(f"{app.url}/mcp", extensions=[APPS]) as client:
            tools, html = await view_of(client)
            hostile = await remember(client, HOSTILE)
            kept = await remember(client, "The spare key is under the blue flowerpot.")
            gone = await remember(client, "The old wifi password was hunter2.")
            result = await client.call_tool("list_memories", {"size": 2})
            async with browser_page() as page:
                # This host also echoes the view's own calls: the view must stay the list it was opened as.
                frame = await open_app(page, client, html, tools["list_memories"], {"size": 2}, result, echo=True)
                await card(frame, gone["id"]).locator(".text").wait_for()  # newest first
                assert await frame.locator("li.card").count() == 2
                assert await frame.locator("#summary").text_content() == "2 of 3 memories"
                await frame.locator("#more").click()  # the next page joins the list
                await card(frame, hostile["id"]).locator(".text").wait_for()
                assert await frame.locator("li.card").count() == 3
                assert await frame.locator("#more").is_hidden()
                for shown in await frame.locator("li.card").all_text_contents():  # no absent field as a word
                    assert "null" not in shown and "undefined" not in shown and "NaN" not in shown, shown
                assert await card(frame, hostile["id"]).locator(".text").text_content() == HOSTILE
                assert await frame.locator("img, b").count() == 0 and await frame.locator("script").count() == 1
                assert await frame.evaluate("() => window.pwned") is None

                spare = card(frame, kept["id"])
                await spare.locator('[data-action="archive"]').click()
                await spare.locator('[data-action="restore"]').wait_for()
                assert "archived" in await spare.locator(".badge").all_text_contents()
                await spare.locator('[data-action="history"]').click()
                events = spare.locator("ol.events > li")
                await events.nth(1).wait_for()
                assert [text.split()[0] for text in await events.all_text_contents()] == ["ADD", "ARCHIVE"]

                await spare.locator('[data-action="open"]').click()
                await spare.locator("dl.fields").wait_for()
                assert kept["id"] in (await spare.locator("dl.fields").text_content() or "")

                old = card(frame, gone["id"])
                await old.locator('[data-action="forget"]').click()
                await old.locator('[data-action="keep"]').click()  # changing one's mind forgets nothing
                await old.locator('[data-action="forget"]').click()
                await old.locator('[data-action="confirm-forget"]').click()
                await old.wait_for(state="detached")
                assert await frame.locator("#status").text_content() == "Forgotten."  # echoes leave it alone
                assert await frame.locator("li.card").count() == 2
                assert await tools_called(page) == ["list_memories", "update_memory", "memory_history", "get_memory",
                                                   "delete_memory"]
                told = (await model_context(page))[-1]  # each update carries every change so far
                assert f"archived {kept['ref_id']}" in told and f"forgot {gone['ref_id']}" in told
                assert "hunter2" not in told  # a forgotten memory's text is not handed back to the model

            assert (await call(client, "get_memory", memory_id=kept["id"]))["status"] == "archived"
            missing = await client.call_tool("get_memory", {"memory_id": gone["id"]})
            assert missing.is_error and "not_found" in text_of(missing)


async def test_a_tool_error_in_the_view_is_shown_on_its_card_and_changes_nothing(app: Running) -> None:
    with anyio.fail_after(TIMEOUT * 3):
        async with Client(f"{app.url}/mcp", extensions=[APPS]) as client:
            tools, html = await view_of(client)
            memory = await remember(client, "The boat is moored at pier 9.")
            result = await client.call_tool("get_memory", {"memory_id": memory["id"]})
            async with browser_page() as page:
                frame = await open_app(page, client, html, tools["get_memory"], {"memory_id": memory["id"]}, result)
                boat = card(frame, memory["id"])
                await boat.locator("dl.fields").wait_for()  # one memory opens with its details
                # Phone width: the card reflows, nothing runs off the side.
                await page.evaluate("() => { document.getElementById('app').style.width = '320px'; }")
                await frame.wait_for_function("() => document.documentElement.clientWidth <= 320")
                assert await frame.evaluate(
                    "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth")
                await call(client, "delete_memory", memory_id=memory["id"])  # forgotten elsewhere meanwhile
                await boat.locator('[data-action="edit"]').click()
                await boat.locator("textarea").fill("The boat is moored at pier 10.")
                await boat.locator('[data-action="save"]').click()
                await boat.locator("p.error").filter(has_text="not_found").wait_for()
                assert await boat.locator(".text").text_content() == "The boat is moored at pier 9."
            assert (await call(client, "list_memories"))["total"] == 0


async def test_the_history_of_a_memory_shows_every_change_and_opens_the_memory(app: Running) -> None:
    with anyio.fail_after(TIMEOUT * 3):
        async with Client(f"{app.url}/mcp", extensions=[APPS]) as client:
            tools, html = await view_of(client)
            memory = await remember(client, "The tram to the zoo is line 4.")
            await call(client, "update_memory", memory_id=memory["id"], memory_content="The tram to the zoo is line 7.")
            arguments = {"memory_id": memory["id"]}
            result = await client.call_tool("memory_history", arguments)
            async with browser_page() as page:
                frame = await open_app(page, client, html, tools["memory_history"], arguments, result)
                events = frame.locator("ol.events > li")
                await events.nth(1).wait_for()
                texts = await events.all_text_contents()
                assert [text.split()[0] for text in texts] == ["ADD", "UPDATE"]
                assert "line 4" in texts[1] and "line 7" in texts[1]
                await frame.get_by_role("button", name="Open the memory").click()
                await card(frame, memory["id"]).locator(".text").filter(has_text="line 7").wait_for()
                assert await tools_called(page) == ["get_memory"]


async def test_a_call_that_failed_opens_the_view_on_its_error(app: Running) -> None:
    with anyio.fail_after(TIMEOUT * 3):
        async with Client(f"{app.url}/mcp", extensions=[APPS]) as client:
            tools, html = await view_of(client)
            arguments = {"memory_id": "no-such-memory"}
            result = await client.call_tool("memory_history", arguments)
            assert result.is_error
            async with browser_page() as page:
                frame = await open_app(page, client, html, tools["memory_history"], arguments, result)
                await frame.locator("#status.error").filter(has_text="not_found").wait_for()
                assert await frame.locator("#view").text_content() == ""  # no card, no placeholder left


async def test_a_history_cut_to_fit_one_message_says_how_many_older_events_it_left_out(app: Running) -> None:
    user = app.service.settings.default_user_id
    memory_id = app.service.add_memory(user, memory_content="The lighthouse log.").memories[0].id
    longest = app.service.settings.max_memory_size
    for n in range(12):  # 13 events of up to two 20,000-character texts: over 1 MiB on the wire
        app.service.update_memory(user, memory_id, memory=f"Lighthouse log, revision {n}: " + "€" * (longest - 40))
    with anyio.fail_after(TIMEOUT * 3):
        async with Client(f"{app.url}/mcp", extensions=[APPS]) as client:
            tools, html = await view_of(client)
            arguments = {"memory_id": memory_id}
            result = await client.call_tool("memory_history", arguments)
            omitted = (result.structured_content or {})["omitted"]
            assert omitted > 0, text_of(result)
            async with browser_page() as page:
                frame = await open_app(page, client, html, tools["memory_history"], arguments, result)
                note = frame.locator("p.omitted")
                await note.wait_for()
                assert await note.text_content() == f"{omitted} older events left out to fit one message."
                events = frame.locator("ol.events > li")
                assert await events.count() == 13 - omitted
                assert "revision 11" in (await events.last.text_content() or "")
