"""Hybrid search: ranking, scores, preferences apart, filters, conversation boost, bad input."""

from __future__ import annotations

import pytest

from memos_mcp.core.models import MemoryKind
from memos_mcp.core.service import MemoryService
from memos_mcp.errors import InvalidRequest

FACTS = [
    ("I adopted a golden retriever named Max last spring.", {"topic": "pets", "year": 2024}, "2024-04-01"),
    ("My favourite programming language is Rust.", {"topic": "work", "year": 2023}, "2023-06-01"),
    ("The quarterly budget review is on 14 March.", {"topic": "work", "year": 2025}, "2025-03-01"),
    ("We planted tomatoes and basil in the garden.", {"topic": "home", "year": 2025}, "2025-05-01"),
    ("Zorblat is the codename of the billing migration.", {"topic": "work", "year": 2025}, "2025-02-01"),
]


@pytest.fixture
def filled(service: MemoryService) -> MemoryService:
    service.ensure_user("alice")
    for text, meta, when in FACTS:
        service.add_memory("alice", memory_content=text, metadata=meta, chat_time=when, tags=[meta["topic"]])
    service.add_memory("alice", conversation_id="chat-1", messages=[
        {"role": "user", "content": "I love hiking in the Alps."}])
    return service


def test_the_relevant_memory_ranks_first_with_score_and_ref_id(filled: MemoryService) -> None:
    result = filled.search("alice", "What kind of dog do I have?")
    top = result.memories[0]
    assert "golden retriever" in top.memory
    assert top.ref_id == f"[{top.id[:8]}]"
    assert all(0 <= hit.relativity <= 1 for hit in result.memories)
    assert top.relativity == max(h.relativity for h in result.memories)
    assert top.metadata == {"topic": "pets", "year": 2024}
    assert top.embedding is None


def test_a_rare_keyword_is_found_by_the_keyword_index(filled: MemoryService) -> None:
    assert "billing migration" in filled.search("alice", "zorblat").memories[0].memory


def test_preferences_come_apart_from_facts(filled: MemoryService) -> None:
    result = filled.search("alice", "what outdoor activities do I enjoy")
    assert all(h.kind is MemoryKind.PREFERENCE for h in result.preferences)
    assert all(h.kind is not MemoryKind.PREFERENCE for h in result.memories)
    assert any("hiking" in h.memory for h in result.preferences)
    without = filled.search("alice", "what outdoor activities do I enjoy", include_preference=False)
    assert without.preferences == []


def test_filters_narrow_results(filled: MemoryService) -> None:
    work = filled.search("alice", "anything", top_k=20, filters={"metadata": {"topic": "work"}})
    assert {h.metadata["topic"] for h in work.memories} == {"work"}
    assert len(work.memories) == 3
    recent = filled.search("alice", "anything", top_k=20, filters={"metadata": {"year": 2025}, "tags": ["home"]})
    assert [h.memory for h in recent.memories] == [FACTS[3][0]]
    timed = filled.search("alice", "anything", top_k=20,
                          filters={"time_from": "2025-01-01", "time_to": "2025-03-31", "kind": "fact"})
    assert sorted(h.memory for h in timed.memories) == sorted([FACTS[2][0], FACTS[4][0]])
    prefs_only = filled.search("alice", "hiking", filters={"kind": ["preference"]})
    assert prefs_only.memories == [] and prefs_only.preferences


@pytest.mark.parametrize("filters", [
    {"colour": "red"},
    {"memory_type": "NotAType"},
    {"time_from": "yesterday-ish"},
    {"time_from": "2025-05-01", "time_to": "2025-01-01"},
    {"metadata": {"nested": {"a": 1}}},
])
def test_invalid_filters_are_rejected(filled: MemoryService, filters: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest, match="filters"):
        filled.search("alice", "anything", filters=filters)


@pytest.mark.parametrize("kwargs", [{"query": ""}, {"query": "x", "top_k": 0}, {"query": "x", "top_k": 5000},
                                    {"query": "x", "top_k": True}])
def test_bad_search_arguments_are_rejected(filled: MemoryService, kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        filled.search("alice", **kwargs)  # type: ignore[arg-type]


def test_a_conversation_boosts_its_memories_without_excluding_others(service: MemoryService) -> None:
    service.ensure_user("alice")
    service.add_memory("alice", conversation_id="a", messages=[{"role": "user", "content": "The meeting is at noon."}])
    service.add_memory("alice", conversation_id="b", messages=[{"role": "user", "content": "The meeting is at 3pm."}])
    for conversation in ("a", "b"):
        hits = service.search("alice", "when is the meeting", conversation_id=conversation,
                              include_preference=False).memories
        assert hits[0].conversation_id == conversation
        assert {h.conversation_id for h in hits} == {"a", "b"}


def test_a_relevance_threshold_drops_weak_hits(filled: MemoryService) -> None:
    everything = filled.search("alice", "golden retriever dog", top_k=10).memories
    best = max(h.relativity for h in everything)
    strong = filled.search("alice", "golden retriever dog", top_k=10, threshold=best - 1e-6)
    assert [h.id for h in strong.memories] == [h.id for h in everything if h.relativity >= best - 1e-6]
    assert len(strong.memories) == 1 and len(everything) > 1


LIFE = ["I moved to Lisbon in March 2024.", "My dog is called Rex.", "I prefer writing Python over Java.",
        "My sister Anna was born on 4 May.", "I work as a nurse at St Mary's hospital.", "I am allergic to peanuts."]


@pytest.fixture
def life(service: MemoryService) -> MemoryService:
    service.ensure_user("alice")
    for text in LIFE:
        service.add_memory("alice", memory_content=text)
    return service


@pytest.mark.parametrize(("query", "answer"), [
    ("where does the user live?", LIFE[0]),
    ("Where do I live now?", LIFE[0]),
    ("Which city did the user move to?", LIFE[0]),
    ("what is the name of my dog?", LIFE[1]),
    ("What pet does the user have?", LIFE[1]),
    ("which programming language does the user prefer?", LIFE[2]),
    ("When is my sister's birthday?", LIFE[3]),
    ("what does the user do for work?", LIFE[4]),
    ("Is the user allergic to anything?", LIFE[5]),
])
def test_a_clear_match_passes_memos_default_threshold_and_unrelated_memories_do_not(
        life: MemoryService, query: str, answer: str) -> None:
    kept = life.search("alice", query, threshold=0.45, include_preference=False).memories
    assert [h.memory for h in kept] == [answer]
    everything = life.search("alice", query, include_preference=False).memories
    assert len(everything) == len(LIFE) and all(0 <= h.relativity <= 1 for h in everything)


@pytest.mark.parametrize(("query", "answer"), [
    ("Where do I live?", "The user moved to Lisbon in March 2024."),
    ("what is my dog called?", "The user has a dog called Rex."),
    ("What do I like to drink?", "The user loves green tea."),
])
def test_a_first_person_question_finds_memories_written_about_the_user(
        service: MemoryService, query: str, answer: str) -> None:
    service.ensure_user("alice")
    for text in ("The user moved to Lisbon in March 2024.", "The user has a dog called Rex.",
                 "The user loves green tea.", "The user works night shifts."):
        service.add_memory("alice", memory_content=text)
    kept = service.search("alice", query, threshold=0.45, include_preference=False).memories
    best = max(kept, key=lambda h: h.relativity)
    assert best.memory == answer
    # Memories that all begin "The user ..." share their subject with the question, which lifts the
    # unrelated ones (MiniLM cosine) towards the threshold: only the clear match is asserted to lead.
    assert all(h.relativity < best.relativity for h in kept if h.memory != answer)


def test_a_question_about_nothing_stored_gets_nothing_at_the_default_threshold(life: MemoryService) -> None:
    for query in ("what is the capital of France?", "how do I reset my router?", "who won the 1998 world cup?"):
        assert life.search("alice", query, threshold=0.45).memories == []


def test_the_configured_threshold_applies_when_a_search_gives_none(life: MemoryService) -> None:
    life.settings.search.threshold = 0.45
    assert [h.memory for h in life.search("alice", "what is the name of my dog?").memories] == [LIFE[1]]
    assert len(life.search("alice", "what is the name of my dog?", threshold=0.0).memories) == len(LIFE)


@pytest.mark.parametrize("threshold", [-0.1, 1.5, True, "high"])
def test_a_threshold_outside_zero_to_one_is_rejected(life: MemoryService, threshold: object) -> None:
    with pytest.raises(InvalidRequest, match="threshold") as caught:
        life.search("alice", "my dog", threshold=threshold)  # type: ignore[arg-type]
    assert caught.value.details == {"field": "threshold"}


def test_archived_memories_are_not_found_unless_asked(filled: MemoryService) -> None:
    hit = filled.search("alice", "golden retriever").memories[0]
    filled.update_memory("alice", hit.id, status="archived")
    assert all(h.id != hit.id for h in filled.search("alice", "golden retriever", top_k=20).memories)
    archived = filled.search("alice", "golden retriever", filters={"status": ["archived"]}).memories
    assert [h.id for h in archived] == [hit.id]


def test_listing_pages_through_newest_first(filled: MemoryService) -> None:
    first = filled.list_memories("alice", page=1, size=4)
    second = filled.list_memories("alice", page=2, size=4)
    assert first.total == second.total == 7
    assert len(first.memories) == 4 and len(second.memories) == 3
    everything = first.memories + second.memories
    assert len({m.id for m in everything}) == 7
    assert [m.created_at for m in everything] == sorted((m.created_at for m in everything), reverse=True)
    with pytest.raises(InvalidRequest):
        filled.list_memories("alice", page=0)


def test_a_page_beyond_any_store_is_refused_not_a_crash(service: MemoryService) -> None:
    service.ensure_user("alice")
    with pytest.raises(InvalidRequest, match="page"):
        service.list_memories("alice", page=13788766738202947130770908512256)
