"""A memory that ends in a question asks more than it tells: it ranks after a telling memory of about
the same score (``search.question_penalty``), while a question far ahead of the rest stays ahead."""

from __future__ import annotations

from memos_mcp.core.service import MemoryService
from tests.conftest import ServiceFactory

ASKING = "Do your kids like camping by the lake?"
TELLING = "The kids love camping by the lake."
FAR = "Where can I buy a red bicycle?"
QUERY = "do the kids like camping by the lake"


def _fill(service: MemoryService) -> MemoryService:
    service.ensure_user("alice")
    for text in (TELLING, ASKING, FAR, "My grandmother gave me this necklace in Sweden."):
        service.add_memory("alice", memory_content=text)
    return service


def _ranked(service: MemoryService, query: str, **options: int) -> list[str]:
    return [h.memory for h in service.search("alice", query, include_preference=False, **options).memories]


def test_a_telling_memory_ranks_before_a_question_of_about_the_same_score(make_service: ServiceFactory) -> None:
    plain = _fill(make_service(search={"question_penalty": 0}))
    unpenalised = _ranked(plain, QUERY)
    service = _fill(make_service(plain.settings.data_dir.parent / "penalised"))
    ranked = _ranked(service, QUERY)
    assert unpenalised.index(ASKING) < unpenalised.index(TELLING)  # the question's words match better
    assert ranked.index(TELLING) < ranked.index(ASKING)
    assert sorted(ranked) == sorted(unpenalised)  # the same memories, only their order changes


def test_with_top_k_one_the_telling_memory_comes_from_beyond_the_limit(service: MemoryService) -> None:
    assert _ranked(_fill(service), QUERY, top_k=1) == [TELLING]


def test_a_question_far_ahead_of_the_rest_stays_first(service: MemoryService) -> None:
    assert _ranked(_fill(service), "buy a red bicycle")[0] == FAR


def test_a_query_naming_a_person_ranks_the_graph_fusions_pool_the_same_way(make_service: ServiceFactory) -> None:
    def fill(service: MemoryService) -> list[str]:
        service.ensure_user("alice")
        for text in (f"Melanie: {TELLING}", f"Melanie: {ASKING}", f"Caroline: {FAR}"):
            service.add_memory("alice", memory_content=text)
        return _ranked(service, "do Melanie's kids like camping by the lake", top_k=1)

    plain = make_service(search={"question_penalty": 0})
    assert fill(plain) == [f"Melanie: {ASKING}"]  # through the graph (Melanie) its words still match better
    # The two lie 0.07-0.09 apart in fused score: a penalty above that must reorder the fusion's pool.
    penalised = make_service(plain.settings.data_dir.parent / "penalised", search={"question_penalty": 0.1})
    assert fill(penalised) == [f"Melanie: {TELLING}"]
