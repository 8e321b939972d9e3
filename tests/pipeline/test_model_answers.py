"""Reading a model's extraction answer: repairs, refusals, and lenient item validation."""

from __future__ import annotations

import pytest

from memos_mcp.core.write.ingest.llm_extractor import EntityOut, FactOut, RelationOut, answer_schema, parse_answer


@pytest.mark.parametrize(("text", "problem"), [
    ("", "no JSON object"), ("Sure thing!", "no JSON object"), ("[1, 2]", "JSON list, not an object"),
    ('{"memories": []}', "none of the keys"), ('{"facts": {"value": "x"}}', "'facts' must be a list"),
    ('{"facts": [{"value": "x"}', "not valid JSON"),
])
def test_unusable_answers_are_named(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_answer(text)


def test_fenced_prose_wrapped_answers_with_raw_newlines_are_read() -> None:
    text = 'Here:\n```json\n{"facts": [{"value": "line one\nline two"}]}\n```\nDone.'
    assert parse_answer(text) == {"facts": [{"value": "line one\nline two"}]}


def test_items_are_read_leniently_and_bounded() -> None:
    fact = FactOut.model_validate({"value": "  Alice \n lives   in Porto ", "confidence": "0", "tags": "porto",
                                   "sources": ["1", 2.0, "x"], "memory_type": "LongTermMemory"})
    assert (fact.value, fact.confidence, fact.sources, fact.tags) == ("Alice lives in Porto", 0.0, [1, 2], ["porto"])
    assert FactOut.model_validate({"value": "x", "confidence": "very", "memory_type": "Other"}).confidence == 0.8
    relation = RelationOut.model_validate({"subject": "Alice", "predicate": "Works At", "object": "Acme"})
    assert relation.predicate == "works_at" and relation.confidence == 0.9
    assert EntityOut.model_validate({"name": "Alice", "type": " Person "}).type == "person"


def test_the_schema_allows_only_the_numbers_shown() -> None:
    schema = answer_schema(new=3, existing=0)["properties"]
    assert schema["updates"]["maxItems"] == 0
    source = schema["facts"]["items"]["properties"]["sources"]["items"]
    assert (source["minimum"], source["maximum"]) == (0, 2)
    memory = answer_schema(new=1, existing=5)["properties"]["updates"]["items"]["properties"]["memory"]
    assert (memory["minimum"], memory["maximum"]) == (0, 4)
