"""A single fact (``memory_content``) added in a conversation: indexed with the conversation's earlier
adds, timed by its ``chat_time``, and a leading "Name: ..." making Name its speaker (a person of the
graph) only when it reads as a person speaking (real service, both vector backends)."""

from __future__ import annotations

import pytest

from memos_mcp.core.graph.memory import GraphMemory
from memos_mcp.core.service import ROOT_USER, MemoryService
from memos_mcp.core.write.facts import speaker_of

CUBE = "root_default_cube"
FILLER = ["The boiler was serviced last week.", "Ana repainted the kitchen a pale green.",
          "The library closes early on Saturdays.", "Our neighbour keeps bees in the garden.",
          "The train to the coast was delayed again.", "A new bakery opened on the corner.",
          "The printer at work ran out of toner.", "Tomas is learning to play the cello.",
          "The marathon route goes past the harbour.", "The city plans a new bike lane."]


def graph_of(service: MemoryService) -> GraphMemory:
    graph = service.graph()
    assert graph is not None
    return graph


def people_of(service: MemoryService, memory_id: str) -> set[str]:
    """The persons graph memory links to a memory."""
    graph = graph_of(service)
    names = {n for r in graph.store.relations(CUBE, limit=10_000) if memory_id in r.memory_ids
             for n in (r.subject, r.object)}
    return {n for n in names if (e := graph.store.entity(CUBE, n)) is not None and e.type == "person"}


def top(service: MemoryService, query: str, k: int) -> list[str]:
    return [h.id for h in service.search(ROOT_USER, query, top_k=k, include_preference=False, graph=False).memories]


def test_a_fact_of_a_conversation_is_found_through_what_was_said_before_it(service: MemoryService) -> None:
    for text in FILLER:
        service.add_memory(ROOT_USER, memory_content=text)
    service.add_memory(ROOT_USER, memory_content="We booked the flights to Reykjavik for March.",
                       conversation_id="trip")
    after = service.add_memory(ROOT_USER, memory_content="It cost way more than we planned.",
                               conversation_id="trip").added[0]
    alone = service.add_memory(ROOT_USER, memory_content="It cost way more than we had planned.").added[0]

    found = top(service, "Reykjavik", 3)
    assert after in found and alone not in found


def test_a_fact_takes_its_chat_time_as_event_time_and_is_found_by_that_date(service: MemoryService) -> None:
    added = service.add_memory(ROOT_USER, memory_content="Caroline: I went to the pride parade.",
                               conversation_id="s1", chat_time="1:56 pm on 8 May, 2023").memories[0]
    assert added.event_time is not None and added.event_time.date().isoformat() == "2023-05-08"


def test_a_speaker_form_links_the_fact_to_that_person(service: MemoryService) -> None:
    added = service.add_memory(ROOT_USER, memory_content="Caroline: I adopted a dog", conversation_id="c1")
    assert added.memories[0].memory == "Caroline: I adopted a dog"  # the text is stored as given
    assert people_of(service, added.added[0]) == {"Caroline"}
    # Once a person is known, a line of theirs with no "I" or "you" in it is theirs too.
    later = service.add_memory(ROOT_USER, memory_content="Caroline: The shelter staff were lovely.").added[0]
    assert people_of(service, later) == {"Caroline"}


@pytest.mark.parametrize("text", [
    "Note: buy milk", "TODO: call the bank about my card", "Re: your offer for the flat",
    "FYI: the office is closed on Friday", "Dinner: pasta at 7", "Shopping list: eggs, milk",
    "See http://example.com/page for my notes", "Meeting at 10:30: room 4", "Reminder: I need to call mom",
    "Important: you must renew the passport", "Update: we moved to Porto", "Monday: I have gym",
])
def test_a_label_before_a_colon_is_not_a_speaker(service: MemoryService, text: str) -> None:
    added = service.add_memory(ROOT_USER, memory_content=text, conversation_id="c1")
    assert people_of(service, added.added[0]) == set()
    label = text.split(":")[0].split()[0]
    entity = graph_of(service).store.entity(CUBE, label)
    assert entity is None or entity.type != "person"


@pytest.mark.parametrize(("text", "speaker"), [
    ("Caroline: I adopted a dog", "Caroline"), ("Jean-Luc: I'm taking the night train", "Jean-Luc"),
    ("Mary Ann Lee: we moved to Porto last spring", "Mary Ann Lee"), ("Melanie: Wow, that's great news!", "Melanie"),
    ("O'Brien: my sister starts school today", "O'Brien"), ("Zoë: you should see the garden", "Zoë"),
    ("Note: buy milk", None), ("TODO: x", None), ("Re: hello", None), ("http://example.com", None),
    ("10:30 standup", None), ("Dinner: pasta at 7", None), ("Paris in spring", None),
    ("Tom: the shelter was lovely", None), ("the user: I like tea", None), ("User: I like tea", None),
])
def test_speaker_of_reads_a_person_speaking_and_nothing_else(text: str, speaker: str | None) -> None:
    assert speaker_of(text) == speaker


def test_a_speaker_the_conversation_already_knows_needs_no_pronoun() -> None:
    assert speaker_of("Tom: the shelter was lovely", known={"tom"}) == "Tom"
