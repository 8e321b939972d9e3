"""The web UI's pages over real HTTP (the app under uvicorn on a loopback port, real stores), without a
browser: sign-in rules, sessions, CSRF, error pages, export/import, tasks, conversations, the graph,
and that every asset comes from the package."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path
from urllib.parse import quote_plus

import httpx2
import pytest

from memos_mcp.config import Settings
from memos_mcp.core.directory import ROOT_USER
from memos_mcp.core.embedder import LocalOnnxEmbedder
from memos_mcp.core.graph.service import GraphService, TripleIn
from memos_mcp.core.models import Role, utcnow
from memos_mcp.ui.session import MAX_SESSIONS, Sessions
from tests.http.support import ADMIN_KEY, TIMEOUT, Running, running_app, settings_for

pytestmark = pytest.mark.usefixtures("clean_environment")
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def app(tmp_path: Path, embedder: LocalOnnxEmbedder) -> Iterator[Running]:
    """A keyed server: root's admin key, and users alice and bob with keys."""
    with running_app(settings_for(tmp_path / "data", admin_key=ADMIN_KEY), embedder) as running:
        yield running


def key_for(app: Running, user: str, role: Role = Role.USER) -> str:
    return app.keys.create(ROOT_USER, user, role).key


def csrf_of(page: httpx2.Response) -> str:
    found = CSRF.search(page.text)
    assert found, page.text
    return found.group(1)


def posted_form(page: httpx2.Response, form_id: str) -> dict[str, str]:
    """What a browser posts for the form ``form_id`` of ``page`` left as shown: each named input's value and
    each textarea's text as HTML reads them (the page's CR and CRLF are LF, a textarea's first line break
    is dropped), every line break then sent as CRLF (HTML's form submission)."""
    fields = _FormFields(form_id)
    fields.feed(re.sub(r"\r\n?", "\n", page.text))
    fields.close()
    assert fields.values, f"no form {form_id!r} with fields"
    return {name: value.replace("\n", "\r\n") for name, value in fields.values.items()}


class _FormFields(HTMLParser):
    """The named inputs and textareas of one form (``values``, by name)."""

    def __init__(self, form_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.inside = False
        self.textarea: str | None = None
        self.values: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        name = named.get("name")
        if tag == "form":
            self.inside = named.get("id") == self.form_id
        elif self.inside and name and tag == "input":
            self.values[name] = named.get("value") or ""
        elif self.inside and name and tag == "textarea":
            self.textarea, self.values[name] = name, ""

    def handle_data(self, data: str) -> None:
        if self.textarea is not None:
            self.values[self.textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "textarea" and self.textarea is not None:
            self.values[self.textarea] = self.values[self.textarea].removeprefix("\n")
            self.textarea = None


@contextmanager
def signed_in(app: Running, key: str) -> Iterator[httpx2.Client]:
    """A client signed in with ``key`` (it keeps the session cookie)."""
    with httpx2.Client(base_url=app.url, timeout=TIMEOUT) as client:
        form = client.get("/ui/signin")
        answer = client.post("/ui/signin", data={"csrf": csrf_of(form), "key": key})
        assert answer.status_code == 303, answer.text
        yield client


def test_an_open_loopback_server_without_keys_needs_no_sign_in(tmp_path: Path, embedder: LocalOnnxEmbedder) -> None:
    with running_app(settings_for(tmp_path / "data"), embedder) as app, \
            httpx2.Client(base_url=app.url, timeout=TIMEOUT) as client:
        page = client.get("/ui/memories")
        assert page.status_code == 200
        assert re.search(r'id="signed-in-as"[^>]*>default<', page.text), page.text
        assert "Sign out" not in page.text
        assert client.get("/ui/signin").headers["location"] == "/ui/"
        # Still no form post without the token, even here: another site's page could send one.
        answer = client.post("/ui/cubes", data={"name": "forged"})
        assert answer.status_code == 403
        assert [c.name for c in app.service.list_cubes("default")] == ["default's memories"]


def test_a_keyed_server_sends_every_page_to_the_sign_in_form(app: Running) -> None:
    with httpx2.Client(base_url=app.url, timeout=TIMEOUT) as client:
        for path in ("/ui/", "/ui/memories", "/ui/cubes", "/ui/tasks", "/ui/graph", "/ui/users"):
            answer = client.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/ui/signin?next="), path
        assert client.post("/ui/cubes", data={"name": "x"}).status_code == 303  # no session: nothing done


def test_signing_in_needs_the_forms_own_token_and_a_valid_key(app: Running) -> None:
    key = key_for(app, "alice")
    with httpx2.Client(base_url=app.url, timeout=TIMEOUT) as client:
        refused = client.post("/ui/signin", data={"key": key})
        assert refused.status_code == 403
        assert "memos_ui" not in refused.headers.get("set-cookie", "")
        token = csrf_of(client.get("/ui/signin"))
        wrong = client.post("/ui/signin", data={"csrf": token, "key": key + "x"})
        assert wrong.status_code == 401
        assert "not valid" in wrong.text
        taken = client.post("/ui/signin", data={"csrf": token, "key": key, "next": "//evil.example/ui/"})
        assert taken.headers["location"] == "/ui/"  # only a page of the UI itself
        cookie = taken.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
        assert key not in cookie
        assert client.get("/ui/cubes").status_code == 200


def test_a_revoked_key_ends_the_sessions_it_opened(app: Running) -> None:
    created = app.keys.create(ROOT_USER, "alice")
    with signed_in(app, created.key) as client:
        assert client.get("/ui/cubes").status_code == 200
        app.keys.revoke(ROOT_USER, created.key_id)
        assert client.get("/ui/cubes").headers["location"].startswith("/ui/signin")


def test_a_forged_or_missing_csrf_token_changes_nothing(app: Running) -> None:
    with signed_in(app, key_for(app, "alice")) as client:
        memory = app.service.add_memory("alice", memory_content="The lighthouse keeper is Ada.").memories[0]
        for token in ({}, {"csrf": "forged"}):
            answer = client.post(f"/ui/memories/{memory.id}/edit", data={"memory": "changed", **token})
            assert answer.status_code == 403
            assert "CSRF" in answer.text
        for path in (f"/ui/memories/{memory.id}/delete", f"/ui/memories/{memory.id}/status"):
            assert client.post(path, data={"status": "archived"}).status_code == 403
        assert app.service.get_memory("alice", memory.id).memory == "The lighthouse keeper is Ada."
        assert [e.event for e in app.service.history("alice", memory.id)] == ["ADD"]


def test_bad_input_gets_an_error_page_naming_the_field_and_changes_nothing(app: Running) -> None:
    with signed_in(app, key_for(app, "alice")) as client:
        memory = app.service.add_memory("alice", memory_content="Ada keeps the lighthouse.").memories[0]
        csrf = csrf_of(client.get(f"/ui/memories/{memory.id}"))
        cases = [({"memory": "new text", "metadata": "{not json"}, 400, "metadata"),
                 ({"memory": "new text", "metadata": "[1, 2]"}, 400, "metadata"),
                 ({"memory": "   "}, 400, "memory"),
                 ({"memory": "new text", "metadata": '{"k": "\\ud800"}'}, 400, "metadata.k"),  # a lone surrogate
                 ({"memory": "new text", "metadata": "[" * 100_000}, 400, "metadata"),
                 ({"memory": "new text", "metadata": '{"k": ' + "7" * 5_000 + "}"}, 400, "metadata"),  # digits
                 ({"memory": "\u2065"}, 400, "memory")]  # reserved default-ignorable: shows nothing
        for form, status, field in cases:
            answer = client.post(f"/ui/memories/{memory.id}/edit", data={"csrf": csrf, **form})
            assert answer.status_code == status, form
            assert f"field <code>{field}</code>" in answer.text, answer.text
        bad_filter = client.get("/ui/memories", params={"kind": "poem"})
        assert bad_filter.status_code == 400
        assert "kind" in bad_filter.text
        missing = client.get("/ui/memories/00000000-0000-4000-8000-000000000000")
        assert missing.status_code == 404
        assert "does not exist" in missing.text
        assert app.service.get_memory("alice", memory.id).memory == "Ada keeps the lighthouse."


def test_saving_the_edit_form_sends_only_what_changed(app: Running) -> None:
    with signed_in(app, key_for(app, "alice")) as client:
        memory = app.service.add_memory("alice", memory_content="Ada keeps the lighthouse on Skerry.").memories[0]
        form = posted_form(client.get(f"/ui/memories/{memory.id}"), "edit-form")
        same = client.post(f"/ui/memories/{memory.id}/edit", data=form)
        assert same.headers["location"].endswith("unchanged=1")
        assert [e.event for e in app.service.history("alice", memory.id)] == ["ADD"]
        changed = client.post(f"/ui/memories/{memory.id}/edit", data={**form, "metadata": '{"room": 7}'})
        assert changed.headers["location"].endswith("saved=1")
        after = app.service.get_memory("alice", memory.id)
        assert (after.memory, after.tags, after.metadata) == (memory.memory, memory.tags, {"room": 7})
        assert [e.event for e in app.service.history("alice", memory.id)] == ["ADD", "UPDATE"]
        for value in ("1", "true", "1.5", "false", "0"):  # True == 1 in Python, yet another value in JSON
            client.post(f"/ui/memories/{memory.id}/edit", data={**form, "metadata": f'{{"room": {value}}}'})
            assert json.dumps(app.service.get_memory("alice", memory.id).metadata["room"]) == value


def test_tags_holding_commas_quotes_or_line_breaks_survive_saving_the_edit_form(app: Running) -> None:
    """A tag may hold any visible text (the tools take it): the forms show and read tags one a line, and a
    tags field left as shown keeps the stored tags as they are, even those a line of text cannot show."""
    given = ["travel,europe", "Q3, 2024", 'say "cheese"', "it's <b>&amp;", "two\nlines"]
    with signed_in(app, key_for(app, "alice")) as client:
        memory = app.service.add_memory("alice", memory_content="We flew to Lisbon in June", tags=given).memories[0]
        form = posted_form(client.get(f"/ui/memories/{memory.id}"), "edit-form")
        edited = client.post(f"/ui/memories/{memory.id}/edit",
                             data={**form, "memory": "We flew to Lisbon in June 2024"})
        assert edited.headers["location"].endswith("saved=1"), edited.text
        after = app.service.get_memory("alice", memory.id)
        assert after.memory == "We flew to Lisbon in June 2024"
        assert [t for t in after.tags if t in given] == given  # and those the new text gives
        assert not {"travel", "europe", "Q3", "2024", "two", "lines"} & set(after.tags)

        form = posted_form(client.get(f"/ui/memories/{memory.id}"), "edit-form")
        retagged = client.post(f"/ui/memories/{memory.id}/edit",
                               data={**form, "tags": "travel,europe\r\nQ3, 2024\r\n\r\nlisbon, again\r\n"})
        assert retagged.headers["location"].endswith("saved=1"), retagged.text
        assert app.service.get_memory("alice", memory.id).tags == ["travel,europe", "Q3, 2024", "lisbon, again"]

        cube = memory.cube_id
        form = posted_form(client.get("/ui/memories", params={"cube": cube}), "add-form")
        added = client.post("/ui/memories", data={**form, "memory": "The ferry to Tangier",
                                                  "tags": "ports, north\r\nsea"})
        new_id = added.headers["location"].rsplit("/", 1)[1]
        assert {"ports, north", "sea"} <= set(app.service.get_memory("alice", new_id).tags)
        found = client.get("/ui/memories", params={"cube": cube, "tags": "ports, north"})
        assert "The ferry to Tangier" in found.text and "Lisbon" not in found.text


@pytest.mark.parametrize("escaped", ["%FF", "%C3", "%ED%A0%80", "caf%E9"])  # not UTF-8; a lone surrogate; Latin-1
def test_a_form_whose_text_is_not_utf8_is_refused_naming_the_field_and_stores_nothing(
        app: Running, escaped: str) -> None:
    """A form posts its text as percent-escaped UTF-8. Bytes that are not UTF-8 were read as U+FFFD and
    stored so; they are refused (400, the field named) and nothing is written. A U+FFFD the person typed
    (escaped as UTF-8) is text like any other."""
    with signed_in(app, key_for(app, "alice")) as client:
        memory = app.service.add_memory("alice", memory_content="Ada keeps the lighthouse.").memories[0]
        form = posted_form(client.get(f"/ui/memories/{memory.id}"), "edit-form")
        encoded = "&".join(f"{k}={quote_plus(v)}" for k, v in form.items() if k != "memory")
        headers = {"content-type": "application/x-www-form-urlencoded"}
        edited = client.post(f"/ui/memories/{memory.id}/edit", content=f"{encoded}&memory=Ada{escaped}",
                             headers=headers)
        assert edited.status_code == 400, edited.text
        assert "memory" in edited.text and "UTF-8" in edited.text
        assert app.service.get_memory("alice", memory.id).memory == "Ada keeps the lighthouse."
        assert [e.event for e in app.service.history("alice", memory.id)] == ["ADD"]
        raw = client.post(f"/ui/memories/{memory.id}/edit",  # not escaped: Starlette read it as Latin-1
                          content=f"{encoded}&memory=Ada caf\u00e9".encode(), headers=headers)
        assert raw.status_code == 400 and "memory" in raw.text, raw.text
        assert app.service.get_memory("alice", memory.id).memory == "Ada keeps the lighthouse."

        form = posted_form(client.get("/ui/memories", params={"cube": memory.cube_id}), "add-form")
        encoded = "&".join(f"{k}={quote_plus(v)}" for k, v in form.items() if k != "tags")
        added = client.post("/ui/memories", content=f"{encoded}&memory=The+ferry&tags=port{escaped}",
                            headers=headers)
        assert added.status_code == 400 and "tags" in added.text, added.text
        assert app.service.list_memories("alice").total == 1

        multipart = client.post("/ui/memories", data={k: v for k, v in form.items() if k != "memory"},
                                files={"memory": (None, b"The ferry caf\xe9")})
        assert multipart.status_code == 400 and "content-type" in multipart.text, multipart.text  # read as Latin-1
        assert app.service.list_memories("alice").total == 1

        typed = client.post(f"/ui/memories/{memory.id}/edit", data={**posted_form(
            client.get(f"/ui/memories/{memory.id}"), "edit-form"), "memory": "Ada \ufffd keeps it."})
        assert typed.headers["location"].endswith("saved=1"), typed.text
        assert app.service.get_memory("alice", memory.id).memory == "Ada \ufffd keeps it."


def test_line_breaks_a_browser_posts_as_crlf_are_stored_as_lf_and_an_unchanged_text_is_no_update(
        app: Running) -> None:
    """HTML sends a textarea's line breaks as CRLF, and shows a stored CR as LF: every form's text is read
    with LF line breaks, and a text that differs from the stored one only in its line breaks is unchanged."""
    with signed_in(app, key_for(app, "alice")) as client:
        cube = app.service.list_cubes("alice")[0].cube_id
        form = posted_form(client.get("/ui/memories", params={"cube": cube}), "add-form")
        added = client.post("/ui/memories", data={**form, "memory": "Shopping list:\r\nmilk\reggs"})
        first = added.headers["location"].rsplit("/", 1)[1]
        assert app.service.get_memory("alice", first).memory == "Shopping list:\nmilk\neggs"
        stored = [app.service.add_memory("alice", memory_content=text).memories[0]
                  for text in ("Packing list:\r\nsocks\r\nshirts", "Old list:\rpens\rink")]
        for memory_id in (first, *(m.id for m in stored)):
            before = app.service.get_memory("alice", memory_id)
            form = posted_form(client.get(f"/ui/memories/{memory_id}"), "edit-form")
            assert "\r\n" in form["memory"]
            same = client.post(f"/ui/memories/{memory_id}/edit", data=form)
            assert same.headers["location"].endswith("unchanged=1"), memory_id
            changed = client.post(f"/ui/memories/{memory_id}/edit", data={**form, "metadata": '{"shop": "corner"}'})
            assert changed.headers["location"].endswith("saved=1"), memory_id
            after = app.service.get_memory("alice", memory_id)
            assert (after.memory, after.tags, after.metadata) == (before.memory, before.tags, {"shop": "corner"})
            history = app.service.history("alice", memory_id)
            assert [e.event for e in history] == ["ADD", "UPDATE"]
            assert history[-1].old_memory == history[-1].new_memory == before.memory


def test_an_export_downloads_and_imports_into_another_cube_with_its_progress(app: Running) -> None:
    with signed_in(app, key_for(app, "alice")) as client:
        for text in ("The boat is blue.", "The harbour closes at nine.", "Gulls nest on the pier."):
            app.service.add_memory("alice", memory_content=text)
        source = app.service.list_cubes("alice")[0].cube_id
        exported = client.get(f"/ui/cubes/{source}/export")
        assert exported.status_code == 200
        assert exported.headers["content-disposition"] == f'attachment; filename="{source}.jsonl"'
        lines = exported.text.splitlines()
        assert json.loads(lines[0])["memories"] == 3
        target = app.service.create_cube("alice", "Copy").cube_id
        page = client.get(f"/ui/cubes/{target}")
        job = re.search(r'name="job" value="([^"]+)"', page.text)
        assert job
        assert client.get(f"/ui/imports/{job.group(1)}").json()["state"] == "idle"
        imported = client.post(f"/ui/cubes/{target}/import", data={"csrf": csrf_of(page), "job": job.group(1)},
                               files={"file": ("export.jsonl", exported.content, "application/x-ndjson")})
        assert imported.status_code == 200, imported.text
        assert re.search(r'id="imported-memories">3<', imported.text)
        copied = app.service.list_memories("alice", cube_ids=[target])
        assert sorted(m.memory for m in copied.memories) == sorted(
            m.memory for m in app.service.list_memories("alice", cube_ids=[source]).memories)
        damaged = client.post(f"/ui/cubes/{target}/import", data={"csrf": csrf_of(page)},
                              files={"file": ("bad.jsonl", b"not json\n", "application/x-ndjson")})
        assert damaged.status_code == 400
        assert app.service.list_memories("alice", cube_ids=[target]).total == 3
        # A bad line after more good ones than an import writes at once (500): the whole file is checked
        # first, so nothing of it is stored (before, the first 500 were).
        good = [json.dumps({**json.loads(lines[1]), "id": str(uuid.uuid4()), "memory": f"Pier note {i}."})
                for i in range(501)]
        half = client.post(f"/ui/cubes/{target}/import", data={"csrf": csrf_of(page)}, files={"file": (
            "half.jsonl", "\n".join([lines[0], *good, '{"type": "memory", "id": "abcd"}']).encode(),
            "application/x-ndjson")})
        assert half.status_code == 400 and "line 503" in half.text, half.text
        assert app.service.list_memories("alice", cube_ids=[target]).total == 3


def test_the_import_page_reports_progress_while_a_large_import_runs(app: Running) -> None:
    """Progress comes per batch of 500 memories: 1200 memories made by another model (so re-embedded here)
    give the polling page counts before the import ends."""
    now = utcnow().isoformat()
    lines = [json.dumps({"type": "header", "format": "memos-mcp/export-v1", "embedding_model": "another-model",
                         "memories": 1200, "cube": {"cube_id": "x", "name": "x", "owner_id": "x"}})]
    lines += [json.dumps({"type": "memory", "id": str(uuid.uuid4()), "user_id": "alice", "created_at": now,
                          "updated_at": now, "memory": f"Shelf {i} in aisle {i % 17} holds box {i * 3}."})
              for i in range(1200)]
    with signed_in(app, key_for(app, "alice")) as client:
        target = app.service.list_cubes("alice")[0].cube_id
        page = client.get(f"/ui/cubes/{target}")
        job = re.search(r'name="job" value="([^"]+)"', page.text)
        assert job
        answers: list[httpx2.Response] = []
        upload = threading.Thread(target=lambda: answers.append(client.post(
            f"/ui/cubes/{target}/import", data={"csrf": csrf_of(page), "job": job.group(1)},
            files={"file": ("big.jsonl", "\n".join(lines).encode(), "application/x-ndjson")})))
        upload.start()
        seen: list[dict[str, object]] = []
        deadline = time.monotonic() + TIMEOUT
        while upload.is_alive() and time.monotonic() < deadline:
            state = client.get(f"/ui/imports/{job.group(1)}").json()
            if state["state"] == "running" and state["done"]:
                seen.append(state)
            time.sleep(0.05)
        upload.join(TIMEOUT)
        assert answers and answers[0].status_code == 200, answers
        assert seen, "no progress was seen while the import ran"
        # The last batch's count (1200 of 1200) may be seen before the answer arrives; the earlier ones must be.
        assert all(s["total"] == 1200 and 0 < int(str(s["done"])) <= 1200 for s in seen), seen
        assert any(int(str(s["done"])) < 1200 for s in seen), seen
        assert client.get(f"/ui/imports/{job.group(1)}").json()["state"] == "idle"
        assert app.service.list_memories("alice", cube_ids=[target]).total == 1200


def test_tasks_and_conversations_show_what_an_add_of_messages_stored(app: Running) -> None:
    with signed_in(app, key_for(app, "alice")) as client:
        added = app.service.add_memory("alice", conversation_id="trip-42", messages=[
            {"role": "user", "content": "I am flying to Lisbon on Friday."},
            {"role": "assistant", "content": "Have a good flight to Lisbon."}])
        assert added.task_id is not None
        cube = app.service.list_cubes("alice")[0].cube_id
        tasks = client.get("/ui/tasks").text
        assert added.task_id[:12] in tasks
        assert all(f"[{i[:8]}]" in tasks for i in added.added)
        assert added.task_id[:12] not in client.get("/ui/tasks", params={"status": "failed"}).text
        listed = client.get("/ui/conversations", params={"cube": cube}).text
        assert "/ui/conversations/trip-42?cube=" in listed
        messages = client.get("/ui/conversations/trip-42", params={"cube": cube}).text
        assert "I am flying to Lisbon on Friday." in messages and "Have a good flight to Lisbon." in messages
        memory = client.get(f"/ui/memories/{added.added[0]}").text
        assert "/ui/conversations/trip-42?cube=" in memory
    with signed_in(app, key_for(app, "bob")) as other:
        assert added.task_id[:12] not in other.get("/ui/tasks").text
        assert other.get("/ui/conversations/trip-42", params={"cube": cube}).status_code == 403
    with signed_in(app, key_for(app, "carol", Role.ADMIN)) as admin:
        assert added.task_id[:12] in admin.get("/ui/tasks").text  # an admin sees every user's tasks


def test_the_graph_page_draws_an_entitys_relations_and_tells_invalidated_ones_apart(app: Running) -> None:
    with signed_in(app, key_for(app, "alice")) as client:
        before = (utcnow() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
        graphs = GraphService(app.service)
        graphs.add_relations("alice", [TripleIn(subject="Ada", predicate="lives_in", object="Porto")])
        graphs.add_relations("alice", [TripleIn(subject="Ada", predicate="lives_in", object="Lisbon"),
                                       TripleIn(subject="Ada", predicate="knows", object="Grace")])
        now = client.get("/ui/graph", params={"entity": "Ada"})
        assert now.status_code == 200

        def edges(page: httpx2.Response) -> dict[str, bool]:
            found = re.search(r'<script type="application/json" id="graph-data">(.*?)</script>', page.text, re.S)
            assert found
            elements = json.loads(found.group(1))
            names = {e["data"]["id"]: e["data"]["label"] for e in elements if "source" not in e["data"]}
            return {f'{e["data"]["label"]} {names[e["data"]["target"]]}': e["data"]["invalid"]
                    for e in elements if "source" in e["data"]}
        assert {k.lower(): v for k, v in edges(now).items()} == {"lives_in lisbon": False, "knows grace": False}
        then = client.get("/ui/graph", params={"entity": "Ada", "at": before})
        drawn = {k.lower(): v for k, v in edges(then).items()}
        assert drawn == {"lives_in lisbon": False, "knows grace": False, "lives_in porto": True}
        assert client.get("/ui/graph", params={"entity": "Ada", "depth": "3"}).status_code == 400


def test_only_an_admin_sees_the_users_page(app: Running) -> None:
    with signed_in(app, key_for(app, "alice")) as client:
        assert client.get("/ui/users").status_code == 403
    with signed_in(app, key_for(app, "carol", Role.ADMIN)) as admin:
        page = admin.get("/ui/users")
        assert page.status_code == 200
        assert "alice" in page.text and "carol" in page.text


def test_every_asset_is_served_from_the_package(app: Running) -> None:
    static = files("memos_mcp.ui") / "static"
    own = [static / "ui.css", static / "ui.js", *(files("memos_mcp.ui") / "templates").iterdir()]
    for item in own:
        assert not re.search(r"(src|href)=\"https?://|url\(https?:|https?://[^\"' ]+\.(js|css)", item.read_text()), item
    with signed_in(app, key_for(app, "alice")) as client:
        answer = client.get("/ui/graph")
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy  # no inline script, no framing
        page = answer.text
        assert "<script>" not in page and " on" + "change=" not in page
        assets = re.findall(r'(?:src|href|data-lib)="(/ui/static/[^"]+)"', page)
        assert {"/ui/static/ui.css", "/ui/static/ui.js", "/ui/static/vendor/htmx.min.js",
                "/ui/static/vendor/cytoscape.min.js"} <= set(assets)
        for asset in assets:
            assert client.get(asset).status_code == 200, asset
    assert "Permission to use, copy, modify" in (static / "vendor" / "htmx.LICENSE").read_text()
    assert "Permission is hereby granted" in (static / "vendor" / "cytoscape.LICENSE").read_text()  # MIT


def test_an_upload_or_form_larger_than_its_bound_is_refused_without_writing(tmp_path: Path,
                                                                            embedder: LocalOnnxEmbedder) -> None:
    """An import is bounded by ``server.ui_max_import_bytes``, every other form by ``rest.max_body_bytes``:
    413 with the limit named, whether the size is declared or the body just keeps coming (chunked)."""
    settings = settings_for(tmp_path / "data", admin_key=ADMIN_KEY, ui_max_import_bytes=100_000)
    settings = settings.model_copy(update={"rest": settings.rest.model_copy(update={"max_body_bytes": 20_000})})
    with running_app(settings, embedder) as app, signed_in(app, key_for(app, "alice")) as client:
        cube = app.service.list_cubes("alice")[0].cube_id
        page = client.get(f"/ui/cubes/{cube}")
        token = csrf_of(page)
        now = utcnow().isoformat()
        lines = [json.dumps({"type": "header", "format": "memos-mcp/export-v1", "memories": 2000,
                             "cube": {"cube_id": "x", "name": "x", "owner_id": "x"}})]
        lines += [json.dumps({"type": "memory", "id": str(uuid.uuid4()), "user_id": "alice", "created_at": now,
                              "updated_at": now, "memory": f"Crate {i} sits on pallet {i * 7}."}) for i in range(2000)]
        body = "\n".join(lines).encode()
        assert len(body) > 100_000
        declared = client.post(f"/ui/cubes/{cube}/import", data={"csrf": token},
                               files={"file": ("big.jsonl", body, "application/x-ndjson")})
        assert declared.status_code == 413, declared.text
        assert "100000 bytes" in declared.text

        boundary = "b0undary"
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{token}\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\n'
                "Content-Type: application/x-ndjson\r\n\r\n").encode()

        def chunked() -> Iterator[bytes]:  # no Content-Length: the body is counted as it arrives
            yield head
            for start in range(0, len(body), 8192):
                yield body[start:start + 8192]
            yield f"\r\n--{boundary}--\r\n".encode()
        streamed = client.post(f"/ui/cubes/{cube}/import", content=chunked(),
                               headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert streamed.status_code == 413, streamed.text
        assert app.service.list_memories("alice", cube_ids=[cube]).total == 0

        padded = client.post("/ui/cubes", data={"csrf": token, "name": "Padded"},
                             files={"file": ("pad.bin", b"x" * 50_000, "application/octet-stream")})
        assert padded.status_code == 413, padded.text
        assert "20000 bytes" in padded.text
        assert [c.name for c in app.service.list_cubes("alice")] == ["alice's memories"]
        with httpx2.Client(base_url=app.url, timeout=TIMEOUT) as stranger:  # no session: still bounded
            form = stranger.get("/ui/signin")
            for path in ("/ui/signin", "/ui/signout"):
                stuffed = stranger.post(path, data={"csrf": csrf_of(form), "key": "k"},
                                        files={"file": ("pad.bin", b"x" * 50_000, "application/octet-stream")})
                assert stuffed.status_code == 413, (path, stuffed.text)
        small = client.post(f"/ui/cubes/{cube}/import", data={"csrf": token},
                            files={"file": ("small.jsonl", "\n".join(lines[:50]).encode(), "application/x-ndjson")})
        assert small.status_code == 200, small.text
        assert app.service.list_memories("alice", cube_ids=[cube]).total == 49


def test_pages_draw_on_the_same_rate_limit_as_the_api(tmp_path: Path, embedder: LocalOnnxEmbedder) -> None:
    """The UI is one more face of the same user: its pages count against the user's limit, shared with
    REST and MCP, and over it a page answers 429 with Retry-After; import progress polls are not counted."""
    settings = Settings(data_dir=tmp_path / "data", server={"host": "127.0.0.1", "admin_key": ADMIN_KEY},
                        rest={"rate_limits": ["4/minute"]})
    with running_app(settings, embedder) as app:
        alice, bob = key_for(app, "alice"), key_for(app, "bob")
        with signed_in(app, alice) as client:  # signing in is not a page of the user: not counted
            for _ in range(3):
                assert client.get("/ui/imports/nothing").status_code == 200  # nor are progress polls
            pages = [client.get(path) for path in ("/ui/memories", "/ui/cubes", "/ui/tasks", "/ui/graph", "/ui/")]
        assert [p.status_code for p in pages] == [200, 200, 200, 200, 429], [p.text for p in pages]
        refused = pages[-1]
        assert "rate_limit_exceeded" in refused.text
        assert int(refused.headers["retry-after"]) >= 1
        for key, status in ((alice, 429), (bob, 200)):  # the same counts as REST; each user their own
            answer = httpx2.get(f"{app.url}/v1/memories", headers={"Authorization": f"Token {key}"},
                                params={"user_id": "alice" if key == alice else "bob"}, timeout=TIMEOUT)
            assert answer.status_code == status, answer.text


def test_the_export_download_and_import_progress_are_never_cached_or_sniffed(app: Running) -> None:
    """A cube's export is all of its memory: like the pages, no cache keeps it and no browser sniffs it."""
    with signed_in(app, key_for(app, "alice")) as client:
        app.service.add_memory("alice", memory_content="The spare key is under the blue pot.")
        cube = app.service.list_cubes("alice")[0].cube_id
        for path in (f"/ui/cubes/{cube}/export", "/ui/imports/none", "/ui/memories"):
            answer = client.get(path)
            assert answer.status_code == 200, path
            assert answer.headers.get("cache-control") == "no-store", path
            assert answer.headers.get("x-content-type-options") == "nosniff", path


def test_a_task_status_that_does_not_exist_is_an_error_naming_the_field(app: Running) -> None:
    with signed_in(app, key_for(app, "alice")) as client:
        assert client.get("/ui/tasks", params={"status": "failed"}).status_code == 200
        wrong = client.get("/ui/tasks", params={"status": "finished"})
        assert wrong.status_code == 400
        assert "status: expected queued, running, done or failed" in wrong.text


def test_one_user_signing_in_again_and_again_never_signs_another_user_out(app: Running) -> None:
    """Sessions are bounded in number; one key opening more than that bound (a script signing in in a
    loop) ends only its own oldest sessions, never another person's."""
    alice, bob = key_for(app, "alice"), key_for(app, "bob")
    sessions = Sessions(app.keys, 3600)
    _, kept = sessions.open("alice", alice)
    bobs = [sessions.open("bob", bob)[1] for _ in range(MAX_SESSIONS)]
    assert sessions.find(kept) is not None, "alice was signed out by bob's sign-ins"
    assert sessions.find(bobs[-1]) is not None
    assert sessions.find(bobs[0]) is None  # bob's oldest made room


def test_signing_in_returns_to_the_page_asked_for_with_its_query(app: Running) -> None:
    key = key_for(app, "alice")
    cube = app.service.create_cube("alice", "Trips").cube_id
    with httpx2.Client(base_url=app.url, timeout=TIMEOUT) as client:
        asked = client.get("/ui/memories", params={"cube": cube, "q": "ferry"})
        assert asked.status_code == 303
        form = client.get(asked.headers["location"])
        target = re.search(r'name="next" value="([^"]+)"', form.text)
        assert target, form.text
        answer = client.post("/ui/signin", data={"csrf": csrf_of(form), "key": key,
                                                 "next": target.group(1).replace("&amp;", "&")})
        assert answer.status_code == 303
        assert answer.headers["location"] == f"/ui/memories?cube={cube}&q=ferry"
