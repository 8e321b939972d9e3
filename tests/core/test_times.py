"""Times round-trip through every store or are refused naming the field; a stored time from an older
version never breaks a read; a bare-date upper bound means the whole day."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from memos_mcp.core.portability import export_cube, import_lines
from memos_mcp.core.service import MemoryService
from memos_mcp.core.timeparse import parse_bound, parse_time
from memos_mcp.errors import InvalidRequest

STORABLE = ["0001-01-01T00:00:00+00:00", "1066-10-14T09:00:00+00:00", "1336-06-01T00:00:00+00:00",
            "2603-09-01T00:00:00+00:00", "2700-06-01T00:00:00+00:00", "9999-12-31T23:59:59+00:00"]
BEYOND = ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59.5+00:00",
          253402300800000, "1e20"]


def cube_of(service: MemoryService, user: str) -> str:
    return service.get_user(user)[1][0].cube_id


@pytest.mark.parametrize("when", STORABLE)
def test_a_storable_time_reads_back_as_written_from_every_store(service: MemoryService, when: str) -> None:
    service.ensure_user("alice")
    sent = datetime.fromisoformat(when)
    added = service.add_memory("alice", messages=[{"role": "user", "content": "We crossed the bridge.",
                                                   "chat_time": when}], conversation_id="c1")
    (memory,) = added.memories
    assert service.get_memory("alice", memory.id).event_time == sent
    assert service.list_memories("alice").memories[0].event_time == sent
    assert [m.chat_time for m in service.get_messages("alice", "c1")] == [sent]
    found = service.list_memories("alice", filters={"time_from": when, "time_to": when})
    assert [m.id for m in found.memories] == [memory.id]
    lines = list(export_cube(service, "alice", cube_of(service, "alice")))
    service.ensure_user("bob")
    import_lines(service, "bob", lines)
    (copied,) = service.list_memories("bob").memories
    assert copied.event_time == sent and copied.created_at == memory.created_at


@pytest.mark.parametrize("when", BEYOND)
def test_a_time_beyond_the_storable_range_is_refused_naming_the_field_and_stores_nothing(
        service: MemoryService, when: object) -> None:
    service.ensure_user("alice")
    with pytest.raises(InvalidRequest) as refused:
        service.add_memory("alice", messages=[{"role": "user", "content": "Hello there.", "chat_time": when}],
                           conversation_id="c1")
    assert "chat_time" in str(refused.value) and "range" in str(refused.value)
    with pytest.raises(InvalidRequest, match="chat_time"):
        service.add_memory("alice", memory_content="Hello there.", chat_time=when)
    with pytest.raises(InvalidRequest, match="time_to"):
        service.list_memories("alice", filters={"time_to": when})
    assert service.list_memories("alice").total == 0 and service.get_messages("alice", "c1") == []


def test_an_import_with_a_time_beyond_the_range_is_refused_naming_the_line(service: MemoryService) -> None:
    service.ensure_user("alice")
    service.add_memory("alice", memory_content="The kettle is descaled monthly.")
    lines = list(export_cube(service, "alice", cube_of(service, "alice")))
    record = json.loads(lines[1]) | {"event_time": "9999-12-31T23:59:59-05:00"}
    service.ensure_user("bob")
    with pytest.raises(InvalidRequest, match="line 2: event_time"):
        import_lines(service, "bob", [lines[0], json.dumps(record)])
    assert service.list_memories("bob").total == 0


def test_rows_stored_beyond_the_range_by_an_older_version_never_break_reads(service: MemoryService) -> None:
    service.ensure_user("alice")
    added = service.add_memory("alice", messages=[{"role": "user", "content": "The lift is out of order."}],
                               conversation_id="c1")
    (memory,) = added.memories
    year_10000 = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp() + 5 * 3600
    with service.catalog._tx() as db:  # as the version that accepted -05:00 on the last day of 9999 wrote it
        db.execute(sa.text("UPDATE messages SET chat_time = :t"), {"t": year_10000})
    service.vectors.set_payload(memory.id, {"event_time": year_10000})

    assert [m.chat_time for m in service.get_messages("alice", "c1")] == [datetime(9999, 12, 31, 23, 59, 59,
                                                                                   tzinfo=UTC)]
    assert service.get_memory("alice", memory.id).event_time == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    service.add_memory("alice", messages=[{"role": "user", "content": "The stairs are fine."}], conversation_id="c1")
    records = [json.loads(line) for line in export_cube(service, "alice", cube_of(service, "alice"))]
    assert sum(r["type"] == "message" for r in records) == 2 and sum(r["type"] == "memory" for r in records) == 2


def test_a_bare_date_as_an_upper_bound_includes_the_whole_day(service: MemoryService) -> None:
    service.ensure_user("alice")
    late = service.add_memory("alice", memory_content="The late train left.", chat_time="2026-03-02T23:00:00Z")
    service.add_memory("alice", memory_content="The next day began.", chat_time="2026-03-03T00:00:00Z")
    for upper in ("2026-03-02", "2 March 2026", "2026/03/02", "March 2, 2026"):
        found = service.list_memories("alice", filters={"time_from": "2026-03-02", "time_to": upper})
        assert [m.id for m in found.memories] == [late.memories[0].id], upper
    assert service.list_memories("alice", filters={"time_to": "2026-03-01"}).total == 0


def test_the_parser_reads_epoch_seconds_and_milliseconds_and_bounds_dates() -> None:
    assert parse_time(1772409600) == parse_time("1772409600") == parse_time(1772409600000) == datetime(
        2026, 3, 2, tzinfo=UTC)
    assert parse_bound("2026-03-02", upper=True) == datetime(2026, 3, 2, 23, 59, 59, 999999, tzinfo=UTC)
    assert parse_bound("2026-03-02T10:00:00Z", upper=True) == datetime(2026, 3, 2, 10, tzinfo=UTC)
    assert parse_bound("2026-03-02", upper=False) == datetime(2026, 3, 2, tzinfo=UTC)
    assert parse_bound("9999-12-31", upper=True) == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
