"""The deterministic graph extractor and the query names the graph is searched by."""

from __future__ import annotations

import pytest

from memos_mcp.core.graph.extract import (
    MENTIONED,
    MENTIONS,
    RELATED_TO,
    extract_graph,
    named_entities,
    query_names,
    without_names,
)


def names(text: str) -> list[tuple[str, str]]:
    return [(e.name, e.type) for e in named_entities(text)]


def test_capitalised_names_and_dates_are_entities_but_sentence_openers_are_not() -> None:
    text = "Yesterday I met Sarah from New York. Thanks! We visited the Museum of Modern Art on 7 May 2023."
    assert names(text) == [("Sarah", ""), ("New York", ""), ("Museum of Modern Art", ""), ("7 May 2023", "date")]


def test_a_verb_opening_a_sentence_is_not_a_name_and_possessives_are_trimmed() -> None:
    assert names("Painting with Jon's kids was fun. Went to Paris in July.") == [
        ("Jon", ""), ("Paris", ""), ("July", "date")]


def test_the_speaker_is_a_person_who_mentions_each_entity_and_co_mentioned_entities_are_related() -> None:
    graph = extract_graph("I saw Sarah and Tom at the LGBTQ center.", "Caroline")

    assert [(e.name, e.type) for e in graph.entities] == [("Caroline", "person"), ("Sarah", ""), ("Tom", ""),
                                                           ("LGBTQ", "")]
    assert (("Caroline", MENTIONS, "Sarah", 0.6)) in graph.relations
    assert {(s, o) for s, p, o, _ in graph.relations if p == RELATED_TO} == {
        ("Sarah", "Tom"), ("Sarah", "LGBTQ"), ("Tom", "LGBTQ")}


def test_a_speaker_naming_themself_is_not_their_own_relation() -> None:
    graph = extract_graph("Caroline here, with Mel.", "Caroline")
    assert graph.relations == [("Caroline", MENTIONS, "Mel", 0.6)]


def test_text_without_a_speaker_links_its_entities_only_to_each_other() -> None:
    graph = extract_graph("Alice works with Bob.")
    assert graph.relations == [("Alice", RELATED_TO, "Bob", 0.5)]
    assert extract_graph("nothing named here at all.").relations == []


def test_a_lone_entity_is_mentioned_by_itself_so_its_memory_stays_linked() -> None:
    assert extract_graph("Alice prefers dark mode.").relations == [("Alice", MENTIONED, "Alice", 0.5)]


def test_query_names_hold_named_entities_and_lower_case_word_runs_without_common_words() -> None:
    found = query_names("What did the friend Caroline met at the support group recommend?")
    assert found[0] == "Caroline"
    assert "support group" in found and "friend Caroline" in found
    assert "What" not in found and "the" not in found


@pytest.mark.parametrize("text", ["Thanks, Melanie! I loved it.", "Hey Melanie, how are you?", "Wow, Melanie!",
                                  "Melanie, look at this.", "See you soon, Melanie.", "Hi melanie - long time!",
                                  "That is great, Melanie Ann!"])
def test_a_person_only_addressed_is_not_an_entity(text: str) -> None:
    graph = extract_graph(text, "Caroline", {"melanie", "melanie ann"})
    assert [e.name for e in graph.entities] == ["Caroline"]
    assert graph.relations == [("Caroline", "mentioned", "Caroline", 0.5)]


@pytest.mark.parametrize("text", ["I told Melanie about it.", "Melanie's kids love it.",
                                  "Thanks, Melanie! Melanie came too.", "Melanie and I went out."])
def test_a_person_spoken_about_stays_an_entity(text: str) -> None:
    assert "Melanie" in [e.name for e in extract_graph(text, "Caroline", {"melanie"}).entities]


def test_only_people_can_be_addressed_so_an_apposition_stays() -> None:
    graph = extract_graph("A gift from my home country, Sweden.", "Caroline", {"melanie"})
    assert [e.name for e in graph.entities] == ["Caroline", "Sweden"]


def test_names_leave_a_text_whole_words_any_case_with_their_possessive() -> None:
    assert without_names("What are Caroline's plans, and did caroline meet Jon?", ["caroline"]) == \
        "What are plans, and did meet Jon?"
    assert without_names("Did Jonathan see Jon’s mum?", ["jon"]) == "Did Jonathan see mum?"
    assert without_names("Where does Mary Ann live?", ["mary ann"]) == "Where does live?"
