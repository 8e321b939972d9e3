"""The web UI in a real headless Chromium against a real ``memos-mcp serve``: signing in, searching,
reading, editing, archiving and deleting a memory, sharing a cube to a second person, and what that
person can never see; CSRF, session expiry, signing out and a wrong key."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from tests.ui.support import Server, chromium, new_page, serve, sign_in

pytestmark = pytest.mark.usefixtures("clean_environment")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as found:
        yield found


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    # No rate limit: the tests put their memories in through many MCP calls.
    with serve(tmp_path / "data", {"alice": "user", "bob": "user", "carol": "admin"},
               MEMOS_REST__RATE_LIMITS="[]") as running:
        yield running


def memory_id_of(page: Page) -> str:
    found = re.search(r"/ui/memories/([0-9a-f-]{36})", page.url)
    assert found, page.url
    return found.group(1)


def test_a_person_signs_in_searches_opens_edits_archives_and_deletes_a_memory(server: Server,
                                                                            browser: Browser) -> None:
    server.mcp("alice", "add_memory", memory_content="The zeppelin hangar opens at dawn.")
    server.mcp("alice", "add_memory", memory_content="Alice drinks green tea every morning.")
    page = new_page(browser)
    sign_in(page, server.url, server.keys["alice"])
    assert page.inner_text("#signed-in-as") == "alice"
    assert page.locator("#memories li.card").count() == 2

    page.fill("#q", "when does the hangar open")
    page.press("#q", "Enter")
    page.wait_for_selector(".relativity")
    first = page.locator("#memories li.card").first
    assert first.locator(".memory-link").inner_text() == "The zeppelin hangar opens at dawn."
    relativity = float(first.locator(".relativity").inner_text().split()[-1])
    assert 0 < relativity <= 1
    ref_id = first.locator(".ref").inner_text()
    assert re.fullmatch(r"\[[0-9a-f]{8}\]", ref_id)

    first.locator(".memory-link").click()
    page.wait_for_selector("#edit-form")
    memory_id = memory_id_of(page)
    assert ref_id == f"[{memory_id[:8]}]"
    assert page.locator("#history tbody tr").count() == 1

    page.fill("#edit-memory", "The zeppelin hangar opens at six.")
    page.fill("#edit-tags", "airship\nschedule")
    page.fill("#edit-metadata", '{"source": "ui test"}')
    page.click("#edit-form button[type=submit]")
    page.wait_for_selector("text=Saved.")
    assert page.inner_text("#memory-text") == "The zeppelin hangar opens at six."
    assert page.locator("#memory-tags .tag").all_inner_texts() == ["airship", "schedule"]
    assert '"source": "ui test"' in page.inner_text("#memory-metadata")
    update = page.locator("#history tbody tr").filter(has_text="UPDATE")
    assert update.count() == 1
    cells = update.locator("td").all_inner_texts()
    assert cells[2] == "alice"
    assert "opens at dawn." in cells[3] and "opens at six." in cells[3]

    page.click("#archive")
    page.wait_for_selector("#status-badge")
    assert page.inner_text("#status-badge") == "archived"
    assert page.locator("#history tbody tr").filter(has_text="ARCHIVE").count() == 1

    page.click("#delete")
    page.wait_for_selector("#confirm-delete")
    assert "opens at six." in page.inner_text("blockquote.subject")
    page.click("#confirm-delete")
    page.wait_for_selector("text=The memory was deleted.")
    assert "zeppelin" not in page.inner_text("#memories")
    page.goto(f"{server.url}/ui/memories/{memory_id}")
    assert "does not exist" in page.inner_text("#error")


@pytest.mark.parametrize("javascript", [True, False], ids=["htmx", "plain-forms"])
def test_saving_a_memory_keeps_its_line_breaks_and_tags_as_they_were_unless_changed(
        server: Server, browser: Browser, javascript: bool) -> None:
    """Chromium posts a textarea's line breaks as CRLF (without JavaScript, a plain form post): the text is
    stored with LF, saving it unchanged is no update, and a tag holding a comma is never split. What is
    stored is read through MCP: a page's DOM shows a CR as LF."""
    tags, text = ["travel,europe", "Q3, 2024"], "Packing list:\nsocks\nshirts"
    memory_id = server.mcp("alice", "add_memory", memory_content=text, tags=tags)["memories"][0]["id"]
    page = new_page(browser, java_script_enabled=javascript)
    sign_in(page, server.url, server.keys["alice"])

    def save(changes: dict[str, str], outcome: str) -> dict[str, Any]:
        """The memory as stored after its edit form is saved with ``changes`` ({field selector: value})."""
        page.goto(f"{server.url}/ui/memories/{memory_id}")
        for selector, value in changes.items():
            page.fill(selector, value)
        page.click("#edit-form button[type=submit]")
        assert page.inner_text("p.note[role=status]") == outcome
        return server.mcp("alice", "get_memory", memory_id=memory_id)

    assert save({}, "Nothing changed.")["memory"] == text
    assert save({"#edit-metadata": '{"trip": "Lisbon"}'}, "Saved.")["memory"] == text
    stored = save({"#edit-memory": text + "\nhat"}, "Saved.")
    assert stored["memory"] == text + "\nhat"
    assert [t for t in stored["tags"] if t in tags] == tags and "europe" not in stored["tags"]
    stored = save({"#edit-tags": page.input_value("#edit-tags") + "\ntrip"}, "Saved.")
    assert stored["memory"] == text + "\nhat"
    assert [t for t in stored["tags"] if t in (*tags, "trip")] == [*tags, "trip"]
    history = server.mcp("alice", "memory_history", memory_id=memory_id)["events"]
    assert [(e["event"], e["new_memory"]) for e in history] == [
        ("ADD", text), ("UPDATE", text), ("UPDATE", text + "\nhat"), ("UPDATE", text + "\nhat")]

    page.goto(f"{server.url}/ui/memories")
    page.fill("#add-memory", "Ferry times:\nnine\nnoon")
    page.click("#add-form button[type=submit]")
    page.wait_for_selector("#memory-text")
    assert server.mcp("alice", "get_memory", memory_id=memory_id_of(page))["memory"] == "Ferry times:\nnine\nnoon"


def test_a_shared_cube_reaches_the_second_person_and_an_unshared_one_never_does(server: Server,
                                                                              browser: Browser) -> None:
    private = server.mcp("alice", "add_memory", memory_content="Alice's locker code is 4711.")["memories"][0]
    alice = new_page(browser)
    sign_in(alice, server.url, server.keys["alice"])
    private_cube = private["cube_id"]

    alice.click("nav a[href='/ui/cubes']")
    alice.fill("#cube-name", "Team notes")
    alice.click("form[action='/ui/cubes'] button[type=submit]")
    alice.wait_for_selector("#share-form")
    team_cube = alice.url.rsplit("/", 1)[-1]
    alice.click("a[href^='/ui/memories?cube=']")
    alice.fill("#add-memory", "The team meets on Thursdays at ten.")
    alice.click("#add-form button[type=submit]")
    alice.wait_for_selector("#memory-text")
    alice.goto(f"{server.url}/ui/cubes/{team_cube}")
    alice.fill("#share-user", "bob")
    alice.select_option("#share-permission", "read")
    alice.click("#share-form button[type=submit]")
    alice.wait_for_selector("#shares td:text-is('bob')")

    bob = new_page(browser)
    sign_in(bob, server.url, server.keys["bob"])
    assert "locker" not in bob.inner_text("main")
    bob.click("nav a[href='/ui/cubes']")
    bob.wait_for_selector("#offers")
    assert "Team notes" in bob.inner_text("#offers")
    assert private_cube not in bob.inner_text("main")
    bob.click(f"form[action='/ui/cubes/{team_cube}/accept'] button")
    bob.wait_for_selector("#memories")
    assert "The team meets on Thursdays at ten." in bob.inner_text("#memories")
    assert bob.locator("#add-form").count() == 0  # read access: nothing to write with

    bob.fill("#q", "locker code")
    bob.press("#q", "Enter")
    bob.wait_for_selector("p.count:has-text('locker code')")  # the search's own page, not the last one
    assert "4711" not in bob.inner_text("main") and "Alice's locker" not in bob.inner_text("main")
    for typed in (f"/ui/memories?cube={private_cube}", f"/ui/cubes/{private_cube}",
                  f"/ui/memories/{private['id']}", f"/ui/conversations?cube={private_cube}",
                  f"/ui/cubes/{private_cube}/export", f"/ui/memories?cube={private_cube}&q=locker"):
        answer = bob.goto(server.url + typed)
        assert answer is not None and answer.status in (403, 404), typed
        assert "locker" not in bob.content() and "4711" not in bob.content(), typed
        assert bob.locator("#error").count() == 1, typed

    alice.click(f"#shares form[action='/ui/cubes/{team_cube}/revoke'] button")
    alice.wait_for_selector("#shares td.empty")
    answer = bob.goto(f"{server.url}/ui/memories?cube={team_cube}")
    assert answer is not None and answer.status == 403
    assert "Thursdays" not in bob.content()


def test_only_an_admin_sees_the_users(server: Server, browser: Browser) -> None:
    alice = new_page(browser)
    sign_in(alice, server.url, server.keys["alice"])
    assert alice.locator("nav a[href='/ui/users']").count() == 0
    answer = alice.goto(f"{server.url}/ui/users")
    assert answer is not None and answer.status == 403
    carol = new_page(browser)
    sign_in(carol, server.url, server.keys["carol"])
    carol.click("nav a[href='/ui/users']")
    carol.wait_for_selector("#users")
    listed = carol.locator("#users tbody td:first-child").all_inner_texts()
    assert {"alice", "bob", "carol"} <= set(listed)


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(server: Server, browser: Browser) -> None:
    memory = server.mcp("alice", "add_memory", memory_content="The ferry leaves at noon.")["memories"][0]
    page = new_page(browser)
    sign_in(page, server.url, server.keys["alice"])
    page.goto(f"{server.url}/ui/memories/{memory['id']}")
    page.wait_for_selector("#edit-form")
    # The form as a forged page would send it: the session cookie goes along, the token cannot.
    page.eval_on_selector("#edit-form", "form => { form.querySelector('[name=csrf]').remove();"
                                        " form.setAttribute('hx-boost', 'false'); }")
    page.fill("#edit-memory", "The ferry is cancelled.")
    with page.expect_navigation():
        page.eval_on_selector("#edit-form", "form => HTMLFormElement.prototype.submit.call(form)")
    assert "CSRF" in page.inner_text("#error")
    status = page.evaluate("""async url => (await fetch(url, {method: 'POST', body: new URLSearchParams(
        {memory: 'forged', tags: '', metadata: ''})})).status""", f"/ui/memories/{memory['id']}/edit")
    assert status == 403
    page.goto(f"{server.url}/ui/memories/{memory['id']}")
    assert page.inner_text("#memory-text") == "The ferry leaves at noon."
    assert page.locator("#history tbody tr").count() == 1


def test_a_wrong_key_is_refused_and_signing_out_ends_the_session(server: Server, browser: Browser) -> None:
    page = new_page(browser)
    page.goto(f"{server.url}/ui/memories")
    page.fill("#key", "mk_not-a-real-key")
    page.click("form[action='/ui/signin'] button[type=submit]")
    page.wait_for_selector("#error")
    assert "not valid" in page.inner_text("#error")
    assert page.locator("#signed-in-as").count() == 0
    cookies = page.context.cookies()
    assert not [c for c in cookies if c["name"] == "memos_ui"]

    sign_in(page, server.url, server.keys["alice"])
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "memos_ui"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert page.evaluate("document.cookie") == ""  # out of reach of scripts
    page.click("text=Sign out")
    page.wait_for_selector("text=You are signed out.")
    # The old cookie, replayed, opens nothing: the session ended on the server.
    page.context.add_cookies([cookie])
    page.goto(f"{server.url}/ui/cubes")
    assert "/ui/signin" in page.url


def test_a_session_ends_when_it_expires(tmp_path: Path, browser: Browser) -> None:
    with serve(tmp_path / "data", {"alice": "user"}, MEMOS_SERVER__UI_SESSION_SECONDS="2") as server:
        page = new_page(browser)
        sign_in(page, server.url, server.keys["alice"])
        deadline = time.monotonic() + 20
        while "/ui/signin" not in page.url:
            assert time.monotonic() < deadline, "the session outlived its lifetime"
            page.wait_for_timeout(250)
            page.goto(f"{server.url}/ui/cubes")
        assert page.locator("#key").count() == 1


def test_a_cube_is_exported_as_a_download_and_imported_into_another_with_progress(server: Server,
                                                                                 browser: Browser,
                                                                                 tmp_path: Path) -> None:
    for i in range(30):
        server.mcp("alice", "add_memory", memory_content=f"Harbour note number {i}: crate {i * 7} is on pier {i % 4}.")
    page = new_page(browser, accept_downloads=True)
    sign_in(page, server.url, server.keys["alice"])
    page.click("nav a[href='/ui/cubes']")
    page.click("#cubes tbody a >> nth=0")
    page.wait_for_selector("#export")
    with page.expect_download() as download:
        page.click("#export")
    saved = tmp_path / "export.jsonl"
    download.value.save_as(saved)
    assert len(saved.read_text().splitlines()) == 31  # the header and 30 memories

    page.click("nav a[href='/ui/cubes']")
    page.fill("#cube-name", "Harbour copy")
    page.click("form[action='/ui/cubes'] button[type=submit]")
    page.wait_for_selector("#import-form")
    page.set_input_files("#import-file", str(saved))
    page.click("#import-form button[type=submit]")
    page.wait_for_selector("#imported-memories")
    assert page.inner_text("#imported-memories") == "30"
    page.click("#import-result a")
    page.wait_for_selector("#memories")
    assert "30 memories" in page.inner_text("p.count")


def test_the_pages_are_usable_by_keyboard_and_readable_at_phone_width(server: Server, browser: Browser) -> None:
    server.mcp("alice", "add_memory", memory_content="The night ferry to Tangier leaves at eleven.")
    page = new_page(browser, viewport={"width": 375, "height": 740}, is_mobile=True)
    page.goto(f"{server.url}/ui/")
    page.wait_for_selector("#key:focus")  # the key field has the focus: type and press Enter
    page.keyboard.type(server.keys["alice"])
    page.keyboard.press("Enter")
    page.wait_for_selector("#signed-in-as")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    page.focus("#q")
    page.keyboard.type("ferry")
    page.keyboard.press("Enter")
    page.wait_for_selector(".relativity")
    for _ in range(40):  # tab along until the first result's link has the focus, then open it
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('memory-link')"):
            break
    page.keyboard.press("Enter")
    page.wait_for_selector("#memory-text")
    assert "Tangier" in page.inner_text("#memory-text")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page is {width} px wide on a 375 px screen"


def test_a_memory_with_an_edited_history_fits_a_phone_screen(server: Server, browser: Browser) -> None:
    """The history's old → new column and long unbroken words must not push the memory page, or any main
    page, wider than a 360 px screen (a table scrolls inside its own box)."""
    added = server.mcp("alice", "add_memory", memory_content="The lighthouse keeper logs the tide at dusk.")
    memory_id = added["memories"][0]["id"]
    server.mcp("alice", "update_memory", memory_id=memory_id,
               memory_content="The lighthouse keeper logs the tide at dusk and dawn: https://example.org/tides/"
                      "harbour-north/2026/november/logbook-of-the-keeper-and-the-tides.html")
    page = new_page(browser, viewport={"width": 360, "height": 740}, is_mobile=True)
    sign_in(page, server.url, server.keys["alice"])
    for path in (f"/ui/memories/{memory_id}", "/ui/memories", "/ui/cubes", "/ui/tasks", "/ui/conversations",
                 "/ui/graph"):
        page.goto(f"{server.url}{path}")
        page.wait_for_selector("#main")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"{path} is {width} px wide on a 360 px screen"
    page.goto(f"{server.url}/ui/memories/{memory_id}")
    assert "UPDATE" in page.inner_text("#history")


def test_the_graph_of_an_entity_is_drawn_with_ended_relations_told_apart(server: Server, browser: Browser) -> None:
    server.mcp("alice", "add_relations", triples=[{"subject": "Ada", "predicate": "lives_in", "object": "Porto"}])
    server.mcp("alice", "add_relations", triples=[{"subject": "Ada", "predicate": "lives_in", "object": "Lisbon"},
                                                  {"subject": "Ada", "predicate": "knows", "object": "Grace"}])
    page = new_page(browser)
    sign_in(page, server.url, server.keys["alice"])
    page.click("nav a[href='/ui/graph']")
    page.fill("#entity", "Ada")
    page.fill("#at", "2000-01-01T00:00")
    page.press("#entity", "Enter")
    page.wait_for_selector("#graph canvas")  # cytoscape.js, loaded from the package, drew it
    valid = page.locator("#relations li.valid").all_inner_texts()
    ended = page.locator("#relations li.invalid").all_inner_texts()
    assert sorted(t.split("[")[0].strip() for t in valid) == ["Ada — knows → Grace", "Ada — lives_in → Lisbon"]
    assert len(ended) == 1 and ended[0].startswith("Ada — lives_in → Porto") and "invalidated" in ended[0]
    assert page.evaluate("typeof window.cytoscape") == "function"
