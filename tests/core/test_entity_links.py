"""``graph.entity_links``: whether a query is expanded through the non-person entities it names (places,
events, titles, dates) or through the people it names only (real service, both vector backends)."""

from __future__ import annotations

import pytest

from memos_mcp.core.service import ROOT_USER
from tests.conftest import ServiceFactory
from tests.core.test_graph_service import QUESTION, STORY

CUBE = "root_default_cube"


@pytest.mark.parametrize("entity_links", [True, False])
def test_entity_links_decide_whether_a_named_place_expands_the_query(make_service: ServiceFactory,
                                                                    entity_links: bool) -> None:
    service = make_service(graph={"entity_links": entity_links})
    place = service.add_memory(ROOT_USER, memory_content="The Louvre was packed on Sunday.").added[0]
    said = service.add_memory(ROOT_USER, memory_content="Caroline: I adopted a dog").added[0]
    graph = service.graph()
    assert graph is not None

    assert (place in graph.expand(CUBE, "Was the Louvre busy?", 1).links) is entity_links
    person = graph.expand(CUBE, "What did Caroline adopt?", 1)
    assert said in person.links and person.people == ("caroline",)  # people expand the query either way


@pytest.mark.parametrize("entity_links", [True, False])
def test_a_person_named_only_in_plain_facts_reaches_their_neighbours_through_entity_links(
        make_service: ServiceFactory, entity_links: bool) -> None:
    # Why entity links stay on by default: Caroline speaks in none of these facts, so she is an entity
    # of no type, and only the entity links take the query from her to what Zofia said.
    service = make_service(graph={"weight": 0.5, "entity_links": entity_links})
    for text in STORY:
        service.add_memory(ROOT_USER, memory_content=text)
    hits = service.search(ROOT_USER, QUESTION, top_k=4, graph=True, graph_depth=2).memories
    assert ("Zofia suggested reading Becoming." in [h.memory for h in hits]) is entity_links
