"""``memos-mcp import`` run again, or resumed after it stopped half way, changes nothing: one copy of
each memory, one ``ADD`` history event per memory, one copy of each conversation message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.durability.support import catalog_rows
from tests.test_cli import memos, ok, records

pytestmark = pytest.mark.usefixtures("clean_environment")

TRIP = [
    {"role": "user", "content": "I booked a cabin at Lake Louise for the second week of July."},
    {"role": "assistant", "content": "Sounds lovely. Are you driving there?"},
    {"role": "user", "content": "Yes, in my old Volvo; my sister Ines comes along."},
    {"role": "user", "content": "I am allergic to hazelnuts, so we pack our own snacks."},
]


def state(data_dir: Path) -> dict[str, Any]:
    """Points, history events (and how many per memory at most), messages, pending writes."""
    stats = json.loads(ok(memos(data_dir.parent, data_dir, "stats")).stdout)

    def one(sql: str) -> int:
        return int(str(catalog_rows(data_dir, sql)[0][0]))

    return {"points": stats["vectors"]["points"], "history": one("SELECT COUNT(*) FROM history"),
            "most events of a memory": one("SELECT COALESCE(MAX(n), 0) FROM (SELECT COUNT(*) AS n FROM history "
                                           "GROUP BY memory_id)"),
            "messages": one("SELECT COUNT(*) FROM messages"),
            "pending": one("SELECT COUNT(*) FROM pending_writes")}


def test_importing_an_export_again_adds_no_memory_and_no_history(tmp_path: Path) -> None:
    talk = tmp_path / "trip.json"
    talk.write_text(json.dumps(TRIP), encoding="utf-8")
    source = tmp_path / "source"
    ok(memos(tmp_path, source, "import", str(talk), "--user", "alice", "--cube", "c1"))
    exported = tmp_path / "c1.jsonl"
    ok(memos(tmp_path, source, "export", "--cube", "c1", "--out", str(exported)))
    memories = records(exported)[0]["memories"]
    assert memories >= 3

    fresh = tmp_path / "fresh"
    runs = [json.loads(ok(memos(tmp_path, fresh, "import", str(exported), "--user", "bob", "--cube", "c2")).stdout)
            for _ in range(2)]
    assert [(r["memories"], r["kept"]) for r in runs] == [(memories, 0), (0, memories)]
    assert state(fresh) == {"points": memories, "history": memories, "most events of a memory": 1,
                            "messages": len(TRIP), "pending": 0}

    # Into another cube of the same data directory: the ids belong to c1, so each gets a derived id,
    # the same one on the second run.
    again = [json.loads(ok(memos(tmp_path, source, "import", str(exported), "--user", "bob", "--cube", "c3")).stdout)
             for _ in range(2)]
    assert [r["renamed"] for r in again] == [memories + len(TRIP)] * 2  # memories and messages
    assert state(source) == {"points": 2 * memories, "history": 2 * memories, "most events of a memory": 1,
                             "messages": 2 * len(TRIP), "pending": 0}


def test_a_conversation_import_run_again_or_resumed_stores_each_message_once(tmp_path: Path) -> None:
    full = tmp_path / "trip.json"
    full.write_text(json.dumps(TRIP), encoding="utf-8")
    begun = tmp_path / "begun.json"  # what an import stopped after its first half had stored
    begun.write_text(json.dumps(TRIP[:2]), encoding="utf-8")
    data = tmp_path / "data"

    ok(memos(tmp_path, data, "import", str(begun), "--user", "alice", "--conversation", "trip"))
    first = state(data)
    assert first["messages"] == 2
    ok(memos(tmp_path, data, "import", str(full), "--user", "alice", "--conversation", "trip"))
    resumed = state(data)
    assert resumed["messages"] == len(TRIP)
    assert resumed["history"] == resumed["points"] > first["points"]
    ok(memos(tmp_path, data, "import", str(full), "--user", "alice", "--conversation", "trip"))
    assert state(data) == resumed
    assert resumed["most events of a memory"] == 1 and resumed["pending"] == 0
